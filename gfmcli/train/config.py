"""The TOML schema of ``gfm pretrain`` and ``gfm finetune`` (and ``gfm tile --classes``).

The schema is the frozen dataclasses below; docs/config.md documents it key by key.
``gfmcli.tomlconf`` reads a file into them (``load_config(path, PretrainConfig)``) and writes
them back (``config_to_toml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gfmcli.contract import HEAD_TASKS
from gfmcli.model.config import ATTENTION_KINDS
from gfmcli.runtime.devices import PRECISIONS


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _path() -> dict[str, Any]:
    return {"path": True}


# --- shared sections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay (the Hyper-MAE recipe, less_vit.md §2.5)."""

    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    accumulate: int = 1


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
    batch_size: int = 32
    num_workers: int = 0
    augment: bool = True
    splits: tuple[str, ...] = ("train",)


@dataclass(frozen=True)
class PretrainModelConfig:
    """The encoder architecture (registry name) and the Hyper-MAE masking."""

    name: str = "less_vit_tiny"
    mask_ratio: float = 0.75
    channel_mask_ratio: float = 0.5
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    drop_path: float = 0.0
    decoder_drop_path: float | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    patch_size: int | None = None
    attention: str | None = field(default=None, metadata=_choice(*ATTENTION_KINDS))


@dataclass(frozen=True)
class PretrainTrainConfig:
    """Length, seed, device and checkpointing of a pretraining run."""

    steps: int = 1000
    seed: int = 42
    device: str = "auto"
    precision: str = field(default="auto", metadata=_choice(*PRECISIONS))
    log_every: int = 10
    checkpoint_every: int = 500
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

    id: int
    name: str
    color: tuple[int, int, int] = (128, 128, 128)


@dataclass(frozen=True)
class FinetuneDataConfig:
    """Labelled chip folders from ``gfm tile --labels``; which split names to use for what."""

    chips: tuple[str, ...] = field(metadata=_path())
    batch_size: int = 16
    num_workers: int = 0
    augment: bool = True
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"


@dataclass(frozen=True)
class FinetuneModelConfig:
    """Start from a pretrained checkpoint (``pretrained``) or from scratch (``name``)."""

    task: str = field(metadata=_choice(*HEAD_TASKS))
    pretrained: str | None = field(default=None, metadata=_path())
    name: str = "less_vit_tiny"
    mode: str = field(default="full", metadata=_choice("full", "linear_probe"))
    drop_path: float = 0.0
    head_width: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    patch_size: int | None = None
    attention: str | None = field(default=None, metadata=_choice(*ATTENTION_KINDS))
    channel_embedding: str | None = field(default=None, metadata=_choice("wavelength", "index"))


@dataclass(frozen=True)
class FinetuneOptimConfig(OptimConfig):
    """Fine-tuning defaults (less_vit.md §3.3): weight decay 0.01, warmup 20 %, no clipping."""

    weight_decay: float = 0.01
    warmup_ratio: float = 0.2
    grad_clip: float = 0.0
    class_weights: dict[str, float] | None = None


@dataclass(frozen=True)
class FinetuneTrainConfig:
    """Epochs, early stopping and the validation metric that chooses the best checkpoint."""

    epochs: int = 10
    patience: int = 3
    metric: str = field(
        default="auto", metadata=_choice("auto", "miou", "accuracy", "f1", "rmse", "mae")
    )
    seed: int = 42
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


@dataclass(frozen=True)
class ClassListConfig:
    """A class list file for ``gfm tile --classes``: ``[[classes]]`` tables with id/name/color."""

    classes: tuple[ClassConfig, ...]
