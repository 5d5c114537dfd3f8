"""Hyper-MAE: masked-autoencoder pretraining of a LESS encoder over positions *and* bands.

Spatial masking hides patch locations (one permutation per batch while the Perception Field
Mask is on, so one sub-mask of it fits every sample); channel masking hides whole bands (a
permutation per sample). The encoder sees only tokens whose band and location are both kept.
A light LESS decoder restores the full grid with three mask tokens, adds the CPCE of the full
wavelength list, and predicts every band's p x p patch with one head per modality. The loss
covers the tokens hidden by either mask (docs/model.md, "Hyper-MAE").
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, cast

import torch
from torch import nn

from gfmcli.errors import ModelError
from gfmcli.model.embedding import PosChanEmbed, TokenGridEncoder, Wavelengths
from gfmcli.model.layers import init_normal, init_weights, layer_norm
from gfmcli.model.less import less_blocks
from gfmcli.model.pfm import PfmCache
from gfmcli.model.registry import create_model


class MaeOutput(NamedTuple):
    """loss (scalar); pred and target (B, C, N, p*p); position_mask (B, N) and channel_mask
    (B, C), True = hidden from the encoder; is_radar (C,) marks the radar band rows."""

    loss: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    position_mask: torch.Tensor
    channel_mask: torch.Tensor
    is_radar: torch.Tensor


def keep_count(total: int, ratio: float, minimum: int = 1) -> int:
    """How many of ``total`` items survive masking ``ratio``: max(floor(total*(1-ratio)), minimum)
    (capped at ``total``). The tiny epsilon keeps e.g. 10*(1-0.7) from flooring to 2."""
    return min(total, max(math.floor(total * (1.0 - ratio) + 1e-9), minimum))


def random_keep(
    batch: int,
    total: int,
    keep: int,
    shared: bool,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw which ``keep`` of ``total`` items each sample keeps.

    Returns sorted kept indices (B, keep) and a bool mask (B, total), True = hidden. With
    ``shared`` one permutation serves the whole batch.
    """
    noise = torch.rand(1 if shared else batch, total, device=device, generator=generator)
    kept = noise.argsort(dim=1)[:, :keep].sort(dim=1).values.expand(batch, keep)
    hidden = torch.ones(batch, total, dtype=torch.bool, device=device)
    return kept, hidden.scatter(1, kept, False)


def gather_grid(tokens: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """tokens (B, R, L, D) -> (B, r, l, D) at per-sample row indices (B, r) and columns (B, l)."""
    d = tokens.shape[-1]
    out = torch.gather(tokens, 1, rows[:, :, None, None].expand(-1, -1, tokens.shape[2], d))
    return torch.gather(out, 2, cols[:, None, :, None].expand(-1, out.shape[1], -1, d))


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, N, p*p), patches in the token order of ``PatchEmbed``."""
    b, c, height, width = images.shape
    p = patch_size
    out = images.reshape(b, c, height // p, p, width // p, p).transpose(3, 4)
    return out.reshape(b, c, (height // p) * (width // p), p * p)


def hyper_mae_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    position_mask: torch.Tensor,
    channel_mask: torch.Tensor,
    is_radar: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """The Hyper-MAE loss, per modality from each band's actual modality.

    The one definition: ``HyperMAE.forward`` returns it and pretraining optimises it (with
    ``valid``), so the two cannot drift apart. Per-token MSE over the p*p pixels (B, C, N); with
    ``valid`` (B, 1, N, p*p, True where a pixel holds data) over the valid pixels only, and a
    token without one left out. For each modality present: position loss = error over its bands
    at hidden positions; channel loss = error over all positions of its hidden bands. Result =
    mean over modalities of position losses + mean of channel losses, the latter only over the
    modalities with a hidden band (with a valid token) in the batch: a modality with none has no
    channel loss, and counting it as 0 would halve the others' (issue #9); 0 when no band at all
    is hidden. A token whose band and position were both visible contributes nothing.
    """
    sq = (pred.float() - target.float()).pow(2)  # fp32 for a stable reduction
    if valid is None:
        err, has = sq.mean(-1), torch.ones_like(sq[..., 0])
    else:
        v = valid.to(sq.dtype)
        count = v.sum(-1)
        err = (sq * v).sum(-1) / count.clamp_min(1)
        has = (count > 0).to(err.dtype).expand_as(err)
    pos_terms, chan_terms = [], []
    for rows in (~is_radar, is_radar):
        if not bool(rows.any()):
            continue
        e, w = err[:, rows], has[:, rows]
        pos = w * position_mask[:, None, :].to(err.dtype)
        chan = w * channel_mask[:, rows, None].to(err.dtype)
        pos_terms.append((e * pos).sum() / pos.sum().clamp_min(1))
        if bool(chan.any()):
            chan_terms.append((e * chan).sum() / chan.sum())
    chan_loss = torch.stack(chan_terms).mean() if chan_terms else err.new_zeros(())
    return torch.stack(pos_terms).mean() + chan_loss


class HyperMAE(nn.Module):
    """Encoder (by name or module) + LESS decoder for masked pretraining.

    ``model(x, wavelengths, gsd, radar=None, radar_wavelengths=None)`` -> ``MaeOutput``.
    The decoder reconstructs the bands that were given; ``encoder_overrides`` go to
    ``create_model`` when the encoder is given by name. ``decoder_drop_path`` is the decoder's
    stochastic depth (growing linearly from 0 over its blocks); None takes the encoder's
    ``drop_path_rate``, as the reference decoder does. The decoder's dropouts, [CLS] embedding
    and CPCE settings follow the encoder's config.
    """

    def __init__(
        self,
        encoder: str | TokenGridEncoder,
        decoder_depth: int = 8,
        decoder_dim: int = 512,
        decoder_heads: int = 16,
        decoder_channel_dims_per_head: int = 2,
        mask_ratio: float = 0.75,
        channel_mask_ratio: float = 0.5,
        min_kept_channels: int = 2,
        norm_pix_loss: bool = False,
        decoder_drop_path: float | None = None,
        **encoder_overrides: object,
    ) -> None:
        super().__init__()
        if isinstance(encoder, str):
            encoder = create_model(encoder, **encoder_overrides)
        elif encoder_overrides:
            raise ModelError("encoder overrides only apply when the encoder is given by name")
        for name, ratio in (("mask_ratio", mask_ratio), ("channel_mask_ratio", channel_mask_ratio)):
            if not 0.0 <= ratio < 1.0:
                raise ModelError(f"HyperMAE {name}={ratio}: must be in [0, 1)")
        self.encoder = encoder
        cfg = encoder.cfg
        if decoder_drop_path is None:
            decoder_drop_path = cfg.drop_path_rate
        if not 0.0 <= decoder_drop_path < 1.0:
            raise ModelError(f"HyperMAE decoder_drop_path={decoder_drop_path}: must be in [0, 1)")
        try:
            self.decoder_cfg = dataclasses.replace(
                cfg,
                embed_dim=decoder_dim,
                depth=decoder_depth,
                num_heads=decoder_heads,
                channel_dims_per_head=decoder_channel_dims_per_head,
                attention="less",
                drop_path_rate=decoder_drop_path,
            )
        except ModelError as exc:  # the decoder's sizes, not the encoder's
            raise ModelError(
                f"HyperMAE decoder (decoder_dim {decoder_dim}, decoder_heads {decoder_heads}, "
                f"decoder_depth {decoder_depth}): {exc}"
            ) from exc
        self.mask_ratio = mask_ratio
        self.channel_mask_ratio = channel_mask_ratio
        self.min_kept_channels = min_kept_channels
        self.norm_pix_loss = norm_pix_loss
        p2 = cfg.patch_size**2
        self.decoder_embed = nn.Linear(cfg.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.empty(1, 1, decoder_dim))
        self.location_mask_token = nn.Parameter(torch.empty(1, 1, decoder_dim))
        self.band_mask_token = nn.Parameter(torch.empty(1, 1, decoder_dim))
        self.decoder_blocks = less_blocks(self.decoder_cfg)
        self.decoder_norm = layer_norm(decoder_dim)
        self.optical_pred = nn.Linear(decoder_dim, p2)
        self.radar_pred = nn.Linear(decoder_dim, p2) if cfg.radar_embed else None
        self.decoder_pos_chan_embed = PosChanEmbed(
            decoder_dim,
            cfg.patch_size,
            cfg.pos_includes_patch_size,
            cfg.pos_chan_combine,
            cfg.cls_embedding,
        )
        self._pfm = PfmCache()
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm):
            module.apply(init_weights)
        for head in (self.optical_pred, self.radar_pred):
            if head is not None:
                head.apply(init_weights)
        for token in (self.mask_token, self.location_mask_token, self.band_mask_token):
            init_normal(token, std=0.02)

    def _restore(
        self,
        latent: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        bands: int,
        positions: int,
    ) -> torch.Tensor:
        """Scatter the decoded visible tokens into a full grid of mask tokens.

        Row-0 slots of hidden positions get the location mask token, column-0 slots of hidden
        bands the band mask token, every other hidden slot the generic mask token.
        """
        b, _, _, e = latent.shape
        dtype = latent.dtype
        top = torch.cat(
            [
                self.mask_token.to(dtype).expand(b, 1, e)[:, None],  # overwritten: [0,0] is kept
                self.location_mask_token.to(dtype).expand(b, positions, e)[:, None],
            ],
            dim=2,
        )
        body = torch.cat(
            [
                self.band_mask_token.to(dtype).expand(b, bands, e)[:, :, None],
                self.mask_token.to(dtype).expand(b, bands * positions, e).view(b, bands, -1, e),
            ],
            dim=2,
        )
        grid = torch.cat([top, body], dim=1).reshape(b, -1, e)
        index = (rows[:, :, None] * (positions + 1) + cols[:, None, :]).reshape(b, -1, 1)
        grid = grid.scatter(1, index.expand(-1, -1, e), latent.reshape(b, -1, e))
        return grid.view(b, bands + 1, positions + 1, e)

    def forward(
        self,
        x: torch.Tensor | None,
        wavelengths: Wavelengths | None = None,
        gsd: float | None = None,
        radar: torch.Tensor | None = None,
        radar_wavelengths: Wavelengths | None = None,
        generator: torch.Generator | None = None,
    ) -> MaeOutput:
        """Mask, encode the visible tokens, decode all, and score the hidden ones."""
        grid = self.encoder.embed_tokens(x, wavelengths, gsd, radar, radar_wavelengths)
        tokens = grid.tokens
        b, c, n = tokens.shape[0], tokens.shape[1] - 1, tokens.shape[2] - 1
        device = tokens.device
        gsd = float(cast(float, gsd))  # validated by embed_tokens
        full_mask = self.encoder.spatial_mask(grid.grid_size, gsd, device)
        keep_c = keep_count(c, self.channel_mask_ratio, self.min_kept_channels)
        keep_n = keep_count(n, self.mask_ratio)
        kept_c, channel_mask = random_keep(b, c, keep_c, False, device, generator)
        kept_n, position_mask = random_keep(b, n, keep_n, full_mask is not None, device, generator)
        zero = torch.zeros(b, 1, dtype=torch.long, device=device)
        rows, cols = torch.cat([zero, kept_c + 1], 1), torch.cat([zero, kept_n + 1], 1)
        sub_mask = None if full_mask is None else full_mask[cols[0]][:, cols[0]]
        latent, _ = self.encoder.forward_tokens(gather_grid(tokens, rows, cols), sub_mask)

        dec = self._restore(self.decoder_embed(latent), rows, cols, c, n)
        dec = dec + self.decoder_pos_chan_embed(
            grid.grid_size, gsd, grid.wavelengths, device, dec.dtype
        )
        radius, p = self.decoder_cfg.attention_radius, self.decoder_cfg.patch_size
        dec_mask = self._pfm.get(grid.grid_size, gsd, radius, p, device)
        for block in self.decoder_blocks:
            dec = block(dec, dec_mask)
        dec = self.decoder_norm(dec)[:, 1:, 1:]  # drop the [CLS] row and column

        co = grid.num_optical
        preds = [self.optical_pred(dec[:, :co])] if co else []
        if grid.num_radar:
            assert self.radar_pred is not None  # radar tokens need the radar embedder
            preds.append(self.radar_pred(dec[:, co:]))
        pred = torch.cat(preds, dim=1) if len(preds) == 2 else preds[0]
        images = [t for t in (x, radar) if t is not None]
        target = patchify(torch.cat(images, 1) if len(images) == 2 else images[0], p)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        is_radar = torch.arange(c, device=device) >= co
        loss = hyper_mae_loss(pred, target, position_mask, channel_mask, is_radar)
        return MaeOutput(loss, pred, target, position_mask, channel_mask, is_radar)
