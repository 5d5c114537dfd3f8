"""``gfm predict``: land-cover (or any segmentation/regression) maps of rasters of any size."""

from __future__ import annotations

import click

from gfmcli import options as opt
from gfmcli.commands._mapping import MappingRequest, run_mapping


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@opt.inputs_arg
@opt.output_opt
@opt.model_opt
@opt.sensor_opt
@opt.bands_opt
@opt.window_opt
@opt.overlap_opt
@opt.batch_size_opt
@opt.device_opt
@opt.precision_opt
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tif", "gpkg"]),
    default=None,
    help="Output format; default from the -o extension (.tif/.gpkg), else tif.",
)
@click.option(
    "--probabilities",
    is_flag=True,
    help="Also write MAP.probs.tif: one uint8 band per class, percent (0-100), nodata 255.",
)
@opt.creation_opt
@opt.overwrite_opt
@opt.keep_going_opt
@opt.dry_run_opt
@opt.quiet_opt
@click.pass_context
def predict(
    ctx: click.Context,
    inputs,
    output,
    model,
    sensor,
    bands,
    window,
    overlap,
    batch_size,
    device,
    precision,
    fmt,
    probabilities,
    creation_options,
    overwrite,
    keep_going,
    dry_run,
    quiet,
) -> None:
    """Map INPUT rasters (files, folders, globs, '-' for paths on stdin) to class maps.

    \b
    Examples:
      gfm predict scene.tif -o map.tif
      gfm predict scenes/ -o maps/ --keep-going
      find data -name '*.tif' | gfm predict - -o maps/ --format gpkg
      gfm predict l2a.tif -o map.tif --sensor sentinel2-l2a --bands B02,B03,B04,B08

    Writes a Cloud-Optimized GeoTIFF (uint8 classes, nodata 255, colour table, class names,
    provenance tags) or a GeoPackage of class polygons. Existing outputs are skipped.
    """
    from gfmcli.engine.runner import MapOptions

    run_mapping(
        ctx,
        MappingRequest(
            kind="predict",
            inputs=inputs,
            output=output,
            model=model,
            fmt=fmt,
            suffix="",
            device=device,
            overwrite=overwrite,
            keep_going=keep_going,
            dry_run=dry_run,
            quiet=quiet,
            options=MapOptions(
                window=window,
                overlap=overlap,
                batch_size=batch_size,
                precision=precision,
                sensor=sensor,
                bands=bands,
                probabilities=probabilities,
                creation_options=dict(creation_options),
            ),
        ),
    )
