"""``gfm simulate``: simulated multi-sensor scenes with land-cover labels (docs/simulator.md)."""

from __future__ import annotations

import click


def _cloud_cover(ctx: click.Context, param: click.Parameter, value: str | None):
    """``auto`` or a fraction in [0, 1]."""
    if value is None or value == "auto":
        return value
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0.0 <= fraction <= 1.0:
        raise click.BadParameter(f"{value!r} is not a fraction in [0, 1] or 'auto'")
    return fraction


# fmt: skip below: the signature kept on few lines (ruff format would add 11 lines)
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-o", "--output", required=True, type=click.Path(), help="Folder to write into.")
@click.option(
    "--sensor",
    "sensor_names",
    multiple=True,
    default=("sentinel2-l2a",),
    show_default=True,
    help="Sensor to render (repeatable; see `gfm sensors`).",
)
@click.option("--size-m", type=float, default=2560.0, show_default=True, help="Extent in metres.")
@click.option("--seed", type=int, default=0, show_default=True, help="Scene seed.")
@click.option("--crs", default="EPSG:32633", show_default=True, help="Projected CRS.")
@click.option(
    "--no-descriptions", is_flag=True, help="Write no band descriptions (to try --sensor)."
)
@click.option(
    "--nodata-fraction",
    type=click.FloatRange(0, 0.9),
    default=0.0,
    help="Cut a nodata swath edge off this fraction of the scene.",
)
@click.option(
    "--season",
    type=click.Choice(["spring", "summer", "autumn", "winter"]),
    default=None,
    help="State of vegetation and fields (default: drawn from the seed).",
)
@click.option(
    "--biome",
    type=click.Choice(["temperate", "arid"]),
    default="temperate",
    show_default=True,
    help="Landscape: farmland and forests, or arid steppe and bare hills.",
)
@click.option(
    "--level",
    type=click.Choice(["surface", "toa"]),
    default=None,
    help="Product level: surface reflectance (L2A, C2 L2) or top of atmosphere (L1C, L1) "
    "[default: toa for *l1c* sensors, else surface].",
)
@click.option(
    "--cloud-cover",
    default=None,
    callback=_cloud_cover,
    metavar="FRACTION|auto",
    help="Cover the optical images with clouds and shadows (0-1; auto: 40 %% clear, else "
    "5-70 %%) and label them [default: none].",
)
@click.option("--cloud-seed", type=click.IntRange(min=0), default=None,
              # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
              help="Seed of the clouds and aerosol [default: --seed].")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def simulate(
    output, sensor_names, size_m, seed, crs, no_descriptions, nodata_fraction, season, biome,
    level, cloud_cover, cloud_seed, overwrite,
) -> None:  # fmt: skip
    """Simulate a landscape from measured spectra and write <sensor>.tif + <sensor>_labels.tif.

    \b
    Example:
      gfm simulate -o scenes/a --sensor sentinel2-l2a --sensor landsat8 --seed 1

    Needs the `earthlib` package (pip install 'gfmcli[simulate]').
    """
    from gfmcli.simulate import simulate_scene

    paths = simulate_scene(
        output,
        sensors=list(sensor_names),
        size_m=size_m,
        seed=seed,
        crs=crs,
        with_descriptions=not no_descriptions,
        nodata_fraction=nodata_fraction,
        overwrite=overwrite,
        season=season,
        level=level,
        cloud_cover=cloud_cover,
        cloud_seed=cloud_seed,
        biome=biome,
    )
    for path in paths.values():
        click.echo(str(path))
