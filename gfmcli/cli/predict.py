"""``gfm predict``: land-cover (or any segmentation/regression) maps of rasters of any size."""

from __future__ import annotations

import click

from gfmcli.cli import options as opt
from gfmcli.cli.mapping import MappingRequest, run_mapping


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@opt.mapping_options
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
@click.pass_context
def predict(ctx: click.Context, **params) -> None:
    """Map INPUT rasters (files, folders, globs, '-' for paths on stdin) to class maps.

    \b
    Examples:
      gfm predict scene.tif -o map.tif
      gfm predict scenes/ -o maps/ --keep-going
      find data -name '*.tif' | gfm predict - -o maps/ --format gpkg
      gfm predict l2a.tif -o rgbn.tif --sensor sentinel2-l2a --bands B02,B03,B04,B08

    Writes a Cloud-Optimized GeoTIFF (uint8 classes, nodata 255, colour table, class names,
    provenance tags) or a GeoPackage of class polygons. Complete outputs are skipped (resume);
    one made with another model or other settings is refused unless --overwrite.
    """
    run_mapping(ctx, MappingRequest.from_params("predict", params))
