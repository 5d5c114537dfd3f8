"""Full spatial-spectral attention encoder: the reference LESS approximates.

One token per band and patch (the same (C+1) x (N+1) grid, the same three kinds of [CLS], the
same embeddings, widths and depth), flattened to (C+1)(N+1) tokens with plain joint multi-head
self-attention over all of them (the Channel-ViT scheme). Its attention cost grows as C^2 N^2,
which is what the benchmark in docs/benchmarks.md measures against LESS. It applies no
Perception Field Mask: the dense (C'N')^2 mask would cost as much memory as the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gfmcli.model.config import EncoderConfig
from gfmcli.model.embedding import TokenGridEncoder
from gfmcli.model.layers import Mlp, drop_path, layer_norm, layer_scale, split_heads


class JointAttention(nn.Module):
    """Standard multi-head self-attention (qkv, SDPA, projection) over a flat token sequence."""

    def __init__(self, dim: int, heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.heads = heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        drop = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))


class FullBlock(nn.Module):
    """Pre-norm ViT block over all C'*N' tokens of the grid jointly."""

    def __init__(self, cfg: EncoderConfig, drop_path_prob: float) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = layer_norm(dim)
        self.attn = JointAttention(dim, cfg.num_heads, cfg.attn_drop, cfg.proj_drop)
        self.ls1 = layer_scale(dim, cfg.init_values)
        self.drop_path1 = drop_path(drop_path_prob)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), cfg.proj_drop)
        self.ls2 = layer_scale(dim, cfg.init_values)
        self.drop_path2 = drop_path(drop_path_prob)

    def forward(self, x: torch.Tensor, spatial_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C', N', D); ``spatial_mask`` is accepted for interface parity and ignored."""
        b, c, n, d = x.shape
        flat = x.reshape(b, c * n, d)
        flat = flat + self.drop_path1(self.ls1(self.attn(self.norm1(flat))))
        flat = flat + self.drop_path2(self.ls2(self.mlp(self.norm2(flat))))
        return flat.reshape(b, c, n, d)


class FullEncoder(TokenGridEncoder):
    """Full-attention counterpart of ``LessEncoder``: ``create_model(name, attention="full")``."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__(cfg)
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(FullBlock(cfg, rate) for rate in rates)
        self.init_weights()

    def spatial_mask(
        self,
        grid_size: tuple[int, int],
        gsd: float,
        device: torch.device,
        positions: torch.Tensor | None = None,
    ) -> None:
        """Full attention uses no Perception Field Mask (see the module docstring)."""
        return None
