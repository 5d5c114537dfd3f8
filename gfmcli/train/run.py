"""What pretraining and fine-tuning share: the run folder, metric logs, contract bands, batches.

The run folder (``output.dir``) holds ``last.pt`` (the latest checkpoint, with resume state),
``config.toml`` (the effective configuration, rewritten beside every checkpoint) and
``metrics.jsonl`` (one JSON object per logged step or epoch). Only rank 0 writes to it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gfmcli.config import config_to_toml
from gfmcli.contract import BandInfo
from gfmcli.errors import ConfigError, OutputError
from gfmcli.train.datasets import BandGroup, ChipFolder

CHECKPOINT = "last.pt"
CONFIG = "config.toml"
METRICS = "metrics.jsonl"
BEST = "best.pt"
VAL_METRICS = "val_metrics.json"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; configs and logs are shared like other files
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# Files that show a folder holds an earlier pretraining or fine-tuning run.
RUN_FILES = (CHECKPOINT, BEST, METRICS, VAL_METRICS)


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


def save_config(out: Path, cfg: Any) -> None:
    write_text_atomic(out / CONFIG, config_to_toml(cfg))


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


def model_inputs(batch: dict[str, Any], group: BandGroup, device: torch.device) -> dict[str, Any]:
    """Split a batch's bands into the encoder's optical and radar inputs with wavelengths."""
    image = batch["image"].to(device)
    optical, radar = group.optical, group.radar
    inputs: dict[str, Any] = {"x": None, "wavelengths": None, "gsd": group.gsd}
    if optical:
        inputs["x"] = image[:, optical] if radar else image
        inputs["wavelengths"] = [group.wavelengths[i] for i in optical]
    if radar:
        inputs["radar"] = image[:, radar] if optical else image
        inputs["radar_wavelengths"] = [group.wavelengths[i] for i in radar]
    return inputs


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], keys: list[str]) -> None:
    """ConfigError listing the settings (dotted ``keys``) that differ from the saved run."""
    diffs = []
    for key in keys:
        a, b = _dig(saved, key), _dig(current, key)
        if _norm(a) != _norm(b):
            diffs.append(f"{key} (checkpoint {_norm(a)!r}, config {_norm(b)!r})")
    if diffs:
        raise ConfigError(
            "cannot resume: the configuration differs from the checkpoint's in "
            + "; ".join(diffs)
            + "; restore those settings or start a new output.dir"
        )


def _dig(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items())}
    return value
