"""``gfm tile``: cut rasters and labels into chips for ``gfm pretrain`` and ``gfm finetune``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from gfmcli.cli import options as opt
from gfmcli.cli.report import counted, echo_json


def _load_classes(value: str | None) -> tuple[dict, ...]:
    """Classes from ``--classes``: the simulator's built-in ``landcover`` list or a TOML file."""
    if value is None:
        return ()
    if value == "landcover":
        from gfmcli.simulate.landcover import LANDCOVER_CLASSES

        return tuple(
            {"id": c.id, "name": c.name, "color": list(c.color)} for c in LANDCOVER_CLASSES
        )
    from gfmcli.tomlconf import load_config
    from gfmcli.train.config import ClassListConfig

    listed = load_config(value, ClassListConfig).classes
    return tuple({"id": c.id, "name": c.name, "color": list(c.color)} for c in listed)


@click.command(name="tile")
@click.argument("rasters", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Chip folder to write (images/, labels/, chips.json, stats.json, index.gpkg).",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Label raster (class ids) or vector file (GPKG/GeoJSON/Shapefile); once for all "
    "rasters or once per raster, in order.",
)
@click.option(
    "--label-column",
    default="class",
    show_default=True,
    help="Vector attribute holding class ids (or class names from --classes).",
)
@click.option(
    "--classes",
    "classes_value",
    metavar="FILE|landcover",
    help="Class list: a TOML file of [[classes]] id/name/color, or 'landcover'.",
)
@click.option("--regression", is_flag=True, help="Labels are numeric targets, not class ids.")
@opt.count_opt("--size", 128, "Chip size in pixels.")
@opt.count_opt("--stride", None, "Chip step in pixels [default: --size].")
@opt.sensor_opt
@opt.bands_opt
@opt.fraction_opt(
    "--min-valid", 0.5, "Skip chips with a smaller fraction of valid pixels (inside the raster)."
)
@opt.fraction_opt("--min-labelled", 0.1, "Skip chips with a smaller fraction of labelled pixels.")
@click.option(
    "--split",
    "split_text",
    default="0.8,0.1,0.1",
    show_default=True,
    help="train,val,test fractions of spatial blocks.",
)
@opt.count_opt(
    "--block-size", 4, "Spatial block edge in chips; a block goes to one split as a whole."
)
@opt.count_opt(
    "--buffer", 0, "Drop training chips within this many chips of a val/test chip.", minimum=0
)
@opt.count_opt("--seed", 0, "Seed of the block assignment.", minimum=0, maximum=2**32 - 1)
@click.option("--overwrite", is_flag=True, help="Replace an existing chip folder.")
@click.option(
    "--json",
    "json_lines",
    is_flag=True,
    help="One JSON object per input raster on stdout once the chip folder is final.",
)
@click.pass_context
def tile(
    ctx,
    rasters,
    out_dir,
    labels,
    label_column,
    classes_value,
    regression,
    size,
    stride,
    sensor,
    bands,
    min_valid,
    min_labelled,
    split_text,
    block_size,
    buffer,
    seed,
    overwrite,
    json_lines,
) -> None:
    """Cut RASTERS (files, folders, globs, '-' for paths on stdin; one band set) into
    georeferenced chips with a spatially blocked split.

    Reads one chip window at a time; edge chips are padded with nodata, never dropped. Labels
    in another CRS or grid are reprojected (nearest) onto each raster's grid. The chip folder
    is staged and renamed when complete, so with --json every raster's line comes at the end.
    """
    from tqdm import tqdm

    from gfmcli.errors import GfmError
    from gfmcli.train.chips import ChipOptions, chip_counts
    from gfmcli.train.chips import tile as run_tile
    from gfmcli.train.labels import LabelSource
    from gfmcli.train.split import parse_fractions

    classes = _load_classes(classes_value)
    options = ChipOptions(
        size=size,
        stride=size if stride is None else stride,
        sensor=sensor,
        bands=bands,
        min_valid=min_valid,
        min_labelled=min_labelled,
        fractions=parse_fractions(split_text),
        block=block_size,
        buffer=buffer,
        seed=seed,
        classes=classes,
        regression=regression,
        overwrite=overwrite,
    )
    names = {c["name"]: c["id"] for c in classes}
    sources = [LabelSource(Path(p), label_column, names, regression=regression) for p in labels]
    rasters = _raster_files(rasters)  # after every option is checked: usage errors come first
    sizes = chip_counts(rasters, options.size, options.stride)
    clock = _RasterClock([candidates for candidates, _ in sizes])
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    with tqdm(total=clock.total, unit="chip", disable=quiet or None, leave=False) as bar:

        def progress(count: int) -> None:
            bar.update(count)
            clock.advance(count)

        try:
            result = run_tile(list(rasters), out_dir, options, sources or None, progress=progress)
        except GfmError as exc:
            if json_lines:  # the chip folder is all or nothing: no raster was tiled
                for path, (candidates, pixels) in zip(rasters, sizes, strict=True):
                    echo_json(_tile_record(path, [], "failed", 0.0, pixels, candidates, 0, exc))
            raise
    if json_lines:
        for i, (path, (candidates, pixels)) in enumerate(zip(rasters, sizes, strict=True)):
            chips = result.per_source.get(str(path), 0)
            seconds = clock.seconds(i)
            record = _tile_record(path, [out_dir], "ok", seconds, pixels, candidates, chips)
            echo_json({**record, "warnings": list(result.warnings)})
    else:
        click.echo(str(out_dir))  # the result on stdout, as predict prints its maps
    if quiet:
        return  # -q: errors only
    for warning in result.warnings:
        click.echo(f"gfm: warning: {warning}", err=True)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.written.items()))
    click.echo(
        f"{counted(result.total, 'chip')} ({counts}) -> {out_dir}; "
        f"skipped {result.skipped_invalid} with "
        f"too few valid pixels, {result.skipped_unlabelled} with too few labels, "
        f"{result.buffer} in split buffers",
        err=True,
    )


def _raster_files(arguments: tuple[str, ...]) -> list[Path]:
    """The rasters RASTERS names, expanded as predict and embed expand their inputs. A chip
    keeps its source file's path, so STAC items (in-memory stacks of their assets) are refused:
    tile the asset files, or a VRT of them."""
    from gfmcli.errors import InputError
    from gfmcli.io.paths import expand_inputs
    from gfmcli.io.stac import is_stac_path

    paths = expand_inputs(arguments, sys.stdin if "-" in arguments else None)
    for path in paths:
        if is_stac_path(path):
            raise InputError(
                f"{path}: gfm tile cuts raster files, not STAC items; tile the item's band "
                "files, or a VRT of them (gdalbuildvrt -separate)"
            )
    return [Path(p) for p in paths]


class _RasterClock:
    """How long each raster's chips took: the library cuts raster after raster and reports
    every candidate chip, so a raster ends when the running count passes its share."""

    def __init__(self, candidates: list[int]) -> None:
        self.total = sum(candidates)
        self._ends = [sum(candidates[: i + 1]) for i in range(len(candidates))]
        self._done = 0
        self._marks = [time.perf_counter()]

    def advance(self, count: int) -> None:
        self._done += count
        finished = len(self._marks) - 1  # rasters whose last chip has been cut
        while finished < len(self._ends) and self._done >= self._ends[finished]:
            self._marks.append(time.perf_counter())
            finished += 1

    def seconds(self, index: int) -> float:
        if index + 1 >= len(self._marks):
            return 0.0
        return self._marks[index + 1] - self._marks[index]


def _tile_record(path, outputs, status, seconds, pixels, candidates, chips, exc=None) -> dict:
    """The ``--json`` record of one raster (the keys of predict/embed plus ``chips``)."""
    record = {
        "command": "tile",
        "path": str(path),
        "outputs": [str(p) for p in outputs],
        "status": status,
        "seconds": round(seconds, 3),
        "pixels": pixels,
        "windows": candidates,
        "chips": chips,
        "warnings": [],
        "message": str(exc) if exc is not None else "",
    }
    if exc is not None:
        record["exit_code"] = exc.exit_code
    return record
