"""Spatially blocked train/val/test split of a chip grid, deterministic from a seed.

Neighbouring chips share texture, objects and label noise, so a random per-chip split leaks
validation and test information into training and inflates scores. Instead chips are grouped in
blocks of ``block`` x ``block`` chips (per source raster) and whole blocks are assigned to one
split. The assignment depends only on the block list and the seed (exact counts per split, not a
coin per block, so a small area still gets a val and a test block when it has enough blocks).

Leakage at block borders: chips of different splits never overlap when ``stride >= size``; they
only touch along a block edge. When chips overlap (``stride < size``), or when ``buffer`` > 0,
training chips whose footprint, grown by ``buffer`` chip strides, touches a val/test chip are
moved to the ``buffer`` split and not used at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gfmcli.errors import UsageError

SPLITS = ("train", "val", "test")
BUFFER = "buffer"


@dataclass(frozen=True)
class GridChip:
    """One chip of one source raster on the chip grid: source index and top-left pixel."""

    source: int
    row: int
    col: int


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1); UsageError (exit 2) unless 3 finite, non-negative
    numbers sum to 1."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--split {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    finite = all(math.isfinite(v) for v in values)
    if len(values) != 3 or not finite or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise UsageError(f"--split {text!r}: expected train,val,test fractions summing to 1")
    return values  # type: ignore[return-value]


def assign_splits(
    chips: list[GridChip],
    *,
    size: int,
    stride: int,
    block: int,
    fractions: tuple[float, float, float],
    seed: int,
    buffer: int = 0,
) -> list[str]:
    """The split name of each chip (``train``/``val``/``test``/``buffer``), in input order."""
    block_px = block * stride
    keys = [(c.source, c.row // block_px, c.col // block_px) for c in chips]
    blocks = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(blocks))
    counts = _split_counts(len(blocks), fractions)
    block_split: dict[tuple[int, int, int], str] = {}
    start = 0
    for name, count in zip(SPLITS, counts, strict=True):
        for i in order[start : start + count]:
            block_split[blocks[i]] = name
        start += count
    splits = [block_split[k] for k in keys]
    grow = buffer * stride
    if stride >= size and grow == 0:
        return splits
    held_out = [c for c, s in zip(chips, splits, strict=True) if s != "train"]
    for i, (chip, split) in enumerate(zip(chips, splits, strict=True)):
        if split == "train" and any(
            _touches(chip, other, size, grow) for other in held_out if other.source == chip.source
        ):
            splits[i] = BUFFER
    return splits


def _touches(a: GridChip, b: GridChip, size: int, grow: int) -> bool:
    """True if chip ``a`` grown by ``grow`` pixels overlaps chip ``b`` (interiors, not edges)."""
    return (
        a.row - grow < b.row + size
        and b.row < a.row + size + grow
        and a.col - grow < b.col + size
        and b.col < a.col + size + grow
    )


def _split_counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Blocks per split: largest-remainder rounding, and at least one block for each non-zero
    val/test fraction when there are enough blocks (taken from train)."""
    raw = [f * n for f in fractions]
    counts = [int(np.floor(r)) for r in raw]
    remainders = sorted(range(3), key=lambda i: (counts[i] - raw[i], i))
    for i in remainders[: n - sum(counts)]:
        counts[i] += 1
    for i in (1, 2):
        if fractions[i] > 0 and counts[i] == 0 and counts[0] > 1:
            counts[i] += 1
            counts[0] -= 1
    return counts
