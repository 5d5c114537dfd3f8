"""Band identity of a raster being tiled: which sensor, which bands in which order, how to scale.

Band-order mistakes are silent and ruinous (anchors.md pain point 6: inverted predictions, each
band normalised with another band's statistics), so the identity of every band is settled once,
from the user's ``--sensor``/``--bands`` or the file's band descriptions and tags, by the same
rulebook as ``predict`` (:func:`gfmcli.spectral.identify.identify_bands`: sensor inferred from
the file's tells, ambiguous files refused, bad bands left out), and then written into the chips'
metadata and from there into the model contract.

Scaling per band follows :mod:`gfmcli.scaling`: the file's own scale/offset, then ESA's
quantification tags, then the sensor's (per band for Landsat Level-1 DN). Bands identified by
wavelength alone (no sensor) are ``custom`` with scale 1 and offset 0 unless the file states
its scaling.

Validity follows ``gfmcli.io.reader``: a pixel is invalid when any band is NaN/inf, when *all*
bands hold the nodata value, or when the file's internal mask or alpha band says so (the chip
writer reads that mask). The pixel size is the reader's too (``ground_pixel_size_m``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gfmcli import scaling as scaling_rules
from gfmcli.io.reader import ground_pixel_size_m
from gfmcli.spectral.identify import FileBand, identify_bands
from gfmcli.spectral.labels import FileFacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChipBands:
    """The resolved band set of a raster: which file bands (1-based ``indexes``), their
    identity, per-band scaling and the nodata value."""

    sensor: str
    names: tuple[str, ...]
    wavelengths: tuple[float, ...]
    modalities: tuple[str, ...]
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    gsd: float
    nodata: float | None
    indexes: tuple[int, ...] = ()

    def to_physical(self, dn: np.ndarray) -> np.ndarray:
        """``DN * scale + offset`` of the used bands of ``dn`` (all file bands, ``(C, h, w)``)
        as float32 with NaN where the pixel is invalid."""
        picked = dn[[i - 1 for i in self.indexes]] if self.indexes else dn
        data = picked.astype(np.float64)
        invalid = ~np.isfinite(data).all(axis=0)
        if self.nodata is not None:
            invalid |= (data == self.nodata).all(axis=0)
        scale = np.asarray(self.scales, dtype=np.float64)[:, None, None]
        offset = np.asarray(self.offsets, dtype=np.float64)[:, None, None]
        physical = (data * scale + offset).astype(np.float32)
        physical[:, invalid] = np.nan
        return physical

    def to_dicts(self) -> list[dict]:
        # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
        return [
            {"name": n, "wavelength_nm": w, "modality": m, "scale": s, "offset": o}
            for n, w, m, s, o in zip(
                self.names, self.wavelengths, self.modalities, self.scales, self.offsets,
                strict=True,
            )
        ]  # fmt: skip


def _scaling(src, path: Path, band: FileBand, spec, stated) -> tuple[float, float]:
    """The file's stated scale/offset, else its tags, else the sensor's, else 1/0."""
    own = stated[band.index - 1]
    if own != (None, None):
        return (own[0] if own[0] is not None else 1.0, own[1] if own[1] is not None else 0.0)
    tagged = scaling_rules.tag_scaling(src.tags(), src.tags(band.index))
    if tagged is not None:
        return tagged
    if spec is None:
        return 1.0, 0.0
    return spec.band_scaling(band.band) if band.band is not None else (spec.scale, spec.offset)


def resolve_bands(src, path: Path, sensor: str | None, bands: tuple[str, ...] | None) -> ChipBands:
    """Band identity of the open rasterio dataset ``src`` (see the module rules)."""
    gsd = ground_pixel_size_m(src)  # the reader's rule: geographic and rotated grids too
    identified = identify_bands(
        FileFacts.of(str(path), src, gsd), sensor=sensor, bands=list(bands) if bands else None
    )
    for note in identified.notes:
        log.warning("%s", note)
    for detail in identified.details:
        log.info("%s", detail)
    spec = identified.sensor
    if sensor and spec is not None and not bands and not any(src.descriptions):
        log.info("%s: assuming the %s band order %s", path, spec.name, ", ".join(spec.band_names))
    stated = scaling_rules.explicit_file_scaling(str(path), src.scales, src.offsets)
    scalings = [_scaling(src, path, b, spec, stated) for b in identified.bands]
    nodata = src.nodata if src.nodata is not None else (spec.nodata if spec else None)
    return ChipBands(
        spec.name if spec else "custom",
        tuple(b.name for b in identified.bands),
        tuple(b.wavelength_nm for b in identified.bands),
        tuple(b.modality for b in identified.bands),
        tuple(s for s, _ in scalings),
        tuple(o for _, o in scalings),
        gsd or (spec.gsd if spec else 10.0),
        nodata,
        tuple(b.index for b in identified.bands),
    )
