"""Task heads over the LESS encoder's token grid (B, C+1, N+1, D).

Token layout (see docs/model.md): ``tokens[:, 0, 0]`` is the global [CLS], ``tokens[:, 0, 1:]``
are the per-location tokens (one per patch, summarising all bands), ``tokens[:, 1:, 0]`` the
per-band tokens and ``tokens[:, 1:, 1:]`` the band x patch tokens.

Heads are built timm-style from sizes plus layer classes (``norm_layer``, ``act_layer``), with
``nn.Identity`` standing in for a disabled part, so a head's JSON config holds sizes only.

The dense heads fix two weaknesses of the reference code (less_vit.md §3.2, §5.2): its decoders
assume a square patch grid and a 768-wide encoder, and they decode only 16-pixel patch features, so
class boundaries come out blocky. Here the grid is (h, w) as the encoder reports it, the width is
the encoder's, and a light full-resolution branch sees the input pixels of *any* band count.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gfmcli.errors import BandContractError, ModelError
from gfmcli.model.layers import sincos_1d

LayerFactory = Callable[..., nn.Module]


def group_norm(num_channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups: unlike BatchNorm it behaves the same for batch 1 and for
    every tile of a tiled inference, because it never mixes samples."""
    groups = next(g for g in (8, 4, 2, 1) if num_channels % g == 0)
    return nn.GroupNorm(groups, num_channels)


def wavelength_features(wavelengths_nm: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D sin-cos features of central wavelengths in nm, (C,) -> (C, dim).

    Same frequency ladder as the encoder's channel embedding (1/10000^(k/(dim/2))), so a band is
    identified by its wavelength and not by its position in the stack.
    """
    return sincos_1d(dim, wavelengths_nm).to(torch.float32)


def _as_wavelength_vector(wavelengths: object, num_bands: int) -> torch.Tensor:
    """Accept a list or a (C,) tensor of wavelengths in nm and return a float (C,) tensor."""
    if wavelengths is None:
        raise BandContractError(f"pass one central wavelength (nm) for each of {num_bands} bands")
    wl = torch.as_tensor(wavelengths, dtype=torch.float32)
    if wl.ndim != 1 or wl.numel() != num_bands:
        raise BandContractError(
            f"got {num_bands} input bands but {wl.numel()} wavelengths; "
            "pass one central wavelength (nm) per band"
        )
    return wl


def tokens_to_map(tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """(B, N, D) per-patch tokens -> (B, D, h, w) feature map.

    Token n is patch row ``n // w``, column ``n % w`` (row-major, as the encoder patchifies),
    which holds for non-square grids too.
    """
    h, w = grid_size
    if tokens.shape[1] != h * w:
        raise ModelError(f"encoder returned {tokens.shape[1]} patch tokens for a {h}x{w} grid")
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


class ClassificationHead(nn.Module):
    """Linear classifier on the global [CLS] token ``tokens[:, 0, 0]`` (reference §3.2)."""

    def __init__(self, embed_dim: int, num_outputs: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(embed_dim, num_outputs)
        nn.init.trunc_normal_(self.fc.weight, std=0.02)
        nn.init.zeros_(self.fc.bias)

    def forward(
        self,
        tokens: torch.Tensor,
        grid_size: tuple[int, int],
        pixels: torch.Tensor | None = None,
        wavelengths: object = None,
    ) -> torch.Tensor:
        """(B, C+1, N+1, D) tokens -> (B, K) logits; grid and pixels are not used."""
        return self.fc(self.drop(tokens[:, 0, 0]))


class SpectralPixelEmbed(nn.Module):
    """Band-count-agnostic full-resolution features from the (normalised) input pixels.

    Each band gets a 1x1 projection weight *generated from its central wavelength* by a small MLP
    over sin-cos wavelength features; the projected bands are averaged (not summed, so the scale
    does not depend on the band count), then a 3x3 conv, norm and activation follow. Any number
    of bands in any order works, and bands keep their spectral identity (a shared per-band conv
    followed by a mean could not tell red from near-infrared).
    """

    def __init__(
        self,
        dim: int,
        freq_dim: int = 32,
        hidden_dim: int = 64,
        norm_layer: LayerFactory = group_norm,
        act_layer: LayerFactory = nn.GELU,
    ) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.weight_gen = nn.Sequential(
            nn.Linear(freq_dim, hidden_dim), act_layer(), nn.Linear(hidden_dim, dim)
        )
        self.bias = nn.Parameter(torch.zeros(dim))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = norm_layer(dim)
        self.act = act_layer()

    def forward(self, pixels: torch.Tensor, wavelengths: object) -> torch.Tensor:
        """(B, C, H, W) pixels and C wavelengths (nm) -> (B, dim, H, W)."""
        wl = _as_wavelength_vector(wavelengths, pixels.shape[1]).cpu()  # float64 math on CPU
        feats = wavelength_features(wl, self.freq_dim).to(self.bias.device)
        weight = self.weight_gen(feats).to(pixels.device)
        feat = torch.einsum("bchw,cd->bdhw", pixels, weight.to(pixels.dtype)) / pixels.shape[1]
        # The einsum's dtype (bf16 under autocast), not the pixels' fp32: adding an fp32 bias
        # would promote the whole full-resolution map to a new fp32 tensor.
        feat = feat + self.bias.to(feat.dtype)[None, :, None, None]
        return self.act(self.norm(self.conv(feat)))


class _UpStage(nn.Sequential):
    """x2 bilinear upsample, 3x3 conv, norm, activation."""

    def __init__(
        self, in_dim: int, out_dim: int, norm_layer: LayerFactory, act_layer: LayerFactory
    ) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_dim, out_dim, 3, padding=1),
            norm_layer(out_dim),
            act_layer(),
        )


def decoder_widths(patch_size: int, width: int = 128, min_width: int = 32) -> list[int]:
    """Widths of the log2(p) upsampling stages: ``width`` halving per stage, floored at
    ``min_width``; ModelError if p is not a power of two (each stage doubles the resolution)."""
    if patch_size < 1 or patch_size & (patch_size - 1):
        raise ModelError(f"dense heads need a power-of-two patch size, got {patch_size}")
    stages = int(math.log2(patch_size))
    return [max(min_width, width >> i) for i in range(stages)]


class DenseHead(nn.Module):
    """Decodes per-patch features to a full-resolution (B, K, H, W) map.

    Features: the per-location tokens, optionally concatenated with the mean over the band x
    patch tokens of that location (``use_band_tokens``: the location token is pooled by attention
    and can miss a band, the plain mean cannot), reshaped to (B, D or 2D, h, w). Then log2(p)
    stages of (x2 upsample, 3x3 conv, norm, act) reach pixel resolution; there the pixel branch
    (``pixel_dim`` > 0, see ``SpectralPixelEmbed``) is concatenated and a 3x3 refinement conv
    followed by a 1x1 classifier gives K outputs, so boundaries can follow the pixels instead of
    the 16-pixel patch steps.
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: int,
        num_outputs: int,
        width: int = 128,
        min_width: int = 32,
        pixel_dim: int = 16,
        use_band_tokens: bool = True,
        drop_rate: float = 0.0,
        norm_layer: LayerFactory = group_norm,
        act_layer: LayerFactory = nn.GELU,
    ) -> None:
        super().__init__()
        widths = decoder_widths(patch_size, width, min_width)
        self.patch_size = patch_size
        self.use_band_tokens = use_band_tokens
        in_dim = embed_dim * (2 if use_band_tokens else 1)
        stages: list[nn.Module] = []
        for out_dim in widths:
            stages.append(_UpStage(in_dim, out_dim, norm_layer, act_layer))
            in_dim = out_dim
        if not stages:  # p == 1: tokens are already at pixel resolution
            stages.append(
                nn.Sequential(nn.Conv2d(in_dim, width, 1), norm_layer(width), act_layer())
            )
            in_dim = width
        self.stages = nn.Sequential(*stages)
        self.pixel_embed = (
            SpectralPixelEmbed(pixel_dim, norm_layer=norm_layer, act_layer=act_layer)
            if pixel_dim > 0
            else None
        )
        fused = in_dim + max(pixel_dim, 0)
        self.refine = nn.Sequential(
            nn.Conv2d(fused, in_dim, 3, padding=1), norm_layer(in_dim), act_layer()
        )
        self.drop = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()
        self.classifier = nn.Conv2d(in_dim, num_outputs, 1)

    def patch_features(self, tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        """(B, C+1, N+1, D) tokens -> (B, D or 2D, h, w) per-patch features."""
        feats = tokens_to_map(tokens[:, 0, 1:], grid_size)
        if self.use_band_tokens:
            band_mean = tokens[:, 1:, 1:].mean(dim=1)  # (B, N, D)
            feats = torch.cat([feats, tokens_to_map(band_mean, grid_size)], dim=1)
        return feats

    def forward(
        self,
        tokens: torch.Tensor,
        grid_size: tuple[int, int],
        pixels: torch.Tensor | None = None,
        wavelengths: object = None,
    ) -> torch.Tensor:
        """Tokens, input pixels (B, C, H, W) and their C wavelengths -> (B, K, H, W)."""
        feat = self.stages(self.patch_features(tokens, grid_size))
        if self.pixel_embed is not None:
            if pixels is None:
                raise ModelError("this head has a pixel branch: pass the input pixels")
            if pixels.shape[-2:] != feat.shape[-2:]:
                raise ModelError(
                    f"input is {tuple(pixels.shape[-2:])} pixels but the {grid_size} patch grid "
                    f"decodes to {tuple(feat.shape[-2:])}; H and W must be multiples of "
                    f"{self.patch_size}"
                )
            feat = torch.cat([feat, self.pixel_embed(pixels, wavelengths).to(feat.dtype)], dim=1)
        return self.classifier(self.drop(self.refine(feat)))


class SegmentationHead(DenseHead):
    """Per-pixel class logits (B, K, H, W)."""


class RegressionHead(DenseHead):
    """Per-pixel continuous outputs (B, K, H, W), e.g. canopy height; no output activation."""
