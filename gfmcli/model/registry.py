"""Encoder configurations by name, and ``create_model`` (timm style).

The table below is filled once at import and only read afterwards; each entry is an
``EncoderConfig`` (``gfmcli.model.config``), so ``create_model(name, **stored_fields)`` rebuilds
the model a checkpoint describes.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gfmcli.errors import ModelError
from gfmcli.model.config import EncoderConfig

if TYPE_CHECKING:
    from gfmcli.model.embedding import TokenGridEncoder

_CONFIGS = MappingProxyType(
    {
        # Maps a Sentinel-2 scene on a laptop CPU in minutes (timing in docs/model.md).
        "less_vit_tiny": EncoderConfig(embed_dim=192, depth=6, num_heads=3),
        # The sweep's LESS ViT-S: 21.05M parameters.
        "less_vit_small": EncoderConfig(embed_dim=384, depth=12, num_heads=6),
        # The paper's LESS ViT-B: cpdh 2, rank 1, both embedders, 83,219,328 parameters.
        "less_vit_base": EncoderConfig(embed_dim=768, depth=12, num_heads=12),
    }
)


def list_models() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(_CONFIGS)


def get_config(name: str, **overrides: Any) -> EncoderConfig:
    """The named config with ``overrides`` applied (``dataclasses.replace``)."""
    if name not in _CONFIGS:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ModelError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
            f"valid: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(_CONFIGS[name], **overrides)


def create_model(name: str, **overrides: object) -> TokenGridEncoder:
    """Build the named encoder; ``overrides`` replace config fields (e.g. ``attention="full"``).

    Build under ``with torch.device("meta"):`` to get shapes and parameter counts without
    allocating or initialising weights (useful before loading a checkpoint).
    """
    cfg = get_config(name, **overrides)
    if cfg.attention == "full":
        from gfmcli.model.full import FullEncoder

        return FullEncoder(cfg)
    from gfmcli.model.less import LessEncoder

    return LessEncoder(cfg)
