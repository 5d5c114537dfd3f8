"""Score a class map against reference labels: ``gfm evaluate MAP --reference LABELS``.

Users check a map against their own reference data, and gfm measures itself on real scenes
(``bench/real.py``), with one rulebook: the confusion matrix is counted here and scored by
:func:`gfmcli.scores.scores_from_confusion`, the function training validation uses.

How the two sides meet:

* a **reference raster** on the map's grid is read window by window; on another grid or CRS it
  is warped onto the map grid (``WarpedVRT``, nearest: class ids must never be interpolated),
  still one window at a time, so memory is bounded by the window, not by the rasters. Two
  rasters without a CRS (arrays saved as GeoTIFF) are compared pixel by pixel and must have the
  same shape; one with a CRS and one without is an error, never a guess;
* **points** (any OGR vector, read with pyogrio) sample the map pixel under them, after
  reprojection to the map's CRS; points outside the map or on map nodata are skipped and counted;
* **polygons** are rasterised onto the map grid (pixel centres inside), window by window, from
  the polygons the spatial index returns for that window.

What is counted is a table of (reference value, map value) pairs. The class correspondence is
applied to that small table at the end: reference values listed in ``[classes]`` of the mapping
file (many-to-one allowed) are scored as the map class they name, values not listed are
*unmapped* (counted, reported, not scored); without a mapping file, reference id ``k`` is map
id ``k`` (and a reference class *name* is the map class of that name). ``[merge]`` scores several
map classes as one.

Scores: overall accuracy = trace / total; per class IoU, recall (producer's accuracy, by
reference row), precision (user's accuracy, by map column), support (reference count). mIoU is
the mean IoU over the classes **present in the reference** (support > 0): a map class the
reference does not have (e.g. "burned" in a land-cover-only reference) is shown but does not
pull the mean down. Counts are pixels for rasters and polygons, points for points.
"""

from __future__ import annotations

from pathlib import Path

from gfmcli.errors import InputError
from gfmcli.evaluate.classes import ClassMapping
from gfmcli.evaluate.reference import (
    FILE_NODATA,
    WINDOW,
    count_raster,
    count_vector,
    is_vector,
    open_map,
    raster_class_names,
)
from gfmcli.evaluate.scoring import Evaluation, Scoring

# --- entry point -------------------------------------------------------------------------------


def evaluate(
    map_path: str | Path,
    reference: str | Path,
    *,
    mapping: ClassMapping | None = None,
    layer: str | None = None,
    field_name: str | None = None,
    reference_nodata: float | str | None = FILE_NODATA,
    window: int = WINDOW,
) -> Evaluation:
    """Score the class map ``map_path`` against ``reference`` (a raster or a vector file).

    ``reference_nodata``: ``FILE_NODATA`` uses the reference raster's nodata, a number replaces
    it, ``None`` means every reference pixel is labelled (masks where 0 is a class).
    ``layer``/``field_name`` choose the vector layer and class attribute (detected if one fits).
    """
    map_path, reference = str(map_path), str(reference)
    with open_map(map_path) as src:
        map_names = raster_class_names(src)
        map_nodata = None if src.nodata is None else int(src.nodata)
        if is_vector(reference):
            pairs, extra_skipped, kind, unit, ref_names = count_vector(
                src, reference, layer, field_name, window
            )
        else:
            if layer is not None or field_name is not None:
                raise InputError(f"{reference}: --layer and --field are for vector references")
            pairs, extra_skipped, ref_names = count_raster(
                src, map_path, reference, reference_nodata, window
            )
            kind, unit = "raster", "pixels"
    table = Scoring(map_names, map_nodata, ref_names, mapping, kind)
    return table.score(pairs, extra_skipped, map_path, reference, kind, unit)
