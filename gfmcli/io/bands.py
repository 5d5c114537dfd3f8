"""The band contract: which bands of a file feed the model, in what order, scaled how.

:func:`resolve_bands` is called once per input, before any pixel is read, and either returns a
:class:`BandMapping` (one entry per model input band) or raises BandContractError saying what was
expected and how to fix it. It never guesses band order. The rules, also in docs/formats.md:

1. **Band identity**, first rule that applies:

   a. ``bands`` (``--bands``): the file's bands in file order, by the sensor's band names (the
      sensor is ``sensor`` or the contract's). Descriptions in the file that name *different*
      bands are an error (a silent band-order mistake otherwise).
   b. the file's band descriptions: a sensor band name or alias (``B04``, ``red``), or a
      wavelength (``"664.6 nm"``; within 5 nm of a sensor band it is that band). A description
      that is neither is an error naming it; bands without a description are not used.
   c. ``sensor`` (``--sensor``) alone: the file holds exactly that sensor's bands in its standard
      order (the band counts must agree).

   Otherwise: "cannot tell which bands FILE holds".

2. **Against the contract.** When the input sensor is the contract's sensor, the model's bands
   are picked from the file by identity (extra bands and any order are fine; missing ones are an
   error listing them) and normalised with the contract's mean/std/scale/offset. A sibling
   product with the same band table (Sentinel-2 L1C for an L2A model, or a pre-2022 baseline)
   is treated the same way except that scale/offset come from its own sensor entry. Otherwise
   (cross-sensor: a LESS ViT takes any band set by wavelength) every identified band is used
   with its own wavelength; mean/std come from the contract band of the same modality with the
   nearest wavelength when within 60 nm, else are interpolated linearly in wavelength between
   the neighbouring contract bands (with a warning); radar only maps to radar.

3. **Scaling**, highest priority first: explicit ``scale``/``offset`` arguments, the file's own
   band scale/offset metadata when not 1/0, the contract's (same sensor), the sensor's.
   **Nodata**: the file's per-band nodata, else the sensor's.

4. **GSD**: the model is told the input's own GSD; more than 4x away from the contract's GSD is a
   warning, not an error.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

from gfmcli.contract import BandInfo, ModelContract
from gfmcli.errors import BandContractError, SensorError
from gfmcli.io.reader import RasterSource
from gfmcli.sensors import OPTICAL, BandSpec, SensorSpec, get_sensor, list_sensors, parse_wavelength

logger = logging.getLogger(__name__)

WAVELENGTH_MATCH_NM = 5.0
NORMALISATION_TOLERANCE_NM = 60.0
GSD_WARN_RATIO = 4.0


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


@dataclass(frozen=True)
class BandMapping:
    """The model's input bands in model order, the input sensor and what the model is told.

    ``warnings`` collects everything odd but usable (source warnings included); they are also
    logged. ``cross_sensor`` is True when the file's sensor differs from the contract's.
    """

    bands: tuple[MappedBand, ...]
    sensor: str
    gsd_m: float
    cross_sensor: bool
    warnings: tuple[str, ...] = ()

    @property
    def indexes(self) -> list[int]:
        return [b.index for b in self.bands]

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.bands]

    @property
    def wavelengths(self) -> list[float]:
        return [b.wavelength_nm for b in self.bands]

    @property
    def modalities(self) -> list[str]:
        return [b.modality for b in self.bands]


@dataclass(frozen=True)
class _FileBand:
    """A file band whose identity is known: a sensor band, or a bare wavelength."""

    index: int
    name: str
    wavelength_nm: float
    modality: str


def _sensor_or_none(name: str) -> SensorSpec | None:
    try:
        return get_sensor(name)
    except SensorError:
        return None


def _from_sensor_band(index: int, spec: BandSpec) -> _FileBand:
    return _FileBand(index, spec.name, spec.wavelength_nm, spec.modality)


def _describe(description: str, spec: SensorSpec | None) -> BandSpec | float | None:
    """A description's sensor band, else its wavelength, else None."""
    if spec is not None:
        for band in spec.bands:
            if band.matches(description):
                return band
    wavelength = parse_wavelength(description)
    if wavelength is None:
        return None
    if spec is not None:
        nearest = min(spec.bands, key=lambda b: abs(b.wavelength_nm - wavelength))
        if abs(nearest.wavelength_nm - wavelength) <= WAVELENGTH_MATCH_NM:
            return nearest
    return wavelength


def _sensors_matching(descriptions: list[str]) -> list[str]:
    names = []
    for name in list_sensors():
        spec = get_sensor(name)
        if all(isinstance(_describe(d, spec), BandSpec) for d in descriptions):
            names.append(name)
    return names


def _from_band_list(
    src: RasterSource, spec: SensorSpec | None, labels: list[str]
) -> list[_FileBand]:
    if spec is None:
        raise BandContractError(
            f"{src.path}: --bands names need a sensor to look them up; pass --sensor NAME"
        )
    if len(labels) != src.count:
        raise BandContractError(
            f"{src.path} has {src.count} bands but --bands lists {len(labels)}; "
            "name every band of the file, in file order"
        )
    chosen = spec.select(labels)
    for i, (band, description) in enumerate(zip(chosen, src.descriptions, strict=True)):
        described = _describe(description, spec) if description else None
        if isinstance(described, BandSpec) and described.name != band.name:
            raise BandContractError(
                f"{src.path}: band {i + 1} is described as {description!r} ({described.name}) "
                f"but --bands says {band.name}; fix --bands or the file's band descriptions"
            )
    return [_from_sensor_band(i + 1, band) for i, band in enumerate(chosen)]


def _from_descriptions(src: RasterSource, spec: SensorSpec | None) -> list[_FileBand]:
    found = []
    described = [(i + 1, d) for i, d in enumerate(src.descriptions) if d]
    for index, text in described:
        identity = _describe(text, spec)
        if isinstance(identity, BandSpec):
            found.append(_from_sensor_band(index, identity))
        elif isinstance(identity, float):
            found.append(_FileBand(index, text, identity, OPTICAL))
        else:
            others = _sensors_matching([d for _, d in described])
            hint = f"pass --sensor {others[0]}" if others else "pass --sensor NAME"
            sensor = f"sensor {spec.name}" if spec else "any known sensor"
            raise BandContractError(
                f"{src.path}: band {index} is described as {text!r}, which is not a band of "
                f"{sensor} and names no wavelength; {hint}, or --bands B02,B03,..."
            )
    names = [b.name for b in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BandContractError(
            f"{src.path}: several bands are described as {', '.join(repeated)}; "
            "fix the band descriptions or pass --bands"
        )
    return found


def _identify(
    src: RasterSource, spec: SensorSpec | None, sensor_given: bool, labels: list[str] | None
) -> list[_FileBand]:
    if labels:
        return _from_band_list(src, spec, labels)
    if any(src.descriptions):
        return _from_descriptions(src, spec)
    if sensor_given and spec is not None:
        if src.count != len(spec.bands):
            raise BandContractError(
                f"{src.path} has {src.count} bands but sensor {spec.name} has "
                f"{len(spec.bands)} ({', '.join(spec.band_names)}); pass --bands naming the "
                "file's bands in order"
            )
        return [_from_sensor_band(i + 1, band) for i, band in enumerate(spec.bands)]
    raise BandContractError(
        f"cannot tell which bands {src.path} holds: its bands have no descriptions; "
        "pass --sensor NAME (its bands in standard order) or --bands B02,B03,..."
    )


def _same_band_table(spec: SensorSpec, contract: ModelContract) -> bool:
    """True when ``spec`` has every model band by name and wavelength (a sibling product)."""
    for info in contract.bands:
        try:
            band = spec.band(info.name)
        except SensorError:
            return False
        if abs(band.wavelength_nm - info.wavelength_nm) >= 1.0:
            return False
    return True


def _same_sensor_bands(
    src: RasterSource, contract: ModelContract, spec: SensorSpec, found: list[_FileBand]
) -> list[tuple[_FileBand, BandInfo]]:
    by_name = {b.name: b for b in found}
    pairs, missing = [], []
    for info in contract.bands:
        try:
            name = spec.band(info.name).name
        except SensorError:
            name = info.name
        match = by_name.get(name) or next(
            (b for b in found if abs(b.wavelength_nm - info.wavelength_nm) < 1.0), None
        )
        if match is None:
            missing.append(info.name)
        else:
            pairs.append((match, info))
    if missing:
        held = ", ".join(b.name for b in found) or "no identified band"
        raise BandContractError(
            f"{src.path} lacks band(s) {', '.join(missing)} that model {contract.model_name} "
            f"needs (the file holds {held}); use a file with {', '.join(contract.band_names)}"
        )
    return pairs


def _interpolated(
    band: _FileBand, candidates: list[BandInfo], far: list[_FileBand]
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


def _cross_sensor_bands(
    src: RasterSource, contract: ModelContract, found: list[_FileBand], warnings: list[str]
) -> list[tuple[_FileBand, float, float]]:
    result = []
    far: list[_FileBand] = []
    for band in found:
        candidates = [c for c in contract.bands if c.modality == band.modality]
        if not candidates:
            raise BandContractError(
                f"{src.path}: band {band.index} ({band.name}) is {band.modality} but model "
                f"{contract.model_name} has no {band.modality} band; drop it with --bands or "
                "use a matching model"
            )
        mean, std = _interpolated(band, candidates, far)
        result.append((band, mean, std))
    if far:
        listed = ", ".join(f"{b.name} ({b.wavelength_nm:g} nm)" for b in far[:3])
        more = f" and {len(far) - 3} more" if len(far) > 3 else ""
        warnings.append(
            f"{src.path}: {len(far)} band(s) are more than {NORMALISATION_TOLERANCE_NM:g} nm "
            f"from every model band: {listed}{more}; their normalisation is interpolated from "
            "the neighbouring model bands"
        )
    return result


def resolve_bands(
    src: RasterSource,
    contract: ModelContract,
    *,
    sensor: str | None = None,
    bands: list[str] | None = None,
    scale: float | None = None,
    offset: float | None = None,
) -> BandMapping:
    """Map ``src``'s bands onto ``contract``'s inputs (rules in the module docstring).

    ``scale``/``offset`` override every other scaling source (for files already converted to
    reflectance, say). Raises BandContractError or SensorError; warnings are kept in the result
    (the runner reports them).
    """
    spec = get_sensor(sensor) if sensor else _sensor_or_none(contract.sensor)
    found = _identify(src, spec, sensor is not None, bands)
    contract_spec = _sensor_or_none(contract.sensor)
    contract_sensor = contract_spec.name if contract_spec else contract.sensor
    same_sensor = spec is not None and spec.name == contract_sensor
    cross = not (same_sensor or (spec is not None and _same_band_table(spec, contract)))
    warnings = list(src.warnings)
    if not found:
        raise BandContractError(f"{src.path}: no band could be identified; pass --bands")
    if len(found) < src.count and not bands:
        skipped = sorted(set(range(1, src.count + 1)) - {b.index for b in found})
        warnings.append(f"{src.path}: band(s) {skipped} have no description and are not used")

    def scaling(band: _FileBand, default: tuple[float, float]) -> tuple[float, float]:
        file_scale, file_offset = src.scales[band.index - 1], src.offsets[band.index - 1]
        chosen = (file_scale, file_offset) if (file_scale, file_offset) != (1.0, 0.0) else default
        return (
            chosen[0] if scale is None else scale,
            chosen[1] if offset is None else offset,
        )

    def nodata(band: _FileBand) -> float | None:
        value = src.nodatavals[band.index - 1]
        return value if value is not None else (spec.nodata if spec else None)

    mapped = []
    if not cross:
        for band, info in _same_sensor_bands(src, contract, spec, found):
            own = (info.scale, info.offset) if same_sensor else (spec.scale, spec.offset)
            s, o = scaling(band, own)
            mapped.append(
                MappedBand(band.index, band.name, info.wavelength_nm, info.modality, s, o,
                           info.mean, info.std, nodata(band))
            )  # fmt: skip
    else:
        sensor_scaling = (spec.scale, spec.offset) if spec else (1.0, 0.0)
        for band, mean, std in _cross_sensor_bands(src, contract, found, warnings):
            s, o = scaling(band, sensor_scaling)
            mapped.append(
                MappedBand(band.index, band.name, band.wavelength_nm, band.modality, s, o,
                           mean, std, nodata(band))
            )  # fmt: skip
    ratio = max(src.gsd_m / contract.gsd, contract.gsd / src.gsd_m)
    if ratio > GSD_WARN_RATIO:
        warnings.append(
            f"{src.path}: pixels are {src.gsd_m:.3g} m but model {contract.model_name} was "
            f"trained at {contract.gsd:g} m ({ratio:.1f}x apart); results may be poor"
        )
    return BandMapping(
        bands=tuple(mapped),
        sensor=spec.name if spec else "",
        gsd_m=src.gsd_m,
        cross_sensor=cross,
        warnings=tuple(warnings),
    )
