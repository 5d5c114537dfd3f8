"""Blend weights and the Numba kernels that add, normalise and classify overlapping windows.

Why a weighted mean: neighbouring windows disagree near their borders (less context there), and a
plain paste or average leaves seams. Each window's prediction is weighted by a separable raised
cosine that is flat 1 in the middle and tapers only inside the overlap zone next to *interior*
window edges. Sides on the raster edge are not tapered, because there may be no other window to
take over; so a pixel covered by one window always keeps weight 1. With stride
``window - overlap`` the two ramps across an overlap zone sum to exactly 1 (a partition of unity),
and the blend divides by the weight sum anyway, so edge-flush windows with larger overlaps are fine.

What is blended: **probabilities, never logits** (blending logits and then taking a softmax is not
the mean of the windows' beliefs and produces wrong mosaics; anchors.md §3 item 3). The caller
applies ``torch.softmax(logits, dim=1)`` on the device before moving predictions to the host;
these kernels average whatever K-channel field they are given, which for ``gfm embed`` is the
embedding itself (no softmax).

Nodata: a per-pixel ``valid`` mask zeroes a window's weight where its input was nodata (or outside
the raster). Output pixels whose weight sum stays 0 get the nodata value.

Kernels take arrays and scalars only (``nopython``, ``nogil`` so the runner can call them from a
worker thread while the GIL is free for reading and writing) and each has a NumPy reference with
the same semantics, used by the parity tests and as documentation. Expected dtypes: ``acc``,
``pred``, ``weight`` and ``wsum`` float32, ``valid`` bool, outputs as documented per kernel.

Numba is imported, and each kernel made, on the kernel's first use (:class:`Kernel`), not when
this module is imported: ``import numba`` alone is 0.2 s of a process's start, and its
first-call set-up of the CPU target about 0.4 s more, both Python that holds the GIL.
:func:`warm_up` pays them with the argument types the mosaic passes; ``run_jobs`` calls it on
a thread while the input's checks run in GDAL and NumPy with the GIL released, so the first
windows' blend finds the kernels ready.

Compiled code is cached on disk (Numba's ``cache=True``): in ``$NUMBA_CACHE_DIR`` when set,
else in :func:`cache_folder` (the user's cache folder), and only where neither can be written
where Numba itself would (beside this file when the package folder is writable). Numba's files
in the package's ``__pycache__`` outlive ``pip uninstall``, and the folder they keep shadows a
later editable install of gfm as an empty namespace package (``gfm`` then fails with
"No module named 'gfmcli.engine.options'"; found by a newcomer following the README). Where
no cache folder is writable (a read-only container without a writable home) Numba refuses to
cache at all; the kernels are then compiled in every process instead (about 1.5 s), rather
than ``gfm`` failing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])


class Kernel:
    """A function compiled with ``njit(nogil=True, cache=True)`` on its first call (from any
    thread: the first caller compiles or loads it, the others wait), or without the cache
    where Numba finds no writable cache folder (it raises RuntimeError "cannot cache function
    ...: no locator available")."""

    def __init__(self, func: Callable[..., None]) -> None:
        self.py_func = func
        self.__doc__ = func.__doc__
        self._lock = threading.Lock()
        self._dispatcher: Any = None

    def dispatcher(self) -> Any:
        """The Numba dispatcher (its ``signatures`` are the argument types compiled so far)."""
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = _compile(self.py_func)
        return self._dispatcher

    def __call__(self, *args: Any) -> None:
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self.dispatcher()
        dispatcher(*args)


def cache_folder() -> Path | None:
    """Where the compiled kernels are cached unless ``$NUMBA_CACHE_DIR`` says: ``gfm/numba`` in
    ``$XDG_CACHE_HOME``, else in ``~/.cache``; None without an absolute one (no home: ``~``
    stays ``~``, and a relative folder would land in whatever folder gfm runs in)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gfm" / "numba" if os.path.isabs(base) else None


# Numba picks a function's cache folder when it is decorated, from its process-wide
# config.CACHE_DIR; the lock keeps two kernels made at once from seeing each other's setting.
_CACHE_DIR_LOCK = threading.Lock()


def _compile(func: Callable[..., None]) -> Any:
    from numba import njit
    from numba.core import config as numba_config

    config = cast(Any, numba_config)  # its settings are made at run time, unknown to mypy
    folder = cache_folder()
    with _CACHE_DIR_LOCK:
        ours = not config.CACHE_DIR and folder is not None  # a user's $NUMBA_CACHE_DIR stays
        if ours:
            config.CACHE_DIR = str(folder)
        try:
            return njit(nogil=True, cache=True)(func)
        except RuntimeError:
            log.debug("no writable Numba cache folder; %s is compiled uncached", func.__name__)
            return njit(nogil=True)(func)
        finally:
            if ours:
                config.CACHE_DIR = ""


def _kernel(func: F) -> F:
    return cast(F, Kernel(func))


def _ramp(n: int, overlap: int, taper_start: bool, taper_end: bool) -> np.ndarray:
    """1-D weights of length ``n``: 1, with a raised-cosine rise over ``overlap`` samples per side.

    Sample ``d`` (0-based distance from a tapered side) gets ``0.5 - 0.5 cos(pi (d + 0.5) / o)``:
    never 0, and ``ramp(d) + ramp(o - 1 - d) == 1`` so opposing ramps of neighbours sum to 1.
    """
    ramp = np.ones(n, dtype=np.float64)
    o = min(overlap, n)
    if o == 0:
        return ramp
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(o) + 0.5) / o)
    if taper_start:
        ramp[:o] = np.minimum(ramp[:o], rise)
    if taper_end:
        ramp[n - o :] = np.minimum(ramp[n - o :], rise[::-1])
    return ramp


def window_weights(
    height: int,
    width: int,
    overlap: int,
    *,
    edges: tuple[bool, bool, bool, bool] = (True, True, True, True),
    floor: float = 1e-6,
) -> np.ndarray:
    """Float32 ``(height, width)`` blend weights for one window.

    ``edges`` = ``(top, bottom, left, right)``: True where the side is interior (another window
    continues past it) and must taper; use :meth:`WindowPlan.edges`. ``floor`` keeps every
    weight strictly positive so a valid pixel can never end up with a zero weight sum.
    """
    top, bottom, left, right = edges
    rows = _ramp(height, overlap, top, bottom)
    cols = _ramp(width, overlap, left, right)
    return np.maximum(np.outer(rows, cols), floor).astype(np.float32)


@_kernel
def accumulate(  # pragma: no cover - compiled
    acc: np.ndarray,
    wsum: np.ndarray,
    pred: np.ndarray,
    weight: np.ndarray,
    valid: np.ndarray,
    r0: int,
    c0: int,
) -> None:
    """Add ``pred * weight * valid`` into ``acc[:, r0:, c0:]`` and ``weight * valid`` into ``wsum``.

    ``acc`` (K, R, C) and ``wsum`` (R, C) are the accumulator; ``pred`` (K, h, w), ``weight`` and
    ``valid`` (h, w) are one window placed at accumulator offset ``(r0, c0)``. Parts of the window
    outside the accumulator (past the raster edge) are ignored, so offsets and sizes need not fit.
    """
    n_k, n_r, n_c = acc.shape
    h, w = weight.shape
    i0 = max(0, -r0)
    i1 = min(h, n_r - r0)
    j0 = max(0, -c0)
    j1 = min(w, n_c - c0)
    zero = acc.dtype.type(0)
    # Row by row through equal-length 1-D slices with the column loop innermost and a select
    # instead of a branch: LLVM vectorises this (3-D indexing does not, ~2-3x slower). Invalid
    # pixels add exactly 0 even if the model produced NaN there.
    for i in range(i0, i1):
        w_row = weight[i, j0:j1]
        v_row = valid[i, j0:j1]
        s_row = wsum[r0 + i, c0 + j0 : c0 + j1]
        for j in range(s_row.shape[0]):
            s_row[j] += w_row[j] if v_row[j] else zero
        for k in range(n_k):
            a_row = acc[k, r0 + i, c0 + j0 : c0 + j1]
            p_row = pred[k, i, j0:j1]
            for j in range(a_row.shape[0]):
                x = p_row[j] * w_row[j]
                a_row[j] += x if v_row[j] else zero


def accumulate_numpy(
    acc: np.ndarray,
    wsum: np.ndarray,
    pred: np.ndarray,
    weight: np.ndarray,
    valid: np.ndarray,
    r0: int,
    c0: int,
) -> None:
    """NumPy reference for :func:`accumulate` (same clipping and arithmetic, vectorised)."""
    _, n_r, n_c = acc.shape
    h, w = weight.shape
    i0, i1 = max(0, -r0), min(h, n_r - r0)
    j0, j1 = max(0, -c0), min(w, n_c - c0)
    if i0 >= i1 or j0 >= j1:
        return
    rows, cols = slice(r0 + i0, r0 + i1), slice(c0 + j0, c0 + j1)
    mask = valid[i0:i1, j0:j1]
    weight = weight[i0:i1, j0:j1]
    wsum[rows, cols] += np.where(mask, weight, np.float32(0))
    acc[:, rows, cols] += np.where(mask, pred[:, i0:i1, j0:j1] * weight, np.float32(0))


@_kernel
def normalize(  # pragma: no cover - compiled
    acc: np.ndarray, wsum: np.ndarray, out: np.ndarray, nodata: float
) -> None:
    """``out = acc / wsum`` (float32, shape of ``acc``); ``nodata`` where ``wsum == 0``."""
    n_k, n_r, n_c = acc.shape
    for k in range(n_k):
        for i in range(n_r):
            a_row = acc[k, i]
            s_row = wsum[i]
            o_row = out[k, i]
            for j in range(n_c):
                s = s_row[j]
                o_row[j] = a_row[j] / s if s > 0 else nodata


def normalize_numpy(acc: np.ndarray, wsum: np.ndarray, out: np.ndarray, nodata: float) -> None:
    """NumPy reference for :func:`normalize`."""
    covered = wsum > 0
    safe = np.where(covered, wsum, np.float32(1))
    out[...] = np.where(covered, acc / safe, np.float32(nodata))


@_kernel
def argmax_classes(  # pragma: no cover - compiled
    acc: np.ndarray,
    wsum: np.ndarray,
    out_classes: np.ndarray,
    nodata_value: int,
) -> None:
    """Per pixel, the class with the largest blended probability.

    ``out_classes`` (uint8) gets the arg-max over K (first on ties, like ``np.argmax``) or
    ``nodata_value`` where ``wsum == 0``. Dividing by ``wsum`` does not change the arg-max, so it
    is taken on the weighted sums directly.
    """
    n_k, n_r, n_c = acc.shape
    for i in range(n_r):
        for j in range(n_c):
            s = wsum[i, j]
            if s <= 0:
                out_classes[i, j] = nodata_value
                continue
            best = 0
            top = acc[0, i, j]
            for k in range(1, n_k):
                if acc[k, i, j] > top:
                    top = acc[k, i, j]
                    best = k
            out_classes[i, j] = best


def argmax_classes_numpy(
    acc: np.ndarray,
    wsum: np.ndarray,
    out_classes: np.ndarray,
    nodata_value: int,
) -> None:
    """NumPy reference for :func:`argmax_classes`."""
    covered = wsum > 0
    out_classes[...] = np.where(covered, np.argmax(acc, axis=0), nodata_value)


def warm_up() -> None:
    """Call every kernel once on 1-pixel arrays of the types :class:`~gfmcli.engine.mosaic.
    StripMosaic` and :class:`~gfmcli.engine.mosaic.FinishedRows` pass (C-contiguous float32,
    bool and uint8 arrays, int64 offsets and nodata, a float32 fill value), so Numba is
    imported, their cached machine code loaded and the run's first calls find them ready."""
    acc = np.zeros((1, 1, 1), np.float32)
    wsum = np.zeros((1, 1), np.float32)
    accumulate(acc, wsum, acc.copy(), wsum.copy(), np.ones((1, 1), bool), 0, 0)
    normalize(acc, wsum, np.empty_like(acc), np.float32(0))
    argmax_classes(acc, wsum, np.empty((1, 1), np.uint8), 255)
