"""bench/band_subsets.py: the band-subset copies it maps are the named bands, nothing else lost."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def band_subsets():
    sys.path.insert(0, str(ROOT / "bench"))  # it imports bench/real.py as `real`
    spec = importlib.util.spec_from_file_location(
        "bench_band_subsets", ROOT / "bench" / "band_subsets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subset_keeps_the_named_bands_in_order_with_their_metadata(
    band_subsets, make_raster, tmp_path
):
    valid = np.ones((20, 30), bool)
    valid[:5] = False
    image = make_raster(
        tmp_path,
        descriptions=("B02", "B03", "B04", "B08"),
        scales=(1e-4, 1e-4, 1e-4, 2e-4),
        offsets=(0.0, 0.0, 0.0, -0.1),
        tags={"PROCESSING_LEVEL": "Level-2A"},
        mask=valid,
        height=20,
        width=30,
    )
    out = Path(band_subsets.band_subset(str(image), ("B08", "B02"), tmp_path / "cut.tif"))
    with rasterio.open(image) as full, rasterio.open(out) as cut:
        assert cut.count == 2 and cut.descriptions == ("B08", "B02")
        assert np.array_equal(cut.read(1), full.read(4)) and np.array_equal(
            cut.read(2), full.read(1)
        )
        assert cut.scales == (2e-4, 1e-4) and cut.offsets == (-0.1, 0.0)
        assert cut.tags()["PROCESSING_LEVEL"] == "Level-2A"
        assert np.array_equal(cut.read_masks(1) > 0, valid)
        assert cut.crs == full.crs and cut.transform == full.transform


def test_every_subset_label_counts_the_bands_it_names(band_subsets):
    for row, subsets in band_subsets.VISIBLE_NIR_SWIR.items():
        assert next(iter(subsets.values())) == (), row  # the first column: the image as it is
        for label, names in list(subsets.items())[1:]:
            assert len(set(names)) == len(names) == int(label.split()[0]), (row, label)
