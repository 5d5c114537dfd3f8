"""The TOML schema of ``gfm pretrain`` and ``gfm finetune`` (and ``gfm tile --classes``).

The schema is the frozen dataclasses below; docs/config.md documents it key by key.
``gfmcli.tomlconf`` reads a file into them (``load_config(path, PretrainConfig)``) and writes
them back (``config_to_toml``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gfmcli.contract import HEAD_TASKS
from gfmcli.errors import ConfigError, ModelError
from gfmcli.model.config import ATTENTION_KINDS
from gfmcli.runtime.devices import PRECISIONS


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _path() -> dict[str, Any]:
    return {"path": True}


def _checkpoint() -> dict[str, Any]:
    """A checkpoint path, or the name of shipped weights as ``predict -m`` takes it."""
    return {"path": True, "or_weights_name": True}


def _range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> dict[str, Any]:
    """Bounds a number must lie in (``gfmcli.tomlconf`` checks them where the value enters, so
    a run never starts with a value that fails, or loops forever, halfway through)."""
    return {"range": (low, high, low_open, high_open)}


# A seed feeds torch, NumPy (< 2**32) and Python's RNG; an encoder wider or deeper than these
# is no "tiny to large" ViT but a request that only allocates memory until it fails.
MAX_SEED = 2**32 - 1
MAX_WIDTH = 4096
MAX_DEPTH = 64
MAX_HEADS = 64
MAX_PATCH = 64


def _field(default: Any = dataclasses.MISSING, **metadata: Any) -> Any:
    return field(default=default, metadata=metadata)


# --- shared sections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay (the Hyper-MAE recipe, less_vit.md §2.5)."""

    lr: float = _field(1e-4, **_range(0, 1, low_open=True))
    min_lr: float = _field(0.0, **_range(0, 1))
    weight_decay: float = _field(0.05, **_range(0))
    betas: tuple[float, float] = _field((0.9, 0.95), **_range(0, 1, high_open=True))
    eps: float = _field(1e-8, **_range(0, 1, low_open=True))
    warmup_ratio: float = _field(0.05, **_range(0, 1))
    grad_clip: float = _field(1.0, **_range(0))
    accumulate: int = _field(1, **_range(1, 4096))


@dataclass(frozen=True)
class OutputConfig:
    """Where checkpoints, metrics and the effective configuration go."""

    dir: str = field(metadata=_path())
    overwrite: bool = False


# --- pretraining -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainDataConfig:
    """Chip folders written by ``gfm tile`` (one band set each; optical and radar may mix)."""

    chips: tuple[str, ...] = field(metadata=_path())
    batch_size: int = _field(32, **_range(1, 65536))
    num_workers: int = _field(0, **_range(0, 256))
    augment: bool = True
    splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class PretrainModelConfig:
    """The encoder architecture (registry name) and the Hyper-MAE masking."""

    name: str = "less_vit_tiny"
    mask_ratio: float = _field(0.75, **_range(0, 1, low_open=True, high_open=True))
    channel_mask_ratio: float = _field(0.5, **_range(0, 1, high_open=True))
    decoder_dim: int = _field(512, **_range(1, MAX_WIDTH))
    decoder_depth: int = _field(8, **_range(1, MAX_DEPTH))
    decoder_heads: int = _field(16, **_range(1, MAX_HEADS))
    drop_path: float = _field(0.0, **_range(0, 1, high_open=True))
    decoder_drop_path: float | None = _field(None, **_range(0, 1, high_open=True))
    embed_dim: int | None = _field(None, **_range(1, MAX_WIDTH))
    depth: int | None = _field(None, **_range(1, MAX_DEPTH))
    num_heads: int | None = _field(None, **_range(1, MAX_HEADS))
    patch_size: int | None = _field(None, **_range(1, MAX_PATCH))
    attention: str | None = field(default=None, metadata=_choice(*ATTENTION_KINDS))


@dataclass(frozen=True)
class PretrainTrainConfig:
    """Length, seed, device and checkpointing of a pretraining run."""

    steps: int = _field(1000, **_range(1))
    seed: int = _field(42, **_range(0, MAX_SEED))
    device: str = "auto"
    precision: str = field(default="auto", metadata=_choice(*PRECISIONS))
    log_every: int = _field(10, **_range(1))
    checkpoint_every: int = _field(500, **_range(1))
    progress: bool = True


@dataclass(frozen=True)
class PretrainConfig:
    """``gfm pretrain`` configuration."""

    data: PretrainDataConfig
    output: OutputConfig
    model: PretrainModelConfig = PretrainModelConfig()
    optim: OptimConfig = OptimConfig()
    train: PretrainTrainConfig = PretrainTrainConfig()


# --- fine-tuning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassConfig:
    """One output class: the id in the label rasters, a name and an RGB colour for the map."""

    id: int = _field(**_range(0, 254))
    name: str = _field()
    color: tuple[int, int, int] = _field((128, 128, 128), **_range(0, 255))


@dataclass(frozen=True)
class FinetuneDataConfig:
    """Labelled chip folders from ``gfm tile --labels``; which split names to use for what."""

    chips: tuple[str, ...] = field(metadata=_path())
    batch_size: int = _field(16, **_range(1, 65536))
    num_workers: int = _field(0, **_range(0, 256))
    augment: bool = True
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"


@dataclass(frozen=True)
class FinetuneModelConfig:
    """Start from a pretrained checkpoint (``pretrained``) or from scratch (``name``)."""

    task: str = field(metadata=_choice(*HEAD_TASKS))
    pretrained: str | None = field(default=None, metadata=_checkpoint())
    name: str = "less_vit_tiny"
    mode: str = field(default="full", metadata=_choice("full", "linear_probe"))
    drop_path: float = _field(0.0, **_range(0, 1, high_open=True))
    head_width: int | None = _field(None, **_range(1, MAX_WIDTH))
    embed_dim: int | None = _field(None, **_range(1, MAX_WIDTH))
    depth: int | None = _field(None, **_range(1, MAX_DEPTH))
    num_heads: int | None = _field(None, **_range(1, MAX_HEADS))
    patch_size: int | None = _field(None, **_range(1, MAX_PATCH))
    attention: str | None = field(default=None, metadata=_choice(*ATTENTION_KINDS))
    channel_embedding: str | None = field(default=None, metadata=_choice("wavelength", "index"))


@dataclass(frozen=True)
class FinetuneOptimConfig(OptimConfig):
    """Fine-tuning defaults (less_vit.md §3.3): weight decay 0.01, warmup 20 %, no clipping."""

    weight_decay: float = _field(0.01, **_range(0))
    warmup_ratio: float = _field(0.2, **_range(0, 1))
    grad_clip: float = _field(0.0, **_range(0))
    class_weights: dict[str, float] | None = field(default=None, metadata=_range(0))


@dataclass(frozen=True)
class FinetuneTrainConfig:
    """Epochs, early stopping and the validation metric that chooses the best checkpoint."""

    epochs: int = _field(10, **_range(1))
    patience: int = _field(3, **_range(1))
    metric: str = field(
        default="auto", metadata=_choice("auto", "miou", "accuracy", "f1", "rmse", "mae")
    )
    seed: int = _field(42, **_range(0, MAX_SEED))
    device: str = "auto"
    precision: str = field(default="auto", metadata=_choice(*PRECISIONS))
    progress: bool = True


@dataclass(frozen=True)
class FinetuneConfig:
    """``gfm finetune`` configuration."""

    data: FinetuneDataConfig
    model: FinetuneModelConfig
    output: OutputConfig
    optim: FinetuneOptimConfig = FinetuneOptimConfig()
    train: FinetuneTrainConfig = FinetuneTrainConfig()
    classes: tuple[ClassConfig, ...] = ()


ARCHITECTURE_KEYS = ("embed_dim", "depth", "num_heads", "patch_size", "attention")


def encoder_overrides(model: PretrainModelConfig | FinetuneModelConfig) -> dict[str, Any]:
    """The encoder settings given in ``[model]`` (registry defaults for the rest)."""
    out: dict[str, Any] = {"drop_path_rate": model.drop_path}
    for key in ARCHITECTURE_KEYS:
        if getattr(model, key) is not None:
            out[key] = getattr(model, key)
    return out


@contextmanager
def sizes_from_model_table() -> Iterator[None]:
    """Building a model from the ``[model]`` table's sizes: one they cannot make (a width the
    heads do not divide, a patch size the dense head cannot take) is the configuration's error
    (exit 7, naming the table), not a broken checkpoint's (ModelError, exit 4)."""
    try:
        yield
    except ModelError as exc:
        raise ConfigError(f"[model]: {exc}; change the sizes in the [model] table") from exc


@dataclass(frozen=True)
class ClassListConfig:
    """A class list file for ``gfm tile --classes``: ``[[classes]]`` tables with id/name/color."""

    classes: tuple[ClassConfig, ...]
