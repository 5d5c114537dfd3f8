"""GeoParquet tables of window embeddings, written in row groups as windows finish.

The file follows GeoParquet 1.1 (the ``geo`` key of the Parquet metadata): one WKB ``geometry``
column (the window's footprint, a Polygon in the input's CRS, given as PROJJSON), a ``bbox``
struct column declared as its covering (readers that filter by box, DuckDB-style, skip row
groups with it), ``geometry_types`` and the file's ``bbox``. Each row also holds the source
file, the window offsets and size in pixels, the valid fraction, the pooling, the model name
and the contract hash, and the vector itself as ``fixed_size_list<float32>[D]``, which Arrow,
DuckDB and geopandas read as one array per row.

Why pyarrow: it is the reference Arrow/Parquet implementation, and the one
``geopandas.read_parquet`` itself uses, so what it writes is what the readers expect.

Memory: rows are buffered up to ``ROW_GROUP_ROWS`` and then written as one row group, so a run
holds at most one row group of vectors whatever the raster's size. The file is written to a
hidden temporary beside the output and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gfmcli.atomic import partial_path
from gfmcli.errors import OutputError

GEOPARQUET_VERSION = "1.1.0"
ROW_GROUP_ROWS = 4096


def _projjson(crs: Any) -> dict[str, Any] | None:
    """The CRS as PROJJSON (what GeoParquet wants); None for a file without a CRS."""
    if crs is None:
        return None
    from pyproj import CRS

    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs).to_json_dict()


def _polygon_wkb(x0: float, y0: float, x1: float, y1: float) -> bytes:
    """A little-endian WKB Polygon of one closed ring (the rectangle, counter-clockwise)."""
    ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype="<f8")
    return b"\x01" + np.array([3, 1, 5], dtype="<u4").tobytes() + ring.tobytes()


class EmbeddingTableWriter:
    """Rows of (footprint, offsets, vector) into a GeoParquet file; ``finalize`` renames it.

    ``metadata`` (gfm's provenance tags) goes into the file's key-value metadata beside
    ``geo``, where resume reads what made the file."""

    def __init__(
        self,
        path: str | Path,
        crs: Any,
        *,
        dim: int,
        source: str,
        model: str,
        contract_hash: str,
        pool: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self._partial = partial_path(self.path)
        self._dim = dim
        self._constants = {
            "source": source,
            "model": model,
            "contract_hash": contract_hash,
            "pool": pool,
        }
        self._metadata = dict(metadata or {})
        self._crs = _projjson(crs)
        self._schema = pa.schema(
            [
                ("geometry", pa.binary()),
                ("bbox", pa.struct([(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")])),
                ("source", pa.string()),
                ("row_off", pa.int32()),
                ("col_off", pa.int32()),
                ("height", pa.int32()),
                ("width", pa.int32()),
                ("valid_fraction", pa.float32()),
                ("pool", pa.string()),
                ("model", pa.string()),
                ("contract_hash", pa.string()),
                ("embedding", pa.list_(pa.float32(), dim)),
            ]
        )
        self._rows: list[tuple[Any, ...]] = []
        self._vectors: list[np.ndarray] = []
        self._bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self._written = 0
        self._writer: Any = None  # a pyarrow.parquet.ParquetWriter once the first rows come

    def add(
        self,
        box: tuple[float, float, float, float],
        window: tuple[int, int, int, int],
        valid_fraction: float,
        vector: np.ndarray,
    ) -> None:
        """One row: ``box`` (xmin, ymin, xmax, ymax), ``window`` (row, col, height, width)."""
        if vector.shape != (self._dim,):
            raise ValueError(f"vector of shape {vector.shape}, expected ({self._dim},)")
        self._rows.append((box, window, valid_fraction))
        self._vectors.append(vector.astype(np.float32, copy=False))
        b = self._bounds
        b[0], b[1] = min(b[0], box[0]), min(b[1], box[1])
        b[2], b[3] = max(b[2], box[2]), max(b[3], box[3])
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        n = len(self._rows)
        boxes = np.array([r[0] for r in self._rows], dtype=np.float64)
        windows = np.array([r[1] for r in self._rows], dtype=np.int32)
        flat = pa.array(np.concatenate(self._vectors), type=pa.float32())
        columns = {
            "geometry": pa.array([_polygon_wkb(*box) for box in boxes], type=pa.binary()),
            "bbox": pa.StructArray.from_arrays(
                [pa.array(boxes[:, i]) for i in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
            ),
            "row_off": pa.array(windows[:, 0]),
            "col_off": pa.array(windows[:, 1]),
            "height": pa.array(windows[:, 2]),
            "width": pa.array(windows[:, 3]),
            "valid_fraction": pa.array([r[2] for r in self._rows], type=pa.float32()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, self._dim),
            **{k: pa.array([v] * n, type=pa.string()) for k, v in self._constants.items()},
        }
        table = pa.table([columns[f.name] for f in self._schema], schema=self._schema)
        try:
            if self._writer is None:
                self._writer = pq.ParquetWriter(self._partial, self._schema, compression="zstd")
            self._writer.write_table(table, row_group_size=n)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{self.path}: writing the GeoParquet file failed ({exc})") from exc
        self._written += n
        self._rows, self._vectors = [], []

    def geo_metadata(self) -> dict[str, Any]:
        """The GeoParquet ``geo`` metadata of the rows written so far."""
        column: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": ["Polygon"],
            "bbox": [float(v) for v in self._bounds],
            "covering": {
                "bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")},
            },
        }
        if self._crs is not None:
            column["crs"] = self._crs
        return {
            "version": GEOPARQUET_VERSION,
            "primary_column": "geometry",
            "columns": {"geometry": column},
        }

    def finalize(self) -> Path:
        """Write the last row group and the ``geo`` metadata, close and rename into place."""
        try:
            self._flush()
            if not self._written:
                raise OutputError(f"{self.path}: no window had valid pixels; nothing to write")
            try:
                assert self._writer is not None  # rows were written, so the writer exists
                geo = {"geo": json.dumps(self.geo_metadata())}
                self._writer.add_key_value_metadata({**self._metadata, **geo})
                self._writer.close()
                self._writer = None
                os.replace(self._partial, self.path)
            except OSError as exc:
                raise OutputError(
                    f"{self.path}: finishing the GeoParquet file failed ({exc})"
                ) from exc
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary; the final path is left untouched."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(FileNotFoundError):
            self._partial.unlink()


def window_rows(
    payload: Sequence[tuple[Any, np.ndarray, float]],
    transform: Any,
    height: int,
    width: int,
    patch: int,
) -> Iterator[tuple[Any, Any, float, np.ndarray]]:
    """``(box, window, valid_fraction, vector)`` per pooled window of a ``VectorAssembler``
    payload (tiles on the patch grid), footprints clipped to the raster."""
    for tile, vector, valid_fraction in payload:
        r0, c0 = tile.row_off * patch, tile.col_off * patch
        r1 = min(r0 + tile.height * patch, height)
        c1 = min(c0 + tile.width * patch, width)
        (x0, y0), (x1, y1) = transform @ (c0, r0), transform @ (c1, r1)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        yield box, (r0, c0, r1 - r0, c1 - c0), valid_fraction, vector
