"""What lies between the ground and a top-of-atmosphere sensor: air, haze, clouds and snow.

The simulator renders *surface* reflectance (what an L2A or Collection 2 L2 product holds).
Real archives are full of top-of-atmosphere products (Sentinel-2 L1C, Landsat L1/TOA) and of
cloudy scenes, and a model trained only on clean surface reflectance reads the blue-lifted TOA
spectrum of a forest as something bright and built (measured on real L1C chips: 0 % of the
forest came out as tree cover). Every function here works on a (C, H, W) float32 reflectance
array and the C band wavelengths in nm, so one rulebook serves every sensor, the simulator
(``gfm simulate --level toa --clouds``) and training-time augmentation alike.

The physics is a deliberately simple single-scattering picture, with magnitudes checked against
real L1C minus L2A differences (blue path reflectance 0.04-0.09, red 0.01-0.03, NIR < 0.01):

- Rayleigh optical depth ``tau_r = 0.008569 l^-4 (1 + 0.0113 l^-2 + 0.00013 l^-4)`` (l in um)
  and aerosol optical depth ``tau_a = aot550 (l / 0.55)^-alpha``;
- path reflectance ``(0.5 tau_r + 0.15 tau_a) / (2 mu_s)`` added, two-way transmittance
  ``exp(-(0.5 tau_r + 0.3 tau_a)(1 + 1 / mu_s))`` applied to the surface term;
- water vapour absorbs around 940 nm (transmittance 0.25-0.7) and almost everything around
  1375 nm (the cirrus band sees high clouds, not the ground);
- clouds: fractal optical-thickness fields, opaque cores with thin edges, a flat bright
  spectrum (lower in the SWIR, high at 1375 nm for high clouds), shadows displaced along the
  sun azimuth by ``height / tan(sun elevation)``, lit by blue-rich diffuse skylight only;
- snow: a high visible albedo that falls steeply in the SWIR (what tells it from cloud).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gfmcli.simulate.noise import fractal_noise

WATER_VAPOUR_NM = (900.0, 990.0)
CIRRUS_NM = (1340.0, 1420.0)


def _as_microns(wavelengths_nm: object) -> np.ndarray:
    return np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1) / 1000.0


def rayleigh_optical_depth(wavelengths_nm: object) -> np.ndarray:
    """Sea-level Rayleigh optical depth per band (Hansen and Travis's fit)."""
    um = _as_microns(wavelengths_nm)
    return 0.008569 * um**-4 * (1 + 0.0113 * um**-2 + 0.00013 * um**-4)


def _in(wavelengths_nm: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    return (wavelengths_nm >= span[0]) & (wavelengths_nm <= span[1])


@dataclass(frozen=True)
class Atmosphere:
    """One scene's atmosphere: aerosol optical depth at 550 nm, Angstrom exponent, water
    vapour transmittance at 940 nm and the sun elevation in degrees."""

    aot550: float
    angstrom: float
    water_vapour_transmittance: float
    sun_elevation_deg: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Atmosphere:
        """A plausible clear-sky atmosphere (continental aerosol, mid-latitude sun)."""
        return cls(
            aot550=float(rng.uniform(0.03, 0.35)),
            angstrom=float(rng.uniform(0.8, 1.8)),
            water_vapour_transmittance=float(rng.uniform(0.25, 0.7)),
            sun_elevation_deg=float(rng.uniform(25.0, 65.0)),
        )

    def path_and_transmittance(self, wavelengths_nm: object) -> tuple[np.ndarray, np.ndarray]:
        """Per-band path reflectance and two-way transmittance of the surface term."""
        wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
        mu = np.sin(np.radians(self.sun_elevation_deg))
        tau_r = rayleigh_optical_depth(wl)
        tau_a = self.aot550 * (wl / 550.0) ** -self.angstrom
        path = (0.5 * tau_r + 0.15 * tau_a) / (2 * mu)
        trans = np.exp(-(0.5 * tau_r + 0.3 * tau_a) * (1 + 1 / mu))
        trans = np.where(_in(wl, WATER_VAPOUR_NM), trans * self.water_vapour_transmittance, trans)
        cirrus = _in(wl, CIRRUS_NM)
        trans = np.where(cirrus, trans * 0.01, trans)
        path = np.where(cirrus, 0.0015, path)
        return path.astype(np.float32), trans.astype(np.float32)


def to_toa(
    surface: np.ndarray,
    wavelengths_nm: object,
    atmosphere: Atmosphere,
    rng: np.random.Generator | None = None,
    haze_cell: float | None = None,
) -> np.ndarray:
    """Top-of-atmosphere reflectance of a (C, H, W) surface reflectance array.

    With ``rng`` and ``haze_cell`` (pixels) the aerosol varies smoothly over the scene (patches
    of haze up to twice the scene's optical depth), as real L1C scenes show.
    """
    path, trans = atmosphere.path_and_transmittance(wavelengths_nm)
    if rng is None or haze_cell is None:
        return (surface * trans[:, None, None] + path[:, None, None]).astype(np.float32)
    haze = fractal_noise(surface.shape[1:], haze_cell, rng)
    haze = np.clip(1.0 + 0.6 * haze, 0.3, 2.0).astype(np.float32)
    hazy = Atmosphere(
        atmosphere.aot550 * 2.0,
        atmosphere.angstrom,
        atmosphere.water_vapour_transmittance,
        atmosphere.sun_elevation_deg,
    )
    path2, trans2 = hazy.path_and_transmittance(wavelengths_nm)
    weight = (haze - 1.0).clip(0.0, 1.0)[None]  # 0 = scene atmosphere, 1 = twice the aerosol
    path_field = path[:, None, None] + weight * (path2 - path)[:, None, None]
    trans_field = trans[:, None, None] + weight * (trans2 - trans)[:, None, None]
    return (surface * trans_field + path_field).astype(np.float32)


def cloud_spectrum(wavelengths_nm: object, high: bool) -> np.ndarray:
    """Reflectance of an optically thick cloud per band: flat and bright from the blue to the
    NIR, lower in the SWIR (ice and droplets absorb there); only high clouds reach above the
    water vapour that hides the 1375 nm cirrus band."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    value = np.interp(wl, [400, 900, 1250, 1650, 2200, 2500], [0.78, 0.72, 0.62, 0.5, 0.33, 0.3])
    cirrus = _in(wl, CIRRUS_NM)
    value = np.where(cirrus, 0.45 if high else 0.02, value)
    return value.astype(np.float32)


def snow_spectrum(wavelengths_nm: object, grain: float = 0.5) -> np.ndarray:
    """Reflectance of fresh-to-old snow (``grain`` 0-1 lowers the NIR/SWIR as grains grow)."""
    wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    value = np.interp(
        wl,
        [400, 700, 900, 1050, 1250, 1500, 1650, 2200, 2500],
        [
            0.95,
            0.93,
            0.85 - 0.1 * grain,
            0.7 - 0.15 * grain,
            0.45 - 0.15 * grain,
            0.08,
            0.1,
            0.04,
            0.02,
        ],
    )
    return value.astype(np.float32)


@dataclass(frozen=True)
class CloudField:
    """Per-pixel cloud opacity (0-1) and the opacity of the cloud whose shadow falls there."""

    opacity: np.ndarray
    shadow: np.ndarray


def cloud_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    gsd_m: float,
    cover: float,
    sun_elevation_deg: float = 45.0,
    height_m: float | None = None,
    peak_opacity: float | None = None,
) -> CloudField:
    """Fractal clouds covering about ``cover`` of the scene, with soft thin edges, and where
    their shadows fall (displaced by height / tan(elevation) along a random azimuth).

    A ``peak_opacity`` below 0.85 (default: drawn from 0.85-1) makes a veil of thin cloud,
    the kind that lifts a real Landsat 7 scene's visible bands by only 0.04-0.05 over wide
    areas and that real cloud masks still flag. The random draws are the same either way."""
    h, w = shape
    cell = max(4.0, rng.uniform(600.0, 2500.0) / gsd_m)
    field = fractal_noise(shape, cell, rng, octaves=4)
    threshold = float(np.quantile(field, 1.0 - float(np.clip(cover, 0.0, 1.0))))
    edge = float(rng.uniform(0.08, 0.3)) * float(field.std() + 1e-6)
    opacity = np.clip((field - threshold) / edge, 0.0, 1.0).astype(np.float32)
    peak = float(rng.uniform(0.85, 1.0))
    opacity = opacity * np.float32(peak if peak_opacity is None else peak_opacity)
    height = height_m if height_m is not None else float(rng.uniform(800.0, 4000.0))
    shift = height / np.tan(np.radians(sun_elevation_deg)) / gsd_m
    azimuth = rng.uniform(0, 2 * np.pi)
    dy, dx = int(np.rint(shift * np.sin(azimuth))), int(np.rint(shift * np.cos(azimuth)))
    shadow = np.zeros_like(opacity)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dy) < h and abs(dx) < w:
        shadow[yd, xd] = opacity[ys, xs]
    return CloudField(opacity, shadow)


def add_clouds(
    reflectance: np.ndarray,
    wavelengths_nm: object,
    field: CloudField,
    rng: np.random.Generator,
    *,
    labels: np.ndarray | None = None,
    cloud_class: int = 6,
    shadow_class: int = 7,
    label_threshold: float = 0.4,
    shadow_threshold: float = 0.4,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shadows then clouds over a (C, H, W) reflectance array (surface or TOA).

    A shadow keeps only the diffuse skylight (10-30 %, more in the blue); a cloud blends its
    own spectrum over what lies below by its opacity. Labels (when given) get ``cloud_class``
    where the opacity exceeds ``label_threshold`` and ``shadow_class`` where the shadowing
    cloud's exceeds ``shadow_threshold`` and no cloud is labelled: cloud edges thinner than
    that keep the class below. Real cloud masks flag thin cloud (the
    ukis-csmask Landsat 7 scene's cloud has its blue band only 0.05 above clear land), while a
    shadow that faint is not one, hence two thresholds.
    """
    wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    diffuse = np.interp(wl, [400, 700, 1000, 2500], [0.35, 0.2, 0.14, 0.1]).astype(np.float32)
    diffuse *= np.float32(rng.uniform(0.7, 1.3))
    keep = 1.0 - field.shadow[None] * (1.0 - diffuse[:, None, None])
    out = reflectance * keep
    spectrum = cloud_spectrum(wl, high=bool(rng.random() < 0.4))
    spectrum *= np.float32(rng.uniform(0.75, 1.15))
    opacity = field.opacity[None]
    out = out * (1.0 - opacity) + spectrum[:, None, None] * opacity
    if labels is None:
        return out.astype(np.float32), None
    labels = labels.copy()
    shadowed = (field.shadow > shadow_threshold) & (field.opacity <= label_threshold)
    labels[shadowed & (labels != 255)] = shadow_class
    labels[field.opacity > label_threshold] = cloud_class
    return out.astype(np.float32), labels


def add_snow(
    reflectance: np.ndarray,
    wavelengths_nm: object,
    rng: np.random.Generator,
    *,
    cover: float,
    gsd_m: float,
    labels: np.ndarray | None = None,
    snow_class: int = 8,
    forbid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Patchy snow over about ``cover`` of the scene (not where ``forbid`` is true, e.g. open
    water); fully covered pixels are labelled ``snow_class``."""
    shape = reflectance.shape[1:]
    field = fractal_noise(shape, max(4.0, 1500.0 / gsd_m), rng, octaves=4)
    threshold = float(np.quantile(field, 1.0 - float(np.clip(cover, 0.0, 1.0))))
    frac = np.clip((field - threshold) / (0.15 * float(field.std() + 1e-6)), 0.0, 1.0)
    if forbid is not None:
        frac = np.where(forbid, 0.0, frac)
    frac = frac.astype(np.float32)
    spectrum = snow_spectrum(wavelengths_nm, grain=float(rng.uniform(0, 1)))
    out = reflectance * (1 - frac[None]) + spectrum[:, None, None] * frac[None]
    if labels is None:
        return out.astype(np.float32), None
    labels = labels.copy()
    labels[(frac > 0.6) & (labels != 255)] = snow_class
    return out.astype(np.float32), labels
