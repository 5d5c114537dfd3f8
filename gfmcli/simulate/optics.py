"""Terrain and sensor effects on rendered bands: shading, adjacency, PSF, misregistration, gain.

All functions take float32 reflectance (a band ``(rows, cols)`` or a stack ``(bands, rows,
cols)``) and return new float32 arrays; randomness comes in as explicit arguments or an
``np.random.Generator``, so a render stays deterministic in its seed.

* ``terrain_illumination``: a DEM from fractal noise on a fixed 20 m ground grid (the same
  terrain for every sensor) and the cosine illumination factor of a sloped Lambertian surface
  under direct sun plus diffuse sky.
* ``adjacency``: light scattered in from the surroundings, a wavelength-dependent blend of each
  pixel with its neighbourhood mean (about 300 m), as a top-of-atmosphere image shows.
* ``psf_shift``: a Gaussian point spread function (the MTF of optics and detector) centred on a
  sub-pixel shift (band-to-band misregistration), as one separable filter.
"""

from __future__ import annotations

import numpy as np

from gfmcli.simulate.noise import fractal_noise

DEM_GSD_M = 20.0  # terrain is laid out on this ground grid whatever the sensor


def resample_bilinear(field: np.ndarray, field_gsd: float, gsd: float, shape) -> np.ndarray:
    """Bilinear samples of ``field`` (pixels of ``field_gsd``) at the centres of a ``gsd`` grid
    of ``shape`` with the same top-left corner; edges are held."""

    def axis(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        pos = (np.arange(n) + 0.5) * gsd / field_gsd - 0.5
        pos = np.clip(pos, 0.0, size - 1.0)
        i0 = np.minimum(pos.astype(np.intp), max(size - 2, 0))
        return i0, (pos - i0).astype(np.float32)

    (i0, ty), (j0, tx) = axis(shape[0], field.shape[0]), axis(shape[1], field.shape[1])
    i1 = np.minimum(i0 + 1, field.shape[0] - 1)
    j1 = np.minimum(j0 + 1, field.shape[1] - 1)
    rows = field[i0] * (1.0 - ty)[:, None] + field[i1] * ty[:, None]
    return (rows[:, j0] * (1.0 - tx) + rows[:, j1] * tx).astype(np.float32)


def elevation(
    height_m: float, width_m: float, relief_m: float, rng: np.random.Generator
) -> np.ndarray:
    """Terrain heights (m) on the ``DEM_GSD_M`` grid over the scene: fractal noise with
    features of about 1.5 km, scaled so that ``relief_m`` is about four standard deviations."""
    shape = (int(np.ceil(height_m / DEM_GSD_M)) + 1, int(np.ceil(width_m / DEM_GSD_M)) + 1)
    dem = fractal_noise(shape, 1500.0 / DEM_GSD_M, rng, octaves=4)
    dem *= np.float32(relief_m / 4.0 / max(float(dem.std()), 1e-6))
    return dem


def terrain_illumination(
    dem: np.ndarray,
    sun_elevation_deg: float,
    sun_azimuth_deg: float,
    diffuse: float = 0.2,
) -> np.ndarray:
    """Relative irradiance of each DEM cell against flat ground: ``(1 - diffuse) cos(i) /
    cos(z) + diffuse``, with ``i`` the local incidence angle, ``z`` the solar zenith angle and
    ``diffuse`` the share of skylight (unaffected by slope); slopes facing away from the sun get
    the sky only."""
    gy, gx = np.gradient(dem.astype(np.float64), DEM_GSD_M)
    # Rows run south (y down): the surface normal is (-dz/dx, +dz/dy, 1) in (east, north, up).
    normal = np.stack([-gx, gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=0)
    zen, az = np.radians(90.0 - sun_elevation_deg), np.radians(sun_azimuth_deg)
    sun = np.array([np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az), np.cos(zen)])
    cos_i = np.maximum(np.tensordot(sun, normal, axes=1), 0.0)
    return ((1.0 - diffuse) * cos_i / np.cos(zen) + diffuse).astype(np.float32)


def adjacency(stack: np.ndarray, wavelengths_nm, gsd: float, strength: float) -> np.ndarray:
    """Blend each pixel with its ~300 m neighbourhood by ``strength`` x (lambda/550)^-1.5
    (at most 0.5): the adjacency effect of an atmosphere that scatters more in the blue."""
    if strength <= 0:
        return stack
    k = max(1, round(300.0 / gsd))
    rows, cols = stack.shape[1:]
    pad = ((0, 0), (0, (-rows) % k), (0, (-cols) % k))
    blocks = np.pad(stack, pad, mode="edge")
    means = blocks.reshape(stack.shape[0], blocks.shape[1] // k, k, -1, k).mean(axis=(2, 4))
    out = np.empty_like(stack)
    for b, wl in enumerate(wavelengths_nm):
        weight = np.float32(min(0.5, strength * (float(wl) / 550.0) ** -1.5))
        around = resample_bilinear(means[b], k * gsd, gsd, (rows, cols))
        out[b] = stack[b] + weight * (around - stack[b])
    return out


def _taps(sigma_px: float, shift_px: float) -> tuple[np.ndarray, int]:
    """1-D filter taps and radius: a Gaussian of ``sigma_px`` centred on ``shift_px`` (linear
    interpolation when there is no blur)."""
    radius = int(np.ceil(3.0 * sigma_px + abs(shift_px))) if sigma_px > 0.05 else 1
    radius = max(radius, int(np.ceil(abs(shift_px))))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    if sigma_px > 0.05:
        taps = np.exp(-0.5 * ((t - shift_px) / sigma_px) ** 2)
    else:
        taps = np.maximum(1.0 - np.abs(t - shift_px), 0.0)
    return (taps / taps.sum()).astype(np.float32), radius


def psf_shift(band: np.ndarray, sigma_px: float, shift_px: tuple[float, float]) -> np.ndarray:
    """``band`` seen through a Gaussian PSF of ``sigma_px`` pixels and shifted by ``shift_px``
    (rows, cols; positive moves content down/right), edges held; separable."""
    if sigma_px <= 0.05 and shift_px == (0.0, 0.0):
        return band
    out = band
    for axis, shift in ((0, shift_px[0]), (1, shift_px[1])):
        taps, radius = _taps(sigma_px, -shift)
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], "edge")
        n = out.shape[axis]
        acc = np.zeros(out.shape, dtype=np.float32)
        for i, w in enumerate(taps):
            if w:
                acc += w * (padded[i : i + n] if axis == 0 else padded[:, i : i + n])
        out = acc
    return out
