"""``gfm embed``: the encoder's per-patch embeddings as a georeferenced multi-band COG."""

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
    "--dtype",
    "embedding_precision",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Stored precision of the embeddings (float16 halves the size).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tif", "gpkg"]),
    default=None,
    help="tif: per-patch embedding COG; gpkg: one pooled vector per window with its footprint. "
    "Default from the -o extension, else tif.",
)
@click.option(
    "--pool",
    type=click.Choice(["mean", "cls"]),
    default="mean",
    show_default=True,
    help="GeoPackage vectors: mean of the window's valid patch embeddings, or the global [CLS].",
)
@opt.creation_opt
@opt.overwrite_opt
@opt.keep_going_opt
@opt.dry_run_opt
@opt.quiet_opt
@click.pass_context
def embed(
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
    embedding_precision,
    fmt,
    pool,
    creation_options,
    overwrite,
    keep_going,
    dry_run,
    quiet,
) -> None:
    """Write per-patch embeddings of INPUT rasters: one pixel per patch, one band per feature.

    \b
    Examples:
      gfm embed scene.tif -o scene.emb.tif
      gfm embed scenes/ -o embeddings/ --dtype float16
      gfm embed scene.tif -o chips.gpkg --window 256 --overlap 0 --pool mean
      gfm embed scene.tif -o chips.gpkg --window 256 --overlap 0 --pool mean

    Overlapping windows are blended on the patch grid like predictions; --window and
    --overlap must be multiples of the model's patch size. In folder mode outputs are named
    <stem>.emb.tif (or <stem>.emb.gpkg).
    """
    from gfmcli.engine.runner import MapOptions

    run_mapping(
        ctx,
        MappingRequest(
            kind="embed",
            inputs=inputs,
            output=output,
            model=model,
            fmt=fmt,
            suffix=".emb",
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
                embedding_precision=embedding_precision,
                pool=pool,
                creation_options=dict(creation_options),
            ),
        ),
    )
