"""``gfm embed``: the encoder's per-patch embeddings as a georeferenced COG, or pooled per-window
vectors with their footprints in a GeoPackage."""

from __future__ import annotations

import click

from gfmcli.cli import options as opt
from gfmcli.cli.mapping import MappingRequest, run_mapping


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@opt.mapping_options
@click.option(
    "--dtype",
    "embedding_precision",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Stored precision of the embedding COG (float16: values rounded to half floats, "
    "about 0.6 of the bytes).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tif", "gpkg", "parquet"]),
    default=None,
    help="tif: per-patch embedding COG; gpkg or parquet (GeoParquet): one pooled vector per "
    "window with its footprint. Default from the -o extension, else tif.",
)
@click.option(
    "--pool",
    type=click.Choice(["mean", "cls"]),
    default="mean",
    show_default=True,
    help="Window vectors (gpkg, parquet): mean of the window's valid patch embeddings, or the "
    "global [CLS].",
)
@click.pass_context
def embed(ctx: click.Context, **params) -> None:
    """Write per-patch embeddings of INPUT rasters: one pixel per patch, one band per feature.

    \b
    Examples:
      gfm embed scene.tif -o scene.emb.tif
      gfm embed scenes/ -o embeddings/ --dtype float16
      gfm embed scene.tif -o chips.gpkg --window 256 --overlap 0 --pool mean
      gfm embed scenes/ -o embeddings/ --format parquet --overlap 0

    Overlapping windows are blended on the patch grid like predictions; --window and
    --overlap must be multiples of the model's patch size. In folder mode outputs are named
    <stem>.emb.tif (or <stem>.emb.gpkg, <stem>.emb.parquet).
    """
    run_mapping(ctx, MappingRequest.from_params("embed", params))
