"""Sensor registry: band names, central wavelengths, bandwidths, ground sample distance and scaling.

A LESS ViT knows bands by their *central wavelength* (the continuous channel embedding), so the
only thing gfm needs to feed a sensor to the model is, per band, its wavelength in nanometres and
how to turn the stored digital numbers into physical values (reflectance for optical bands,
backscatter in dB for radar). This module holds those facts as frozen records, one per sensor,
in a read-only registry.

Scaling follows how the agencies ship the files: ``physical = DN * scale + offset``.

* Sentinel-2 L1C/L2A: reflectance x 10000 as uint16. Since processing baseline 04.00 (January
  2022) ESA adds 1000 to every DN (``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET`` = -1000), so the
  current products use offset -0.1; ``sentinel2-l1c-pre2022``/``sentinel2-l2a-pre2022`` describe
  the older files (and the "harmonized" collections of some cloud catalogues) with offset 0.
* Landsat Collection 2 Level-2 surface reflectance: ``DN * 2.75e-5 - 0.2``, nodata 0.
* Sentinel-1 GRD: backscatter in dB (float32) as most preprocessing chains write it. Its
  "wavelengths" are the identifiers the LESS ViT authors used for VV and VH (5500 and 5700),
  placed beyond the optical range on purpose; they are identifiers, not physics.

The VNIR-4 and EnMAP-like sensors describe the simulator's sensors (``gfmcli.data``) and real
sensors of the same kind (PlanetScope/NAIP-like 4-band; a 30 m imaging spectrometer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gfmcli.errors import SensorError

OPTICAL = "optical"
RADAR = "radar"


@dataclass(frozen=True)
class BandSpec:
    """One band of one sensor.

    ``aliases`` are other names the band goes by in files (``"B2"``, ``"blue"``, ``"SR_B2"``);
    matching is case-insensitive. ``fwhm_nm`` is the full width at half maximum of the spectral
    response, used by the scene simulator; ``gsd`` is the band's native ground sample distance.
    """

    name: str
    wavelength_nm: float
    fwhm_nm: float
    gsd: float
    modality: str = OPTICAL
    aliases: tuple[str, ...] = ()

    def matches(self, label: str) -> bool:
        key = _normalise(label)
        return key == _normalise(self.name) or key in {_normalise(a) for a in self.aliases}


@dataclass(frozen=True)
class SensorSpec:
    """A sensor's bands in the order the sensor's files usually hold them, plus its scaling.

    ``gsd`` is the resolution users usually stack the bands at (10 m for Sentinel-2).
    ``units`` says what ``DN * scale + offset`` gives.
    """

    name: str
    description: str
    bands: tuple[BandSpec, ...]
    gsd: float
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    units: str = "reflectance"
    aliases: tuple[str, ...] = field(default=())

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def wavelengths(self) -> tuple[float, ...]:
        return tuple(b.wavelength_nm for b in self.bands)

    def band(self, label: str) -> BandSpec:
        """The band called ``label`` (name or alias, any case); SensorError if none."""
        for band in self.bands:
            if band.matches(label):
                return band
        known = ", ".join(self.band_names)
        raise SensorError(f"sensor {self.name!r} has no band {label!r}; its bands are {known}")

    def select(self, labels: list[str] | tuple[str, ...]) -> tuple[BandSpec, ...]:
        """Bands in the order given by ``labels``; rejects duplicates."""
        chosen = tuple(self.band(label) for label in labels)
        names = [b.name for b in chosen]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SensorError(f"band(s) {', '.join(duplicates)} listed more than once")
        return chosen


def _normalise(label: str) -> str:
    return re.sub(r"[\s_\-]+", "", label.strip().lower())


_REGISTRY: dict[str, SensorSpec] = {}


def register_sensor(spec: SensorSpec) -> SensorSpec:
    for key in (spec.name, *spec.aliases):
        if _normalise(key) in _REGISTRY:
            raise ValueError(f"sensor name {key!r} registered twice")
        _REGISTRY[_normalise(key)] = spec
    return spec


def get_sensor(name: str) -> SensorSpec:
    """The sensor called ``name`` (any case, ``_``/``-`` ignored); SensorError lists choices."""
    spec = _REGISTRY.get(_normalise(name))
    if spec is None:
        raise SensorError(f"unknown sensor {name!r}; known sensors: {', '.join(list_sensors())}")
    return spec


def list_sensors() -> list[str]:
    return sorted({spec.name for spec in _REGISTRY.values()})


_WAVELENGTH_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*nm\b", re.IGNORECASE)


def parse_wavelength(description: str) -> float | None:
    """A wavelength written in a band description such as ``"band 12 (664.6 nm)"``, else None."""
    match = _WAVELENGTH_PATTERN.search(description or "")
    return float(match.group(1)) if match else None


# --- Sentinel-2 (MSI, S2A central wavelengths and bandwidths) --------------------------------

_S2_BANDS = (
    BandSpec("B01", 442.7, 21.0, 60.0, aliases=("B1", "coastal", "coastal_aerosol")),
    BandSpec("B02", 492.4, 66.0, 10.0, aliases=("B2", "blue")),
    BandSpec("B03", 559.8, 36.0, 10.0, aliases=("B3", "green")),
    BandSpec("B04", 664.6, 31.0, 10.0, aliases=("B4", "red")),
    BandSpec("B05", 704.1, 15.0, 20.0, aliases=("B5", "rededge1", "red_edge_1")),
    BandSpec("B06", 740.5, 15.0, 20.0, aliases=("B6", "rededge2", "red_edge_2")),
    BandSpec("B07", 782.8, 20.0, 20.0, aliases=("B7", "rededge3", "red_edge_3")),
    BandSpec("B08", 832.8, 106.0, 10.0, aliases=("B8", "nir")),
    BandSpec("B8A", 864.7, 21.0, 20.0, aliases=("B08A", "nir08", "nir_narrow", "rededge4")),
    BandSpec("B09", 945.1, 20.0, 60.0, aliases=("B9", "nir09", "water_vapour", "water_vapor")),
    BandSpec("B10", 1373.5, 31.0, 60.0, aliases=("cirrus",)),
    BandSpec("B11", 1613.7, 91.0, 20.0, aliases=("swir16", "swir1")),
    BandSpec("B12", 2202.4, 175.0, 20.0, aliases=("swir22", "swir2")),
)
_S2_L2A_BANDS = tuple(b for b in _S2_BANDS if b.name != "B10")

register_sensor(
    SensorSpec(
        "sentinel2-l1c",
        "Sentinel-2 MSI Level-1C top-of-atmosphere reflectance, 13 bands, baseline >= 04.00",
        _S2_BANDS,
        gsd=10.0,
        scale=1e-4,
        offset=-0.1,
        nodata=0,
        aliases=("s2-l1c",),
    )
)
register_sensor(
    SensorSpec(
        "sentinel2-l2a",
        "Sentinel-2 MSI Level-2A surface reflectance, 12 bands (no B10), baseline >= 04.00",
        _S2_L2A_BANDS,
        gsd=10.0,
        scale=1e-4,
        offset=-0.1,
        nodata=0,
        aliases=("s2-l2a", "sentinel2"),
    )
)
register_sensor(
    SensorSpec(
        "sentinel2-l1c-pre2022",
        "Sentinel-2 L1C before baseline 04.00 (no +1000 DN offset), 13 bands",
        _S2_BANDS,
        gsd=10.0,
        scale=1e-4,
        offset=0.0,
        nodata=0,
    )
)
register_sensor(
    SensorSpec(
        "sentinel2-l2a-pre2022",
        "Sentinel-2 L2A before baseline 04.00 or harmonized (no +1000 DN offset), 12 bands",
        _S2_L2A_BANDS,
        gsd=10.0,
        scale=1e-4,
        offset=0.0,
        nodata=0,
    )
)

# --- Landsat 8/9 OLI, Collection 2 Level-2 surface reflectance ------------------------------


def _oli_bands(centres: tuple[float, ...]) -> tuple[BandSpec, ...]:
    names = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
    fwhm = (20.0, 60.0, 57.0, 37.0, 28.0, 85.0, 187.0)
    return tuple(
        BandSpec(
            f"SR_B{i + 1}",
            centre,
            width,
            30.0,
            aliases=(f"B{i + 1}", f"B{i + 1:02d}", common),
        )
        for i, (centre, width, common) in enumerate(zip(centres, fwhm, names, strict=True))
    )


register_sensor(
    SensorSpec(
        "landsat8",
        "Landsat 8 OLI Collection 2 Level-2 surface reflectance, SR_B1..SR_B7",
        _oli_bands((443.0, 482.0, 561.4, 654.6, 864.6, 1608.9, 2200.7)),
        gsd=30.0,
        scale=2.75e-5,
        offset=-0.2,
        nodata=0,
        aliases=("landsat8-l2", "l8"),
    )
)
register_sensor(
    SensorSpec(
        "landsat9",
        "Landsat 9 OLI-2 Collection 2 Level-2 surface reflectance, SR_B1..SR_B7",
        _oli_bands((442.9, 481.9, 561.3, 654.6, 864.6, 1608.0, 2200.6)),
        gsd=30.0,
        scale=2.75e-5,
        offset=-0.2,
        nodata=0,
        aliases=("landsat9-l2", "l9"),
    )
)

# --- Sentinel-1 GRD --------------------------------------------------------------------------

register_sensor(
    SensorSpec(
        "sentinel1",
        "Sentinel-1 C-band GRD backscatter in dB, VV and VH (IW mode)",
        (
            BandSpec("VV", 5500.0, 0.0, 10.0, modality=RADAR, aliases=("vv_db", "sigma0_vv")),
            BandSpec("VH", 5700.0, 0.0, 10.0, modality=RADAR, aliases=("vh_db", "sigma0_vh")),
        ),
        gsd=10.0,
        scale=1.0,
        offset=0.0,
        nodata=None,
        units="dB",
        aliases=("s1", "sentinel1-grd"),
    )
)

# --- A 4-band VNIR sensor (PlanetScope/NAIP-like) -------------------------------------------

register_sensor(
    SensorSpec(
        "vnir4",
        "A 4-band visible/near-infrared sensor (blue, green, red, NIR), 3 m, reflectance x 10000",
        (
            BandSpec("blue", 490.0, 50.0, 3.0, aliases=("B1",)),
            BandSpec("green", 565.0, 36.0, 3.0, aliases=("B2",)),
            BandSpec("red", 665.0, 30.0, 3.0, aliases=("B3",)),
            BandSpec("nir", 865.0, 40.0, 3.0, aliases=("B4",)),
        ),
        gsd=3.0,
        scale=1e-4,
        offset=0.0,
        nodata=0,
    )
)

# --- An EnMAP-like imaging spectrometer (~200 bands, 30 m) ----------------------------------


def _spectrometer_bands() -> tuple[BandSpec, ...]:
    vnir = [420.0 + 6.5 * i for i in range(89)]  # 420 .. 992 nm
    swir = [1000.0 + 12.0 * i for i in range(121)]  # 1000 .. 2440 nm
    bands = [BandSpec(f"band{i + 1:03d}", round(c, 1), 8.1, 30.0) for i, c in enumerate(vnir)]
    bands += [
        BandSpec(f"band{len(vnir) + i + 1:03d}", round(c, 1), 12.0, 30.0)
        for i, c in enumerate(swir)
    ]
    return tuple(bands)


register_sensor(
    SensorSpec(
        "enmap",
        "An EnMAP-like imaging spectrometer: 210 bands from 420 to 2440 nm, 30 m, "
        "reflectance x 10000",
        _spectrometer_bands(),
        gsd=30.0,
        scale=1e-4,
        offset=0.0,
        nodata=0,
        aliases=("enmap-like", "hyperspectral"),
    )
)
