"""The LESS block (low-rank spatial-spectral attention) and the LESS ViT encoder.

Per block, the (B, C', N', D) grid is pooled to C' spectral tokens and N' spatial tokens at low
widths, each set attends along its own axis, and the two results are recombined per head by an
outer product (a rank-r Kronecker approximation of joint attention over all C'*N' tokens). The
recombination is fused with the output projection (``recombine_project``), so the
(B, r, h, C', N', D/h) outer product is never built.
"""

from __future__ import annotations

import torch
from torch import nn

from gfmcli.model.config import EncoderConfig
from gfmcli.model.embedding import TokenGridEncoder
from gfmcli.model.layers import AttentionBranch, AttnPool, Mlp, drop_path, layer_norm, layer_scale


class LowDimPool(nn.Module):
    """Project the grid to d_c and d_s, then pool each band row over space and each location
    column over bands: (B, C', N', D) -> spectral (B, C', d_c) and spatial (B, N', d_s).

    Each pooled token is its own index-0 ([CLS]) token plus an attention-pooled summary
    (dropped out at ``pool_drop`` while training).
    """

    def __init__(
        self,
        dim: int,
        channel_dim: int,
        spatial_dim: int,
        heads: int,
        attn_drop: float,
        pool_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.channel_proj = nn.Linear(dim, channel_dim)
        self.spatial_proj = nn.Linear(dim, spatial_dim)
        self.channel_pool = AttnPool(channel_dim, heads, attn_drop, pool_drop)
        self.spatial_pool = AttnPool(spatial_dim, heads, attn_drop, pool_drop)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xc = self.channel_proj(x)  # (B, C', N', d_c)
        xs = self.spatial_proj(x).transpose(1, 2)  # (B, N', C', d_s)
        spectral = xc[:, :, 0] + self.channel_pool(xc)
        spatial = xs[:, :, 0] + self.spatial_pool(xs)
        return spectral, spatial


def recombine_project(
    out_c: torch.Tensor, out_s: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Fused ``Linear(sum_r concat_heads(out_c[r, head, c] (x) out_s[r, head, n]))``.

    out_c: (B, r, h, C', a) with a = d_c/h; out_s: (B, r, h, N', s) with s = d_s/h; weight
    (D_out, h*a*s) as in ``nn.Linear``, its input index being head*(a*s) + i*s + j (row-major
    flattening of the per-head outer product). With W viewed as (D_out, h, a, s):

        y[b, c, n, o] = sum_{r, head, i} out_c[b, r, head, c, i] * U[b, r, head, n, i, o]
        U[b, r, head, n, i, o] = sum_j out_s[b, r, head, n, j] * W[o, head, i, j]

    U has N'*r*d_c*D elements, small because d_c = cpdh*h is small; the second contraction
    sums ranks, heads and i together (one batched matmul), which is exact for any rank. Its
    cost is r*d_c MACs per output value, against D for the projection of the materialised
    outer product.
    """
    h, a = out_c.shape[2], out_c.shape[4]
    s = out_s.shape[-1]
    w = weight.to(out_s.dtype).reshape(weight.shape[0], h, a, s)
    u = torch.einsum("brhnj,ohij->brhnio", out_s, w)
    y = torch.einsum("brhci,brhnio->bcno", out_c, u)
    return y if bias is None else y + bias.to(y.dtype)


class LessAttention(nn.Module):
    """The two attention branches, the Kronecker recombination and the output projection."""

    def __init__(
        self,
        dim: int,
        channel_dim: int,
        spatial_dim: int,
        heads: int,
        rank: int,
        attn_drop: float,
        proj_drop: float,
    ) -> None:
        super().__init__()
        self.channel_branch = AttentionBranch(channel_dim, heads, rank, attn_drop)
        self.spatial_branch = AttentionBranch(spatial_dim, heads, rank, attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, spectral: torch.Tensor, spatial: torch.Tensor, spatial_mask: torch.Tensor | None
    ) -> torch.Tensor:
        out_c = self.channel_branch(spectral)  # the spectral axis is never masked
        out_s = self.spatial_branch(spatial, spatial_mask)
        y = recombine_project(out_c, out_s, self.proj.weight, self.proj.bias)
        return self.proj_drop(y)


class LessBlock(nn.Module):
    """Pre-norm LESS block: x + DropPath(LS1 * attn(LN1 x)); x + DropPath(LS2 * MLP(LN2 x))."""

    def __init__(
        self,
        dim: int,
        heads: int,
        channel_dims_per_head: int,
        rank: int = 1,
        mlp_ratio: float = 4.0,
        init_values: float | None = None,
        drop_path_prob: float = 0.0,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        pool_drop: float = 0.0,
    ) -> None:
        super().__init__()
        channel_dim = channel_dims_per_head * heads
        spatial_dim = (dim // channel_dim) * heads
        self.norm1 = layer_norm(dim)
        self.low_dim_pool = LowDimPool(dim, channel_dim, spatial_dim, heads, attn_drop, pool_drop)
        self.channel_norm = layer_norm(channel_dim)
        self.spatial_norm = layer_norm(spatial_dim)
        self.attn = LessAttention(dim, channel_dim, spatial_dim, heads, rank, attn_drop, proj_drop)
        self.ls1 = layer_scale(dim, init_values)
        self.drop_path1 = drop_path(drop_path_prob)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)
        self.ls2 = layer_scale(dim, init_values)
        self.drop_path2 = drop_path(drop_path_prob)

    def forward(self, x: torch.Tensor, spatial_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C', N', D); spatial_mask: bool (N', N') Perception Field Mask or None."""
        spectral, spatial = self.low_dim_pool(self.norm1(x))
        y = self.attn(self.channel_norm(spectral), self.spatial_norm(spatial), spatial_mask)
        x = x + self.drop_path1(self.ls1(y))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def less_blocks(cfg: EncoderConfig) -> nn.ModuleList:
    """``cfg.depth`` LESS blocks; stochastic depth grows linearly from 0 to the cfg rate."""
    rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth, device="cpu").tolist()
    return nn.ModuleList(
        LessBlock(
            cfg.embed_dim,
            cfg.num_heads,
            cfg.channel_dims_per_head,
            cfg.rank,
            cfg.mlp_ratio,
            cfg.init_values,
            rate,
            cfg.proj_drop,
            cfg.attn_drop,
            cfg.pool_drop_rate,
        )
        for rate in rates
    )


class LessEncoder(TokenGridEncoder):
    """LESS ViT: the token grid (embedding.py) through ``cfg.depth`` LESS blocks and a LayerNorm."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__(cfg)
        self.blocks = less_blocks(cfg)
        self.init_weights()
