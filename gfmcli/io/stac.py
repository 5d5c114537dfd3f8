"""STAC Items as inputs: an item's band assets read as one virtual raster, never downloaded.

``gfm predict ITEM.json`` (a local file, an ``https://`` or ``s3://`` URL), an ItemCollection
or a folder of item files: each item becomes one input. Its *band assets* are the assets whose
``eo:bands`` (STAC 1.0) or ``bands`` (STAC 1.1) describe spectral bands; each band is
identified by its ``name``, then its ``common_name``, then its ``center_wavelength``, against
the sensor the item's properties name (``platform``/``constellation``, the collection, the
Sentinel-2 processing baseline), so Sentinel-2 L2A and Landsat Collection 2 Level-2 items as
the big public catalogues publish them need no ``--sensor``. Per-asset ``raster:bands``
``scale``/``offset``/``nodata`` (or the STAC 1.1 ``raster:scale``... band fields) become the
virtual band's own scale, offset and nodata, which the band contract takes before the
sensor's.

The bands are stacked in a GDAL VRT kept in memory (``/vsimem/``, named ``<item id>.vrt`` so
outputs are named after the item): every asset is a source band placed on a common grid, the
**finest** resolution among the assets over the union of their extents, resampled with nearest
neighbour (20 m and 60 m Sentinel-2 bands are repeated onto the 10 m grid, as
``gdalbuildvrt -separate`` does). Remote assets are read through ``/vsicurl/`` (``https://``)
or ``/vsis3/`` (``s3://``, with GDAL's usual ``AWS_*`` settings), block by block as the windows
need them. Relative hrefs are resolved against the item's location.

Why plain JSON and not pystac: gfm reads a handful of stable fields (``assets``, their hrefs,
``eo:bands``/``bands``, ``raster:bands``, a few properties, the ``self`` link), both STAC 1.0
and 1.1 spellings; a dependency would not save code here, and item files are fetched with the
standard library (``https``) while every pixel goes through GDAL, whose network settings users
already know.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from gfmcli.errors import InputError

log = logging.getLogger(__name__)

STAC_SUFFIXES = (".json", ".geojson")
FETCH_TIMEOUT_S = 60
# Beyond this a named band's wavelength is not trusted to identify it (nm).
WAVELENGTH_MATCH_NM = 20.0
_SKIPPED_ROLES = {"visual", "overview", "thumbnail"}
_COG = "profile=cloud-optimized"
# fmt: skip below: a table, one entry per line (ruff format would add 6 lines)
_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "float32": "Float32", "float64": "Float64",
}  # fmt: skip


def is_stac_path(arg: str) -> bool:
    """True for arguments that name a STAC file: ``*.json``/``*.geojson``, local or a URL, and
    STAC API item URLs (``https://…/collections/C/items/ID``, as the catalogues link them)."""
    if arg.startswith("/vsi"):
        return False
    path = urllib.parse.urlparse(arg).path if "://" in arg else arg
    if "://" in arg and "/items/" in path and not path.lower().endswith((".tif", ".tiff")):
        return True
    return path.lower().endswith(STAC_SUFFIXES)


def looks_like_stac(path: Path) -> bool:
    """A cheap test for folder listings: a JSON file that mentions ``stac_version``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"stac_version"' in head


def _read_text(location: str) -> str:
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        location = f"https://{bucket}.s3.amazonaws.com/{key}"
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=FETCH_TIMEOUT_S) as response:
                return response.read().decode("utf-8")
        except (OSError, ValueError) as exc:
            message = f"{location}: cannot fetch the STAC file ({exc}); check the URL"
            raise InputError(message) from exc
    try:
        return Path(location).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"{location}: cannot read ({exc.strerror or exc}); check the path"
        ) from exc


def load_items(location: str) -> list[tuple[dict[str, Any], str]]:
    """``(item, base)`` for the Item or every Item of the ItemCollection at ``location``;
    ``base`` is where relative hrefs are resolved from."""
    try:
        data = json.loads(_read_text(location))
    except json.JSONDecodeError as exc:
        raise InputError(f"{location}: not valid JSON ({exc}); pass a STAC Item file") from exc
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Feature" and "assets" in data:
        items = [data]
    elif kind == "FeatureCollection":
        items = [f for f in data.get("features", []) if isinstance(f, dict) and "assets" in f]
        if not items:
            raise InputError(f"{location}: the ItemCollection holds no STAC Items")
    else:
        raise InputError(
            f"{location}: not a STAC Item or ItemCollection (no 'type': 'Feature' with assets)"
        )
    base = location if "://" in location else str(Path(location).resolve())
    return [(item, base) for item in items]


def _self_link(item: dict[str, Any]) -> str | None:
    for link in item.get("links", []):
        if link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


def _resolve(href: str, base: str) -> str:
    """An asset href as a GDAL path: absolute, ``/vsicurl/`` for http(s), ``/vsis3/`` for s3."""
    if "://" not in href and not href.startswith("/"):
        if "://" in base:
            href = urllib.parse.urljoin(base, href)
        else:
            href = str(Path(posixpath.dirname(base), href).resolve())
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("file://"):
        return urllib.parse.urlparse(href).path
    return href


def detect_sensor(item: dict[str, Any]) -> str | None:
    """The registry sensor an item's properties name, or None (bands then go by wavelength)."""
    props = item.get("properties", {})
    platform = str(props.get("platform", "")).lower()
    constellation = str(props.get("constellation", "")).lower()
    collection = str(item.get("collection", "")).lower()
    if "sentinel-2" in (platform + constellation + collection) or platform.startswith("sentinel2"):
        product = str(props.get("s2:product_type", "")).lower()
        level = "l1c" if "l1c" in collection or "1c" in product else "l2a"
        baseline = str(props.get("s2:processing_baseline", ""))
        try:
            old = float(baseline) < 4.0
        except ValueError:
            old = str(props.get("datetime", "9999"))[:10] < "2022-01-25"
        return f"sentinel2-{level}{'-pre2022' if old else ''}"
    match = re.search(r"landsat-?(\d)", platform)
    if match and match.group(1) in ("8", "9"):
        level_two = "l2" in collection or "L2" in str(props.get("landsat:correction", "")).upper()
        return f"landsat{match.group(1)}" if level_two or not collection else None
    return None


@dataclass(frozen=True)
class _Band:
    """One spectral band of one asset, as the item describes it."""

    asset: str
    href: str
    index: int  # 1-based band of the asset file
    name: str
    common_name: str
    wavelength_nm: float | None
    scale: float | None
    offset: float | None
    nodata: float | None
    cog: bool


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _asset_bands(key: str, asset: dict[str, Any], base: str) -> list[_Band]:
    roles = set(asset.get("roles") or [])
    if roles & _SKIPPED_ROLES and "data" not in roles:
        return []
    spectral = asset.get("eo:bands") or asset.get("bands") or []
    raster = asset.get("raster:bands") or []
    found = []
    for i, band in enumerate(spectral):
        if not isinstance(band, dict):
            continue
        wavelength = _number(band.get("center_wavelength", band.get("eo:center_wavelength")))
        common = str(band.get("common_name", band.get("eo:common_name", "")) or "")
        if wavelength is None and not common:
            continue  # not a spectral band (a mask, a classification)
        extra = raster[i] if i < len(raster) and isinstance(raster[i], dict) else {}

        def field_of(
            name: str, band: dict[str, Any] = band, extra: dict[str, Any] = extra
        ) -> float | None:
            for source in (extra, band, asset):
                for spelled in (name, f"raster:{name}"):
                    if _number(source.get(spelled)) is not None:
                        return _number(source.get(spelled))
            return None

        found.append(
            _Band(
                asset=key,
                href=_resolve(str(asset["href"]), base),
                index=i + 1,
                name=str(band.get("name", "") or ""),
                common_name=common,
                wavelength_nm=None if wavelength is None else wavelength * 1000.0,
                scale=field_of("scale"),
                offset=field_of("offset"),
                nodata=field_of("nodata"),
                cog=_COG in str(asset.get("type", "")),
            )
        )
    return found


def _identify(band: _Band, sensor: Any) -> str | None:
    """The sensor band name of ``band``: by name, common name, then nearest wavelength."""
    from gfmcli.errors import SensorError

    for label in (band.name, band.common_name, band.asset):
        if not label:
            continue
        try:
            spec = sensor.band(label)
        except SensorError:
            continue
        if band.wavelength_nm is None or abs(spec.wavelength_nm - band.wavelength_nm) < 60:
            return spec.name
    if band.wavelength_nm is not None:
        nearest = min(sensor.bands, key=lambda b: abs(b.wavelength_nm - band.wavelength_nm))
        if abs(nearest.wavelength_nm - band.wavelength_nm) <= WAVELENGTH_MATCH_NM:
            return nearest.name
    return None


@dataclass
class StacInput:
    """One item ready to map: ``path`` is its in-memory VRT (open while this object lives)."""

    item_id: str
    location: str
    self_link: str
    sensor: str | None
    bands: tuple[str, ...]
    path: str
    notes: tuple[str, ...] = ()
    _memfile: Any = field(default=None, repr=False)

    @property
    def tags(self) -> dict[str, str]:
        """Provenance tags of the outputs: the item as given and its self link."""
        return {
            "GFM_INPUT": self.location,
            "GFM_STAC_ITEM": self.self_link,
            "GFM_STAC_ASSETS": ",".join(self.bands),
        }

    def close(self) -> None:
        if self._memfile is not None:
            self._memfile.close()
            self._memfile = None


def item_input(item: dict[str, Any], base: str, location: str) -> StacInput:
    """Stack ``item``'s band assets into an in-memory VRT (the assets' headers are read)."""
    from rasterio.io import MemoryFile

    from gfmcli.sensors import get_sensor

    item_id = str(item.get("id") or Path(location).stem)
    where = f"{location} (item {item_id})" if item_id not in location else location
    sensor_name = detect_sensor(item)
    sensor = get_sensor(sensor_name) if sensor_name else None
    chosen: dict[str, _Band] = {}
    notes = []
    for key, asset in sorted(item.get("assets", {}).items(), key=lambda kv: kv[0]):
        if not isinstance(asset, dict) or "href" not in asset:
            continue
        for band in _asset_bands(key, asset, base):
            if sensor is not None:
                name = _identify(band, sensor)
                if name is None:
                    notes.append(f"asset {key}: band not a {sensor.name} band; not used")
                    continue
            elif band.wavelength_nm is not None:
                name = f"{band.wavelength_nm:.1f} nm"
            else:
                notes.append(f"asset {key}: no center_wavelength and an unknown sensor; not used")
                continue
            if name in chosen and (chosen[name].cog or not band.cog):
                continue  # one asset per band: the first COG (red, not red-jp2)
            chosen[name] = band
    if not chosen:
        raise InputError(
            f"{where}: no asset with eo:bands/bands that gfm can identify; the item needs "
            "spectral band assets (eo:bands with name, common_name or center_wavelength)"
        )
    for note in notes:
        log.info("%s: %s", where, note)
    names = sorted(chosen, key=lambda n: _band_order(n, sensor))
    xml = _vrt_xml(where, [(n, chosen[n]) for n in names])
    memfile = MemoryFile(xml.encode("utf-8"), filename=f"{item_id}.vrt")
    return StacInput(
        item_id=item_id,
        location=location,
        self_link=_self_link(item) or location,
        sensor=sensor_name,
        bands=tuple(f"{n}={chosen[n].asset}" for n in names),
        path=memfile.name,
        notes=tuple(notes),
        _memfile=memfile,
    )


def _band_order(name: str, sensor: Any) -> tuple[float, str]:
    if sensor is not None:
        return (float(sensor.band_names.index(name)), name)
    return (float(name.split()[0]), name)


def _vrt_xml(where: str, bands: Sequence[tuple[str, _Band]]) -> str:
    """A VRT on the finest grid of the assets (union extent), one band per asset band."""
    import numpy as np
    import rasterio
    from rasterio.errors import RasterioError

    headers = {}
    for _, band in bands:
        if band.href in headers:
            continue
        try:
            with rasterio.open(band.href) as src:
                headers[band.href] = (src.crs, src.transform, src.width, src.height, src.dtypes)
        except RasterioError as exc:
            raise InputError(
                f"{where}: asset {band.asset} ({band.href}) cannot be read ({exc}); check the "
                "href and, for s3:// assets, GDAL's AWS_* settings"
            ) from exc
    crs_set = {h[0].to_wkt() if h[0] else "" for h in headers.values()}
    if len(crs_set) != 1 or "" in crs_set:
        raise InputError(f"{where}: the band assets are in different (or no) CRS; reproject them")
    for _, transform, *_ in headers.values():
        if transform.b or transform.d:
            raise InputError(f"{where}: rotated asset grids are not supported")
    res_x = min(abs(h[1].a) for h in headers.values())
    res_y = min(abs(h[1].e) for h in headers.values())
    lefts, tops, rights, bottoms = [], [], [], []
    for _, transform, width, height, _ in headers.values():
        x0, y0 = transform.c, transform.f
        x1, y1 = x0 + width * transform.a, y0 + height * transform.e
        lefts.append(min(x0, x1))
        rights.append(max(x0, x1))
        tops.append(max(y0, y1))
        bottoms.append(min(y0, y1))
    left, top = min(lefts), max(tops)
    width = round((max(rights) - left) / res_x)
    height = round((top - min(bottoms)) / res_y)
    dtypes = [headers[b.href][4][b.index - 1] for _, b in bands]
    dtype = str(np.result_type(*dtypes))
    lines = [
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
        f"  <SRS>{escape(next(iter(crs_set)))}</SRS>",
        f"  <GeoTransform>{left!r}, {res_x!r}, 0, {top!r}, 0, {-res_y!r}</GeoTransform>",
    ]
    for i, (name, band) in enumerate(bands, start=1):
        _, transform, src_w, src_h, _ = headers[band.href]
        x0 = min(transform.c, transform.c + src_w * transform.a)
        y0 = max(transform.f, transform.f + src_h * transform.e)
        dst = (
            (x0 - left) / res_x,
            (top - y0) / res_y,
            src_w * abs(transform.a) / res_x,
            src_h * abs(transform.e) / res_y,
        )
        lines.append(f'  <VRTRasterBand dataType="{_GDAL_TYPES.get(dtype, "Float64")}" band="{i}">')
        lines.append(f"    <Description>{escape(name)}</Description>")
        if band.nodata is not None and math.isfinite(band.nodata):
            lines.append(f"    <NoDataValue>{band.nodata!r}</NoDataValue>")
        if band.offset is not None:
            lines.append(f"    <Offset>{band.offset!r}</Offset>")
        if band.scale is not None:
            lines.append(f"    <Scale>{band.scale!r}</Scale>")
        lines += [
            '    <SimpleSource resampling="nearest">',
            f'      <SourceFilename relativeToVRT="0">{escape(band.href)}</SourceFilename>',
            f"      <SourceBand>{band.index}</SourceBand>",
            f'      <SrcRect xOff="0" yOff="0" xSize="{src_w}" ySize="{src_h}"/>',
            '      <DstRect xOff="{!r}" yOff="{!r}" xSize="{!r}" ySize="{!r}"/>'.format(*dst),
            "    </SimpleSource>",
            "  </VRTRasterBand>",
        ]
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def open_inputs(locations: Iterable[str]) -> tuple[list[StacInput], list[tuple[str, str]]]:
    """Every item of every STAC location, and ``(location, message)`` for those that failed."""
    inputs: list[StacInput] = []
    problems: list[tuple[str, str]] = []
    for location in locations:
        try:
            for item, base in load_items(location):
                inputs.append(item_input(item, base, location))
        except InputError as exc:
            problems.append((location, str(exc)))
    return inputs, problems


def asset_files(item_file: Path) -> set[Path]:
    """The local files an item file's assets point to (a folder listing maps the item, not
    its assets one by one); empty for anything that is not a readable item."""
    try:
        items = load_items(str(item_file))
    except InputError:
        return set()
    found = set()
    for item, base in items:
        for asset in item.get("assets", {}).values():
            if isinstance(asset, dict) and "href" in asset:
                path = _resolve(str(asset["href"]), base)
                if not path.startswith("/vsi"):
                    found.add(Path(path).resolve())
    return found
