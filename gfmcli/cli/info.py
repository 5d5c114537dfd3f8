"""``gfm info PATH...``: a checkpoint's contract, or what gfm would make of a raster."""

from __future__ import annotations

from typing import Any

import click

from gfmcli.cli import options as opt
from gfmcli.cli.report import counted


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@opt.model_opt
@opt.sensor_opt
@opt.bands_opt
@opt.scale_opt
@opt.offset_opt
@opt.gsd_opt
@opt.window_opt
@opt.overlap_opt
@opt.batch_size_opt
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where the model time is measured: cpu, cuda, cuda:N (as for predict).",
)
@opt.precision_opt
@click.option(
    "--timing/--no-timing",
    default=False,
    show_default=True,
    help="Measure the model on --device for an estimate of the model time (a few seconds).",
)
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per PATH on stdout.")
@click.pass_context
# fmt: skip below: arguments grouped by meaning (ruff format would add 12 lines)
def info(ctx: click.Context, paths, model, sensor, bands, scale, offset, gsd, window, overlap,
         batch_size, device, precision, timing, json_lines) -> None:  # fmt: skip
    """Describe checkpoints (their contract) and rasters (what gfm would make of them).

    \b
    A checkpoint (a .pt file or a shipped name, see `gfm models`): sensor, bands with
    wavelengths and normalisation, GSD, classes, size, provenance.
    A raster: identified bands, sensor, scaling, GSD, windows, estimated peak memory and
    model time with --model (measured on one batch on --device). Nothing is written.
    A map or embedding gfm wrote (GeoTIFF, GeoPackage, GeoParquet): how it was made
    (command, model, settings) and, for a class map or class polygons, the share of each
    class.

    \b
    Examples:
      gfm info landcover-tiny
      gfm info scene.tif --model landcover-tiny --json
      gfm info map.tif
    """
    from gfmcli.api.info import (
        classify_paths,
        describe_checkpoint,
        describe_output,
        describe_raster,
        describe_stac,
    )
    from gfmcli.cli.report import echo_json
    from gfmcli.engine.options import MapOptions
    from gfmcli.errors import GfmError

    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    options = MapOptions(
        window=window, overlap=overlap, batch_size=batch_size, precision=precision,
        sensor=sensor, bands=bands, scale=scale, offset=offset, gsd=gsd,
    )  # fmt: skip
    loaded: dict[str, Any] = {}
    first_error: GfmError | None = None
    for path, kind in zip(paths, classify_paths(paths), strict=True):
        try:
            if kind == "checkpoint":
                summaries: list[Any] = [describe_checkpoint(path)]
            elif kind == "output":
                summaries = [describe_output(path)]
            else:
                if not loaded:
                    _load(loaded, model, device, precision, timing)
                describe = describe_stac if kind == "stac" else describe_raster
                found = describe(
                    path, loaded["contract"], options, model_name=model, timing=loaded["timer"]
                )
                summaries = found if isinstance(found, list) else [found]
        except GfmError as exc:
            header = _header(path) if kind == "raster" else None
            if header is not None and not json_lines:
                _print_raster_file(header)
            if len(paths) == 1 and not (json_lines and header):
                raise
            first_error = first_error or exc
            if json_lines:
                failed = {"kind": kind, "path": path, "status": "failed", "message": str(exc),
                          "exit_code": exc.exit_code}  # fmt: skip
                echo_json({**failed, "raster": header.to_dict()} if header else failed)
            click.echo(f"gfm: error: {exc}", err=True)
            continue
        for summary in summaries:
            if json_lines:
                echo_json({**summary.to_dict(), "status": "ok"})
            elif kind == "checkpoint":
                _print_checkpoint(summary)
            elif kind == "output":
                _print_output(summary)
            else:
                _print_raster(summary)
    if first_error is not None:
        ctx.exit(first_error.exit_code)


def _header(path: str) -> Any:
    """The raster's header when it opens (a file whose bands could not be told), else None."""
    from gfmcli.api.info import describe_raster_file
    from gfmcli.errors import GfmError

    try:
        return describe_raster_file(path)
    except GfmError:
        return None


def _load(loaded: dict[str, Any], model: str, device: str, precision: str, timing: bool) -> None:
    from gfmcli.api.info import ModelTimer
    from gfmcli.model.checkpoint import load_model

    network, contract = load_model(model)
    loaded["contract"] = contract
    loaded["timer"] = ModelTimer(network, device, precision) if timing else None


def _print_checkpoint(s) -> None:
    c = s.contract
    enc = s.encoder
    click.echo(f"{s.name}: {s.path}")
    click.echo(
        f"  {c.task} model {c.model_name} (width {enc['embed_dim']}, depth {enc['depth']}, "
        f"{enc['num_heads']} heads, patch {c.patch_size}), {s.parameters / 1e6:.2f} M "
        f"parameters, {s.file_bytes / 1e6:.1f} MB, sha256 {s.sha256[:16]}"
    )
    from gfmcli.engine.options import DEFAULT_WINDOW

    window = (
        f"{c.window} px (its training chips)" if c.window else f"{DEFAULT_WINDOW} px (the default)"
    )
    coarser = "".join(f", {size} px from {gsd:g} m GSD" for gsd, size in c.window_by_gsd)
    click.echo(f"  maps in windows of {window}{coarser}")
    click.echo(f"  sensor {c.sensor}, GSD {c.gsd:g} m, {len(c.bands)} bands:")
    for b in c.bands:
        click.echo(
            f"    {b.name:8s} {b.wavelength_nm:8.1f} nm  {b.modality:7s} "
            f"physical = {_linear(b.scale, b.offset)}; mean {b.mean:.4g}, std {b.std:.4g}"
        )
    if c.classes:
        click.echo(f"  {len(c.classes)} classes:")
        for k in c.classes:
            r, g, b_ = k.color
            click.echo(f"    {k.id:3d} {k.name:20s} #{r:02x}{g:02x}{b_:02x}")
    scalars = {k: v for k, v in c.provenance.items() if isinstance(v, str | int | float)}
    if scalars:
        click.echo("  provenance:")
        for key, value in sorted(scalars.items()):
            click.echo(f"    {key}: {value}")


def _print_output(s) -> None:
    if hasattr(s, "features"):
        layer = f" layer {s.layer!r}" if s.layer else ""
        rows = counted(s.features, f"{s.geometry_type} feature".strip())
        click.echo(
            f"{s.path}: gfm {s.gfm_version} output, {s.format}{layer}: {rows}, {s.crs or 'no CRS'}"
        )
    else:
        click.echo(f"{s.path}: gfm {s.gfm_version} output, {_grid_line(s)}")
    click.echo(f"  made {s.date} by: {s.made_by}")
    settings = s.settings
    if settings:
        read_as = settings.get("sensor") or f"{settings.get('read_as')} (found)"
        click.echo(
            f"  model {s.model} (contract {settings.get('model')}), sensor {read_as}, "
            f"GSD {settings.get('gsd_m', 0):.3g} m, window {settings.get('window')} px "
            f"(overlap {settings.get('overlap')})"
        )
    else:
        click.echo(f"  model {s.model}")
    if s.class_shares and hasattr(s, "features"):
        click.echo("  classes (share of the mapped area):")
    elif s.class_shares:
        click.echo(f"  classes (share of valid pixels, estimated; nodata {s.nodata_share:.1%}):")
    for c in s.classes if s.class_shares else ():
        click.echo(f"    {c['id']:3d} {c['name']:20s} {s.class_shares[c['name']]:6.1%}")


def _grid_line(s) -> str:
    """A raster's size, bands, dtypes and CRS, as the first line of its description."""
    dtypes = ",".join(sorted(set(s.dtypes)))
    return f"{s.width} x {s.height} px, {s.count} band(s) {dtypes}, {s.crs or 'no CRS'}"


def _linear(scale: float, offset: float) -> str:
    """``DN * 0.0001 + 0``, ``DN * 2.75e-05 - 0.2``: the scaling as one reads it."""
    sign = "-" if offset < 0 else "+"
    return f"DN * {scale:g} {sign} {abs(offset):g}"


def _print_raster(s) -> None:
    from gfmcli.spectral.labels import parse_wavelength

    click.echo(f"{s.path}: {_grid_line(s)}, GSD {s.gsd_m:.3g} m")
    relation = "cross-sensor, by wavelength" if s.cross_sensor else "the model's bands"
    click.echo(f"  sensor {s.sensor or '(by wavelength)'}; {len(s.bands)} bands used ({relation}):")
    for b in s.bands:
        nodata = "-" if b["nodata"] is None else f"{b['nodata']:g}"
        name = "" if parse_wavelength(b["name"]) is not None else b["name"]  # "418.24 nm"
        click.echo(
            f"    band {b['index']:3d} {name:8s} {b['wavelength_nm']:8.1f} nm  "
            f"{_linear(b['scale'], b['offset'])}  nodata {nodata}"
        )
    timing = ""
    if s.model_seconds is not None:
        timing = f", est. model time {s.model_seconds:.1f} s on {s.device}"
    click.echo(
        f"  gfm {s.kind} with {s.model}: {counted(s.windows, 'window')} of {s.window} px "
        f"(overlap {s.overlap}, {s.grid} grid), "
        f"est. peak memory {s.peak_memory_bytes / 2**20:.0f} MiB{timing}"
    )
    for warning in s.warnings:
        click.echo(f"  warning: {warning}")
    for note in s.notes:  # what gfm makes of the file, warnings or not
        click.echo(f"  note: {note}")


#: Bands listed for a raster whose bands could not be told (a spectrometer has hundreds).
_HEADER_BANDS = 16


def _print_raster_file(s) -> None:
    gsd = f"GSD {s.gsd_m:.3g} m" if s.gsd_m is not None else "no pixel grid"
    click.echo(f"{s.path}: {_grid_line(s)}, {gsd}")
    for index, description in enumerate(s.descriptions[:_HEADER_BANDS], start=1):
        click.echo(f"    band {index:3d} {description or '(no description)'}")
    if s.count > _HEADER_BANDS:
        click.echo(f"    ... {s.count - _HEADER_BANDS} more")
