"""From pixels and band metadata to the (B, C+1, N+1, D) token grid both encoders work on.

- ``PatchEmbed``: the tied per-band patch embedding (one set of weights for every band).
- ``PosChanEmbed``: the Continuous Positional-Channel Embedding (CPCE), sin-cos of physical
  position in metres and of central wavelength in nm, cached per instance.
- ``TokenGridEncoder``: the part shared by the LESS and full-attention encoders: embedders,
  the three kinds of [CLS] token, input checks, and the loop over blocks.

Token grid layout (our names; the reference code's names are swapped, see docs/model.md):
``[:, 0, 0]`` global [CLS]; ``[:, 1:, 0]`` band tokens (one per band, summarising it over space;
the code's ``spatial_cls_token``); ``[:, 0, 1:]`` location tokens (one per patch location,
summarising it over bands; the code's ``channel_cls_token``); ``[:, 1:, 1:]`` patch tokens.
Band rows are optical bands first, then radar bands.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from gfmcli.errors import BandContractError, ModelError
from gfmcli.model.config import RADAR_INDEX_OFFSET, EncoderConfig
from gfmcli.model.layers import init_normal, init_weights, layer_norm, sincos_1d
from gfmcli.model.pfm import PfmCache

Wavelengths = torch.Tensor | Sequence[float]


class PatchEmbed(nn.Module):
    """Per-band two-layer patch MLP shared by all bands: p x p pixels -> 2D -> ReLU -> D.

    Parameters have the reference's Conv3d shapes (``proj.0``: 1 -> 2D, kernel (1, p, p);
    ``proj.2``: 2D -> D, kernel 1) so checkpoints load, but the forward runs as two matmuls on
    unfolded patches, which is the same arithmetic and much faster than Conv3d on CPU.
    """

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        p = patch_size
        self.proj = nn.Sequential(
            nn.Conv3d(1, 2 * embed_dim, kernel_size=(1, p, p), stride=(1, p, p)),
            nn.ReLU(),
            nn.Conv3d(2 * embed_dim, embed_dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) with H, W multiples of p -> (B, C, N, D), N row-major over the grid."""
        b, c, height, width = x.shape
        p = self.patch_size
        patches = x.reshape(b, c, height // p, p, width // p, p).transpose(3, 4)
        patches = patches.reshape(b, c, (height // p) * (width // p), p * p)
        conv1, conv2 = cast(nn.Conv2d, self.proj[0]), cast(nn.Conv2d, self.proj[2])
        hidden = F.relu(F.linear(patches, conv1.weight.flatten(1), conv1.bias))
        return F.linear(hidden, conv2.weight.flatten(1), conv2.bias)

    def init_weights(self) -> None:
        """Xavier-uniform on each kernel viewed as (out_channels, fan_in), as MAE does."""
        for conv in (cast(nn.Conv2d, self.proj[0]), cast(nn.Conv2d, self.proj[2])):
            nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))


def pos_chan_embedding(
    dim: int,
    grid_size: tuple[int, int],
    step_m: float,
    wavelengths: Sequence[float],
    combine: str = "mean",
    cls_embedding: str = "partial",
) -> torch.Tensor:
    """The CPCE grid (C+1, N+1, dim) in float64.

    Position: MAE-style 2-D sin-cos of (patch index x ``step_m``) metres, first dim/2 from the
    column coordinate, last dim/2 from the row coordinate (works for any h x w grid). Channel:
    1-D sin-cos of the central wavelength in nm. ``combine``: "mean" = (pos + chan)/2 as in the
    reference code, "sum" = pos + chan. [CLS] slots: with ``cls_embedding="partial"`` the
    position and channel parts are each padded with a zero [CLS] entry before they are
    combined, as the reference code does, so [CLS] row 0 gets combine(pos, 0) (pos/2 under
    "mean"), [CLS] column 0 gets combine(0, chan) and the global [CLS] gets 0; with "none" the
    whole row and column are 0.
    """
    h, w = grid_size
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w) * step_m
    cols = torch.arange(w, dtype=torch.float64).repeat(h) * step_m
    pos = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)  # (N, D)
    chan = sincos_1d(dim, torch.tensor(list(wavelengths), dtype=torch.float64))  # (C, D)
    zero = torch.zeros(1, dim, dtype=torch.float64)
    pos, chan = torch.cat([zero, pos]), torch.cat([zero, chan])  # [CLS] entries first
    out = pos[None, :, :] + chan[:, None, :]  # (C+1, N+1, D)
    if combine == "mean":
        out = out / 2
    if cls_embedding == "none":
        out[0] = 0
        out[:, 0] = 0
    return out


class PosChanEmbed:
    """CPCE at one width with a small LRU per instance (nothing in it is learned).

    Keyed on everything the result depends on, including device, dtype and inference mode, so
    a cached tensor is never used where it would be wrong. Rebuilding is cheap; the cache only
    saves work when consecutive windows share grid, GSD and bands, which is the mapping case.
    """

    def __init__(
        self,
        dim: int,
        patch_size: int,
        include_patch_size: bool,
        combine: str,
        cls_embedding: str = "partial",
        max_entries: int = 8,
    ) -> None:
        self.dim = dim
        self.patch_size = patch_size
        self.include_patch_size = include_patch_size
        self.combine = combine
        self.cls_embedding = cls_embedding
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()

    def __call__(
        self,
        grid_size: tuple[int, int],
        gsd: float,
        wavelengths: tuple[float, ...],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        key = (tuple(grid_size), float(gsd), wavelengths, str(device), dtype)
        emb = self._cache.get(key)
        if emb is None:
            step = gsd * (self.patch_size if self.include_patch_size else 1)
            # A normal tensor even under inference_mode, so a later training pass can reuse it.
            with torch.inference_mode(False):
                emb = pos_chan_embedding(
                    self.dim, grid_size, step, wavelengths, self.combine, self.cls_embedding
                )
                emb = emb.to(device=device, dtype=dtype)
            self._cache[key] = emb
            if len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return emb


class EncoderOutput(NamedTuple):
    """tokens: (B, C+1, N+1, D) after the final norm (global [CLS] at [:, 0, 0], optical band rows
    first, then radar); grid_size: (H/p, W/p) so callers can fold patch tokens back to a map."""

    tokens: torch.Tensor
    grid_size: tuple[int, int]


class TokenGrid(NamedTuple):
    """The embedded grid before the blocks (CPCE already added) and what produced it;
    ``wavelengths`` are the band identifiers the CPCE used (``band_identifiers``)."""

    tokens: torch.Tensor
    grid_size: tuple[int, int]
    wavelengths: tuple[float, ...]
    num_optical: int
    num_radar: int


def as_wavelengths(values: Wavelengths | None, count: int, what: str) -> tuple[float, ...]:
    """Band centre wavelengths (nm) as a tuple of floats, checked against the band count."""
    if values is None:
        raise BandContractError(f"{what}: wavelengths are required, one per band ({count} bands)")
    tensor = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if tensor.ndim != 1 or tensor.numel() != count:
        raise BandContractError(
            f"{what}: got {tuple(tensor.shape)} wavelengths for {count} bands; pass one nm value "
            "per band as a 1-D sequence"
        )
    if not torch.isfinite(tensor).all():
        raise BandContractError(f"{what}: wavelengths must be finite numbers in nm")
    return tuple(tensor.tolist())


def band_identifiers(
    channel_embedding: str, optical: tuple[float, ...], radar: tuple[float, ...]
) -> tuple[float, ...]:
    """What identifies each band (optical then radar) to the channel embeddings: the wavelengths
    in nm, or with ``channel_embedding="index"`` the band positions (optical 0..Co-1, radar
    RADAR_INDEX_OFFSET+i), a baseline that knows bands only by where they sit in the stack."""
    if channel_embedding == "index":
        ids = [*range(len(optical)), *(RADAR_INDEX_OFFSET + i for i in range(len(radar)))]
        return tuple(float(i) for i in ids)
    return (*optical, *radar)


def _as_gsd(gsd: object) -> float:
    try:
        value = float(gsd)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ModelError(
            f"gsd={gsd!r}: pass the ground sampling distance in metres per pixel (> 0)"
        )
    return value


class TokenGridEncoder(nn.Module):
    """Shared plumbing of the encoders; subclasses only add ``self.blocks``.

    Call ``model(x, wavelengths=..., gsd=..., radar=None, radar_wavelengths=None)``. For masked
    pretraining use ``embed_tokens`` then select tokens then ``forward_tokens``.
    """

    blocks: nn.ModuleList

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.patch_size = cfg.patch_size
        dim = cfg.embed_dim
        self.optical_patch_embed = PatchEmbed(cfg.patch_size, dim)
        self.radar_patch_embed = PatchEmbed(cfg.patch_size, dim) if cfg.radar_embed else None
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.band_cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.location_cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.norm = layer_norm(dim)
        self.pos_chan_embed = PosChanEmbed(
            dim,
            cfg.patch_size,
            cfg.pos_includes_patch_size,
            cfg.pos_chan_combine,
            cfg.cls_embedding,
        )
        self._pfm = PfmCache()

    def init_weights(self) -> None:
        """Reference init (see layers.init_weights); [CLS] tokens from N(0, 0.02^2)."""
        self.apply(init_weights)
        for embed in (self.optical_patch_embed, self.radar_patch_embed):
            if embed is not None:
                embed.init_weights()
        for token in (self.cls_token, self.band_cls_token, self.location_cls_token):
            init_normal(token, std=0.02)

    def _embed(self, x: torch.Tensor, which: str) -> torch.Tensor:
        if x.ndim != 4:
            raise ModelError(f"{which} input must be (B, C, H, W), got shape {tuple(x.shape)}")
        p = self.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ModelError(
                f"{which} input {x.shape[-2]}x{x.shape[-1]} is not a multiple of the patch size "
                f"{p}; pad the window to a multiple of {p}"
            )
        if which == "radar":
            if self.radar_patch_embed is None:
                raise ModelError("this model has no radar embedder (radar_embed=False)")
            return self.radar_patch_embed(x)
        return self.optical_patch_embed(x)

    def embed_tokens(
        self,
        x: torch.Tensor | None,
        wavelengths: Wavelengths | None,
        gsd: float | None,
        radar: torch.Tensor | None = None,
        radar_wavelengths: Wavelengths | None = None,
    ) -> TokenGrid:
        """Embed every band, build the [CLS] grid and add the CPCE. No masking happens here."""
        gsd = _as_gsd(gsd)
        parts: list[torch.Tensor] = []
        wls: dict[str, tuple[float, ...]] = {"optical": (), "radar": ()}
        for data, wl, which in ((x, wavelengths, "optical"), (radar, radar_wavelengths, "radar")):
            if data is not None:
                wls[which] = as_wavelengths(wl, data.shape[1] if data.ndim == 4 else -1, which)
                parts.append(self._embed(data, which))
        if not parts:
            raise ModelError("no input: pass optical x, radar, or both")
        if (
            x is not None
            and radar is not None
            and (x.shape[0], *x.shape[2:])
            != (
                radar.shape[0],
                *radar.shape[2:],
            )
        ):
            raise ModelError(
                f"optical {tuple(x.shape)} and radar {tuple(radar.shape)} differ in batch or size"
            )
        ref = cast(torch.Tensor, x if x is not None else radar)  # one of them is given (above)
        grid_size = (ref.shape[-2] // self.patch_size, ref.shape[-1] // self.patch_size)
        patches = torch.cat(parts, dim=1) if len(parts) == 2 else parts[0]  # (B, C, N, D)
        b, c, n, d = patches.shape
        dtype = patches.dtype
        top = torch.cat(
            [
                self.cls_token.to(dtype).expand(b, 1, d)[:, None],
                self.location_cls_token.to(dtype).expand(b, n, d)[:, None],
            ],
            dim=2,
        )
        body = torch.cat([self.band_cls_token.to(dtype).expand(b, c, d)[:, :, None], patches], 2)
        tokens = torch.cat([top, body], dim=1)
        all_wl = band_identifiers(self.cfg.channel_embedding, wls["optical"], wls["radar"])
        tokens = tokens + self.pos_chan_embed(grid_size, gsd, all_wl, tokens.device, dtype)
        num_optical = x.shape[1] if x is not None else 0
        return TokenGrid(tokens, grid_size, all_wl, num_optical, c - num_optical)

    def spatial_mask(
        self,
        grid_size: tuple[int, int],
        gsd: float,
        device: torch.device,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """The PFM for this grid (None when disabled); ``positions`` (1-D, indices into the N+1
        columns, 0 included) selects the sub-mask of kept columns for masked pretraining."""
        mask = self._pfm.get(grid_size, gsd, self.cfg.attention_radius, self.patch_size, device)
        if mask is not None and positions is not None:
            mask = mask[positions][:, positions]
        return mask

    def forward_tokens(
        self,
        tokens: torch.Tensor,
        spatial_mask: torch.Tensor | None = None,
        return_indices: Sequence[int] = (),
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks and the final norm on a (B, C', N', D) grid.

        Returns the normed output and the (un-normed) outputs of the blocks in ``return_indices``.
        """
        wanted = {i % len(self.blocks) for i in return_indices}
        intermediates = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, spatial_mask)
            if i in wanted:
                intermediates.append(tokens)
        return self.norm(tokens), intermediates

    def forward_intermediates(
        self,
        x: torch.Tensor | None,
        wavelengths: Wavelengths | None,
        gsd: float | None,
        radar: torch.Tensor | None = None,
        radar_wavelengths: Wavelengths | None = None,
        indices: Sequence[int] = (-1,),
    ) -> tuple[EncoderOutput, list[torch.Tensor]]:
        """``forward`` plus the raw outputs of the blocks in ``indices`` (negative from the end)."""
        grid = self.embed_tokens(x, wavelengths, gsd, radar, radar_wavelengths)
        mask = self.spatial_mask(grid.grid_size, _as_gsd(gsd), grid.tokens.device)
        out, inter = self.forward_tokens(grid.tokens, mask, indices)
        return EncoderOutput(out, grid.grid_size), inter

    def forward(
        self,
        x: torch.Tensor | None,
        wavelengths: Wavelengths | None = None,
        gsd: float | None = None,
        radar: torch.Tensor | None = None,
        radar_wavelengths: Wavelengths | None = None,
    ) -> EncoderOutput:
        """Encode optical ``x`` (B, C, H, W) and/or ``radar`` with their wavelengths (nm)."""
        out, _ = self.forward_intermediates(x, wavelengths, gsd, radar, radar_wavelengths, ())
        return out
