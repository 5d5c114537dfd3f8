"""STAC Items as inputs: band assets stacked in an in-memory VRT, local and over HTTP."""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

from gfmcli.io.stac import detect_sensor, load_items

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
# name, common name, centre (um), as the catalogues publish Sentinel-2 L2A bands
S2 = {
    "B02": ("blue", 0.49),
    "B03": ("green", 0.56),
    "B04": ("red", 0.665),
    "B08": ("nir", 0.842),
}


def _scene(height=70, width=90) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.integers(1000, 4000, (4, height, width)).astype("uint16")
    data[:, :10, :12] = 0
    return data


def _cog(path: Path, band: np.ndarray, transform=TRANSFORM) -> Path:
    """A single-band COG (staged GeoTIFF copied with GDAL's COG driver)."""
    staged = path.with_suffix(".staged.tif")
    # fmt: skip below: a table, kept in rows (ruff format would add 6 lines)
    profile = {
        "driver": "GTiff", "count": 1, "height": band.shape[0], "width": band.shape[1],
        "dtype": band.dtype.name, "crs": "EPSG:32632", "transform": transform, "nodata": 0,
    }  # fmt: skip
    with rasterio.open(staged, "w", **profile) as dst:
        dst.write(band, 1)
    rasterio.shutil.copy(staged, path, driver="COG")
    staged.unlink()
    return path


def _item(item_id, assets, properties, self_href=None) -> dict:
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "geometry": None,
        "properties": {"datetime": "2024-06-01T10:00:00Z", **properties},
        "links": [{"rel": "self", "href": self_href}] if self_href else [],
        "assets": assets,
    }
    return item


def _s2_assets(folder: Path, data: np.ndarray, style: str) -> dict:
    """Earth Search style (keys blue/green/red/nir, eo:bands named by common name) or
    Planetary Computer style (keys B02..., eo:bands named B02 with a common name)."""
    assets = {}
    for i, (name, (common, centre)) in enumerate(S2.items()):
        href = _cog(folder / f"{name}.tif", data[i]).name
        key = common if style == "earth-search" else name
        assets[key] = {
            "href": href,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [
                {
                    "name": common if style == "earth-search" else name,
                    "common_name": common,
                    "center_wavelength": centre,
                }
            ],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}],
        }
    assets["visual"] = {
        "href": "TCI.tif",
        "roles": ["visual"],
        "eo:bands": [{"name": "red", "common_name": "red", "center_wavelength": 0.665}],
    }
    assets["thumbnail"] = {"href": "thumb.png", "roles": ["thumbnail"]}
    return assets


S2_PROPERTIES = {
    "platform": "sentinel-2b",
    "constellation": "sentinel-2",
    "s2:processing_baseline": "05.10",
}
ITEM = "S2B_32UMU_20240601"


def _write_item(folder: Path, style: str = "earth-search", data=None, item_id=ITEM) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = _scene() if data is None else data
    item = _item(item_id, _s2_assets(folder, data, style), S2_PROPERTIES)
    item["collection"] = "sentinel-2-l2a"
    path = folder / f"{item_id}.json"
    path.write_text(json.dumps(item))
    return path


def _stacked(path: Path, data: np.ndarray) -> Path:
    # fmt: skip below: a table, kept in rows (ruff format would add 6 lines)
    profile = {
        "driver": "GTiff", "count": 4, "height": data.shape[1], "width": data.shape[2],
        "dtype": "uint16", "crs": "EPSG:32632", "transform": TRANSFORM, "nodata": 0,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(S2, start=1):
            dst.set_band_description(i, name)
        dst.scales, dst.offsets = (0.0001,) * 4, (-0.1,) * 4
    return path


@pytest.mark.parametrize("style", ["earth-search", "planetary-computer"])
def test_item_maps_like_the_stacked_geotiff(predict_tiny, tmp_path, style):
    data = _scene()
    item = _write_item(tmp_path / "item", style, data)
    stacked = _stacked(tmp_path / "stacked.tif", data)
    before = {p.name: p.read_bytes() for p in (tmp_path / "item").iterdir()}
    out = tmp_path / "maps"
    result = predict_tiny(str(item), str(stacked), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / "stacked.tif"), str(out / f"{ITEM}.tif")]
    with (
        rasterio.open(out / f"{ITEM}.tif") as a,
        rasterio.open(out / "stacked.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        tags = a.tags()
    assert tags["GFM_INPUT"] == str(item) and tags["GFM_BANDS"] == "B02,B03,B04,B08"
    assert tags["GFM_STAC_ITEM"] == str(item), "no self link: the item's own location"
    assert {p.name: p.read_bytes() for p in (tmp_path / "item").iterdir()} == before
    # each run stacks the item in a VRT of its own: a rerun still resumes, by the item
    again = predict_tiny(str(item), "-o", str(out), quiet=False)
    assert again.exit_code == 0, again.output
    assert "0 written, 1 skipped" in again.stderr
    settings = json.loads(tags["GFM_SETTINGS"])
    assert settings["input"] == str(item.resolve()) and settings["input_file"]["sha256"]
    item.write_text(item.read_text() + "\n")  # the item was edited
    edited = predict_tiny(str(item), "-o", str(out))
    assert edited.exit_code == 5 and "the input file changed since" in edited.stderr


def test_item_collection_folder_of_items_and_self_link(predict_tiny, tmp_path):
    one = _write_item(tmp_path / "a", item_id="S2B_A")
    two = _write_item(tmp_path / "b", item_id="S2B_B")
    items = [json.loads(p.read_text()) for p in (one, two)]
    for item, path in zip(items, (one, two), strict=True):
        for asset in item["assets"].values():
            asset["href"] = str(path.parent / asset["href"])
    items[0]["links"] = [{"rel": "self", "href": "https://example.test/items/S2B_A"}]
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    out = tmp_path / "maps"
    result = predict_tiny(str(collection), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [f"{collection}#S2B_A", f"{collection}#S2B_B"]
    with rasterio.open(out / "S2B_A.tif") as src:
        assert src.tags()["GFM_STAC_ITEM"] == "https://example.test/items/S2B_A"

    # a folder holding items and their assets maps each item once, not its assets one by one
    folder_run = predict_tiny(str(tmp_path / "a"), "-o", str(tmp_path / "f"))
    assert folder_run.exit_code == 0, folder_run.output
    assert folder_run.stdout.split() == [str(tmp_path / "f" / "S2B_A.tif")]


def test_landsat_item_maps_without_sensor_by_wavelength(predict_tiny, tmp_path):
    folder = tmp_path / "landsat"
    folder.mkdir()
    data = _scene(24, 30)
    # fmt: skip below: a table, kept in rows (ruff format would add 4 lines)
    bands = {"blue": ("SR_B2", 0.48), "green": ("SR_B3", 0.56), "red": ("SR_B4", 0.65),
             "nir08": ("SR_B5", 0.86)}  # fmt: skip
    transform = Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 5000000.0)
    assets = {
        key: {
            "href": _cog(folder / f"{name}.TIF", data[i], transform).name,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": name, "common_name": key, "center_wavelength": centre}],
            "raster:bands": [{"scale": 2.75e-05, "offset": -0.2, "nodata": 0}],
        }
        for i, (key, (name, centre)) in enumerate(bands.items())
    }
    assets["qa_pixel"] = {"href": "QA.TIF", "roles": ["cloud"], "raster:bands": [{"nodata": 1}]}
    item = _item("LC08_L2SP_196025_20240601", assets, {"platform": "landsat-8"})
    item["collection"] = "landsat-c2-l2"
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    assert detect_sensor(item) == "landsat8"
    result = predict_tiny(str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "out" / "LC08_L2SP_196025_20240601.tif") as src:
        assert src.tags()["GFM_BANDS"] == "SR_B2,SR_B3,SR_B4,SR_B5"
        assert src.shape == (24, 30)


def test_assets_at_different_resolutions_go_on_the_finest_grid(predict_tiny, tmp_path):
    folder = tmp_path / "mixed"
    data = _scene()
    item_path = _write_item(folder, data=data)
    item = json.loads(item_path.read_text())
    coarse = data[3, ::2, ::2].copy()  # NIR at 20 m: 35 x 45
    _cog(folder / "B08.tif", coarse, Affine(20.0, 0.0, 500000.0, 0.0, -20.0, 5000000.0))
    item_path.write_text(json.dumps(item))
    out = tmp_path / "map.tif"
    result = predict_tiny(str(item_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        assert src.shape == (70, 90) and src.transform == TRANSFORM


def test_bad_items_are_one_clear_line(predict_tiny, tmp_path):
    not_item = tmp_path / "thing.json"
    not_item.write_text(json.dumps({"type": "Catalog", "id": "x"}))
    result = predict_tiny(str(not_item), "-o", str(tmp_path / "m.tif"))
    assert result.exit_code == 3 and "not a STAC Item" in result.stderr
    no_bands = tmp_path / "nobands.json"
    no_bands.write_text(json.dumps(_item("x", {"qa": {"href": "qa.tif"}}, {})))
    result = predict_tiny(str(no_bands), "-o", str(tmp_path / "m.tif"))
    assert result.exit_code == 3 and "eo:bands" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP range requests (what GDAL's /vsicurl/ reads COGs with)."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start, end = int(match.group(1)), int(match.group(2) or size - 1)
        end = min(end, size - 1)
        handle = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        handle.seek(start)
        self._remaining = end - start + 1
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(self._remaining))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))
        self._remaining = None
        return None


@pytest.fixture
def http_folder(tmp_path):
    """A loopback HTTP server over ``tmp_path / "www"``; shuts itself down after 300 s."""
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args, **kwargs):
        return _RangeHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    watchdog = threading.Timer(300, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_remote_item_and_assets_over_vsicurl(predict_tiny, tmp_path, http_folder, monkeypatch):
    root, url = http_folder
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    data = _scene()
    _write_item(root, data=data)
    local = _stacked(tmp_path / "stacked.tif", data)
    item_url = f"{url}/{ITEM}.json"
    assert load_items(item_url)[0][1] == item_url
    out = tmp_path / "maps"
    result = predict_tiny(item_url, str(local), "-o", str(out))
    assert result.exit_code == 0, result.output
    with (
        rasterio.open(out / f"{ITEM}.tif") as a,
        rasterio.open(out / "stacked.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert a.tags()["GFM_INPUT"] == item_url


def test_which_arguments_are_stac():
    from gfmcli.io.stac import is_stac_path

    assert is_stac_path("item.json") and is_stac_path("s3://bucket/a/item.json")
    assert is_stac_path(
        "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_X"
    )
    assert not is_stac_path("scene.tif") and not is_stac_path("/vsicurl/https://x/a.json")
    assert not is_stac_path("https://example.test/items/scene.tif")


def test_info_describes_an_item_as_predict_reads_it(gfm, tiny_model, tmp_path):
    item = _write_item(tmp_path / "item", "planetary-computer")
    result = gfm("info", item, "-m", tiny_model, "--no-timing", "--json")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["path"] == str(item) and record["sensor"] == "sentinel2-l2a"
    assert [b["name"] for b in record["bands"]] == ["B02", "B03", "B04", "B08"]
    assert record["bands"][0]["scale"] == pytest.approx(1e-4)
    assert record["bands"][0]["offset"] == pytest.approx(-0.1)
