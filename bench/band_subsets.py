"""Real-data accuracy against the bands a file has: rows of ``bench/real.py`` mapped with band
subsets of their images, as users stack them (all bands, 10, 6, 4 and the 3 visible ones).

    python bench/band_subsets.py --realdata ../shared/realdata --model weights/landcover-tiny.pt

Each subset is a GeoTIFF copy of the image's named bands (descriptions kept, so gfm identifies
them as before), mapped with ``gfm predict`` as ``bench/real.py`` maps the full image and scored
against the same reference. Why: gfm maps a file that lacks model bands with the bands it has
(``gfmcli/io/bands.py``, ``MIN_MODEL_BANDS``), and its warning points here for what that costs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from real import score_source, sources  # noqa: E402

VISIBLE_NIR_SWIR = {
    "eolearn_s2_slovenia": {
        "13 (all)": (),
        "10 (no B01, B09, B10)": (
            "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
        ),
        "6 (B02-B04, B08, B11, B12)": ("B02", "B03", "B04", "B08", "B11", "B12"),
        "4 (B02-B04, B08)": ("B02", "B03", "B04", "B08"),
        "3 (B02-B04)": ("B02", "B03", "B04"),
    },
    "ukis_csmask sentinel2": {
        "6 (all)": (),
        "4 (blue, green, red, nir)": ("blue", "green", "red", "nir"),
        "3 (blue, green, red)": ("blue", "green", "red"),
    },
    "ukis_csmask landsat7": {
        "6 (all)": (),
        "4 (blue, green, red, nir)": ("blue", "green", "red", "nir"),
        "3 (blue, green, red)": ("blue", "green", "red"),
    },
    "scikit_eo_l8 class map": {
        "6 (all)": (),
        "4 (B2-B5)": ("B2", "B3", "B4", "B5"),
        "3 (B2-B4)": ("B2", "B3", "B4"),
    },
}  # fmt: skip


def band_subset(image: str, names: tuple[str, ...], out: Path) -> str:
    """A copy of ``image`` holding only the bands described ``names``, in that order, with
    the file's and those bands' tags, scales and offsets (which say the product level)."""
    with rasterio.open(image) as ds:
        index = [ds.descriptions.index(name) + 1 for name in names]
        data = ds.read(index)
        masks = np.stack([ds.read_masks(i) for i in index])
        profile = ds.profile
        tags, band_tags = ds.tags(), [ds.tags(i) for i in index]  # product level, offsets
        scales = [ds.scales[i - 1] for i in index]
        offsets = [ds.offsets[i - 1] for i in index]
    profile.update(count=len(index), driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
        if profile.get("nodata") is None and (masks == 0).any():
            dst.write_mask(masks.min(axis=0))
        dst.descriptions = names
        dst.scales, dst.offsets = scales, offsets
        dst.update_tags(**tags)
        for i, band in enumerate(band_tags, start=1):
            dst.update_tags(i, **band)
    return str(out)


def main() -> int:
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", default=str(HERE.parent.parent / "shared" / "realdata"))
    parser.add_argument("--model", default="landcover-tiny", help="checkpoint or shipped name")
    parser.add_argument("--json", dest="json_out", help="write the results to this file")
    args = parser.parse_args()
    root = Path(args.realdata)
    if not (root / "README.md").is_file():
        print(f"real data not found at {root}: pass --realdata", file=sys.stderr)
        return 2
    rows = {src.name: src for src in sources(root)}
    results: dict = {}
    print(f"## {args.model}\n{'source':24s} {'bands':28s} {'OA':>6s} {'mIoU':>6s}")
    with tempfile.TemporaryDirectory(prefix="gfm-bands-") as tmp:
        work = Path(tmp)
        for name, subsets in VISIBLE_NIR_SWIR.items():
            src = rows[name]
            for label, names in subsets.items():
                images = src.images
                if names:
                    images = tuple(
                        band_subset(image, names, work / f"{abs(hash((name, label, i)))}-in.tif")
                        for i, image in enumerate(src.images)
                    )
                score = score_source(args.model, dataclasses.replace(src, images=images), work)
                results.setdefault(name, {})[label] = score
                text = (
                    f"{score['overall_accuracy']:6.3f} {score['miou']:6.3f}"
                    if "overall_accuracy" in score
                    else score.get("error", "?")
                )
                print(f"{name:24s} {label:28s} {text}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
