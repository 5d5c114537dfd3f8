"""What shapes an encoder: ``EncoderConfig`` and the choice lists its fields take.

A config is a frozen dataclass of plain values, so ``dataclasses.asdict(model.cfg)`` can be stored
in a checkpoint's contract and the same model rebuilt from it. It lives apart from the registry
(``gfmcli.model.registry``), which builds the encoders that read it: the encoders import this
module, the registry imports the encoders, and nothing imports back (timm's ``_registry.py``
imports no model module either).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from gfmcli.errors import ModelError

ATTENTION_KINDS = ("less", "full")
POS_CHAN_COMBINE = ("mean", "sum")
CHANNEL_EMBEDDINGS = ("wavelength", "index")
CLS_EMBEDDINGS = ("partial", "none")
# With channel_embedding="index", radar band i is identified as this + i, apart from optical bands.
RADAR_INDEX_OFFSET = 1000


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that shapes an encoder. Defaults are the paper's LESS ViT-B (83.2M params).

    ``attention="full"`` builds the full spatial-spectral attention reference instead (one token
    per band and patch, joint attention over all of them) with the same embeddings and widths.
    ``pos_includes_patch_size=True`` multiplies the position by the patch size (patch index x p x
    GSD metres, as the paper describes); the authors' code omits p (False reproduces it).
    ``pos_chan_combine="mean"`` averages position and channel embeddings as the code does;
    ``"sum"`` adds them. ``channel_embedding="index"`` identifies bands by their position in the
    stack instead of their wavelength (optical 0..Co-1, radar ``RADAR_INDEX_OFFSET``+i), in the
    encoder, the Hyper-MAE decoder and the head's pixel branch: the ablation baseline that shows
    what the wavelength embedding is worth across sensors. ``attention_radius`` is the Perception
    Field Mask radius in metres (None disables it). ``init_values`` is the LayerScale init
    (None = no LayerScale).

    ``cls_embedding="partial"`` gives the [CLS] row (location tokens) each location's position
    part and the [CLS] column (band tokens) each band's channel part, combined with a zero for
    the missing part exactly as the patch tokens are combined: with ``pos_chan_combine="mean"``
    that is half the position / wavelength embedding, as the reference code does. ``"none"``
    leaves the whole [CLS] row and column without CPCE (what gfm did before this field existed,
    and what the first shipped weights were trained with). The global [CLS] gets none either
    way. ``pool_drop`` is the dropout on each attention pool's output (the reference applies
    ``proj_drop`` there); None means "same as ``proj_drop``".
    Stored configs that predate a field mean the behaviour before it: see ``LEGACY_DEFAULTS``.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    channel_dims_per_head: int = 2
    rank: int = 1
    mlp_ratio: float = 4.0
    patch_size: int = 16
    attention: str = "less"
    attention_radius: float | None = 640.0
    pos_includes_patch_size: bool = True
    pos_chan_combine: str = "mean"
    channel_embedding: str = "wavelength"
    cls_embedding: str = "partial"
    radar_embed: bool = True
    init_values: float | None = 1.0
    drop_path_rate: float = 0.0
    proj_drop: float = 0.0
    attn_drop: float = 0.0
    pool_drop: float | None = None

    def __post_init__(self) -> None:
        for key in ("embed_dim", "depth", "num_heads", "channel_dims_per_head", "rank"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ModelError(f"model config {key}={getattr(self, key)!r}: must be an int >= 1")
        if not isinstance(self.patch_size, int) or self.patch_size < 1:
            raise ModelError(f"model config patch_size={self.patch_size!r}: must be an int >= 1")
        if self.embed_dim % 4:
            raise ModelError(f"model config embed_dim={self.embed_dim}: must be a multiple of 4")
        if self.embed_dim % self.channel_dim:
            raise ModelError(
                f"model config embed_dim={self.embed_dim} must be a multiple of "
                f"channel_dims_per_head*num_heads={self.channel_dim} (per-head Kronecker factors)"
            )
        if self.attention not in ATTENTION_KINDS:
            raise ModelError(
                f"model config attention={self.attention!r}: use one of {ATTENTION_KINDS}"
            )
        if self.pos_chan_combine not in POS_CHAN_COMBINE:
            raise ModelError(
                f"model config pos_chan_combine={self.pos_chan_combine!r}: "
                f"use one of {POS_CHAN_COMBINE}"
            )
        if self.channel_embedding not in CHANNEL_EMBEDDINGS:
            raise ModelError(
                f"model config channel_embedding={self.channel_embedding!r}: "
                f"use one of {CHANNEL_EMBEDDINGS}"
            )
        if self.cls_embedding not in CLS_EMBEDDINGS:
            raise ModelError(
                f"model config cls_embedding={self.cls_embedding!r}: use one of {CLS_EMBEDDINGS}"
            )
        if self.attention_radius is not None and not self.attention_radius > 0:
            raise ModelError(
                f"model config attention_radius={self.attention_radius!r}: metres > 0, or None"
            )
        for key in ("drop_path_rate", "proj_drop", "attn_drop"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ModelError(f"model config {key}={getattr(self, key)!r}: must be in [0, 1)")
        if self.pool_drop is not None and not 0.0 <= self.pool_drop < 1.0:
            raise ModelError(
                f"model config pool_drop={self.pool_drop!r}: must be in [0, 1), or None"
            )
        if self.mlp_ratio <= 0:
            raise ModelError(f"model config mlp_ratio={self.mlp_ratio!r}: must be > 0")

    @property
    def pool_drop_rate(self) -> float:
        """The attention pools' output dropout: ``pool_drop``, or ``proj_drop`` when None."""
        return self.proj_drop if self.pool_drop is None else self.pool_drop

    @property
    def channel_dim(self) -> int:
        """d_c: width of the pooled spectral tokens (cpdh per head)."""
        return self.channel_dims_per_head * self.num_heads

    @property
    def spatial_dim(self) -> int:
        """d_s: width of the pooled spatial tokens, so that (d_c/h)*(d_s/h) = D/h per head."""
        return (self.embed_dim // self.channel_dim) * self.num_heads


# What a stored encoder config (a checkpoint's contract) means when it lacks a field: the
# behaviour gfm had before the field existed, so old checkpoints keep predicting the same.
# A freshly built model gets the EncoderConfig default instead.
LEGACY_DEFAULTS = MappingProxyType({"cls_embedding": "none", "pool_drop": 0.0})


def with_legacy_defaults(stored: dict[str, object]) -> dict[str, object]:
    """``stored`` (a checkpoint's resolved encoder fields) with ``LEGACY_DEFAULTS`` filled in
    for the fields it predates."""
    return {**LEGACY_DEFAULTS, **stored}
