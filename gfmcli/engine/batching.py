"""Reading windows in plan order and grouping them into model batches, on a background thread.

The reader is the only thread that touches the input dataset (rasterio datasets are not
thread-safe). It reads the plan's windows in order, marks windows without a single valid pixel
as *empty* (the model never sees them) and emits :class:`WindowBatch` objects holding up to
``batch_size`` non-empty windows plus the empty ones between them, so the consumer can hand every
tile to the mosaic in plan order. :func:`background` runs any iterator on a thread with a bounded
queue, which lets decoding overlap the model.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from gfmcli.engine.tiling import PlannedWindow, WindowPlan

T = TypeVar("T")
ReadFn = Callable[[tuple[int, int, int, int]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class WindowBatch:
    """Consecutive plan tiles: ``data`` stacks the non-empty ones, ``valid`` masks all of them.

    ``valid[i]`` is the (h, w) validity of ``tiles[i]`` on the plan's grid, or None when
    ``empty[i]``: the tile had no valid pixel and is absent from ``data`` (which is None if every
    tile is empty).
    """

    tiles: tuple[PlannedWindow, ...]
    valid: tuple[np.ndarray | None, ...]
    empty: tuple[bool, ...]
    data: np.ndarray | None


def _patch_valid(valid: np.ndarray, cell: int) -> np.ndarray:
    """Pixel validity reduced to ``cell x cell`` patches: a patch is valid if any pixel is."""
    if cell == 1:
        return valid
    h, w = valid.shape
    return np.asarray(valid.reshape(h // cell, cell, w // cell, cell).any(axis=(1, 3)))


def iter_batches(
    plan: WindowPlan, read: ReadFn, batch_size: int, *, cell: int = 1
) -> Iterator[WindowBatch]:
    """Read every tile of ``plan`` in order and yield batches of up to ``batch_size`` windows.

    ``read((row_off, col_off, height, width))`` returns ``(data (C, h, w), valid (h, w))`` in
    *pixels*. ``cell`` is the size of one plan cell in pixels: 1 when the plan is on the pixel
    grid (maps), the patch size when it is on the patch grid (embeddings).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    # Runs of empty windows (an ocean, a swath edge) close a batch too, so a batch never holds
    # more than this many tiles whatever the nodata area.
    max_tiles = 4 * batch_size + 8
    tiles: list[PlannedWindow] = []
    valids: list[np.ndarray | None] = []
    empty: list[bool] = []
    arrays: list[np.ndarray] = []
    for tile in plan.tiles:
        window = (tile.row_off * cell, tile.col_off * cell, tile.height * cell, tile.width * cell)
        data, valid = read(window)
        is_empty = not valid.any()
        tiles.append(tile)
        valids.append(None if is_empty else _patch_valid(valid, cell))
        empty.append(is_empty)
        if not is_empty:
            arrays.append(data)
        if len(arrays) == batch_size or len(tiles) >= max_tiles:
            stacked = np.stack(arrays) if arrays else None
            yield WindowBatch(tuple(tiles), tuple(valids), tuple(empty), stacked)
            tiles, valids, empty, arrays = [], [], [], []
    if tiles:
        stacked = np.stack(arrays) if arrays else None
        yield WindowBatch(tuple(tiles), tuple(valids), tuple(empty), stacked)


_DONE = object()


def background(iterator: Iterator[T], maxsize: int = 2) -> Generator[T, None, None]:
    """Run ``iterator`` on a daemon thread, ``maxsize`` items ahead; re-raise its errors here.

    Closing the returned generator (or an exception in the consumer) stops the thread at its next
    item, so an aborted run does not keep reading.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("done", _DONE))
        except BaseException as exc:  # forwarded to the consumer, which re-raises it
            items.put(("error", exc))

    thread = threading.Thread(target=produce, name="gfm-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
