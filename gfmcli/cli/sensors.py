"""``gfm sensors``: the sensor registry (band names, central wavelengths, GSD, scaling)."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", required=False)
def sensors(name: str | None) -> None:
    """List known sensors, or the bands of sensor NAME (name, wavelength, FWHM, GSD).

    Band names and aliases are what --bands and band descriptions may use.
    """
    from gfmcli.sensors import get_sensor, list_sensors

    if name is None:
        for sensor_name in list_sensors():
            spec = get_sensor(sensor_name)
            click.echo(f"{spec.name:24s} {len(spec.bands):4d} bands  {spec.description}")
        return
    spec = get_sensor(name)
    click.echo(f"{spec.name}: {spec.description}")
    click.echo(
        f"scaling: {spec.units} = DN * {spec.scale:g} + {spec.offset:g}; nodata {spec.nodata}; "
        f"stacked GSD {spec.gsd:g} m"
    )
    for band in spec.bands:
        aliases = ", ".join(band.aliases)
        click.echo(
            f"  {band.name:8s} {band.wavelength_nm:8.1f} nm  FWHM {band.fwhm_nm:5.1f}  "
            f"{band.gsd:4.0f} m  {band.modality:7s} {aliases}"
        )
