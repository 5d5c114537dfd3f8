"""Task models: a LESS encoder plus an optional head, built from a JSON-able config.

The config (``model_config_for`` / ``GfmModel.config``) is what a checkpoint's contract stores, so
``build_model(model.config)`` rebuilds the same architecture. Code reads it through
:class:`ModelSpec` (``ModelSpec.from_config``, ``GfmModel.spec``): typed fields, validated once,
instead of string keys; the stored form stays the plain dict (its bytes feed the contract hash).
It records the encoder's *resolved* config (every field, not only the overrides given), so a
checkpoint keeps meaning the same network even if a registry default changes later; the
reference code rebuilt its fine-tuning encoder from defaults and silently got other shapes and
MAE masking (less_vit.md §5.2).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gfmcli.contract import TASKS
from gfmcli.errors import ModelError
from gfmcli.model.embedding import TokenGridEncoder, band_identifiers
from gfmcli.model.heads import (
    ClassificationHead,
    RegressionHead,
    SegmentationHead,
    tokens_to_map,
)

HEADS: dict[str, type[nn.Module]] = {
    "classification": ClassificationHead,
    "segmentation": SegmentationHead,
    "regression": RegressionHead,
}
POOLS = ("none", "mean", "cls")
_DENSE_OPTIONS = ("width", "min_width", "pixel_dim", "use_band_tokens", "drop_rate")
_HEAD_OPTIONS = {
    "classification": ("drop_rate",),
    "segmentation": _DENSE_OPTIONS,
    "regression": _DENSE_OPTIONS,
}


@dataclass(frozen=True)
class HeadSpec:
    """A task head: its task (``type``), output count and size options (``_HEAD_OPTIONS``)."""

    type: str
    num_outputs: int
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """The task-model config as typed fields: the encoder's registry name and overrides (the
    resolved encoder config once built), the task, and the head (None for pretrain/embedding)."""

    encoder: str
    encoder_overrides: Mapping[str, Any]
    task: str
    head: HeadSpec | None = None

    @classmethod
    def from_config(cls, config: Any) -> ModelSpec:
        """Read a stored config (``model_config_for``'s dict); ModelError naming the bad key."""
        _check_config(config)
        encoder, head = config["encoder"], config.get("head")
        return cls(
            encoder=encoder["name"],
            encoder_overrides=dict(encoder.get("overrides", {})),
            task=config["task"],
            head=None
            if head is None
            else HeadSpec(
                head["type"],
                head["num_outputs"],
                {k: v for k, v in head.items() if k not in ("type", "num_outputs")},
            ),
        )


class GfmModel(nn.Module):
    """Encoder + optional head for one task.

    ``forward`` returns (B, K, H, W) logits/values for segmentation and regression, (B, K) logits
    for classification, and the per-patch embeddings (B, D, h, w) for "pretrain" and "embedding"
    (models without a head: a pretrained backbone with its contract).
    """

    def __init__(
        self, encoder: TokenGridEncoder, head: nn.Module | None, task: str, config: dict[str, Any]
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ModelError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        if (head is None) != (task in ("pretrain", "embedding")):
            raise ModelError(f"task {task!r} {'needs a' if head is None else 'takes no'} head")
        self.encoder = encoder
        self.head = head
        self.task = task
        self._config = copy.deepcopy(config)
        self._encoder_frozen = False

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able config that ``build_model`` turns back into this architecture."""
        return copy.deepcopy(self._config)

    @property
    def spec(self) -> ModelSpec:
        """:attr:`config` as a :class:`ModelSpec`."""
        return ModelSpec.from_config(self._config)

    @property
    def patch_size(self) -> int:
        return int(self.encoder.patch_size)

    @property
    def embed_dim(self) -> int:
        return int(self.encoder.embed_dim)

    @property
    def channel_embedding(self) -> str:
        """How the encoder knows bands ("wavelength" or "index"), so the head knows them alike;
        encoders whose config lacks the field (test stand-ins) use wavelengths."""
        return getattr(self.encoder.cfg, "channel_embedding", "wavelength")

    def _encode(
        self,
        x: torch.Tensor | None,
        wavelengths: object,
        gsd: object,
        radar: torch.Tensor | None,
        radar_wavelengths: object,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        out = self.encoder(
            x, wavelengths=wavelengths, gsd=gsd, radar=radar, radar_wavelengths=radar_wavelengths
        )
        return out.tokens, tuple(out.grid_size)

    def forward(
        self,
        x: torch.Tensor | None,
        wavelengths: object,
        gsd: object,
        radar: torch.Tensor | None = None,
        radar_wavelengths: object = None,
    ) -> torch.Tensor:
        """(B, C, H, W) normalised pixels, C wavelengths (nm) and the GSD (m) -> task output.
        Radar bands (and their wavelength IDs) go separately, as the encoder embeds them apart."""
        tokens, grid = self._encode(x, wavelengths, gsd, radar, radar_wavelengths)
        if self.head is None:
            return tokens_to_map(tokens[:, 0, 1:], grid)
        pixels, band_ids = _all_bands(
            x, wavelengths, radar, radar_wavelengths, self.channel_embedding
        )
        return self.head(tokens, grid, pixels, band_ids)

    def embed(
        self,
        x: torch.Tensor | None,
        wavelengths: object,
        gsd: object,
        radar: torch.Tensor | None = None,
        radar_wavelengths: object = None,
        pool: str = "none",
    ) -> torch.Tensor:
        """Encoder embeddings: per-patch location tokens (B, D, h, w) for ``pool="none"``, their
        mean (B, D) for ``"mean"`` or the global [CLS] token (B, D) for ``"cls"``."""
        if pool not in POOLS:
            raise ModelError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        tokens, grid = self._encode(x, wavelengths, gsd, radar, radar_wavelengths)
        if pool == "cls":
            return tokens[:, 0, 0]
        if pool == "mean":
            return tokens[:, 0, 1:].mean(dim=1)
        return tokens_to_map(tokens[:, 0, 1:], grid)

    def freeze_encoder(self) -> None:
        """Linear probing: encoder weights stop training and the encoder stays in eval mode
        (no dropout or drop-path) even when ``train()`` is called on the whole model."""
        for param in self.encoder.parameters():
            param.requires_grad_(False)
        self._encoder_frozen = True
        self.encoder.eval()

    def train(self, mode: bool = True) -> GfmModel:
        super().train(mode)
        if self._encoder_frozen:
            self.encoder.eval()
        return self


def _all_bands(
    x: torch.Tensor | None,
    wavelengths: object,
    radar: torch.Tensor | None,
    radar_wl: object,
    channel_embedding: str = "wavelength",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optical then radar bands with their identifiers, in the encoder's order, so the head's
    pixel branch sees every band the encoder sees and knows them the same way: by wavelength,
    or by position when the encoder's ``channel_embedding`` is "index"."""
    parts = [(t, wl) for t, wl in ((x, wavelengths), (radar, radar_wl)) if t is not None]
    if not parts:
        raise ModelError("no input: pass optical x, radar, or both")
    pixels = torch.cat([t for t, _ in parts], dim=1)
    wls = torch.cat([torch.as_tensor(wl, dtype=torch.float32).reshape(-1) for _, wl in parts])
    if channel_embedding == "index":  # the encoder has already checked the wavelength count
        n_optical = 0 if x is None else x.shape[1]
        n_radar = 0 if radar is None else radar.shape[1]
        ids = band_identifiers("index", (0.0,) * n_optical, (0.0,) * n_radar)
        wls = torch.tensor(ids, dtype=torch.float32)
    return pixels, wls


def model_config_for(
    encoder: str,
    task: str,
    *,
    num_outputs: int | None = None,
    encoder_overrides: dict[str, Any] | None = None,
    **head_options: Any,
) -> dict[str, Any]:
    """The JSON-able model config for ``build_model``.

    Segmentation, classification and regression get the head of the same name with
    ``num_outputs`` outputs; "pretrain" and "embedding" get none. ``head_options`` are the head's
    size options (dense heads: width, min_width, pixel_dim, use_band_tokens, drop_rate;
    classification: drop_rate).
    """
    if task not in TASKS:
        raise ModelError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    head: dict[str, Any] | None = None
    if task in HEADS or num_outputs is not None or head_options:
        head = {"type": task, "num_outputs": num_outputs, **head_options}
    config = {
        "encoder": {"name": encoder, "overrides": dict(encoder_overrides or {})},
        "task": task,
        "head": head,
    }
    _check_config(config)
    return config


def _check_config(config: Any) -> None:
    """ModelError naming the key at fault, before anything is built."""
    if not isinstance(config, dict):
        raise ModelError(f"model config must be a dict, got {type(config).__name__}")
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model config is not JSON-able ({exc}); use plain values only") from exc
    enc = config.get("encoder")
    if not isinstance(enc, dict) or not isinstance(enc.get("name"), str):
        raise ModelError('model config needs "encoder": {"name": ..., "overrides": {...}}')
    if not isinstance(enc.get("overrides", {}), dict):
        raise ModelError('model config "encoder.overrides" must be a dict')
    task = config.get("task")
    if task not in TASKS:
        raise ModelError(f"model config task {task!r} is not one of {', '.join(TASKS)}")
    head = config.get("head")
    if task in ("pretrain", "embedding"):
        if head is not None:
            raise ModelError(f'model config: task {task!r} takes no head; set "head" to null')
        return
    if not isinstance(head, dict) or head.get("type") != task:
        raise ModelError(f'model config: task {task!r} needs "head": {{"type": "{task}", ...}}')
    k = head.get("num_outputs")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ModelError(f"model config head.num_outputs={k!r}: must be an int >= 1")
    unknown = sorted(set(head) - {"type", "num_outputs", *_HEAD_OPTIONS[task]})
    if unknown:
        raise ModelError(
            f"unknown {task} head option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(_HEAD_OPTIONS[task])}"
        )


def _create_encoder(name: str, overrides: dict[str, Any]) -> TokenGridEncoder:
    from gfmcli.model.registry import create_model

    return create_model(name, **overrides)


def _create_head(spec: HeadSpec, embed_dim: int, patch_size: int) -> nn.Module:
    options = dict(spec.options)
    try:
        if spec.type == "classification":
            return ClassificationHead(embed_dim, spec.num_outputs, **options)
        return HEADS[spec.type](embed_dim, patch_size, spec.num_outputs, **options)
    except (TypeError, ValueError, RuntimeError) as exc:
        shown = {"type": spec.type, "num_outputs": spec.num_outputs, **options}
        raise ModelError(f"model config head {shown}: cannot build it ({exc})") from exc


def build_model(model_config: dict[str, Any]) -> GfmModel:
    """Build encoder and head from a config made by ``model_config_for`` (or read from a
    checkpoint contract). The returned model's ``config`` holds the encoder's resolved config."""
    spec = ModelSpec.from_config(model_config)
    encoder = _create_encoder(spec.encoder, dict(spec.encoder_overrides))
    config = copy.deepcopy(model_config)
    config["encoder"] = {"name": spec.encoder, "overrides": dataclasses.asdict(encoder.cfg)}
    head = None
    if spec.head is not None:
        head = _create_head(spec.head, encoder.embed_dim, encoder.patch_size)
    return GfmModel(encoder, head, spec.task, config)
