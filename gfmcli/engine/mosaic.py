"""Bounded-memory blending of window predictions into finished output row blocks.

A full-scene accumulator for a Sentinel-2 tile with 10 classes is ~4.8 GB; :class:`StripMosaic`
holds only the ``window`` raster rows that the current window row can still reach, plus the
finished blocks the caller has not popped yet. The contract with the runner:

* Build one mosaic per raster from its :class:`~gfmcli.engine.tiling.WindowPlan`.
* For every tile of the plan, call :meth:`StripMosaic.add` with the model's probabilities (or
  :meth:`StripMosaic.skip` when the window was all nodata and the model was not run).
* Call :meth:`StripMosaic.pop_ready` whenever convenient (e.g. after each batch) and hand the
  returned :class:`FinishedRows` objects, top to bottom, to the writer.
* Call :meth:`StripMosaic.finish` at the end; it checks that no tile is missing.

Determinism: float addition is not associative, so the accumulation order is fixed to plan order
whatever the batch size or device count. Tiles that arrive early are parked (copied) in a small
reorder buffer of at most ``max_pending`` tiles until their turn; exceeding it is a runner bug.

Memory: ``K x window x W`` float32 accumulator + ``window x W`` weight sum, plus the popped-late
blocks (``stride`` rows per window row) and up to ``max_pending`` parked ``K x window x window``
tiles; never proportional to the raster height. ``rows_held`` / ``peak_rows_held`` report it.

Threads: a mosaic is not locked; one thread (the runner's blend stage) owns it. The kernels
release the GIL, so that thread runs alongside the reader, the model and the writer.

Probabilities, not logits: apply the softmax on the device before :meth:`StripMosaic.add` (see
:mod:`gfmcli.engine.blend`). For embeddings, pass the features as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gfmcli.engine import blend
from gfmcli.engine.tiling import PlannedWindow, WindowPlan
from gfmcli.errors import ModelError


@dataclass(frozen=True, eq=False)
class FinishedRows:
    """Finished raster rows ``[row_off, row_off + rows)``, not yet divided, starting at raster
    column ``col_off`` (0 for a whole-width block; a stripe's columns otherwise).

    ``acc`` (K, rows, W) holds weighted sums of probabilities, ``wsum`` (rows, W) the weight sums;
    ``wsum == 0`` marks nodata (no valid window covered the pixel). ``wsum`` doubles as a
    coverage/QA layer.
    """

    row_off: int
    acc: np.ndarray
    wsum: np.ndarray
    col_off: int = 0

    @property
    def rows(self) -> int:
        """Number of raster rows in the block."""
        return self.wsum.shape[0]

    def probabilities(self, nodata: float = np.nan) -> np.ndarray:
        """Blended float32 (K, rows, W) probabilities (or embeddings); ``nodata`` if uncovered."""
        out = np.empty_like(self.acc)
        blend.normalize(self.acc, self.wsum, out, np.float32(nodata))
        return out

    def columns(self, start: int, stop: int, col_off: int) -> FinishedRows:
        """Columns ``start:stop`` of this block (contiguous copies), placed at ``col_off``."""
        return FinishedRows(
            self.row_off,
            np.ascontiguousarray(self.acc[:, :, start:stop]),
            np.ascontiguousarray(self.wsum[:, start:stop]),
            col_off,
        )

    def classify(self, nodata: int = 255) -> np.ndarray:
        """uint8 classes ``0 .. K-1`` (or ``nodata``) of shape (rows, W); see
        :func:`blend.argmax_classes`."""
        num_classes = self.acc.shape[0]
        if not 0 <= nodata <= 255 or nodata < num_classes:
            raise ValueError(f"class nodata {nodata} must be in {num_classes}..255 for uint8")
        classes = np.empty(self.wsum.shape, np.uint8)
        blend.argmax_classes(self.acc, self.wsum, classes, nodata)
        return classes


class StripMosaic:
    """Accumulates the plan's windows in plan order and releases rows as soon as they are final."""

    def __init__(self, num_bands: int, plan: WindowPlan, *, max_pending: int = 16) -> None:
        """``num_bands``: K channels the model emits per pixel; ``plan``: geometry and order."""
        if num_bands < 1:
            raise ValueError(f"num_bands must be positive, got {num_bands}")
        self.num_bands = num_bands
        self.plan = plan
        self.max_pending = max_pending
        capacity = min(plan.window, plan.height)  # the rows one window row can reach
        self._acc = np.zeros((num_bands, capacity, plan.width), np.float32)
        self._wsum = np.zeros((capacity, plan.width), np.float32)
        self._base = 0  # raster row of accumulator row 0
        self._next = 0  # index of the next tile to accumulate
        self._ready: list[FinishedRows] = []
        self._pending: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
        self._weights: dict[tuple[bool, bool, bool, bool], np.ndarray] = {}
        self.peak_rows_held = capacity

    @property
    def rows_held(self) -> int:
        """Raster rows currently in memory: the accumulator plus unpopped finished blocks."""
        return self._acc.shape[1] + sum(block.rows for block in self._ready)

    @property
    def done(self) -> bool:
        """True once every tile of the plan has been added or skipped."""
        return self._next == len(self.plan)

    def add(self, tile: PlannedWindow, pred: np.ndarray, valid: np.ndarray) -> None:
        """Blend one window: ``pred`` (K, window, window) float32 probabilities, ``valid`` bool.

        ``valid`` is False where the input was nodata or outside the raster; those pixels get
        zero weight. Raises :class:`~gfmcli.errors.ModelError` if ``pred`` has the wrong shape.
        """
        expected = (self.num_bands, tile.height, tile.width)
        if pred.shape != expected:
            raise ModelError(
                f"model output shape {pred.shape} does not match the expected {expected}; "
                "the checkpoint's head and its contract disagree"
            )
        if valid.shape != expected[1:]:
            raise ValueError(f"valid mask shape {valid.shape} != window {expected[1:]}")
        self._submit(
            tile,
            np.ascontiguousarray(pred, dtype=np.float32),
            np.ascontiguousarray(valid, dtype=bool),
        )

    def skip(self, tile: PlannedWindow) -> None:
        """Record that ``tile`` contributes nothing (all nodata, model not run)."""
        self._submit(tile, None, None)

    def pop_ready(self) -> list[FinishedRows]:
        """Finished blocks, top to bottom, released from the mosaic (each returned once)."""
        ready, self._ready = self._ready, []
        return ready

    def finish(self) -> list[FinishedRows]:
        """The last finished blocks; raises ValueError if some tiles were never added."""
        if not self.done:
            missing = len(self.plan) - self._next
            raise ValueError(
                f"{missing} of {len(self.plan)} tiles were never added (next expected "
                f"{self._next}, {len(self._pending)} parked)"
            )
        return self.pop_ready()

    def _submit(
        self, tile: PlannedWindow, pred: np.ndarray | None, valid: np.ndarray | None
    ) -> None:
        if not 0 <= tile.index < len(self.plan) or self.plan.tiles[tile.index] != tile:
            raise ValueError(f"{tile} is not part of this mosaic's plan")
        if tile.index < self._next or tile.index in self._pending:
            raise ValueError(f"tile {tile.index} was added twice")
        if tile.index > self._next:
            if len(self._pending) >= self.max_pending:
                raise ValueError(
                    f"tile {tile.index} arrived while tile {self._next} is still missing and "
                    f"{self.max_pending} tiles are parked; submit tiles closer to plan order"
                )
            # Copy: the caller may reuse its batch buffers before this tile's turn comes.
            self._pending[tile.index] = (
                None if pred is None else pred.copy(),
                None if valid is None else valid.copy(),
            )
            return
        self._consume(tile, pred, valid)
        while self._next in self._pending:
            parked_pred, parked_valid = self._pending.pop(self._next)
            self._consume(self.plan.tiles[self._next], parked_pred, parked_valid)

    def _consume(
        self, tile: PlannedWindow, pred: np.ndarray | None, valid: np.ndarray | None
    ) -> None:
        if pred is not None:
            assert valid is not None  # a window the model saw has its validity mask
            edges = self.plan.edges(tile)
            weight = self._weights.get(edges)
            if weight is None:
                weight = blend.window_weights(
                    tile.height, tile.width, self.plan.overlap, edges=edges
                )
                self._weights[edges] = weight
            blend.accumulate(
                self._acc, self._wsum, pred, weight, valid, tile.row_off - self._base, tile.col_off
            )
        self._next += 1
        if self._next % self.plan.n_cols == 0:  # a window row is complete
            self._release(self.plan.final_row_stop(self._next // self.plan.n_cols))

    def _release(self, stop: int) -> None:
        """Move raster rows ``[base, stop)`` out as a block and shift the accumulator up."""
        n = stop - self._base
        if n <= 0:
            return
        if stop == self.plan.height:  # last rows: hand over the buffers themselves, no copy
            self._ready.append(FinishedRows(self._base, self._acc[:, :n], self._wsum[:n]))
            self._acc = self._acc[:, :0]
            self._wsum = self._wsum[:0]
        else:
            self._ready.append(
                FinishedRows(self._base, self._acc[:, :n].copy(), self._wsum[:n].copy())
            )
            keep = self._acc.shape[1] - n
            self._acc[:, :keep] = self._acc[:, n:]
            self._wsum[:keep] = self._wsum[n:]
            self._acc[:, keep:] = 0
            self._wsum[keep:] = 0
        self._base = stop
        self.peak_rows_held = max(self.peak_rows_held, self.rows_held)
