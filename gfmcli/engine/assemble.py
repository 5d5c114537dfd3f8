"""From model outputs to what a sink writes, in plan order (the main thread's job).

``MosaicAssembler`` blends windows into the bounded ``StripMosaic`` and encodes the owned
columns of every finished row block; ``VectorAssembler`` pools each window to one vector.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from gfmcli.engine.batching import WindowBatch
from gfmcli.engine.mosaic import FinishedRows, StripMosaic
from gfmcli.engine.sinks import Sink
from gfmcli.engine.tiling import Stripe, WindowPlan
from gfmcli.errors import ModelError


def batch_data(batch: WindowBatch) -> np.ndarray | None:
    return batch.data


class Assembler(Protocol):
    """Turns each batch's model outputs into the payloads its sink writes, in plan order."""

    def take(self, batch: WindowBatch, output: np.ndarray | None) -> list[Any]: ...
    def finish(self) -> list[Any]: ...


class MosaicAssembler:
    """Blends windows into the bounded mosaic and encodes the owned columns of every finished
    row block."""

    def __init__(self, channels: int, plan: WindowPlan, sink: Sink, stripe: Stripe) -> None:
        self._mosaic = StripMosaic(channels, plan)
        self._sink = sink
        self._stripe = stripe

    def _encode(self, blocks: list[FinishedRows]) -> list[Any]:
        s = self._stripe
        start, stop = s.own_start - s.col_off, s.own_stop - s.col_off
        if (start, stop) != (0, s.width):
            blocks = [block.columns(start, stop, s.own_start) for block in blocks]
        return [self._sink.encode(block) for block in blocks]

    def take(self, batch: WindowBatch, output: np.ndarray | None) -> list[Any]:
        for tile, valid, pred in _tile_outputs(batch, output):
            if pred is None:
                self._mosaic.skip(tile)
                continue
            assert valid is not None  # a window the model saw has its validity mask
            if pred.shape[1:] != valid.shape:
                raise ModelError(
                    f"the model returned {pred.shape[1:]} outputs per window, expected "
                    f"{valid.shape}; window sizes must be multiples of the patch size"
                )
            self._mosaic.add(tile, pred, valid)
        return self._encode(self._mosaic.pop_ready())

    def finish(self) -> list[Any]:
        return self._encode(self._mosaic.finish())


class VectorAssembler:
    """One pooled embedding per non-empty window: the mean over its valid patches, or the
    global [CLS] token (``cls`` mode outputs (B, D) already)."""

    def take(self, batch: WindowBatch, output: np.ndarray | None) -> list[Any]:
        rows = []
        for tile, valid, pred in _tile_outputs(batch, output):
            if pred is None:
                continue
            assert valid is not None  # a window the model saw has its validity mask
            vector = pred if pred.ndim == 1 else pred[:, valid].mean(axis=1)
            rows.append((tile, vector.astype(np.float32), float(valid.mean())))
        return [rows] if rows else []

    def finish(self) -> list[Any]:
        return []


def _tile_outputs(
    batch: WindowBatch, output: np.ndarray | None
) -> Iterator[tuple[Any, np.ndarray | None, np.ndarray | None]]:
    """``(tile, valid, output or None)`` for each tile of a batch, in plan order."""
    row = 0
    for tile, valid, is_empty in zip(batch.tiles, batch.valid, batch.empty, strict=True):
        if is_empty:
            yield tile, valid, None
            continue
        assert output is not None  # a batch with a non-empty window has outputs
        yield tile, valid, output[row]
        row += 1
