"""Where blended row blocks go: class maps, probabilities, polygons, embeddings, vector tables.

A sink owns the staged output files of one raster. For every finished
:class:`~gfmcli.engine.mosaic.FinishedRows`, top to bottom, the blend thread calls
``encode(block)``, which turns the float accumulator into the compact arrays to store (uint8
classes are 4 K times smaller than the K float32 sums, so the writer queue stays small even for
very wide rasters), and the writer thread calls ``write(payload)``; then ``finalize()`` (atomic
rename, returns the final paths) or ``abort()`` (removes every temporary). Sinks know arrays and
writers, never the model.

The GeoPackage sinks import ``gfmcli.io.vector`` (pyogrio, which loads geopandas and pandas:
about 0.4 s) and geopandas only when one is built, so a GeoTIFF run never pays for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gfmcli.atomic import partial_path
from gfmcli.contract import ClassInfo, ModelContract, contract_hash
from gfmcli.engine.mosaic import FinishedRows
from gfmcli.engine.options import MapOptions
from gfmcli.errors import OutputError
from gfmcli.io.products import (
    class_map_writer,
    embedding_writer,
    probabilities_path,
    probability_writer,
    quantise_probabilities,
)
from gfmcli.io.reader import RasterSource
from gfmcli.io.writer import CLASS_NODATA, RasterGrid, StagedRasterWriter

Window = tuple[int, int, int, int]
# The layer of ``embed -o x.emb.gpkg`` (resume recognises gfm's GeoPackages by their layer).
EMBEDDING_LAYER = "embeddings"


def _window(block: FinishedRows) -> Window:
    return (block.row_off, block.col_off, block.rows, block.wsum.shape[1])


class Sink(Protocol):
    def encode(self, block: FinishedRows) -> Any: ...
    def write(self, payload: Any) -> None: ...
    def finalize(self) -> list[Path]: ...
    def abort(self) -> None: ...


class ClassMapSink:
    """uint8 class COG (and optionally the uint8 probabilities COG beside it)."""

    def __init__(
        self,
        path: Path,
        grid: RasterGrid,
        classes: Sequence[ClassInfo],
        *,
        probabilities: bool,
        tags: Mapping[str, Any],
        creation_options: Mapping[str, str],
    ) -> None:
        self._ids = np.array([c.id for c in classes], dtype=np.uint8)
        self._writers: list[StagedRasterWriter] = []
        try:
            self._classes = class_map_writer(
                path, grid, classes, tags=tags, creation_options=creation_options
            )
            self._writers.append(self._classes)
            self._probs = None
            if probabilities:
                self._probs = probability_writer(
                    probabilities_path(path),
                    grid,
                    classes,
                    tags=tags,
                    creation_options=creation_options,
                )
                self._writers.append(self._probs)
        except BaseException:
            self.abort()
            raise

    def encode(self, block: FinishedRows) -> tuple[Window, np.ndarray, np.ndarray | None]:
        ids = _class_ids(block, self._ids)
        probs = None
        if self._probs is not None:
            probs = quantise_probabilities(block.probabilities(0.0), block.wsum > 0)
        return _window(block), ids, probs

    def write(self, payload: tuple[Window, np.ndarray, np.ndarray | None]) -> None:
        window, ids, probs = payload
        self._classes.write(window, ids)
        if self._probs is not None and probs is not None:
            self._probs.write(window, probs)

    def finalize(self) -> list[Path]:
        # The main map is renamed last: its existence means the whole job is complete (resume).
        return [writer.finalize() for writer in reversed(self._writers)][::-1]

    def abort(self) -> None:
        for writer in self._writers:
            writer.abort()


class FloatRasterSink:
    """Blended float values as they are (regression outputs, embeddings), NaN where nodata,
    into one staged raster writer (``StagedRasterWriter`` or ``embedding_writer``)."""

    def __init__(self, writer: StagedRasterWriter) -> None:
        self._writer = writer

    def encode(self, block: FinishedRows) -> tuple[Window, np.ndarray]:
        return _window(block), block.probabilities(np.nan)

    def write(self, payload: tuple[Window, np.ndarray]) -> None:
        self._writer.write(*payload)

    def finalize(self) -> list[Path]:
        return [self._writer.finalize()]

    def abort(self) -> None:
        self._writer.abort()


class PolygonSink:
    """Class polygons, dissolved across window and stripe seams, in a GeoPackage.

    Blocks may arrive stripe by stripe (see ``engine.runner``), while polygonising needs whole
    rows top to bottom: the class ids go to a hidden uint8 GeoTIFF first (a few MB even for
    very large maps) and ``finalize`` streams it, 512 full-width rows at a time, through
    :class:`~gfmcli.io.vector.PolygonWriter`.
    """

    def __init__(
        self,
        path: Path,
        grid: RasterGrid,
        classes: Sequence[ClassInfo],
        tags: Mapping[str, str],
    ) -> None:
        import rasterio

        from gfmcli.io.vector import PolygonWriter

        self._ids = np.array([c.id for c in classes], dtype=np.uint8)
        self._grid = grid
        self._writer = PolygonWriter(path, grid.crs, classes, metadata=tags)
        self._staged = partial_path(path, ".ids")  # a GeoTIFF, whatever the name ends in
        # fmt: skip below: arguments grouped by meaning (ruff format would add 12 lines)
        self._dataset = rasterio.open(
            self._staged, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
            dtype="uint8", nodata=CLASS_NODATA, crs=grid.crs, transform=grid.transform,
            tiled=True, blockxsize=512, blockysize=512, compress="ZSTD", zstd_level=1,
            bigtiff="IF_SAFER",
        )  # fmt: skip

    def encode(self, block: FinishedRows) -> tuple[Window, np.ndarray]:
        return _window(block), _class_ids(block, self._ids)

    def write(self, payload: tuple[Window, np.ndarray]) -> None:
        from rasterio.windows import Window as RioWindow

        (row_off, col_off, height, width), ids = payload
        self._dataset.write(ids, 1, window=RioWindow(col_off, row_off, width, height))

    def finalize(self) -> list[Path]:
        import rasterio
        from rasterio.windows import Window as RioWindow

        self._dataset.close()
        with rasterio.open(self._staged) as ids:
            for row in range(0, ids.height, 512):
                rows = min(512, ids.height - row)
                block = ids.read(1, window=RioWindow(0, row, ids.width, rows))
                self._writer.add_rows(row, block, self._grid.transform)
        path = self._writer.finalize()
        self._staged.unlink()
        return [path]

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._dataset.close()
        with contextlib.suppress(FileNotFoundError):
            self._staged.unlink()
        self._writer.abort()


class EmbeddingVectorSink:
    """One pooled embedding per window, with the window's footprint, in a GeoPackage layer
    ``embeddings``: ``row_off``/``col_off`` (pixels), ``valid_fraction`` and ``e000...``; the
    provenance ``tags`` are the GeoPackage's dataset metadata."""

    def __init__(
        self,
        path: Path,
        grid: RasterGrid,
        *,
        patch_size: int,
        dim: int,
        pool: str,
        tags: Mapping[str, str],
    ):
        self.path = Path(path)
        self._tags = dict(tags)
        self._partial = partial_path(self.path)
        self._grid = grid
        self._patch = patch_size
        self._columns = [f"e{i:03d}" for i in range(dim)]
        self._pool = pool
        self._written = 0

    def encode(self, block: FinishedRows) -> Any:  # pragma: no cover - vectors come per window
        raise TypeError("EmbeddingVectorSink takes per-window vectors, not row blocks")

    def write(self, payload: list[tuple[Any, np.ndarray, float]]) -> None:
        import geopandas as gpd
        from shapely.geometry import box

        from gfmcli.io.vector import GPKG_OPTIONS

        rows, geoms = [], []
        t = self._grid.transform
        for tile, vector, valid_fraction in payload:
            r0, c0 = tile.row_off * self._patch, tile.col_off * self._patch
            r1 = min(r0 + tile.height * self._patch, self._grid.height)
            c1 = min(c0 + tile.width * self._patch, self._grid.width)
            (x0, y0), (x1, y1) = t @ (c0, r0), t @ (c1, r1)
            geoms.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
            rows.append(
                {
                    "row_off": r0,
                    "col_off": c0,
                    "valid_fraction": valid_fraction,
                    "pool": self._pool,
                    **dict(zip(self._columns, vector.tolist(), strict=True)),
                }
            )
        frame = gpd.GeoDataFrame(rows, geometry=geoms, crs=self._grid.crs)
        try:
            frame.to_file(
                self._partial,
                layer=EMBEDDING_LAYER,
                driver="GPKG",
                mode="a" if self._written else "w",
                **(
                    {}
                    if self._written
                    else {"dataset_options": GPKG_OPTIONS, "dataset_metadata": self._tags or None}
                ),
            )
        except Exception as exc:  # pyogrio's DataSourceError or OSError (a full disk)
            raise OutputError(f"{self.path}: writing embeddings failed ({exc})") from exc
        self._written += len(rows)

    def finalize(self) -> list[Path]:
        if not self._written:
            raise OutputError(f"{self.path}: no window had valid pixels; nothing to write")
        os.replace(self._partial, self.path)
        return [self.path]

    def abort(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._partial.unlink()


class EmbeddingParquetSink:
    """One pooled embedding per window in a GeoParquet file (``gfmcli.io.geoparquet``): the
    rows of each batch are buffered and written as row groups, so memory stays bounded."""

    def __init__(
        self,
        path: Path,
        grid: RasterGrid,
        *,
        patch_size: int,
        dim: int,
        pool: str,
        source: str,
        model: str,
        contract_hash: str,
        tags: Mapping[str, str],
    ) -> None:
        from gfmcli.io.geoparquet import EmbeddingTableWriter

        self._grid = grid
        self._patch = patch_size
        # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
        self._writer = EmbeddingTableWriter(
            path, grid.crs, dim=dim, source=source, model=model,
            contract_hash=contract_hash, pool=pool, metadata=tags,
        )  # fmt: skip

    def encode(self, block: FinishedRows) -> Any:  # pragma: no cover - vectors come per window
        raise TypeError("EmbeddingParquetSink takes per-window vectors, not row blocks")

    def write(self, payload: list[tuple[Any, np.ndarray, float]]) -> None:
        from gfmcli.io.geoparquet import window_rows

        g = self._grid
        for box, window, valid, vector in window_rows(
            payload, g.transform, g.height, g.width, self._patch
        ):
            self._writer.add(box, window, valid, vector)

    def finalize(self) -> list[Path]:
        return [self._writer.finalize()]

    def abort(self) -> None:
        self._writer.abort()


def _class_ids(block: FinishedRows, ids: np.ndarray) -> np.ndarray:
    """uint8 class ids of the block's argmax (model output index -> contract class id)."""
    indices = block.classify()
    return np.where(block.wsum > 0, ids[np.minimum(indices, len(ids) - 1)], indices)


def abort_quietly(sink: Sink | None) -> None:
    """Abort ``sink`` without letting a cleanup error hide the error that caused it."""
    if sink is not None:
        with contextlib.suppress(Exception):
            sink.abort()


def make_sink(
    kind: str,
    mode: str,
    output: Path,
    fmt: str,
    src: RasterSource,
    model_dim: int,
    contract: ModelContract,
    options: MapOptions,
    tags: Mapping[str, str],
) -> Sink:
    grid = RasterGrid.of(src)
    if kind == "embed" and fmt == "parquet":
        return EmbeddingParquetSink(
            output,
            grid,
            patch_size=contract.patch_size,
            dim=model_dim,
            pool=options.pool,
            source=src.path,
            model=contract.model_name,
            contract_hash=contract_hash(contract),
            tags=tags,
        )
    if kind == "embed" and fmt == "gpkg":
        return EmbeddingVectorSink(
            output,
            grid,
            patch_size=contract.patch_size,
            dim=model_dim,
            pool=options.pool,
            tags=tags,
        )
    if kind == "embed":
        return FloatRasterSink(
            embedding_writer(
                output,
                grid,
                patch_size=contract.patch_size,
                dim=model_dim,
                precision=options.embedding_precision,
                tags=tags,
                creation_options=options.creation_options,
            )
        )
    if mode == "values":
        names = [c.name for c in contract.classes] or [f"value {i}" for i in range(model_dim)]
        return FloatRasterSink(
            StagedRasterWriter(
                output,
                grid,
                count=len(names),
                dtype="float32",
                nodata=float("nan"),
                overview_resampling="average",
                compress="ZSTD",
                predictor=True,
                band_descriptions=names,
                tags=tags,
                creation_options=options.creation_options,
            )
        )
    if fmt == "gpkg":
        return PolygonSink(output, grid, contract.classes, tags)
    return ClassMapSink(
        output,
        grid,
        contract.classes,
        probabilities=options.probabilities,
        tags=tags,
        creation_options=options.creation_options,
    )
