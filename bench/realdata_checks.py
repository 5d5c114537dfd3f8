"""How the band rules and value checks do on the real files in ../shared/realdata (not a test).

For every real image: resolve its bands against the default weights (with the ``--sensor`` /
``--gsd`` of :data:`FLAGS`, the flags its ``gfm predict`` command needs), run the value checks
(units, offset, band order) and record the outcome; then write reversed and shuffled copies
(pixels permuted, descriptions and tags left in place, so the file claims the wrong order)
into a temporary folder and record whether the checks catch them. Prints one line per file and
the totals.

Usage: ``python bench/realdata_checks.py [--realdata ../shared/realdata] [--shuffles 3]``
"""

from __future__ import annotations

import argparse
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio

from gfmcli.errors import GfmError
from gfmcli.io.bands import resolve_bands
from gfmcli.io.reader import open_raster, probe_raster
from gfmcli.io.values import check_values
from gfmcli.model.checkpoint import load_model

# Files that need flags to map (everything else maps with none); None: refused by design.
FLAGS: dict[str, list[str] | None] = {
    "satsense_s2/section_2_sentinel.tif": ["--sensor", "sentinel2-l2a-pre2022"],
    "satsense_s2/section_2_sentinel_l1c.tif": ["--sensor", "sentinel2-l1c-pre2022"],
    "spyndex/s2_4band_10m.tif": ["--sensor", "sentinel2-l2a-pre2022", "--gsd", "10"],
    "ukis_csmask/sentinel2.tif": ["--sensor", "sentinel2-l1c-pre2022", "--gsd", "30"],
    "ukis_csmask/landsat7.tif": ["--gsd", "30"],
    "ukis_csmask/landsat5.tif": ["--gsd", "30"],
    "xarray_spatial_s2/s2_6band_10m.tif": ["--sensor", "sentinel2-l2a-pre2022"],
    "rio_cloudmask_l8/LC80130312015295LGN00_bt.tif": None,  # thermal only
    "xarray_spatial_s2/s2_swir_20m.tif": None,  # 2 bands, below the minimum
}
NOT_IMAGES = re.compile(
    r"(_mask\.tif|cloudmask_\d|/labels/|lulc\.tif|classmap|landcover_map|labelled_|landclass)"
)


def image_files(root: Path) -> list[Path]:
    """Every real image (not label rasters) under ``root``, sorted."""
    return sorted(p for p in root.rglob("*.tif") if not NOT_IMAGES.search(p.as_posix()))


def keywords(flags: list[str]) -> dict:
    """``["--sensor", "x", "--gsd", "30"]`` -> ``{"sensor": "x", "gsd": 30.0}``."""
    pairs = dict(zip(flags[::2], flags[1::2], strict=True))
    out: dict = {}
    if "--sensor" in pairs:
        out["sensor"] = pairs["--sensor"]
    if "--gsd" in pairs:
        out["gsd"] = float(pairs["--gsd"])
    return out


def outcome(path: Path, contract, flags: list[str]) -> tuple[str, str]:
    """``("ok"|"warned"|"refused", detail)`` of resolving and checking one file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_raster(path) as src:
                mapping = resolve_bands(src, contract, **keywords(flags))
                checked = check_values(src, mapping, probe_raster(src, mapping))
    except GfmError as exc:
        return "refused", str(exc)
    order = [w for w in checked.warnings if "band order looks wrong" in w]
    return ("warned", order[0]) if order else ("ok", f"{len(checked.bands)} bands")


def permuted_copy(path: Path, order: np.ndarray, out: Path) -> Path:
    """``path`` with its pixel bands in ``order`` but every description and tag in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            profile = src.profile
            data = src.read()[order]
            descriptions, tags = src.descriptions, src.tags()
            band_tags = [src.tags(i + 1) for i in range(src.count)]
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data)
            for i, text in enumerate(descriptions):
                if text:
                    dst.set_band_description(i + 1, text)
            dst.update_tags(**tags)
            for i, items in enumerate(band_tags):
                dst.update_tags(i + 1, **items)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    parser.add_argument("--shuffles", type=int, default=3)
    args = parser.parse_args()
    _, contract = load_model("landcover-tiny")
    rng = np.random.default_rng(0)
    totals: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in image_files(args.realdata):
            name = path.relative_to(args.realdata).as_posix()
            flags = FLAGS.get(name, [])
            if flags is None:
                status, detail = outcome(path, contract, [])
                print(f"{name}: refused by design: {status} ({detail[:90]})")
                continue
            status, detail = outcome(path, contract, flags)
            totals.setdefault("true order", {}).setdefault(status, 0)
            totals["true order"][status] += 1
            line = [f"{name}: true {status}"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as src:
                    count = src.count
            variants = [("reversed", np.arange(count)[::-1])]
            variants += [("shuffled", rng.permutation(count)) for _ in range(args.shuffles)]
            for kind, order in variants:
                copy = permuted_copy(path, order, Path(tmp) / f"{kind}.tif")
                result, _ = outcome(copy, contract, flags)
                totals.setdefault(kind, {}).setdefault(result, 0)
                totals[kind][result] += 1
                line.append(f"{kind} {result}")
            print(", ".join(line) + ("" if status == "ok" else f"  [{detail[:120]}]"))
    for kind, counts in totals.items():
        print(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
