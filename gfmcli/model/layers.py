"""Small building blocks shared by the LESS and full-attention encoders (timm style, plain torch).

Each layer takes its sizes explicitly and uses ``nn.Identity`` for a disabled part, so a
checkpoint's module tree does not depend on which options happen to be active at run time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    """LayerNorm with the eps the reference code uses everywhere (1e-6, not torch's 1e-5)."""
    return nn.LayerNorm(dim, eps=LN_EPS)


class Mlp(nn.Module):
    """timm's transformer MLP: Linear, GELU, dropout, Linear, dropout."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """A learned per-channel gain on a residual branch (CaiT); ``Identity`` replaces it when off.

    In eval mode the gain is applied in the branch's own dtype: under bf16 autocast an fp32
    gain would promote every (B, C', N', D) branch output to a new fp32 tensor before the
    residual add (about 15 % of a CPU forward of the first default weights). In fp32 nothing
    changes; training keeps the fp32 gain (a small gain such as 1e-5 underflows in fp16).
    """

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.gamma if self.training else self.gamma.to(x.dtype))


def layer_scale(dim: int, init_value: float | None) -> nn.Module:
    """LayerScale when ``init_value`` is set, else Identity (no parameters, no checkpoint keys)."""
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample while training; identity at eval."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


def drop_path(prob: float) -> nn.Module:
    """DropPath when ``prob > 0``, else Identity."""
    return DropPath(prob) if prob > 0.0 else nn.Identity()


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., L, d) -> (..., heads, L, d/heads), the layout SDPA expects."""
    *lead, length, dim = x.shape
    return x.reshape(*lead, length, heads, dim // heads).transpose(-3, -2)


class AttnPool(nn.Module):
    """Multi-head cross-attention pooling of each row of tokens into one token.

    The query is the row's index-0 token (its [CLS]); keys and values are all tokens of the row.
    The LESS block uses this to summarise a band over space, or a location over bands, without
    ever forming attention between all C*N tokens. The input LayerNorm lives here because the
    reference pools ``LN(X)`` but adds the *un-normed* index-0 token as the residual.
    ``proj_drop`` drops out the pooled output after the projection, as the reference does.
    """

    def __init__(self, dim: int, heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.heads = heads
        self.attn_drop = attn_drop
        self.norm = layer_norm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)  # no parameters: checkpoints load either way

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, R, L, d) rows of L tokens -> (B, R, d), one pooled token per row."""
        y = self.norm(x)
        q = split_heads(self.q(y[:, :, :1]), self.heads)  # (B, R, h, 1, d/h)
        k, v = self.kv(y).chunk(2, dim=-1)
        k, v = split_heads(k, self.heads), split_heads(v, self.heads)
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # (B, R, h, 1, d/h)
        out = out.transpose(-3, -2).flatten(-3)  # (B, R, d)
        return self.proj_drop(self.proj(out))


class AttentionBranch(nn.Module):
    """Self-attention over one axis (bands or locations) with ``rank`` (q, k) pairs and one V.

    Returns the per-rank head outputs (B, r, h, L, d/h) *without* an output projection: the
    LESS block recombines the spectral and spatial branches by an outer product first.
    V is shared by all ranks, as in the reference code (not per-rank V as in the follow-up repo).
    """

    def __init__(self, dim: int, heads: int, rank: int, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.rank = rank
        self.attn_drop = attn_drop
        self.qk = nn.Linear(dim, 2 * rank * dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, d); attn_mask: bool (L, L), True = may attend. Returns (B, r, h, L, d/h)."""
        b, length, dim = x.shape
        h, r = self.heads, self.rank
        qk = self.qk(x).reshape(b, length, 2, r, h, dim // h).permute(2, 0, 3, 4, 1, 5)
        q = qk[0].reshape(b * r, h, length, dim // h)
        k = qk[1].reshape(b * r, h, length, dim // h)
        v = split_heads(self.v(x), h)  # (B, h, L, d/h)
        v = v.unsqueeze(1).expand(b, r, h, length, dim // h).reshape(b * r, h, length, dim // h)
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        return out.reshape(b, r, h, length, dim // h)


def init_weights(module: nn.Module) -> None:
    """Reference init: xavier-uniform Linear weights with zero bias; LayerNorm weight 1, bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_normal(tensor: torch.Tensor, std: float) -> None:
    """``nn.init.normal_(tensor, std=std)``, skipped on the meta device: a skeleton there has
    shapes but no values, and torch's meta ``normal_`` imports torch._dynamo and sympy on first
    use (1.3 s of every ``gfm predict``, which checks a checkpoint on such a skeleton)."""
    if not tensor.is_meta:
        nn.init.normal_(tensor, std=std)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(L,) float positions -> (L, dim) float64: sin half then cos half, frequencies
    1/10000^(k/(dim/2)). The one sin-cos of the package: patch positions and central
    wavelengths in the encoder's CPCE, wavelength features in the dense heads."""
    half = dim // 2
    omega = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)
