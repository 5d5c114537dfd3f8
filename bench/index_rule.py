"""A spectral-index rule baseline for the real-data benchmark (bench/real.py).

What a remote-sensing engineer writes in ten minutes without any model: thresholds on NDVI,
MNDWI (or NDWI without a SWIR band), NDBI, NDSI, brightness and whiteness. gfm's learned
weights must beat it on average (issue #9), so it is written the way such rules usually are,
not tuned on the benchmark's sources.
"""

from __future__ import annotations

import numpy as np

WATER, TREE, GRASS, BARE, BUILT, BURNED, CLOUD, SHADOW, SNOW = range(9)


def _band(reflectance: np.ndarray, wavelengths: list[float], target: float, tol: float):
    """The band nearest ``target`` nm, or None when none lies within ``tol``."""
    diffs = [abs(w - target) for w in wavelengths]
    i = int(np.argmin(diffs))
    return reflectance[i] if diffs[i] <= tol else None


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num((a - b) / (a + b))


def index_rule(reflectance: np.ndarray, wavelengths: list[float]) -> np.ndarray:
    """(C, H, W) reflectance (0-1) and band wavelengths (nm) -> (H, W) uint8 gfm class ids."""
    blue = _band(reflectance, wavelengths, 490, 40)
    green = _band(reflectance, wavelengths, 560, 30)
    red = _band(reflectance, wavelengths, 660, 30)
    nir = _band(reflectance, wavelengths, 850, 50)
    swir1 = _band(reflectance, wavelengths, 1620, 80)
    if blue is None or green is None or red is None or nir is None:
        raise ValueError("the index rule needs blue, green, red and NIR bands")
    ndvi = _ratio(nir, red)
    water_index = _ratio(green, swir1) if swir1 is not None else _ratio(green, nir)
    ndbi = _ratio(swir1, nir) if swir1 is not None else -_ratio(nir, red)
    visible = (blue + green + red) / 3
    whiteness = (np.abs(blue - visible) + np.abs(green - visible) + np.abs(red - visible)) / (
        visible + 1e-6
    )
    out = np.full(ndvi.shape, BARE, np.uint8)
    out[ndbi > 0.0] = BUILT
    out[ndvi > 0.3] = GRASS
    out[ndvi > 0.6] = TREE
    out[(water_index > 0.1) & (nir < 0.15)] = WATER
    out[(nir < 0.1) & (visible < 0.06) & (out != WATER)] = SHADOW
    if swir1 is not None:
        out[(water_index > 0.4) & (nir > 0.11) & (green > 0.2)] = SNOW
    cloud = (visible > 0.25) & (whiteness < 0.7) & (ndvi < 0.3)
    if swir1 is not None:
        cloud &= swir1 > 0.15
    out[cloud & (out != SNOW)] = CLOUD
    return out
