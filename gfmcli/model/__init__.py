"""LESS ViT model library: encoders, Hyper-MAE, heads, registry and checkpoints."""

from gfmcli.model.embedding import EncoderOutput, TokenGrid, TokenGridEncoder
from gfmcli.model.registry import EncoderConfig, create_model, get_config, list_models

__all__ = [
    "EncoderConfig",
    "EncoderOutput",
    "TokenGrid",
    "TokenGridEncoder",
    "create_model",
    "get_config",
    "list_models",
]
