"""``gfm evaluate``: accuracy of a class map against reference labels (raster, points, polygons)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click


def _nodata(value: str | None) -> float | str | None:
    """``--reference-nodata``: a number, ``none`` (every pixel labelled) or the file's own."""
    from gfmcli.evaluate.reference import FILE_NODATA

    if value is None:
        return FILE_NODATA
    if value.lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'none'") from None


@click.command(name="evaluate")
@click.argument("map_path", metavar="MAP", type=click.Path(path_type=str))
@click.option(
    "--reference",
    "-r",
    required=True,
    metavar="LABELS",
    help="Reference labels: a class raster, or a vector file of points or polygons.",
)
@click.option(
    "--classes",
    "classes_path",
    type=click.Path(path_type=Path),
    metavar="MAPPING.toml",
    help="Reference class -> map class ([classes], many-to-one) and [merge] of map classes.",
)
@click.option("--layer", help="Vector layer of LABELS [default: its only layer].")
@click.option(
    "--field",
    "field_name",
    help="Vector attribute holding the reference class [default: class_id, class, label, ...].",
)
@click.option(
    "--reference-nodata",
    metavar="VALUE|none",
    help="Unlabelled value of a reference raster [default: its nodata]; 'none' scores every "
    "pixel (masks where 0 is a class).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def evaluate(map_path, reference, classes_path, layer, field_name, reference_nodata, as_json):
    """Score the class map MAP against reference LABELS.

    Prints overall accuracy, per-class IoU, recall (producer's accuracy), precision (user's
    accuracy), support, mIoU over the classes present in the reference, and the confusion
    matrix (rows reference, columns map). A reference raster on another grid or CRS is
    resampled (nearest) onto the map grid; points sample the map; polygons are rasterised.
    """
    from gfmcli.evaluate.classes import load_class_mapping
    from gfmcli.evaluate.compare import evaluate as run_evaluate

    mapping = load_class_mapping(classes_path) if classes_path is not None else None
    result = run_evaluate(
        map_path,
        reference,
        mapping=mapping,
        layer=layer,
        field_name=field_name,
        reference_nodata=_nodata(reference_nodata),
    )
    ctx = click.get_current_context()
    for warning in () if ctx.obj and ctx.obj.get("quiet") else result.warnings:  # -q: errors only
        click.echo(f"gfm: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))  # one line, as every --json of gfm
    else:
        click.echo(format_table(result))


def _fmt(value: float) -> str:
    return "   -" if math.isnan(value) else f"{value:.3f}"


def format_table(result) -> str:
    """The human-readable report: summary, per-class table, confusion matrix."""
    unit = result.unit
    skipped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.skipped.items())
    lines = [
        f"map: {result.map}",
        f"reference: {result.reference} ({result.kind})",
        f"scored {unit}: {result.scored}",
        f"skipped {unit}: {result.skipped_total}" + (f" ({skipped})" if skipped else ""),
        f"unmapped reference {unit}: {result.unmapped_total}"
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in result.unmapped.items()) + ")"
            if result.unmapped
            else ""
        ),
        f"overall accuracy: {_fmt(result.overall_accuracy)}",
        f"mIoU: {_fmt(result.miou)} (over {sum(c.support > 0 for c in result.classes)} classes "
        "in the reference)",
        "",
    ]
    width = max([len("class"), *(len(c.name) for c in result.classes)])
    wide = max([4, *(len(c.label) for c in result.classes)])  # a merge shows its ids, 1-5
    lines.append(
        f"{'id':>{wide}}  {'class':<{width}}  {'IoU':>6}  {'recall':>6}  {'precis.':>7}  "
        f"{'support':>9}  {'mapped':>9}"
    )
    for c in result.classes:
        lines.append(
            f"{c.label:>{wide}}  {c.name:<{width}}  {_fmt(c.iou):>6}  {_fmt(c.recall):>6}  "
            f"{_fmt(c.precision):>7}  {c.support:>9}  {c.predicted:>9}"
        )
    lines += ["", "confusion matrix (rows reference, columns map, by class id):"]
    cells = [[str(v) for v in row] for row in result.confusion.tolist()]
    cell = max([4, wide, *(len(v) for row in cells for v in row)])
    head = "".join(f"{c.label:>{cell + 1}}" for c in result.classes)
    lines.append(f"{'':>{width + wide + 2}}" + head)
    for c, row in zip(result.classes, cells, strict=True):
        body = "".join(f"{v:>{cell + 1}}" for v in row)
        lines.append(f"{c.label:>{wide}}  {c.name:<{width}}" + body)
    return "\n".join(lines)
