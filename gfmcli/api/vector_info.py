"""What gfm's vector outputs say of themselves: ``gfm info map.gpkg`` / ``gfm info emb.parquet``.

GeoPackages (class polygons, embedding vectors) keep gfm's provenance tags as dataset
metadata and GeoParquet files as key-value metadata (docs/formats.md); this module reads them
back, with the parsers of the two JSON tags that GeoTIFF outputs share (``api.info``). Nothing
here reads more than a file's header and, for polygons, one SQL aggregate, so the cost does not
grow with the map.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gfmcli.errors import InputError
from gfmcli.io.vector_reads import reading_vectors

VECTOR_SUFFIXES = (".gpkg", ".parquet")


@dataclass(frozen=True)
class VectorOutputSummary:
    """A GeoPackage or GeoParquet file gfm wrote: its table and how it was made.

    ``class_shares`` (class name -> share of the mapped area, from the polygons' ``area_m2``)
    are filled for class polygons only; ``settings`` is the ``GFM_SETTINGS`` record resume
    compares (empty for files of gfm versions before it).
    """

    path: str
    format: str
    layer: str
    features: int
    geometry_type: str
    crs: str
    gfm_version: str
    date: str
    made_by: str
    model: str
    settings: dict[str, Any]
    classes: tuple[dict[str, Any], ...]
    class_shares: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "output"}


def vector_tags(path: str | Path) -> dict[str, str]:
    """gfm's tags of a GeoPackage or GeoParquet file; empty when it has none or does not read."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            footer = pq.read_metadata(path).metadata or {}
            return {k.decode(): v.decode() for k, v in footer.items() if k.startswith(b"GFM_")}
        import pyogrio

        with reading_vectors():
            metadata = pyogrio.read_info(path).get("dataset_metadata") or {}
        return {k: v for k, v in metadata.items() if k.startswith("GFM_")}
    except Exception:  # pyogrio's DataSourceError, ArrowInvalid, OSError, UnicodeDecodeError
        return {}


def describe_vector_output(path: str) -> VectorOutputSummary:
    """Provenance, settings and table of a gfm GeoPackage or GeoParquet output."""
    tags = vector_tags(path)
    if "GFM_VERSION" not in tags:
        raise InputError(f"{path}: carries no gfm provenance (GFM_VERSION); not a gfm output")
    classes = parse_classes(json.dumps(_contract(tags).get("classes", [])))
    if Path(path).suffix.lower() == ".parquet":
        layer, features, geometry, crs, shares = _parquet_table(path)
        kind = "GeoParquet"
    else:
        layer, features, geometry, crs, shares = _geopackage_table(path, classes)
        kind = "GeoPackage"
    return VectorOutputSummary(
        path=path,
        format=kind,
        layer=layer,
        features=features,
        geometry_type=geometry,
        crs=crs,
        gfm_version=tags.get("GFM_VERSION", ""),
        date=tags.get("GFM_DATE", ""),
        made_by=tags.get("GFM_COMMAND", ""),
        model=tags.get("GFM_MODEL", ""),
        settings=parse_settings(tags.get("GFM_SETTINGS")),
        classes=classes if shares else (),
        class_shares=shares,
    )


def _contract(tags: dict[str, str]) -> dict[str, Any]:
    try:
        contract = json.loads(tags.get("GFM_CONTRACT", "{}"))
    except json.JSONDecodeError:
        return {}
    return contract if isinstance(contract, dict) else {}


def _geopackage_table(
    path: str, classes: tuple[dict[str, Any], ...]
) -> tuple[str, int, str, str, dict[str, float]]:
    import pyogrio
    import pyogrio.raw

    from gfmcli.io.vector import LAYER

    try:
        with reading_vectors():
            layers = [str(name) for name, _ in pyogrio.list_layers(path)]
            layer = LAYER if LAYER in layers else layers[0]
            meta = pyogrio.read_info(path, layer=layer)
            shares: dict[str, float] = {}
            if layer == LAYER and classes:
                sql = f'SELECT class_id, SUM(area_m2) AS area FROM "{LAYER}" GROUP BY class_id'
                *_, (ids, areas) = pyogrio.raw.read(path, sql=sql, read_geometry=False)
                total = float(sum(areas)) or 1.0
                by_id = {int(i): float(a) / total for i, a in zip(ids, areas, strict=True)}
                shares = {c["name"]: by_id.get(c["id"], 0.0) for c in classes}
    except Exception as exc:  # pyogrio's DataSourceError and OSError alike
        raise InputError(f"{path}: the GeoPackage does not read ({exc})") from None
    return layer, int(meta["features"]), str(meta["geometry_type"]), _short_crs(meta["crs"]), shares


def _short_crs(text: str | None) -> str:
    """The CRS as a raster's is shown (rasterio's ``to_string``: ``EPSG:32119`` when GDAL
    matches an authority code, else the WKT)."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    if not text:
        return ""
    try:
        return CRS.from_user_input(text).to_string()
    except CRSError:
        return text


def _parquet_table(path: str) -> tuple[str, int, str, str, dict[str, float]]:
    import pyarrow.parquet as pq

    try:
        footer = pq.read_metadata(path)
        geo = json.loads((footer.metadata or {}).get(b"geo", b"{}"))
    except Exception as exc:  # ArrowInvalid, OSError, a broken geo key
        raise InputError(f"{path}: the GeoParquet file does not read ({exc})") from None
    column = geo.get("columns", {}).get(geo.get("primary_column", "geometry"), {})
    crs = column.get("crs") or {}
    ids = crs.get("id", {}) if isinstance(crs, dict) else {}
    name = f"{ids['authority']}:{ids['code']}" if "authority" in ids and "code" in ids else ""
    geometry = ",".join(column.get("geometry_types", []))
    return "", int(footer.num_rows), geometry, name, {}


def parse_classes(text: str | None) -> tuple[dict[str, Any], ...]:
    """``GFM_CLASSES`` as ``{id, name}`` dicts; nothing when it is absent or not gfm's JSON."""
    try:
        classes = json.loads(text or "[]")
        return tuple(
            c for c in classes if isinstance(c.get("id"), int) and isinstance(c.get("name"), str)
        )
    except (json.JSONDecodeError, TypeError, AttributeError):
        return ()


def parse_settings(text: str | None) -> dict[str, Any]:
    """``GFM_SETTINGS`` as a dict with a numeric ``gsd_m``; empty when absent or not gfm's."""
    try:
        settings = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if not isinstance(settings, dict) or not isinstance(settings.get("gsd_m"), int | float):
        return {}
    return settings
