"""Per-band statistics over valid pixels only, accumulated chip by chip in float64.

Normalisation statistics computed with nodata zeros included give the wrong mean/std (anchors.md
pain point 6: a checkerboard in a regression map), and naive sum/sum-of-squares in float32 loses
precision on large DN values. So each chip contributes its own float64 mean and sum of squared
deviations over *valid* pixels, merged with Chan et al.'s pairwise update; the result does not
depend on how the pixels were split into chips beyond rounding.

The statistics travel as ``stats.json`` beside the chips, into training, and into the final
checkpoint's contract (``BandInfo.mean``/``std``), so a model is always fed the way it was trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gfmcli.errors import InputError, OutputError


@dataclass
class BandStatistics:
    """Running count, mean, M2 (sum of squared deviations), min and max for each band."""

    names: tuple[str, ...]
    count: np.ndarray = field(init=False)
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    minimum: np.ndarray = field(init=False)
    maximum: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        self.count = np.zeros(n, np.int64)
        self.mean = np.zeros(n, np.float64)
        self.m2 = np.zeros(n, np.float64)
        self.minimum = np.full(n, np.inf)
        self.maximum = np.full(n, -np.inf)

    def update(self, image: np.ndarray, valid: np.ndarray) -> None:
        """Add the pixels of ``image`` (C, H, W) where ``valid`` (H, W) is true."""
        values = image[:, valid].astype(np.float64)  # (C, n)
        n = values.shape[1]
        if n == 0:
            return
        chunk_mean = values.mean(axis=1)
        chunk_m2 = ((values - chunk_mean[:, None]) ** 2).sum(axis=1)
        total = self.count + n
        delta = chunk_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + chunk_m2 + delta**2 * (self.count * n / total)
        self.count = total
        self.minimum = np.minimum(self.minimum, values.min(axis=1))
        self.maximum = np.maximum(self.maximum, values.max(axis=1))

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation; 1.0 where a band is constant or empty (safe divisor)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(self.m2 / np.maximum(self.count, 1))
        return np.where(std > 0, std, 1.0)

    def to_dict(self) -> dict:
        return {
            "bands": [
                {
                    "name": name,
                    "count": int(self.count[i]),
                    "mean": float(self.mean[i]),
                    "std": float(self.std[i]),
                    "min": float(self.minimum[i]) if self.count[i] else None,
                    "max": float(self.maximum[i]) if self.count[i] else None,
                }
                for i, name in enumerate(self.names)
            ]
        }


@dataclass(frozen=True)
class NormStats:
    """Per-band mean and std read back from ``stats.json`` (physical units)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def write_stats(path: Path, stats: BandStatistics) -> None:
    """Write ``stats.json``; OutputError (a full disk, a lost folder) naming the file."""
    try:
        path.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write chip statistics ({exc.strerror or exc})") from exc


def read_stats(path: Path) -> NormStats:
    """Read ``stats.json``; InputError naming the file if it is missing or malformed."""
    try:
        bands = json.loads(Path(path).read_text())["bands"]
        stats = NormStats(
            names=tuple(str(b["name"]) for b in bands),
            mean=tuple(float(b["mean"]) for b in bands),
            std=tuple(float(b["std"]) for b in bands),
        )
    except FileNotFoundError:
        raise InputError(
            f"{path}: missing; re-run `gfm tile` to write the chip statistics"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed chip statistics ({exc}); re-run `gfm tile`") from exc
    for name, mean, std in zip(stats.names, stats.mean, stats.std, strict=True):
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise InputError(
                f"{path}: band {name} has mean {mean} and std {std}; a model normalises by "
                "them, so they must be finite and std positive (re-run `gfm tile`)"
            )
    return stats
