"""The model contract: what a checkpoint's weights expect of their input and what they produce.

It travels inside every checkpoint (``gfmcli.model.checkpoint``) and is checked by ``predict``
and ``embed`` against each input raster before any pixel is read, so that a band-order or
scaling mistake is an error, not a silently wrong map. It is plain data (JSON-compatible, no
torch), so I/O code can use it without importing the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gfmcli.errors import ModelError

#: Every task a checkpoint can have: the one task list (model heads, training, predict).
# Class maps are uint8 with 255 as nodata.
MAX_CLASS_ID = 254
TASKS = ("pretrain", "segmentation", "classification", "regression", "embedding")
#: The tasks with a supervised head, the ones ``gfm finetune`` trains.
HEAD_TASKS = ("segmentation", "classification", "regression")


@dataclass(frozen=True)
class BandInfo:
    """One input band as the model was trained on it.

    ``mean``/``std`` normalise the band's *physical* value (after the sensor scaling,
    ``DN * scale + offset``): ``x_model = (physical - mean) / std``.
    """

    name: str
    wavelength_nm: float
    modality: str = "optical"
    mean: float = 0.0
    std: float = 1.0
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class ClassInfo:
    """One output class: its id in the map, its name and its RGB colour (0-255 each)."""

    id: int
    name: str
    color: tuple[int, int, int] = (128, 128, 128)


def window_steps_problem(window: int, patch_size: int, steps: Sequence[tuple[float, int]]) -> str:
    """What is wrong with ``window_by_gsd`` steps after a ``window`` for the finest rasters
    (empty when nothing): GSDs positive, finite and ascending, each window a multiple of the
    patch size and no smaller than the one before. Shared by the contract's own check and the
    training script that writes the steps, each adding its own advice."""
    gsds = [g for g, _ in steps]
    if not all(math.isfinite(g) and g > 0 for g in gsds) or gsds != sorted(set(gsds)):
        return f"GSDs {gsds} must be positive, finite and ascending"
    previous = window
    for gsd, size in steps:
        if size <= 0 or size % patch_size:
            return (
                f"window {size} (from {gsd:g} m) is not a positive multiple of the patch size "
                f"{patch_size}"
            )
        if size < previous:
            return (
                f"window {size} (from {gsd:g} m) is smaller than the window before it "
                f"({previous}); coarser rasters get larger windows"
            )
        previous = size
    return ""


@dataclass(frozen=True)
class ModelContract:
    """Everything a user of a checkpoint must know to feed it and to read its output."""

    model_name: str
    model_config: dict[str, Any]
    task: str
    sensor: str
    bands: tuple[BandInfo, ...]
    gsd: float
    patch_size: int
    classes: tuple[ClassInfo, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The window (pixels) the model maps in when the user gives none: the size of its training
    #: chips. A ViT taught on 4 x 4 patch grids is another model on a 32 x 32 grid (attention
    #: spreads over 64x the tokens, group norm over 64x the pixels), so it maps best in windows
    #: like its chips. None (older checkpoints) maps in the 512-pixel default.
    window: int | None = None
    #: Larger windows for coarser rasters: ``(from_gsd_m, window)`` steps, GSD and window
    #: ascending, each window at least ``window``. A raster of GSD ``g`` metres maps in the
    #: window of the last step with ``from_gsd_m <= g``, in ``window`` below the first. Why: a
    #: cloud's shadow lies 1-5 km from it, and 64 px of 30 m pixels span 1.9 km, so at 30 m a
    #: window of the 10 m chips' size often holds the shadow without its cloud
    #: (docs/model-experiments.md, thirteenth session). Empty: one window at every GSD.
    window_by_gsd: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"contract task {self.task!r} is not one of {', '.join(TASKS)}")
        if not self.bands:
            raise ModelError("a model contract needs at least one band")
        if not (math.isfinite(self.gsd) and self.gsd > 0) or self.patch_size <= 0:
            raise ModelError("contract GSD and patch size must be positive")
        for band in self.bands:
            numbers = (band.wavelength_nm, band.mean, band.std, band.scale, band.offset)
            if not all(math.isfinite(v) for v in numbers) or band.std <= 0:
                raise ModelError(
                    f"contract band {band.name!r}: mean, std, scale and offset must be finite "
                    f"and std positive (std {band.std}); the checkpoint is corrupt or was edited"
                )
        ids = [c.id for c in self.classes]
        bad = [i for i in ids if not 0 <= i <= MAX_CLASS_ID]
        if bad or len(set(ids)) != len(ids):
            what = f"class id {bad[0]} is outside 0..{MAX_CLASS_ID}" if bad else "class ids repeat"
            raise ModelError(
                f"contract classes: {what} (a class map is uint8 with 255 as nodata); the "
                "checkpoint is corrupt or was edited"
            )
        if any(not 0 <= v <= 255 for c in self.classes for v in c.color):
            raise ModelError("contract classes: colours must be RGB values in 0..255")
        if self.window is not None and (self.window <= 0 or self.window % self.patch_size):
            raise ModelError(
                f"contract window {self.window} is not a positive multiple of the patch size "
                f"{self.patch_size}; the checkpoint is corrupt or was edited"
            )
        self._check_window_by_gsd()

    def _check_window_by_gsd(self) -> None:
        if not self.window_by_gsd:
            return
        if self.window is None:
            raise ModelError("contract window_by_gsd needs a window for the finest rasters")
        problem = window_steps_problem(self.window, self.patch_size, self.window_by_gsd)
        if problem:
            raise ModelError(
                f"contract window_by_gsd: {problem}; the checkpoint is corrupt or was edited"
            )

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def wavelengths(self) -> tuple[float, ...]:
        return tuple(b.wavelength_nm for b in self.bands)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["window"] is None:  # so a contract without one keeps its hash from before
            del data["window"]
        if not data["window_by_gsd"]:  # likewise for a contract with one window
            del data["window_by_gsd"]
        else:
            data["window_by_gsd"] = [list(step) for step in self.window_by_gsd]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        """Rebuild a contract from ``to_dict`` output; ModelError if fields are missing or wrong."""
        try:
            bands = tuple(BandInfo(**b) for b in data["bands"])
            classes = tuple(
                ClassInfo(int(c["id"]), str(c["name"]), _rgb(c["color"]))
                for c in data.get("classes", ())
            )
            return cls(
                model_name=str(data["model_name"]),
                model_config=dict(data["model_config"]),
                task=str(data["task"]),
                sensor=str(data["sensor"]),
                bands=bands,
                gsd=float(data["gsd"]),
                patch_size=int(data["patch_size"]),
                classes=classes,
                provenance=dict(data.get("provenance", {})),
                window=None if data.get("window") is None else int(data["window"]),
                window_by_gsd=tuple(
                    (float(gsd), int(size)) for gsd, size in data.get("window_by_gsd", ())
                ),
            )
        except ModelError:
            raise  # a value check of __post_init__: its own words name the field
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the model contract is incomplete or malformed ({exc})") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"the model contract is not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def contract_hash(contract: ModelContract) -> str:
    """A short, stable identifier of a contract: sha256 of its canonical JSON, 16 hex digits.

    Outputs record it (GeoParquet embeddings, ``gfm info``) so that rows made by different
    checkpoints are never mixed up, even when the architecture name is the same.
    """
    return hashlib.sha256(contract.to_json().encode()).hexdigest()[:16]


def _rgb(values: Any) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)
    return r, g, b
