"""Check a raster's values before mapping: units, the Sentinel-2 offset and the band order.

:func:`check_values` looks at the probe (:func:`gfmcli.io.reader.probe_raster`, a bounded
sample of valid pixels) of the bands a mapping uses and refuses what it is sure is a scaling or
band-order mistake, warns where the evidence is weaker, and reads float reflectance given a DN
scale only by default as reflectance. The rules and their measured detection rates are in
docs/formats.md ("What is checked before mapping"); reading windows stays in ``reader``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gfmcli.errors import InputError
from gfmcli.io.reader import Probe, RasterSource

if TYPE_CHECKING:
    from gfmcli.io.bands import BandMapping, MappedBand

# Values checks on the decimated probe (docs/formats.md, "What is checked before mapping").
DN_MEDIAN_SURE = 5.0  # reflectance whose median is above this is digital numbers read unscaled
DN_MEDIAN_ODD = 1.5
REFLECTANCE_RAW_RANGE = (-0.5, 2.0)  # float raw values here (1st..99th percentile) are reflectance
NEGATIVE_SHARE_SURE = 0.05  # share of a visible band below reflectance 0 that disproves an offset
# Reading a Sentinel-2 file without the offset takes this share below reflectance -0.03 too:
# atmospheric correction leaves dark water a little below 0 (why ESA added the +1000 DN), not
# this far, while an archive file's visible bands over land are much below DN 700 (measured on
# the kit's pre-2022 files: 21-84 % of a visible band; a bright steppe 0 %: refused, as before).
NEGATIVE_FAR = -0.03
VISIBLE_NM = (400.0, 700.0)
# Band order: NIR (720-1000 nm) goes its own way (vegetation), visible and SWIR go together.
NIR_NM = (720.0, 1000.0)
ORDER_SAMPLE = 20000  # pixels of the probe used for band-to-band correlations
ORDER_ALTERNATIVES = 200  # random orders compared with the stated one (plus the reversed one)
ORDER_REFUSE_MARGIN = 0.25  # another order fits this much better and the stated one fits < 0
ORDER_WARN_MARGIN = 0.15
ORDER_FIT_FLOOR = -0.05
# Shuffles: neighbours in the stated order vs the best chain, when the chain shows structure.
ORDER_CHAIN_FLOOR = 0.1
ORDER_NEIGHBOUR_REFUSE = 0.2
ORDER_NEIGHBOUR_WARN = 0.3
# A stated order whose split fit is at least this and beaten by no other order is taken as
# right whatever the neighbour score says: with few, widely spaced bands (Landsat's 7) over
# uniform vegetation, wavelength neighbours across the red edge are anti-correlated and the
# neighbour score of the true order falls below a shuffle's (measured: 3 of 6 BigEarthNet
# patches stacked as Landsat 8 were refused before this rule).
ORDER_SPLIT_SURE = 0.3
# The split rule refuses only when some order fits clearly (a scene with vegetation contrast);
# below that it warns: over open water or another uniform surface the correlations are noise,
# and the best of 200 random orders beats the true one by chance (measured: 5 of 102 ocean-only
# 32 x 32 crops of the Long Island Landsat 8 scene were refused, none with this floor).
ORDER_STRUCTURE_REFUSE = 0.35


def _explicit(band: MappedBand) -> bool:
    from gfmcli.scaling import EXPLICIT_SOURCES

    return band.scale_source in EXPLICIT_SOURCES


def _integer_median(values: np.ndarray, scale: float, offset: float) -> float:
    """``np.median(values.astype(np.float64) * scale + offset)`` of integer ``values``, bit for
    bit, without a scaled float64 copy of them all: ``x * scale + offset`` keeps the values'
    order (reverses it for a negative scale), so the median is the mean of the scaled middle
    one or two values, found by partitioning the integers themselves."""
    half = values.size // 2
    kth = [half - 1, half] if values.size % 2 == 0 else [half]
    middle = np.partition(values, kth)[kth].astype(np.float64)
    return float(np.mean(middle * scale + offset))


def _units(
    src: RasterSource, mapping: BandMapping, raw: np.ndarray
) -> tuple[list[MappedBand], list[str]]:
    """The units rules: returns the bands (float reflectance rescaled to 1/0 where the scaling
    was only a default) and warnings; raises InputError when sure the scaling is wrong."""
    from gfmcli.scaling import CLI

    bands, warnings, rescaled = [], [], []
    for layer, band in zip(raw, mapping.bands, strict=True):
        floating = src.dtypes[band.index - 1].startswith("float")
        # Integers are looked at as they are (their min and max are the same numbers in
        # float64): a float64 copy and two sorts of the 1 M-pixel probe per band were 0.2-0.4 s
        # of every run before its first window.
        values = layer.astype(np.float64) if floating else layer
        where = f"{src.path}: band {band.index} ({band.name})"
        if band.modality == "radar":
            if values.min() >= 0:
                warnings.append(
                    f"{where}: all values are >= 0, which looks like linear power, not dB; "
                    "convert with 10*log10(value)"
                )
            bands.append(band)
            continue
        if floating and band.scale < 0.01:  # float data scaled as DN: reflectance already?
            low, high = np.percentile(values, [1, 99])
            if REFLECTANCE_RAW_RANGE[0] <= low and high <= REFLECTANCE_RAW_RANGE[1]:
                if _explicit(band):
                    raise InputError(
                        f"{where}: values are already reflectance (1st-99th percentile "
                        f"{low:.3g}..{high:.3g}) but {band.scale_source} scales them by "
                        f"{band.scale:g} as if they were digital numbers; pass --scale 1 "
                        "--offset 0"
                        + (" (or the sensor's -toa product)" if band.scale_source != CLI else "")
                    )
                band = dataclasses.replace(band, scale=1.0, offset=0.0, scale_source="float data")
                rescaled.append(band.name)
        median = (
            float(np.median(values * band.scale + band.offset))
            if floating
            else _integer_median(values, band.scale, band.offset)
        )
        if median > DN_MEDIAN_SURE:
            raise InputError(
                f"{where}: values give reflectance {median:.4g} (median) with scale "
                f"{band.scale:g} from {band.scale_source}; they are digital numbers read "
                "unscaled: pass the right --sensor (see `gfm sensors`) or --scale (e.g. 1e-4 "
                "for reflectance x 10000)"
            )
        if median > DN_MEDIAN_ODD:
            warnings.append(
                f"{where}: values give reflectance {median:.3g} (median), more than bright snow; "
                "check the scaling (--scale/--offset)"
            )
        elif median < 0.002 and values.min() >= -0.5 and values.max() <= 2 and not floating:
            warnings.append(
                f"{where}: values already look like reflectance (0..1) but are scaled by "
                f"{band.scale:g} as if they were digital numbers; pass --scale 1 if they are"
            )
        bands.append(band)
    if rescaled:
        listed = ", ".join(rescaled[:4]) + ("…" if len(rescaled) > 4 else "")
        warnings.append(
            f"{src.path}: float values already in reflectance (0..1); read with scale 1, "
            f"offset 0 ({listed}); pass --scale to override"
        )
    return bands, warnings


def _pre2022(sensor: str) -> str:
    """The pre-2022 sensor of the level a Sentinel-2 file was read as (L2A when unsure)."""
    level = "l1c" if "l1c" in sensor else "l2a"
    return f"sentinel2-{level}-pre2022"


# The scaling source of Sentinel-2 bands read without the default +1000 DN offset (below).
NO_OFFSET = "the values (no +1000 DN offset)"


def _offset(
    src: RasterSource, sensor: str, bands: list[MappedBand], raw: np.ndarray
) -> tuple[list[MappedBand], str | None, str]:
    """The offset rule of :func:`check_values`: when a negative offset puts many visible-band
    pixels below zero reflectance, returns a warning (a stated offset); reads a Sentinel-2 file
    whose offset was only a default with offset 0 when many are far below zero too (a file made
    before 2022, without the +1000 DN of baseline 04.00, or harmonized: most archive files),
    says so and gives the ``-pre2022`` sensor it was read as; raises InputError otherwise.
    Returns the bands, the warning and the sensor the file was read as."""
    for layer, band in zip(raw, bands, strict=True):
        if band.offset >= 0 or not VISIBLE_NM[0] <= band.wavelength_nm <= VISIBLE_NM[1]:
            continue
        reflectance = layer.astype(np.float64) * band.scale + band.offset
        share = float(np.mean(reflectance < 0))
        if share <= NEGATIVE_SHARE_SURE:
            continue
        threshold = -band.offset / band.scale if band.scale else 0.0
        text = (
            f"{src.path}: band {band.index} ({band.name}): {share:.0%} of the values are below "
            f"{threshold:g}, i.e. negative reflectance with offset {band.offset:g} from "
            f"{band.scale_source}"
        )
        if _explicit(band):
            return bands, f"{text}; check the offset", sensor
        s2 = sensor.startswith("sentinel2")
        if not s2 or float(np.mean(reflectance < NEGATIVE_FAR)) <= NEGATIVE_SHARE_SURE:
            fix = (
                "it is a file from before 2022 (processing baseline < 04.00) or a harmonized "
                f"one: pass --sensor {_pre2022(sensor)}, or --offset 0"
                if s2
                else "pass --offset 0 or the right --sensor"
            )
            raise InputError(f"{text}; {fix}")
        read = [
            dataclasses.replace(b, offset=0.0, scale_source=NO_OFFSET)
            if b.offset == band.offset and not _explicit(b)
            else b
            for b in bands
        ]
        warning = (
            f"{text}: read with offset 0, as a file from before 2022 (processing baseline < "
            f"04.00) or a harmonized one; pass --sensor {_pre2022(sensor)} to read it so "
            "without this warning, or --offset"
        )
        return read, warning, _pre2022(sensor)
    return bands, None, sensor


def order_fit(corr: np.ndarray, wavelengths: np.ndarray) -> float:
    """How well band-to-band correlations fit the wavelengths the bands are said to have: mean
    correlation of pairs on the same side of the NIR/non-NIR divide minus that of pairs across
    it (NaN when one side is empty). A real scene with vegetation scores well above 0 in its
    true order and below 0 reversed; scenes without vegetation contrast (snow, clouds, desert,
    water) score near 0 whatever the order, so the check cannot tell there."""
    nir = (wavelengths >= NIR_NM[0]) & (wavelengths < NIR_NM[1])
    upper = np.triu_indices(len(wavelengths), 1)
    same = nir[upper[0]] == nir[upper[1]]
    if same.all() or not same.any():
        return math.nan
    values = corr[upper]
    return float(values[same].mean() - values[~same].mean())


def neighbour_fit(corr: np.ndarray, order: np.ndarray) -> float:
    """Mean correlation of bands adjacent in ``order`` minus the mean over all pairs: clearly
    above 0 for bands in wavelength order (neighbouring bands look alike), about 0 shuffled."""
    upper = np.triu_indices(len(order), 1)
    adjacent = corr[order[:-1], order[1:]]
    return float(adjacent.mean() - corr[upper].mean())


def best_chain_fit(corr: np.ndarray) -> float:
    """:func:`neighbour_fit` of the best greedy chain (each step to the most correlated band
    left), from up to 12 starting bands: about what the true order would score."""
    best = -math.inf
    for start in range(min(len(corr), 12)):
        order, left = [start], set(range(len(corr))) - {start}
        while left:
            row = corr[order[-1]]
            order.append(max(left, key=lambda j: row[j]))
            left.discard(order[-1])
        best = max(best, neighbour_fit(corr, np.array(order)))
    return best


@dataclass(frozen=True)
class OrderEvidence:
    """What the band-to-band correlations of a probe say about the stated band order.

    ``split``: :func:`order_fit` stated; ``split_best``: the best of the reversed order and
    ORDER_ALTERNATIVES random ones (``reversed_best`` when the reversed one). ``neighbours``:
    :func:`neighbour_fit` in stated wavelength order, ``chain``: :func:`best_chain_fit`.
    """

    split: float
    split_best: float
    reversed_best: bool
    neighbours: float
    chain: float


def band_order_evidence(values: np.ndarray, wavelengths: list[float]) -> OrderEvidence | None:
    """The evidence for the optical bands of a probe (raw values of valid pixels, ``(C, n)``),
    or None when the check cannot apply (fewer than 3 bands with variance or fewer than 100
    valid pixels)."""
    waves = np.asarray(wavelengths, dtype=np.float64)
    if values.shape[1] < 100:
        return None
    # Subsample before converting: the same pixels as converting first, without a float64
    # copy of the whole probe (12 bands x 1 M pixels: 100 MB and ~0.1 s).
    values = values[:, :: max(1, values.shape[1] // ORDER_SAMPLE)].astype(np.float64)
    varying = values.std(axis=1) > 0
    values, waves = values[varying], waves[varying]
    if len(waves) < 3:
        return None
    corr = np.corrcoef(values)
    split = order_fit(corr, waves)
    best, reversed_best = math.nan, False
    if not math.isnan(split):
        reversed_fit = order_fit(corr, waves[::-1])
        rng = np.random.default_rng(0)
        others = [
            order_fit(corr, waves[rng.permutation(len(waves))]) for _ in range(ORDER_ALTERNATIVES)
        ]
        best = max([reversed_fit, *others])
        reversed_best = best == reversed_fit
    return OrderEvidence(
        split, best, reversed_best, neighbour_fit(corr, np.argsort(waves)), best_chain_fit(corr)
    )


def _band_order(src: RasterSource, bands: list[MappedBand], raw: np.ndarray) -> str | None:
    """The band-order rule of :func:`check_values`; returns a warning or None."""
    optical = [i for i, b in enumerate(bands) if b.modality == "optical"]
    found = band_order_evidence(raw[optical], [bands[i].wavelength_nm for i in optical])
    if found is None:
        return None
    margin = found.split_best - found.split if not math.isnan(found.split) else 0.0
    split_sure = found.split >= ORDER_SPLIT_SURE and margin <= 0.0
    ratio = (
        found.neighbours / found.chain
        if found.chain > ORDER_CHAIN_FLOOR and not split_sure
        else 1.0
    )
    structured = found.split_best >= ORDER_STRUCTURE_REFUSE
    refuse = (found.split < ORDER_FIT_FLOOR and margin > ORDER_REFUSE_MARGIN and structured) or (
        ratio < ORDER_NEIGHBOUR_REFUSE
    )
    warn = (found.split < 0 and margin > ORDER_WARN_MARGIN) or ratio < ORDER_NEIGHBOUR_WARN
    if not (refuse or warn):
        return None
    if margin > ORDER_WARN_MARGIN and found.split < 0:
        which = "the reversed order" if found.reversed_best else "another order"
        why = (
            f"visible and SWIR bands should go together and NIR bands apart, which fits "
            f"{which} ({found.split_best:+.2f}) better than the stated one ({found.split:+.2f})"
        )
    else:
        why = (
            f"bands said to be wavelength neighbours are hardly more alike than any two "
            f"({found.neighbours:+.2f}; another order reaches {found.chain:+.2f})"
        )
    text = f"{src.path}: the band order looks wrong: {why}"
    if refuse:
        raise InputError(
            f"{text}; check the band descriptions, --bands or --sensor (a reversed or shuffled "
            "stack?), or pass --no-order-check if the order is right"
        )
    return f"{text}; check the band descriptions or --bands"


def check_values(
    src: RasterSource, mapping: BandMapping, probe: Probe, *, check_order: bool = True
) -> BandMapping:
    """Check the probe's values (:func:`probe_raster`) of the mapped bands before mapping.

    Units: float values within reflectance range scaled as DN are an error when the scaling was
    stated (``--scale``, the file, its tags, ``--sensor``) and are read as reflectance when it
    was only a default; a median reflectance above DN_MEDIAN_SURE is an error (DN unscaled).
    Offset: more than NEGATIVE_SHARE_SURE of a visible band below zero reflectance is a warning
    when the offset was stated; when it was a default, a Sentinel-2 file (one from before 2022,
    without the +1000 DN, many values far below zero) is read with offset 0 as its ``-pre2022``
    sensor and a warning; otherwise an error.
    Band order (``check_order``): when another order of the bands fits the band-to-band
    correlations much better than the stated one, an error, or a warning when the evidence is
    weaker. Returns the mapping with any re-read bands and the warnings added (nothing is
    checked when the probe found no valid pixel).
    """
    if probe.empty:
        return mapping
    raw = probe.values
    bands, warnings = _units(src, mapping, raw)
    bands, offset, read_as = _offset(src, mapping.sensor, bands, raw)
    warnings += [offset] if offset else []
    order = _band_order(src, bands, raw) if check_order else None
    warnings += [order] if order else []
    return dataclasses.replace(
        mapping, bands=tuple(bands), sensor=read_as, warnings=(*mapping.warnings, *warnings)
    )
