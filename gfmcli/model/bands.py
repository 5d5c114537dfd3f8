"""The one value that describes an input's bands to the model, and the one optical/radar split.

The encoder embeds optical bands (by central wavelength) and radar bands (by their own
identifiers) in two groups. Mapping (``engine.inference``), training (``train.datasets``) and
``gfm info``'s timing all describe a stack's bands with :class:`Bands` and turn an image into
the encoder's keyword arguments with :meth:`Bands.encoder_inputs`, so the rule "a band is radar
when its modality is radar, optical otherwise" is written once (:func:`split_modalities`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gfmcli.sensors import RADAR

if TYPE_CHECKING:
    import torch


def split_modalities(modalities: Iterable[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Positions of the optical and of the radar bands of a stack (not radar means optical)."""
    modalities = list(modalities)
    optical = tuple(i for i, m in enumerate(modalities) if m != RADAR)
    radar = tuple(i for i, m in enumerate(modalities) if m == RADAR)
    return optical, radar


@dataclass(frozen=True)
class Bands:
    """A stack's bands in order: central wavelengths (nm), modalities, the GSD (m), and their
    names where known (training reports them)."""

    wavelengths: tuple[float, ...]
    modalities: tuple[str, ...]
    gsd: float
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, wavelengths: Iterable[float], modalities: Iterable[str], gsd: float) -> Bands:
        return cls(tuple(wavelengths), tuple(modalities), float(gsd))

    @property
    def optical(self) -> tuple[int, ...]:
        return split_modalities(self.modalities)[0]

    @property
    def radar(self) -> tuple[int, ...]:
        return split_modalities(self.modalities)[1]

    def encoder_inputs(self, image: torch.Tensor) -> dict[str, Any]:
        """``image`` (B, C, H, W) as the keyword arguments of the encoder, ``GfmModel`` and
        ``GfmModel.embed``: ``x``/``wavelengths`` (optical), ``radar``/``radar_wavelengths``
        and ``gsd``; without optical bands ``x`` and ``wavelengths`` are None, without radar
        bands the radar keys are left out."""
        optical, radar = split_modalities(self.modalities)
        inputs: dict[str, Any] = {"x": None, "wavelengths": None, "gsd": self.gsd}
        # Always a selected (contiguous) copy, even of all bands: under bf16 autocast a view of
        # a batch can round differently with the batch size, and maps must not depend on it.
        if optical:
            inputs["x"] = image[:, list(optical)]
            inputs["wavelengths"] = tuple(self.wavelengths[i] for i in optical)
        if radar:
            inputs["radar"] = image[:, list(radar)]
            inputs["radar_wavelengths"] = tuple(self.wavelengths[i] for i in radar)
        return inputs
