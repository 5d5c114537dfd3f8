"""Perception Field Mask (PFM): which patch locations may attend to which, by distance in metres.

Following Tobler's first law, a spatial token only attends to locations within a physical radius,
so the receptive field is the same whatever the window size or GSD. Location (i1, j1) may attend
to (i2, j2) when ``||(i1, j1) - (i2, j2)||_2 * patch_size * gsd <= radius``; the [CLS] row and
column (index 0) are all True. Unlike the reference code (Python loops over a square grid in
every forward pass) this is vectorised, handles h x w grids and is cached per instance.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from gfmcli.errors import ModelError


def perception_field_mask(
    grid_size: tuple[int, int],
    gsd: float,
    radius: float,
    patch_size: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean (N+1, N+1) mask, True = may attend, for an h x w patch grid (N = h*w, row-major).

    The distance test runs in float64 so that boundary cases such as exactly 4 steps of 160 m
    against 640 m are decided exactly.
    """
    if radius <= 0 or gsd <= 0:
        raise ModelError(
            f"PFM radius ({radius}) and gsd ({gsd}) must be > 0; attention_radius=None disables it"
        )
    h, w = grid_size
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float64).repeat(h)
    dist = torch.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])
    inside = dist * (patch_size * gsd) <= radius
    mask = torch.ones(h * w + 1, h * w + 1, dtype=torch.bool)
    mask[1:, 1:] = inside
    return mask.to(device)


class PfmCache:
    """A small bounded LRU of masks, owned by one encoder (no module-level state)."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()

    def get(
        self,
        grid_size: tuple[int, int],
        gsd: float,
        radius: float | None,
        patch_size: int,
        device: torch.device,
    ) -> torch.Tensor | None:
        """The mask for these settings, or None when the PFM is disabled (radius None)."""
        if radius is None:
            return None
        key = (tuple(grid_size), float(gsd), float(radius), int(patch_size), str(device))
        mask = self._cache.get(key)
        if mask is None:
            # A normal tensor even under inference_mode, so a later training pass can reuse it.
            with torch.inference_mode(False):
                mask = perception_field_mask(grid_size, gsd, radius, patch_size, device)
            self._cache[key] = mask
            if len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return mask
