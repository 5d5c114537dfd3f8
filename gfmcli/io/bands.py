"""The band contract: which bands of a file feed the model, in what order, scaled how.

:func:`resolve_bands` is called once per input, before any pixel is read, and either returns a
:class:`BandMapping` (one entry per model input band) or raises BandContractError saying what was
expected and how to fix it. It never guesses band order. The rules, also in docs/formats.md:

1. **Band identity**: :func:`gfmcli.spectral.identify.identify_bands`, the rulebook shared with
   ``gfm tile`` (``--bands``, band descriptions and tags, ``--sensor``, the sensor inferred from
   the file's tells).

2. **Against the contract.** Bands of a modality the model lacks (thermal for an optical model)
   and optical bands in the strong water-absorption windows far from every model band (cirrus
   bands, spectrometer bands at 1.4 and 1.9 um) are not used, with a note. Then:

   * *the model's own sensor family* (Sentinel-2 L1C, L2A or pre-2022 for an L2A model): the
     model's bands are picked from the file by identity; bands the model lacks (B10) are not
     used and are named in a note; bands the file lacks are named in a note, and the file maps
     with the bands it has;
   * *another sensor* (a LESS ViT takes any band set by wavelength): every usable band is used
     with its own wavelength; mean/std come from the model band with the same wavelength (within
     1 nm), else the nearest one within 60 nm, else are interpolated linearly in wavelength
     between the neighbouring model bands (with a note); radar only maps to radar.

   Fewer than ``MIN_MODEL_BANDS`` usable bands is an error.

3. **Scaling**: :mod:`gfmcli.scaling` (``--scale``/``--offset``, the file's scale/offset, ESA's
   quantification tags, the contract, the sensor). **Nodata**: the file's per-band nodata, else
   the sensor's.

4. **GSD**: the model is told the input's own GSD; a file without georeferencing needs
   ``--gsd`` (else the sensor's nominal GSD is used, with a warning). More than 4x away from the
   contract's GSD is a warning, not an error.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from gfmcli import scaling as scaling_rules
from gfmcli.contract import BandInfo, ModelContract
from gfmcli.errors import BandContractError
from gfmcli.io.reader import RasterSource
from gfmcli.sensors import OPTICAL, SensorSpec
from gfmcli.spectral.identify import FileBand, identify_bands
from gfmcli.spectral.labels import FileFacts, parse_wavelength
from gfmcli.spectral.sensor import sensor_or_none

logger = logging.getLogger(__name__)

NORMALISATION_TOLERANCE_NM = 60.0
SAME_WAVELENGTH_NM = 1.0
GSD_WARN_RATIO = 4.0
# The fewest usable bands a file may map with. Fewer is refused: with one or two bands a
# land-cover model has next to nothing to go on. docs/model-card.md ("Fewer bands than the
# model's") measures what fewer bands cost on real scenes; change the minimum here only.
MIN_MODEL_BANDS = 3
# Strong atmospheric water-vapour absorption (nm): a band here is noise or cirrus, not surface.
ABSORPTION_WINDOWS_NM = ((1340.0, 1450.0), (1790.0, 1960.0))


@dataclass(frozen=True)
class MappedBand:
    """One model input band: where it comes from (1-based ``index``) and how to scale it."""

    index: int
    name: str
    wavelength_nm: float
    modality: str
    scale: float
    offset: float
    mean: float
    std: float
    nodata: float | None
    scale_source: str = ""


@dataclass(frozen=True)
class BandMapping:
    """The model's input bands in model order, the input sensor and what the model is told.

    ``warnings`` collects everything odd but usable (source warnings included); they are also
    logged. ``details`` are facts about an ordinary reading (the sensor the file's tags name,
    bands the model has no use for, such as Sentinel-2's B10 or Landsat's thermal bands): a
    run logs them under ``-v`` only, since a warning on every ordinary file hides the real ones.
    ``cross_sensor`` is True when the file's sensor differs from the contract's.
    """

    bands: tuple[MappedBand, ...]
    sensor: str
    gsd_m: float
    cross_sensor: bool
    warnings: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    sensor_given: bool = False
    details: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def wavelengths(self) -> list[float]:
        return [b.wavelength_nm for b in self.bands]

    @property
    def modalities(self) -> list[str]:
        return [b.modality for b in self.bands]


def _interpolated(
    band: FileBand, candidates: list[BandInfo], far: list[FileBand]
) -> tuple[float, float]:
    """Mean/std for a cross-sensor band from the contract bands of its modality; bands far from
    every model band are appended to ``far`` (reported once, together)."""
    ordered = sorted(candidates, key=lambda c: c.wavelength_nm)
    nearest = min(ordered, key=lambda c: abs(c.wavelength_nm - band.wavelength_nm))
    if abs(nearest.wavelength_nm - band.wavelength_nm) <= NORMALISATION_TOLERANCE_NM:
        return nearest.mean, nearest.std
    waves = [c.wavelength_nm for c in ordered]
    right = bisect.bisect_left(waves, band.wavelength_nm)
    if right in (0, len(ordered)):
        chosen = ordered[0] if right == 0 else ordered[-1]
        mean, std = chosen.mean, chosen.std
    else:
        lo, hi = ordered[right - 1], ordered[right]
        t = (band.wavelength_nm - lo.wavelength_nm) / (hi.wavelength_nm - lo.wavelength_nm)
        mean, std = lo.mean + t * (hi.mean - lo.mean), lo.std + t * (hi.std - lo.std)
    far.append(band)
    return mean, std


def _in_absorption_window(wavelength: float, contract: ModelContract) -> bool:
    """True for an optical wavelength in a water-absorption window with no model band near."""
    inside = any(lo <= wavelength <= hi for lo, hi in ABSORPTION_WINDOWS_NM)
    near = any(
        abs(c.wavelength_nm - wavelength) <= NORMALISATION_TOLERANCE_NM
        for c in contract.bands
        if c.modality == OPTICAL
    )
    return inside and not near


def _usable(
    path: str, contract: ModelContract, found: Sequence[FileBand], details: list[str]
) -> list[FileBand]:
    """Drop bands of a modality the model lacks and bands in absorption windows (``details``)."""
    modalities = {c.modality for c in contract.bands}
    usable, foreign, absorbed = [], [], []
    for band in found:
        if band.modality not in modalities:
            foreign.append(band)
        elif band.modality == OPTICAL and _in_absorption_window(band.wavelength_nm, contract):
            absorbed.append(band)
        else:
            usable.append(band)
    if foreign and not usable:
        first = foreign[0]
        raise BandContractError(
            f"{path}: band {first.index} ({first.name}) is {first.modality} but model "
            f"{contract.model_name} has no {first.modality} band, and the file has no other "
            f"usable band; map it with a model trained on {first.modality} bands"
        )
    if foreign:
        listed = ", ".join(f"{b.name} ({b.modality})" for b in foreign)
        details.append(f"{path}: band(s) {listed} not used: model {contract.model_name} has none")
    if absorbed:
        listed = ", ".join(_named(b.name, b.wavelength_nm) for b in absorbed[:4])
        more = f" and {len(absorbed) - 4} more" if len(absorbed) > 4 else ""
        details.append(
            f"{path}: band(s) {listed}{more} lie in a water-absorption window (cirrus/vapour) "
            "far from every model band and are not used"
        )
    return usable


def _model_band(
    band: FileBand, contract: ModelContract, spec: SensorSpec | None
) -> BandInfo | None:
    """The contract band ``band`` is: same name in the model's sensor family, or the same
    wavelength (within SAME_WAVELENGTH_NM)."""
    contract_spec = sensor_or_none(contract.sensor)
    same_family = (
        spec is not None
        and contract_spec is not None
        and (spec.family and spec.family == contract_spec.family)
    )
    for info in contract.bands:
        if info.modality != band.modality:
            continue
        if same_family and band.band is not None and band.band.matches(info.name):
            return info
        if abs(info.wavelength_nm - band.wavelength_nm) < SAME_WAVELENGTH_NM:
            return info
    return None


def _named(name: str, wavelength_nm: float) -> str:
    """A band for a message: its name and wavelength, or only its name when the name is the
    wavelength (a spectrometer's ``1015.05 nm``)."""
    return name if parse_wavelength(name) is not None else f"{name} ({wavelength_nm:g} nm)"


def _facts(src: RasterSource, gsd_m: float | None) -> FileFacts:
    return FileFacts(
        path=src.path,
        count=src.count,
        descriptions=tuple(d or "" for d in src.descriptions),
        tags=src.tags,
        band_tags=src.band_tags,
        dtypes=src.dtypes,
        gsd_m=gsd_m,
    )


def _gsd(src: RasterSource, spec: SensorSpec | None, gsd: float | None, notes: list[str]) -> float:
    """The GSD the model is told: ``--gsd``, the file's, else the sensor's nominal one."""
    if gsd is not None:
        return float(gsd)
    if src.georeferenced:
        return src.gsd_m
    if spec is None:
        raise BandContractError(
            f"{src.path}: the raster has no georeferencing, so its pixel size is unknown; "
            "pass --gsd METRES (e.g. --gsd 10)"
        )
    sensor = spec.family or spec.name  # the family's GSD: the product may change after this
    notes.append(
        f"{src.path}: no georeferencing; assuming {sensor}'s nominal {spec.gsd:g} m pixels "
        "(pass --gsd METRES if they are not)"
    )
    return spec.gsd


def resolve_bands(
    src: RasterSource,
    contract: ModelContract,
    *,
    sensor: str | None = None,
    bands: list[str] | None = None,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    gsd: float | None = None,
) -> BandMapping:
    """Map ``src``'s bands onto ``contract``'s inputs (rules in the module docstring).

    ``scale``/``offset`` (one value, or one per file band) override every other scaling source
    (files already converted to reflectance, say); ``scale`` without ``offset`` means offset 0.
    ``gsd`` (metres) overrides the file's pixel size. Raises BandContractError or SensorError;
    warnings are kept in the result (the runner reports them).
    """
    warnings = list(src.warnings)
    known_gsd = gsd if gsd is not None else (src.gsd_m if src.georeferenced else None)
    identified = identify_bands(
        _facts(src, known_gsd), sensor=sensor, bands=bands, default_sensor=contract.sensor
    )
    spec = identified.sensor
    notes = [
        n
        for n in identified.notes
        if not (spec and spec.name == contract.sensor) or "read as" not in n
    ]
    details = list(identified.details)
    contract_spec = sensor_or_none(contract.sensor)
    same_family = bool(
        spec and contract_spec and spec.family and spec.family == contract_spec.family
    )
    usable = _usable(src.path, contract, identified.bands, details)
    pairs = [(band, _model_band(band, contract, spec)) for band in usable]
    matched = {info.name for _, info in pairs if info is not None}
    missing = tuple(c.name for c in contract.bands if c.name not in matched)
    if same_family or not missing:
        unused = [band.name for band, info in pairs if info is None]
        by_name = {info.name: (band, info) for band, info in pairs if info is not None}
        pairs = [by_name[c.name] for c in contract.bands if c.name in by_name]
        if unused:
            details.append(
                f"{src.path}: band(s) {', '.join(unused)} not used: model "
                f"{contract.model_name} was trained without them"
            )
    # A sensor with fewer bands than the minimum (Sentinel-1: VV, VH) may map with all of them.
    needed = min(MIN_MODEL_BANDS, len(spec.bands)) if spec else MIN_MODEL_BANDS
    if len(pairs) < needed:
        held = ", ".join(b.name for b, _ in pairs) or "none"
        raise BandContractError(
            f"{src.path} has {len(pairs)} band(s) model {contract.model_name} can use ({held}); "
            f"at least {needed} are needed (the model has "
            f"{', '.join(contract.band_names)}); stack the scene's other bands into the same "
            "file (gdalbuildvrt -separate) and map that"
        )
    if missing and same_family:
        notes.append(
            f"{src.path} lacks model band(s) {', '.join(missing)}; mapping with the "
            f"{len(pairs)} band(s) it has (accuracy drops with fewer bands, see docs/model-card.md)"
        )
    scales = scaling_rules.per_band(
        None if scale is None else tuple(scale) if isinstance(scale, Sequence) else (scale,),
        src.count,
        "--scale",
        src.path,
    )
    offsets = scaling_rules.per_band(
        None if offset is None else tuple(offset) if isinstance(offset, Sequence) else (offset,),
        src.count,
        "--offset",
        src.path,
    )
    file_scaling = scaling_rules.explicit_file_scaling(src.path, src.scales, src.offsets)

    def band_scaling(band: FileBand, info: BandInfo | None) -> tuple[float, float, str]:
        i = band.index - 1
        if scales[i] is not None:
            return scales[i], offsets[i] if offsets[i] is not None else 0.0, scaling_rules.CLI
        chosen = _implicit_scaling(src, band, info, spec, contract, sensor is not None)
        stated = file_scaling[i]
        if stated != (None, None):
            chosen = (
                stated[0] if stated[0] is not None else 1.0,
                stated[1] if stated[1] is not None else 0.0,
                scaling_rules.FILE,
            )
        else:
            tagged = scaling_rules.tag_scaling(src.tags, src.band_tags[i])
            if tagged is not None:
                chosen = (*tagged, scaling_rules.TAGS)
        if offsets[i] is not None:
            return chosen[0], offsets[i], scaling_rules.CLI
        return chosen

    def nodata(band: FileBand) -> float | None:
        value = src.nodatavals[band.index - 1]
        return value if value is not None else (spec.nodata if spec else None)

    far: list[FileBand] = []
    mapped = []
    for band, info in pairs:
        s, o, source = band_scaling(band, info)
        if info is not None:
            wavelength, mean, std = info.wavelength_nm, info.mean, info.std
            if not same_family:
                wavelength = band.wavelength_nm
        else:
            candidates = [c for c in contract.bands if c.modality == band.modality]
            mean, std = _interpolated(band, candidates, far)
            wavelength = band.wavelength_nm
        # fmt: skip below: arguments grouped by meaning (ruff format would add 12 lines)
        mapped.append(MappedBand(band.index, band.name, wavelength, band.modality, s, o, mean,
                                 std, nodata(band), source))  # fmt: skip
    if far:
        listed = ", ".join(_named(b.name, b.wavelength_nm) for b in far[:3])
        more = f" and {len(far) - 3} more" if len(far) > 3 else ""
        notes.append(
            f"{src.path}: {len(far)} band(s) are more than {NORMALISATION_TOLERANCE_NM:g} nm "
            f"from every model band: {listed}{more}; their normalisation is interpolated from "
            "the neighbouring model bands"
        )
    gsd_m = _gsd(src, spec, gsd, notes)
    ratio = max(gsd_m / contract.gsd, contract.gsd / gsd_m)
    if ratio > GSD_WARN_RATIO:
        notes.append(
            f"{src.path}: pixels are {gsd_m:.3g} m but model {contract.model_name} was "
            f"trained at {contract.gsd:g} m ({ratio:.1f}x apart); results may be poor"
        )
    return BandMapping(
        bands=tuple(mapped),
        sensor=spec.name if spec else "",
        gsd_m=gsd_m,
        cross_sensor=not same_family,
        warnings=tuple(warnings + notes),
        missing=missing if same_family else (),
        sensor_given=sensor is not None,
        details=tuple(details),
    )


def _implicit_scaling(
    src: RasterSource,
    band: FileBand,
    info: BandInfo | None,
    spec: SensorSpec | None,
    contract: ModelContract,
    sensor_given: bool,
) -> tuple[float, float, str]:
    """Rule 4 of :mod:`gfmcli.scaling`: the contract's, the sensor's, else a default by type."""
    if info is not None and (
        (spec is not None and spec.name == contract.sensor)
        or (spec is None and sensor_or_none(contract.sensor) is None)
    ):  # the model's own product, or its custom band set (chips tiled without a sensor)
        return info.scale, info.offset, scaling_rules.MODEL
    if spec is not None:
        s, o = spec.band_scaling(band.band) if band.band is not None else (spec.scale, spec.offset)
        return s, o, scaling_rules.SENSOR_GIVEN if sensor_given else scaling_rules.SENSOR
    floating = src.dtypes[band.index - 1].startswith("float")
    return (1.0, 0.0, scaling_rules.DEFAULT) if floating else (1e-4, 0.0, scaling_rules.DEFAULT)
