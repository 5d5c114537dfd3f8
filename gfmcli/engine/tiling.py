"""Window planning for streaming inference: where the model looks, in which order (pure, no I/O).

The model always sees full-size ``window x window`` inputs, so its numerics never depend on where a
window sits (no smaller edge windows, no resizing). Windows advance by ``stride = window - overlap``
in row-major order. To cover every pixel without padding, the last row and the last column of
windows are shifted inward so they end flush with the raster edge (their overlap with the previous
window is then larger than ``overlap``). A raster smaller than the window in both dimensions gets
one window of its larger side rounded up to the patch size: a 100 x 101 chip is seen as a
112 x 112 window, not as a corner of a 512 x 512 frame of nodata (whose emptiness the dense
head's group norms would average in: measured on real 10 m chips, that frame turned 88 % of
the grass into tree cover). Only when the raster is smaller than the window in one dimension, or
than that rounded window, does the single window in that dimension start at 0 and run past the
edge; the reader fills the outside with nodata (a boundless read) and the blend gives those
pixels zero weight. Nothing is ever skipped, so a 1 x 1 raster still gets exactly one window.

Block alignment: interior window origins are ``k * stride``. When the input's internal block
shape divides the stride (and hence every origin), each read touches only the blocks it needs;
the edge-flush windows start at ``height - window`` / ``width - window`` and are aligned only if
those are multiples too. The grid never depends on the input's blocks, so outputs do not depend
on how the input happens to be tiled.

Row bookkeeping for the streaming blender: window row ``r`` touches raster rows
``[row_offsets[r], row_stop(r))``. Once window rows ``0 .. r`` are fully blended, raster rows
``[0, final_row_stop(r + 1))`` are final: no later window reaches them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gfmcli.errors import InputError


@dataclass(frozen=True)
class PlannedWindow:
    """One read window: ``index`` in plan order, origin and (always full) size in raster pixels.

    ``row_off + height`` may exceed the raster height (and likewise for columns) only when the
    raster is smaller than one window in that dimension.
    """

    index: int
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        """Exclusive end row of the window (may lie past the raster edge)."""
        return self.row_off + self.height

    @property
    def col_stop(self) -> int:
        """Exclusive end column of the window (may lie past the raster edge)."""
        return self.col_off + self.width


@dataclass(frozen=True)
class WindowPlan:
    """The full window grid for one raster; build it with :func:`plan_windows`."""

    height: int
    width: int
    window: int
    overlap: int
    row_offsets: tuple[int, ...]
    col_offsets: tuple[int, ...]
    tiles: tuple[PlannedWindow, ...]
    #: A stripe's plan (:func:`plan_stripes`) is a run of the raster plan's window columns,
    #: with columns counted from the stripe's first; ``col_base`` is that column in the raster
    #: and ``raster_width`` the raster's width, so :meth:`edges` answers as the raster plan.
    col_base: int = 0
    raster_width: int | None = None

    @property
    def stride(self) -> int:
        """Distance between consecutive window origins (except the edge-flush ones)."""
        return self.window - self.overlap

    @property
    def n_rows(self) -> int:
        """Number of window rows."""
        return len(self.row_offsets)

    @property
    def n_cols(self) -> int:
        """Number of windows per window row."""
        return len(self.col_offsets)

    def __len__(self) -> int:
        return len(self.tiles)

    def window_row(self, tile: PlannedWindow) -> int:
        """The window row of ``tile`` (tiles are row-major, ``n_cols`` per row)."""
        return tile.index // self.n_cols

    def row_stop(self, window_row: int) -> int:
        """Exclusive end of the raster rows that window row ``window_row`` touches (clipped)."""
        return min(self.row_offsets[window_row] + self.window, self.height)

    def final_row_stop(self, window_rows_done: int) -> int:
        """Raster rows ``[0, result)`` are final once the first ``window_rows_done`` rows are in.

        A raster row is final when no later window reaches it: that is everything above the origin
        of the next window row, or the whole raster once all window rows are done.
        """
        if window_rows_done < self.n_rows:
            return self.row_offsets[window_rows_done]
        return self.height

    def clip(self, tile: PlannedWindow) -> tuple[int, int]:
        """``(rows, cols)`` of ``tile`` that lie inside the raster (the rest is boundless fill)."""
        return (
            min(tile.row_stop, self.height) - tile.row_off,
            min(tile.col_stop, self.width) - tile.col_off,
        )

    def edges(self, tile: PlannedWindow) -> tuple[bool, bool, bool, bool]:
        """Which sides of ``tile`` are interior (another window continues beyond them).

        Returns ``(top, bottom, left, right)``; raster-edge sides are False, which tells the blend
        ramp not to taper there (a pixel on the raster edge may have no other window). A
        stripe's plan judges its windows' sides against the raster, not the stripe.
        """
        width = self.width if self.raster_width is None else self.raster_width
        return (
            tile.row_off > 0,
            tile.row_stop < self.height,
            tile.col_off + self.col_base > 0,
            tile.col_stop + self.col_base < width,
        )


def _offsets(size: int, window: int, stride: int) -> tuple[int, ...]:
    """Origins along one axis: ``0, stride, 2*stride, ...`` then one flush with the far edge."""
    if size <= window:
        return (0,)
    last = size - window
    offsets = list(range(0, last, stride))
    offsets.append(last)
    return tuple(offsets)


def _grid(
    row_offsets: tuple[int, ...], col_offsets: tuple[int, ...], window: int
) -> tuple[PlannedWindow, ...]:
    """The full-size windows at every (row, column) origin, row-major, indexed in that order."""
    return tuple(
        PlannedWindow(r * len(col_offsets) + c, row_off, col_off, window, window)
        for r, row_off in enumerate(row_offsets)
        for c, col_off in enumerate(col_offsets)
    )


def plan_windows(
    height: int,
    width: int,
    window: int,
    overlap: int,
    *,
    multiple_of: int = 1,
) -> WindowPlan:
    """Plan the row-major grid of full-size read windows covering a ``height x width`` raster.

    ``window`` must be a positive multiple of ``multiple_of`` (the model's patch size) and
    ``0 <= overlap < window``.

    Raises :class:`~gfmcli.errors.InputError` for unusable sizes, naming the value and the fix.
    """
    if height < 1 or width < 1:
        raise InputError(f"raster size {height} x {width} is empty; the input has no pixels")
    if multiple_of < 1:
        raise InputError(f"patch size {multiple_of} must be a positive integer")
    if window < 1 or window % multiple_of:
        lower = max(multiple_of, window // multiple_of * multiple_of)
        raise InputError(
            f"window size {window} must be a positive multiple of the patch size {multiple_of}; "
            f"use e.g. {lower} or {lower + multiple_of}"
        )
    if not 0 <= overlap < window:
        raise InputError(
            f"overlap {overlap} must be at least 0 and smaller than the window size {window}"
        )
    fitted = -(-max(height, width) // multiple_of) * multiple_of
    if fitted < window:  # the whole raster fits in one smaller window (module docstring)
        window, overlap = fitted, min(overlap, fitted - multiple_of)
    stride = window - overlap
    row_offsets = _offsets(height, window, stride)
    col_offsets = _offsets(width, window, stride)
    tiles = _grid(row_offsets, col_offsets, window)
    return WindowPlan(
        height=height,
        width=width,
        window=window,
        overlap=overlap,
        row_offsets=row_offsets,
        col_offsets=col_offsets,
        tiles=tiles,
    )


# Rasters wider than this are mapped in vertical stripes of this many owned columns (a multiple
# of the 512-px output block), so the blend accumulator never spans more than a stripe.
STRIPE_WIDTH = 4096


@dataclass(frozen=True)
class Stripe:
    """Columns ``[own_start, own_stop)`` of the output come from the windows read over the
    wider region ``[col_off, col_off + width)``: every window of the raster's plan that touches
    an owned column, so owned pixels are blended from the same windows with the same weights as
    in an unstriped run (a window next to a seam is read by both stripes)."""

    col_off: int
    width: int
    own_start: int
    own_stop: int


def plan_stripes(
    plan: WindowPlan, stripe_width: int | None = None
) -> list[tuple[Stripe, WindowPlan]]:
    """The raster ``plan`` as vertical stripes that own ``stripe_width`` (default
    ``STRIPE_WIDTH``) columns each, every stripe with the run of ``plan``'s window columns
    that touch its owned columns; one stripe (``plan`` itself) for a raster up to
    ``stripe_width + 2 * overlap`` wide or a single window column.

    Owned boundaries stay multiples of ``stripe_width`` (whole output blocks), and the windows
    are the raster plan's, so the map does not depend on where the stripes are cut.
    """
    stripe_width = stripe_width or STRIPE_WIDTH
    width = plan.width
    if width <= stripe_width + 2 * plan.overlap or plan.n_cols == 1:
        return [(Stripe(0, width, 0, width), plan)]
    stripes = []
    for start in range(0, width, stripe_width):
        stop = min(start + stripe_width, width)
        columns = [
            c for c, off in enumerate(plan.col_offsets) if off < stop and off + plan.window > start
        ]
        lo = plan.col_offsets[columns[0]]
        hi = plan.col_offsets[columns[-1]] + plan.window  # inside: a window column spans width
        offsets = tuple(plan.col_offsets[c] - lo for c in columns)
        stripe_plan = dataclasses.replace(
            plan,
            width=hi - lo,
            col_offsets=offsets,
            tiles=_grid(plan.row_offsets, offsets, plan.window),
            col_base=lo,
            raster_width=width,
        )
        stripes.append((Stripe(lo, hi - lo, start, stop), stripe_plan))
    if stripes[0][0].width == width:  # the first stripe's windows span the raster already
        return [(Stripe(0, width, 0, width), plan)]
    return stripes
