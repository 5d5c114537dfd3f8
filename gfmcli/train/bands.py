"""Band identity of a raster being tiled: which sensor, which bands in which order, how to scale.

Band-order mistakes are silent and ruinous (anchors.md pain point 6: inverted predictions, each
band normalised with another band's statistics), so the identity of every band is settled once,
here, from the user's ``--sensor``/``--bands`` or the file's band descriptions, and then written
into the chips' metadata and from there into the model contract.

Rules, in order:

1. ``--sensor`` and ``--bands``: the bands name the file's bands in file order (count must match).
2. ``--sensor`` only: the file's band descriptions name the bands if they all match the sensor;
   otherwise the file must hold exactly the sensor's bands in the sensor's order.
3. No ``--sensor``: every band description must carry a wavelength (``"red (664 nm)"``); the band
   set is then ``custom`` with scale 1 and offset 0. Anything else is an InputError asking for
   ``--sensor`` (guessing among sensors whose scalings differ would be wrong half the time).

Validity follows ``gfmcli.io.reader``: a pixel is invalid when any band is NaN/inf or when *all*
bands hold the nodata value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gfmcli.errors import InputError, SensorError
from gfmcli.sensors import get_sensor
from gfmcli.spectral import parse_wavelength

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChipBands:
    """The resolved band set of a raster: identity, scaling and nodata."""

    sensor: str
    names: tuple[str, ...]
    wavelengths: tuple[float, ...]
    modalities: tuple[str, ...]
    scale: float
    offset: float
    gsd: float
    nodata: float | None

    def to_physical(self, dn: np.ndarray) -> np.ndarray:
        """``DN * scale + offset`` as float32 with NaN where the pixel is invalid."""
        data = dn.astype(np.float64)
        invalid = ~np.isfinite(data).all(axis=0)
        if self.nodata is not None:
            invalid |= (data == self.nodata).all(axis=0)
        physical = (data * self.scale + self.offset).astype(np.float32)
        physical[:, invalid] = np.nan
        return physical

    def to_dicts(self) -> list[dict]:
        return [
            {
                "name": n,
                "wavelength_nm": w,
                "modality": m,
                "scale": self.scale,
                "offset": self.offset,
            }
            for n, w, m in zip(self.names, self.wavelengths, self.modalities, strict=True)
        ]


def resolve_bands(src, path: Path, sensor: str | None, bands: tuple[str, ...] | None) -> ChipBands:
    """Band identity of the open rasterio dataset ``src`` (see the module rules)."""
    descriptions = tuple(d or "" for d in src.descriptions)
    gsd = _gsd(src)
    nodata = src.nodata
    if sensor is None:
        if bands:
            raise InputError("--bands needs --sensor (band names are looked up in a sensor)")
        waves = [parse_wavelength(d) for d in descriptions]
        if all(w is not None for w in waves):
            return ChipBands(
                "custom",
                descriptions,
                tuple(waves),
                ("optical",) * src.count,
                1.0,
                0.0,
                gsd or 10.0,
                nodata,
            )
        raise InputError(
            f"{path}: cannot tell which bands it holds (descriptions {list(descriptions)}); "
            "pass --sensor (see `gfm sensors`) and, if needed, --bands in file order"
        )
    spec = get_sensor(sensor)
    if bands:
        if len(bands) != src.count:
            raise InputError(
                f"{path}: has {src.count} band(s) but --bands names {len(bands)}; "
                "list every band of the file in file order"
            )
        chosen = spec.select(bands)
    else:
        try:
            chosen = spec.select(descriptions) if all(descriptions) else None
        except SensorError:
            chosen = None
        if chosen is None:
            if src.count != len(spec.bands):
                raise InputError(
                    f"{path}: has {src.count} band(s), sensor {spec.name} has "
                    f"{len(spec.bands)} and the band descriptions do not name them; "
                    "pass --bands with the file's bands in order"
                )
            chosen = spec.bands
            log.info(
                "%s: assuming the %s band order %s", path, spec.name, ", ".join(spec.band_names)
            )
    if nodata is None:
        nodata = spec.nodata
    return ChipBands(
        spec.name,
        tuple(b.name for b in chosen),
        tuple(b.wavelength_nm for b in chosen),
        tuple(b.modality for b in chosen),
        spec.scale,
        spec.offset,
        gsd or spec.gsd,
        nodata,
    )


def _gsd(src) -> float | None:
    """Pixel size in metres for a projected CRS; None for geographic or missing CRS."""
    if src.crs is None or not src.crs.is_projected:
        return None
    factor = src.crs.linear_units_factor[1] if src.crs.linear_units_factor else 1.0
    return float(abs(src.transform.a) * factor)
