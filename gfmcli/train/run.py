"""What pretraining and fine-tuning share: the run folder, metric logs, contract bands, batches.

The run folder (``output.dir``) holds ``last.pt`` (the latest checkpoint, with resume state),
``config.toml`` (the effective configuration, rewritten beside every checkpoint) and
``metrics.jsonl`` (one JSON object per logged step or epoch). Only rank 0 writes to it.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gfmcli.atomic import atomic_write
from gfmcli.contract import BandInfo
from gfmcli.errors import OutputError
from gfmcli.model.bands import Bands
from gfmcli.tomlconf import config_to_toml
from gfmcli.train.datasets import ChipFolder

CHECKPOINT = "last.pt"
CONFIG = "config.toml"
METRICS = "metrics.jsonl"
BEST = "best.pt"
VAL_METRICS = "val_metrics.json"


# Files that show a folder holds an earlier pretraining or fine-tuning run.
RUN_FILES = (CHECKPOINT, BEST, METRICS, VAL_METRICS)


def is_scores_file(path: Path) -> bool:
    """True for a JSON file ``gfm finetune --evaluate`` wrote (an object naming its split and
    checkpoint): the only kind of file at a ``--metrics`` path it replaces."""
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(scores, dict) and {"split", "checkpoint", "chips"} <= scores.keys()


def earlier_run_files(out: Path) -> list[str]:
    """The names of ``RUN_FILES`` present in ``out``."""
    return [name for name in RUN_FILES if (out / name).exists()]


def prepare_run_dir(out: Path, *, resume: bool, overwrite: bool, resumable: bool = True) -> None:
    """Create ``out``; refuse to clobber an earlier run unless resuming or overwriting.

    An earlier run is any of ``last.pt``, ``best.pt``, ``metrics.jsonl`` or
    ``val_metrics.json`` (pretrain and finetune alike), so a new run never replaces a best
    checkpoint or appends to another run's log. ``resumable`` is False for finetune, whose
    hint then offers only ``output.overwrite``.
    """
    found = earlier_run_files(out)
    if resume and CHECKPOINT not in found:
        raise OutputError(f"{out}: nothing to resume (no {CHECKPOINT}); run without --resume")
    if found and not resume and not overwrite:
        how = "continue it with --resume, or set" if resumable else "set"
        raise OutputError(
            f"{out}: holds an earlier run ({', '.join(found)}); {how} output.overwrite = true "
            "(or choose another output.dir)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc}") from exc
    if found and overwrite and not resume:
        for name in (BEST, METRICS, VAL_METRICS):
            (out / name).unlink(missing_ok=True)
        # the earlier run's test scores (--evaluate) describe a checkpoint that is gone
        for scores in out.glob("*_metrics.json"):
            if is_scores_file(scores):
                scores.unlink(missing_ok=True)


@contextlib.contextmanager
def removed_if_empty_on_failure(out: Path) -> Iterator[None]:
    """Run the body; if it fails and ``out`` did not exist before and is still empty, remove
    it, so a run refused for its configuration or data leaves no empty run folder behind."""
    existed = out.exists()
    try:
        yield
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                out.rmdir()  # only ever succeeds on an empty folder
        raise


def save_config(out: Path, cfg: Any) -> None:
    with atomic_write(out / CONFIG, "w") as handle:
        handle.write(config_to_toml(cfg))


class MetricsLog:
    """Appends JSON lines to ``metrics.jsonl`` (rank 0 only; a no-op elsewhere)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps(json_safe(record)) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot append to {self.path}: {exc}") from exc


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None, so every file is strict JSON (an undefined
    IoU of a class absent from truth and prediction is written as null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def contract_bands(folders: list[ChipFolder]) -> tuple[BandInfo, ...]:
    """BandInfo (identity, scaling, normalisation) of every distinct band of ``folders``."""
    bands: list[BandInfo] = []
    seen: set[tuple[str, float]] = set()
    for folder in folders:
        for i, b in enumerate(folder.meta["bands"]):
            key = (b["name"], float(b["wavelength_nm"]))
            if key in seen:
                continue
            seen.add(key)
            bands.append(
                BandInfo(
                    name=b["name"],
                    wavelength_nm=float(b["wavelength_nm"]),
                    modality=b.get("modality", "optical"),
                    mean=folder.stats.mean[i],
                    std=folder.stats.std[i],
                    scale=float(b.get("scale", 1.0)),
                    offset=float(b.get("offset", 0.0)),
                )
            )
    return tuple(bands)


def model_inputs(batch: dict[str, Any], group: Bands, device: torch.device) -> dict[str, Any]:
    """The batch image on ``device`` as encoder keyword arguments (``Bands.encoder_inputs``)."""
    return group.encoder_inputs(batch["image"].to(device))
