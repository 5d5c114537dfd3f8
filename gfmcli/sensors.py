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
* Landsat: one entry per product (Collection 2 Level-2 ``DN * 2.75e-5 - 0.2``, Collection 1
  SR x 10000, converted reflectance, Level-1 DN), for Landsat 5 TM, 7 ETM+, 8 and 9 OLI.
* Sentinel-1 GRD: backscatter in dB (float32) as most preprocessing chains write it. Its
  "wavelengths" are the identifiers the LESS ViT authors used for VV and VH (5500 and 5700),
  placed beyond the optical range on purpose; they are identifiers, not physics.

The VNIR-4 and EnMAP-like sensors describe the simulator's sensors (``gfmcli.simulate``) and real
sensors of the same kind (PlanetScope/NAIP-like 4-band; a 30 m imaging spectrometer).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from gfmcli.errors import SensorError

OPTICAL = "optical"
RADAR = "radar"
THERMAL = "thermal"


@dataclass(frozen=True)
class BandSpec:
    """One band of one sensor.

    ``aliases`` are other names the band goes by in files (``"B2"``, ``"blue"``, ``"SR_B2"``);
    matching is case-insensitive. ``fwhm_nm`` is the full width at half maximum of the spectral
    response, used by the scene simulator; ``gsd`` is the band's native ground sample distance.
    ``scale``/``offset`` override the sensor's scaling for this band (Landsat Level-1 digital
    numbers, whose calibration differs per band); None means the sensor's.
    """

    name: str
    wavelength_nm: float
    fwhm_nm: float
    gsd: float
    modality: str = OPTICAL
    aliases: tuple[str, ...] = ()
    scale: float | None = None
    offset: float | None = None

    def matches(self, label: str) -> bool:
        key = _normalise(label)
        return key == _normalise(self.name) or key in {_normalise(a) for a in self.aliases}


@dataclass(frozen=True)
class SensorSpec:
    """A sensor's bands in the order the sensor's files usually hold them, plus its scaling.

    ``gsd`` is the resolution users usually stack the bands at (10 m for Sentinel-2).
    ``units`` says what ``DN * scale + offset`` gives. ``family`` groups the products of one
    instrument (``sentinel2`` for the four Sentinel-2 entries): :mod:`gfmcli.spectral` infers the
    family from a file's tells and then picks the product; empty means "never inferred, only
    named with --sensor".
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
    family: str = ""

    def band_scaling(self, band: BandSpec) -> tuple[float, float]:
        """``(scale, offset)`` of ``band``: its own when set, else the sensor's."""
        return (
            self.scale if band.scale is None else band.scale,
            self.offset if band.offset is None else band.offset,
        )

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
        family="sentinel2",
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
        family="sentinel2",
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
        family="sentinel2",
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
        family="sentinel2",
    )
)

# --- Landsat ---------------------------------------------------------------------------------
#
# One entry per product, so that ``--sensor`` names the scaling too:
#
# * ``landsatN``: Collection 2 Level-2 surface reflectance, uint16 ``DN * 2.75e-5 - 0.2``, nodata 0.
# * ``landsatN-c1``: Collection 1 Level-2 surface reflectance (ESPA), int16 reflectance x 10000,
#   nodata -9999.
# * ``landsatN-toa``: reflectance already converted (float, 0..1; TOA or SR), scale 1.
# * ``landsat8-l1``/``landsat9-l1``: Collection 2 Level-1 DN, ``DN * 2e-5 - 0.1`` (TOA reflectance
#   without the sun-angle correction: the MTL's REFLECTANCE_MULT/ADD).
# * ``landsat7-l1``/``landsat5-l1``: 8-bit Level-1 DN, *approximate* TOA reflectance per band from
#   the published LMIN/LMAX and ESUN (Chander et al. 2009, ETM+ usual land gains: high gain, low
#   gain for band 4) for a sun 45 degrees high and Earth-Sun distance 1 AU; exact reflectance
#   needs the scene's MTL (sun elevation, gains), so maps from these are rougher.

_OLI_COMMON = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
_OLI_FWHM = (20.0, 60.0, 57.0, 37.0, 28.0, 85.0, 187.0)


def _oli_bands(centres: tuple[float, ...], prefix: str = "SR_") -> tuple[BandSpec, ...]:
    """OLI bands 1-7 named ``SR_B1``.. (or ``B1``.. without prefix), with the plain numbers and
    the STAC common names as aliases."""
    bands = []
    for i, (centre, width, common) in enumerate(zip(centres, _OLI_FWHM, _OLI_COMMON, strict=True)):
        number = f"B{i + 1}"
        aliases = (number, f"B{i + 1:02d}", common, *(("nir",) if common == "nir08" else ()))
        name = f"{prefix}{number}"
        bands.append(
            BandSpec(name, centre, width, 30.0, aliases=tuple(a for a in aliases if a != name))
        )
    return tuple(bands)


def _oli_full(centres: tuple[float, ...]) -> tuple[BandSpec, ...]:
    """OLI/TIRS bands 1-11 of a Level-1 or TOA product: 1-7, pan, cirrus, two thermal bands."""
    return (
        *_oli_bands(centres, prefix=""),
        BandSpec("B8", 590.0, 172.0, 15.0, aliases=("pan", "B08")),
        BandSpec("B9", 1373.0, 20.0, 30.0, aliases=("cirrus", "B09")),
        BandSpec("B10", 10895.0, 590.0, 100.0, THERMAL, aliases=("lwir11", "ST_B10")),
        BandSpec("B11", 12005.0, 1010.0, 100.0, THERMAL, aliases=("lwir12",)),
    )


_L8_CENTRES = (443.0, 482.0, 561.4, 654.6, 864.6, 1608.9, 2200.7)
_L9_CENTRES = (442.9, 481.9, 561.3, 654.6, 864.6, 1608.0, 2200.6)
_OLI_PRODUCTS = (
    ("", "Collection 2 Level-2 surface reflectance, SR_B1..SR_B7", 2.75e-5, -0.2, 0),
    ("-c1", "Collection 1 Level-2 surface reflectance x 10000 (int16)", 1e-4, 0.0, -9999),
    ("-toa", "reflectance already converted (float 0..1), bands B1..B11", 1.0, 0.0, None),
    ("-l1", "Collection 2 Level-1 DN (DN * 2e-5 - 0.1), bands B1..B11", 2e-5, -0.1, 0),
)
for _number, _centres, _extra in (
    ("8", _L8_CENTRES, ("landsat8-l2", "l8")),
    ("9", _L9_CENTRES, ("landsat9-l2", "l9")),
):
    for _suffix, _what, _scale, _offset, _nodata in _OLI_PRODUCTS:
        _full = _suffix in ("-toa", "-l1")
        register_sensor(
            SensorSpec(
                f"landsat{_number}{_suffix}",
                f"Landsat {_number} OLI {_what}",
                _oli_full(_centres) if _full else _oli_bands(_centres),
                gsd=30.0,
                scale=_scale,
                offset=_offset,
                nodata=_nodata,
                aliases=_extra if not _suffix else (),
                family=f"landsat{_number}",
            )
        )

# TM (Landsat 5) and ETM+ (Landsat 7): bands 1-5 and 7 (6 is thermal). Centre, FWHM (nm), then
# LMIN, LMAX (W m-2 sr-1 um-1) and ESUN for the approximate Level-1 calibration.
_TM_TABLE = {
    "5": (
        (485.0, 70.0, -1.52, 193.0, 1983.0),
        (560.0, 80.0, -2.84, 365.0, 1796.0),
        (660.0, 60.0, -1.17, 264.0, 1536.0),
        (830.0, 140.0, -1.51, 221.0, 1031.0),
        (1650.0, 200.0, -0.37, 30.2, 220.0),
        (2215.0, 270.0, -0.15, 16.5, 83.44),
    ),
    "7": (
        (483.0, 70.0, -6.2, 191.6, 1997.0),
        (560.0, 80.0, -6.4, 196.5, 1812.0),
        (662.0, 60.0, -5.0, 152.9, 1533.0),
        (835.0, 130.0, -5.1, 241.1, 1039.0),
        (1648.0, 200.0, -1.0, 31.06, 230.8),
        (2206.0, 260.0, -0.35, 10.8, 84.9),
    ),
}
_TM_NUMBERS = (1, 2, 3, 4, 5, 7)
_TM_COMMON = ("blue", "green", "red", "nir08", "swir16", "swir22")
_SUN_COS = 0.7071  # sun 45 degrees above the horizon


def _tm_bands(table: tuple, level1: bool, plain_names: bool) -> tuple[BandSpec, ...]:
    """TM/ETM+ bands 1-5, 7 as ``SR_B<n>`` (surface reflectance products) or ``B<n>``
    (``plain_names``: Level-1 DN and TOA reflectance, which are not SR), each with the other
    name and common names as aliases; for Level-1 DN each band gets its approximate DN -> TOA
    reflectance gain and bias."""
    bands = []
    for number, common, (centre, width, lmin, lmax, esun) in zip(
        _TM_NUMBERS, _TM_COMMON, table, strict=True
    ):
        scale = offset = None
        if level1:
            per_radiance = math.pi / (esun * _SUN_COS)
            gain = (lmax - lmin) / 254.0  # QCAL 1..255
            scale, offset = gain * per_radiance, (lmin - gain) * per_radiance
        aliases = [f"B{number}", common, *(("nir",) if common == "nir08" else ())]
        name = f"B{number}" if plain_names else f"SR_B{number}"
        aliases = [a for a in aliases if a != name] + ([f"SR_B{number}"] if plain_names else [])
        bands.append(
            BandSpec(name, centre, width, 30.0, aliases=tuple(aliases), scale=scale, offset=offset)
        )
    return tuple(bands)


_TM_PRODUCTS = (
    ("", "Collection 2 Level-2 surface reflectance, SR_B1..SR_B5, SR_B7", 2.75e-5, -0.2, 0),
    ("-c1", "Collection 1 Level-2 surface reflectance x 10000 (int16)", 1e-4, 0.0, -9999),
    ("-toa", "reflectance already converted (float 0..1), bands B1..B5, B7", 1.0, 0.0, None),
    ("-l1", "8-bit Level-1 DN, approximate per-band TOA calibration", 1.0, 0.0, 0),
)
for _number, _instrument in (("5", "TM"), ("7", "ETM+")):
    for _suffix, _what, _scale, _offset, _nodata in _TM_PRODUCTS:
        register_sensor(
            SensorSpec(
                f"landsat{_number}{_suffix}",
                f"Landsat {_number} {_instrument} {_what}",
                _tm_bands(
                    _TM_TABLE[_number],
                    level1=_suffix == "-l1",
                    plain_names=_suffix in ("-l1", "-toa"),
                ),
                gsd=30.0,
                scale=_scale,
                offset=_offset,
                nodata=_nodata,
                aliases=(f"l{_number}",) if not _suffix else (),
                family=f"landsat{_number}",
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
        family="sentinel1",
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
        family="enmap",
    )
)
