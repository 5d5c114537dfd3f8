"""Streaming polygonisation: block seams vanish, areas are in m², the GeoPackage is readable."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from shapely.geometry import shape

from gfmcli.contract import ClassInfo
from gfmcli.io import vector
from gfmcli.io.vector import PolygonWriter

CLASSES = (ClassInfo(0, "water"), ClassInfo(1, "forest"), ClassInfo(2, "urban"))
UTM = CRS.from_epsg(32632)
TRANSFORM = Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0)


def _blobby_map(height=61, width=47, seed=0) -> np.ndarray:
    """Smooth random classes (large regions, holes, U shapes) plus a nodata patch."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 6 + 2, width // 6 + 2))
    field = np.kron(coarse, np.ones((6, 6)))[:height, :width]
    field += rng.normal(0, 0.08, field.shape)
    data = np.digitize(field, [0.4, 0.7]).astype("uint8")
    data[10:20, 30:40] = 255
    return data


def _write(path, data, block_rows, crs=UTM, transform=TRANSFORM):
    with PolygonWriter(path, crs, CLASSES) as out:
        for row in range(0, data.shape[0], block_rows):
            out.add_rows(row, data[row : row + block_rows], transform)
        out.finalize()
    return gpd.read_file(path)


def _reference(data, transform=TRANSFORM):
    """Whole-map polygonisation with rasterio, the naive answer."""
    return [
        (int(v), shape(g))
        for g, v in shapes(data, mask=data != 255, connectivity=4, transform=transform)
    ]


@pytest.mark.parametrize("block_rows", [1, 7, 16])
def test_blocks_give_the_same_polygons_as_the_whole_map(tmp_path, block_rows):
    data = _blobby_map()
    got = _write(tmp_path / "map.gpkg", data, block_rows)
    reference = _reference(data)
    assert max(g.bounds[3] - g.bounds[1] for _, g in reference) > 20 * 10  # crosses seams
    assert any(g.interiors for _, g in reference)
    assert os.listdir(tmp_path) == ["map.gpkg"]
    assert len(got) == len(reference)
    for info in CLASSES:
        mine = sorted(got[got.class_id == info.id].geometry, key=lambda g: (g.area, g.bounds))
        theirs = sorted((g for c, g in reference if c == info.id), key=lambda g: (g.area, g.bounds))
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            assert a.equals(b)  # same shape, no seam line, holes included
        assert set(got[got.class_id == info.id].class_name) == {info.name}


def test_region_crossing_every_seam_is_one_polygon_and_corners_stay_apart(tmp_path):
    data = np.full((30, 12), 1, "uint8")
    data[:, 4] = 0  # a vertical strip of water through all blocks
    data[5, 8], data[6, 9] = 2, 2  # two urban pixels touching only at a corner, across a seam
    got = _write(tmp_path / "m.gpkg", data, block_rows=6)
    water = got[got.class_id == 0]
    assert len(water) == 1 and water.geometry.iloc[0].equals(
        shapely.box(500040, 4999700, 500050, 5000000)
    )
    assert len(got[got.class_id == 2]) == 2
    forest = got[got.class_id == 1].geometry
    assert len(forest) == 2 and sum(len(p.interiors) for p in forest) == 2  # urban holes


def test_area_in_square_metres_projected_and_geographic(tmp_path):
    data = np.zeros((4, 5), "uint8")
    got = _write(tmp_path / "utm.gpkg", data, block_rows=2)
    assert got.area_m2.iloc[0] == pytest.approx(20 * 100.0, rel=2e-3)  # UTM scale factor ~0.9996
    geographic = Affine(0.0001, 0, 10.0, 0, -0.0001, 45.0002)
    got = _write(tmp_path / "geo.gpkg", data, 3, crs=CRS.from_epsg(4326), transform=geographic)
    assert got.crs.to_epsg() == 4326
    assert got.area_m2.iloc[0] == pytest.approx(20 * 7.88 * 11.12, rel=5e-3)


def test_gpkg_schema_readable_by_ogr_and_empty_maps(tmp_path):
    path = tmp_path / "m.gpkg"
    _write(path, _blobby_map(), 9)
    info = pyogrio.read_info(path, layer="classes")
    assert info["geometry_type"] == "Polygon" and info["crs"] == "EPSG:32632"
    assert list(info["fields"]) == ["class_id", "class_name", "area_m2"]
    assert pyogrio.list_layers(path)[0][0] == "classes"
    empty = _write(tmp_path / "empty.gpkg", np.full((5, 5), 255, "uint8"), 2)
    assert len(empty) == 0


def test_abort_and_order_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(vector, "FLUSH_FEATURES", 1)  # so a temporary GeoPackage exists
    path = tmp_path / "m.gpkg"
    with pytest.raises(RuntimeError), PolygonWriter(path, UTM, CLASSES) as out:
        out.add_rows(0, np.eye(3, 4, dtype="uint8"), TRANSFORM)
        out.add_rows(3, np.full((3, 4), 2, "uint8"), TRANSFORM)
        assert any(".partial-" in name for name in os.listdir(tmp_path))
        raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []
    with PolygonWriter(path, UTM, CLASSES) as out:
        out.add_rows(0, np.zeros((3, 4), "uint8"), TRANSFORM)
        with pytest.raises(ValueError, match="in order"):
            out.add_rows(5, np.zeros((3, 4), "uint8"), TRANSFORM)
