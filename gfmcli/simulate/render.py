"""Render a land-cover map as one sensor sees it: band integration, mixing, effects, encoding.

Optical sensors: every object's two spectra are integrated over each band's response (a
Gaussian of the band's FWHM around its centre, on a 1 nm grid), so the per-pixel work is on
band values, not spectra. Each band is rendered at its own native GSD by averaging the map
over a sub-grid of sample points (mixed pixels at boundaries), then brought to the stack GSD by
nearest-neighbour resampling, the way users stack Sentinel-2's 20 m and 60 m bands at 10 m.
Then illumination, haze and sensor noise, and the sensor's encoding
``DN = round((reflectance - offset) / scale)`` clipped to 1..65535 (0 is nodata).

Sentinel-1: per-kind C-band backscatter (water specular and dark, forests volume scattering,
buildings double bounce), averaged in linear power over the pixel, plus the noise floor, times
gamma-distributed speckle, in dB (float32).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from affine import Affine

from gfmcli.sensors import RADAR, BandSpec, SensorSpec, get_sensor
from gfmcli.simulate.atmosphere import Atmosphere, CloudField, add_clouds, cloud_field, to_toa
from gfmcli.simulate.grid import block_sum, grid_shape, render_bands, render_labels, to_grid
from gfmcli.simulate.landcover import LANDCOVER_CLASSES, LandCoverMap, SimulatorError
from gfmcli.simulate.noise import value_noise
from gfmcli.simulate.optics import (
    DEM_GSD_M,
    adjacency,
    elevation,
    psf_shift,
    resample_bilinear,
    terrain_illumination,
)
from gfmcli.simulate.radar import render_radar
from gfmcli.simulate.spectra import KIND_ID, KINDS, load_library, sample_object_spectra

LABEL_NODATA = 255

# Relative per-pixel brightness texture by kind (tree crowns are the most textured).
# fmt: skip below: a table, kept in rows (ruff format would add 16 lines)
_TEXTURE = {"lake": 0.03, "river": 0.05, "tree": 0.3, "crop": 0.08, "grass": 0.12,
            "soil": 0.1, "roof": 0.12, "pavement": 0.1, "burned": 0.12, "shadow": 0.15,
            "rail": 0.15, "flatroof": 0.06, "concrete": 0.1, "conifer": 0.3, "stubble": 0.1,
            "shallow": 0.08, "snow": 0.05, "steppe": 0.15}  # fmt: skip
# Water vapour absorption at the top of the atmosphere: (centre nm, depth, sigma nm).
_VAPOUR = ((940.0, 0.55, 25.0), (1135.0, 0.5, 25.0), (1380.0, 0.97, 45.0), (1880.0, 0.98, 60.0))


@dataclass(frozen=True)
class Rendering:
    """An encoded image (bands, rows, cols), its majority-class labels and its georeferencing."""

    data: np.ndarray
    labels: np.ndarray
    sensor: SensorSpec
    gsd: float
    transform: Affine
    crs: str
    nodata: float | None
    level: str | None = None  # "surface" or "toa" for optical renders

    @property
    def band_names(self) -> tuple[str, ...]:
        return self.sensor.band_names

    def profile(self) -> dict[str, Any]:
        """rasterio creation options for ``data`` (tiled GeoTIFF)."""
        bands, height, width = self.data.shape
        # fmt: skip below: arguments grouped by meaning (ruff format would add 9 lines)
        return {
            "driver": "GTiff", "width": width, "height": height, "count": bands,
            "dtype": self.data.dtype.name, "crs": self.crs, "transform": self.transform,
            "nodata": self.nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "deflate", "interleave": "band",
        }  # fmt: skip


def band_response(
    bands: tuple[BandSpec, ...], wavelengths_nm: np.ndarray, toa: bool = False
) -> np.ndarray:
    """(n_bands, n_wavelengths) weights: a spectrum on ``wavelengths_nm`` times this gives band
    values. Gaussian of each band's FWHM on a 1 nm grid (narrow EnMAP bands are finer than the
    10 nm library grid), linearly interpolated from the library grid; ``toa`` adds water-vapour
    absorption, which a top-of-atmosphere product (Sentinel-2 L1C B09/B10) shows."""
    grid = np.asarray(wavelengths_nm, dtype=np.float64)
    fine = np.arange(grid[0], grid[-1] + 0.5, 1.0)
    interp = np.stack([np.interp(fine, grid, column) for column in np.eye(len(grid))], axis=1)
    centres = np.array([b.wavelength_nm for b in bands])[:, None]
    sigma = np.array([max(b.fwhm_nm, 1.0) for b in bands])[:, None] / 2.3548
    outside = [b.name for b in bands if not grid[0] <= b.wavelength_nm <= grid[-1]]
    if outside:
        raise SimulatorError(
            f"band(s) {', '.join(outside)} lie outside the spectra's {grid[0]:.0f}-"
            f"{grid[-1]:.0f} nm; render only optical bands in that range"
        )
    gauss = np.exp(-0.5 * ((fine[None, :] - centres) / sigma) ** 2)
    transmit = np.ones_like(fine)
    if toa:
        for centre, depth, width in _VAPOUR:
            transmit *= 1.0 - depth * np.exp(-0.5 * ((fine - centre) / width) ** 2)
    weights = gauss * transmit / gauss.sum(axis=1, keepdims=True)
    return (weights @ interp).astype(np.float32)


def swath_mask(landcover: LandCoverMap, gsd: float, fraction: float) -> np.ndarray:
    """True where a slanted swath edge leaves no data: about ``fraction`` of the scene's east
    side, defined on the ground so every sensor and resolution masks the same area."""
    shape = grid_shape(landcover, gsd)
    if fraction <= 0:
        return np.zeros(shape, dtype=bool)
    x = (np.arange(shape[1]) + 0.5)[None, :] * gsd
    y = (np.arange(shape[0]) + 0.5)[:, None] * gsd
    slope = np.tan(np.radians(8.0))
    return x + slope * (y - landcover.height_m / 2) > landcover.width_m * (1.0 - fraction)


def _rng(landcover: LandCoverMap, sensor: SensorSpec, seed: int) -> np.random.Generator:
    return np.random.default_rng([landcover.seed, int(seed), zlib.crc32(sensor.name.encode())])


@dataclass(frozen=True)
class Effects:
    """Acquisition and sensor effects of an optical render (``render``'s keyword arguments)."""

    level: str
    haze: float
    adjacency: float
    illumination: float
    terrain: bool
    glint: float
    blur: float
    misregistration: float
    gain_error: float
    noise: float
    cloud_cover: float
    cloud_seed: int


def _native_groups(sensor: SensorSpec, gsd: float, shape: tuple[int, int]):
    """Yield (native GSD, its grid shape, band indices) for each native resolution."""
    for native in sorted({max(b.gsd, gsd) for b in sensor.bands}):
        group = [i for i, b in enumerate(sensor.bands) if max(b.gsd, gsd) == native]
        native_shape = (
            max(1, int(np.ceil(shape[0] * gsd / native - 1e-6))),
            max(1, int(np.ceil(shape[1] * gsd / native - 1e-6))),
        )
        yield native, native_shape, group


def _to_native(band: np.ndarray, gsd: float, native: float, native_shape) -> np.ndarray:
    """A stack-grid band back on its native grid: the mean of each native pixel's stack pixels
    (nearest neighbour when the GSDs are not whole multiples)."""
    if native == gsd:
        return band
    k = native / gsd
    if abs(k - round(k)) > 1e-6:
        return to_grid(band, gsd, native, native_shape)
    k = round(k)
    rows, cols = native_shape[0] * k, native_shape[1] * k
    padded = np.pad(band, ((0, rows - band.shape[0]), (0, cols - band.shape[1])), mode="edge")
    return block_sum(padded[:rows, :cols], k) / np.float32(k * k)


def _ground_illumination(landcover, gsd, shape, rng, effects: Effects) -> np.ndarray:
    """Smooth brightness variation (``illumination``) times terrain shading on the stack grid."""
    light = 1.0 + effects.illumination * np.clip(value_noise(shape, 800.0 / gsd, rng), -2, 2)
    if effects.terrain and landcover.relief_m > 0:
        terrain_rng = np.random.default_rng([landcover.seed, 3])
        dem = elevation(landcover.height_m, landcover.width_m, landcover.relief_m, terrain_rng)
        shade = terrain_illumination(dem, landcover.sun_elevation_deg, landcover.sun_azimuth_deg)
        light = light * resample_bilinear(shade, DEM_GSD_M, gsd, shape)
    return light.astype(np.float32)


def _class_id(name: str) -> int:
    return next(c.id for c in LANDCOVER_CLASSES if c.name == name)


def _clouds(landcover, gsd, shape, effects: Effects) -> CloudField:
    """The acquisition's clouds and their shadows on the stack grid, laid out on the fixed
    ``DEM_GSD_M`` ground grid so every sensor of one acquisition sees the same clouds."""
    rng = np.random.default_rng([landcover.seed, effects.cloud_seed, 13])
    ground = (
        int(np.ceil(landcover.height_m / DEM_GSD_M)) + 1,
        int(np.ceil(landcover.width_m / DEM_GSD_M)) + 1,
    )
    # Cloud bases of low and middle clouds (0.5-2.5 km): their shadows land in the scene.
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    field = cloud_field(ground, rng, gsd_m=DEM_GSD_M, cover=effects.cloud_cover,
                        sun_elevation_deg=landcover.sun_elevation_deg,
                        height_m=float(rng.uniform(500.0, 2500.0)))  # fmt: skip
    return CloudField(
        resample_bilinear(field.opacity, DEM_GSD_M, gsd, shape),
        resample_bilinear(field.shadow, DEM_GSD_M, gsd, shape),
    )


def _atmosphere(landcover, image, wavelengths, gsd, shape, rng, labels, effects: Effects):
    """Clouds and shadows over the surface, then haze, then the top-of-atmosphere terms; the
    labels get ``cloud`` and ``cloud shadow`` where they are."""
    image = adjacency(image, wavelengths, gsd, effects.adjacency)
    if effects.cloud_cover > 0:
        field = _clouds(landcover, gsd, shape, effects)
        look = np.random.default_rng([landcover.seed, effects.cloud_seed, 14])
        # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
        image, labels = add_clouds(image, wavelengths, field, look, labels=labels,
                                   cloud_class=_class_id("cloud"),
                                   shadow_class=_class_id("cloud shadow"))  # fmt: skip
    if effects.haze > 0:
        thickness = effects.haze * np.clip(1.0 + 0.5 * value_noise(shape, 800.0 / gsd, rng), 0.2, 2)
        for band, wl in enumerate(wavelengths):
            path = thickness * (float(wl) / 550.0) ** -1.3
            image[band] *= 1.0 - 0.5 * path
            image[band] += path
    if effects.level == "toa":
        air = np.random.default_rng([landcover.seed, effects.cloud_seed, 15])
        atmosphere = replace(Atmosphere.draw(air), sun_elevation_deg=landcover.sun_elevation_deg)
        image = to_toa(image, wavelengths, atmosphere, rng, haze_cell=3000.0 / gsd)
    return image, labels


def _render_optical(landcover, sensor, gsd, shape, rng, effects: Effects, labels):
    library = load_library()
    spectra = sample_object_spectra(
        library, landcover.object_kind, [landcover.seed, 1], landcover.season
    )
    # Water vapour and cirrus absorption come with the atmosphere (``to_toa``), not here.
    response = band_response(sensor.bands, library.wavelengths_nm)
    values = spectra @ response.T  # (n_objects, 2, n_bands)
    if effects.glint > 0:
        # Sun glint: a flat specular term on water, patchy through the per-pixel mix field.
        water = np.isin(landcover.object_kind, [KIND_ID[k] for k in ("lake", "river", "shallow")])
        values[water, 1, :] += (
            np.float32(effects.glint) * rng.uniform(0.3, 1.0, water.sum())[:, None]
        )
    amp = np.array([_TEXTURE[k] for k in KINDS], dtype=np.float32)
    wavelengths = np.array([b.wavelength_nm for b in sensor.bands], dtype=np.float32)
    # The ground as the sensor's bands see it, every band on the stack grid.
    image = np.empty((len(sensor.bands), *shape), dtype=np.float32)
    for native, native_shape, group in _native_groups(sensor, gsd, shape):
        rendered = render_bands(landcover, native, native_shape, values[:, :, group], amp)
        for k, band in enumerate(group):
            image[band] = to_grid(rendered[k], native, gsd, shape)
    del rendered
    image *= _ground_illumination(landcover, gsd, shape, rng, effects)
    image, labels = _atmosphere(landcover, image, wavelengths, gsd, shape, rng, labels, effects)
    # The sensor, at each band's own pixels: PSF and misregistration, gain error, noise.
    gains = 1.0 + effects.gain_error * rng.standard_normal(len(sensor.bands))
    shifts = effects.misregistration * rng.standard_normal((len(sensor.bands), 2))
    for native, native_shape, group in _native_groups(sensor, gsd, shape):
        for band in group:
            layer = _to_native(image[band], gsd, native, native_shape)
            layer = psf_shift(layer, effects.blur, (float(shifts[band, 0]), float(shifts[band, 1])))
            layer = layer * np.float32(gains[band])
            if effects.noise > 0:
                sigma = effects.noise * (0.002 + 0.005 * np.abs(layer))
                layer = layer + sigma * rng.standard_normal(layer.shape, dtype=np.float32)
            image[band] = to_grid(layer, native, gsd, shape)
    image -= np.float32(sensor.offset)  # in place: the stack is the largest array here
    image /= np.float32(sensor.scale)
    np.rint(image, out=image)
    np.clip(image, 1, np.iinfo(np.uint16).max, out=image)
    return image.astype(np.uint16), labels


LEVELS = ("surface", "toa")


# fmt: skip below: the signature kept on few lines (ruff format would add 15 lines)
def _effects(landcover, spec, seed, level, haze, adjacency, illumination, terrain, glint, blur,
             misregistration, gain_error, noise, cloud_cover, cloud_seed) -> Effects:  # fmt: skip
    """Resolve the defaults: drawn from the scene and render seeds, the same for every sensor."""
    cloud_seed = int(seed) if cloud_seed is None else int(cloud_seed)
    if cloud_seed < 0:
        raise SimulatorError(f"cloud_seed must be a non-negative integer, got {cloud_seed}")
    if cloud_cover == "auto":
        sky = np.random.default_rng([landcover.seed, cloud_seed, 12])
        cloud_cover = 0.0 if sky.random() < 0.4 else float(sky.uniform(0.05, 0.7))
    cloud_cover = 0.0 if cloud_cover is None else cloud_cover
    if isinstance(cloud_cover, str) or not 0.0 <= cloud_cover <= 1.0:
        raise SimulatorError(f"cloud_cover must be 'auto' or in [0, 1], got {cloud_cover!r}")
    level = ("toa" if "l1c" in spec.name.lower() else "surface") if level is None else level
    if level not in LEVELS:
        raise SimulatorError(f"unknown product level {level!r}; use 'surface' or 'toa'")
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    for name, value in (("haze", haze), ("adjacency", adjacency), ("glint", glint),
                        ("blur", blur), ("misregistration", misregistration),
                        ("gain_error", gain_error)):  # fmt: skip
        if value is not None and value < 0:
            raise SimulatorError(f"{name} must be >= 0, got {value}")
    draw = np.random.default_rng([landcover.seed, int(seed), 11])
    toa = level == "toa"
    # Sun glint strong enough to matter is a minority of land acquisitions (it needs the sun's
    # mirror direction near the view; Sentinel-2 and Landsat look near nadir at mid-morning).
    drawn_glint = draw.uniform(0.01, 0.06) if draw.random() < 0.1 else 0.0
    drawn_adjacency = draw.uniform(0.03, 0.1)
    return Effects(
        level=level,
        haze=0.0 if haze is None else float(haze),
        adjacency=(drawn_adjacency if toa else 0.0) if adjacency is None else float(adjacency),
        illumination=float(illumination),
        terrain=bool(terrain),
        glint=drawn_glint if glint is None else float(glint),
        blur=float(blur),
        misregistration=float(misregistration),
        gain_error=float(gain_error),
        noise=float(noise),
        cloud_cover=float(cloud_cover),
        cloud_seed=cloud_seed,
    )


def render(
    landcover: LandCoverMap,
    sensor: str | SensorSpec,
    gsd: float | None = None,
    seed: int = 0,
    haze: float | None = None,
    illumination: float = 0.05,
    noise: float = 1.0,
    nodata_fraction: float = 0.0,
    *,
    level: str | None = None,
    adjacency: float | None = None,
    terrain: bool = True,
    glint: float | None = None,
    blur: float = 0.5,
    misregistration: float = 0.1,
    gain_error: float = 0.02,
    cloud_cover: float | str | None = None,
    cloud_seed: int | None = None,
) -> Rendering:
    """Render ``landcover`` for ``sensor`` at ``gsd`` (default: the sensor's stack GSD).

    ``level`` is ``"surface"`` (surface reflectance: L2A, Landsat C2 L2) or ``"toa"`` (top of
    atmosphere: L1C, Landsat L1); by default ``"toa"`` for sensors named ``*l1c*``.
    At the top of atmosphere ``gfmcli.simulate.atmosphere.to_toa`` adds Rayleigh and aerosol path
    reflectance (a drawn aerosol load with patches of haze), transmittance and water-vapour and
    cirrus absorption. ``haze`` adds an extra path reflectance at 550 nm (default none) and
    ``adjacency`` the share of the ~300 m surroundings mixed into a pixel at 550 nm
    (default 0.03-0.1 at the top of atmosphere, else none); ``illumination`` the relative
    amplitude of smooth brightness variation; ``terrain`` shades the land cover's relief under
    its sun; ``glint`` is the sun-glint reflectance on water (default: 10 % of acquisitions get
    0.01-0.06); ``blur`` the Gaussian PSF sigma and ``misregistration`` the standard deviation
    of per-band shifts, both in native pixels; ``gain_error`` the standard deviation of per-band
    relative gain; ``noise`` scales sensor noise (optical) or speckle (radar: 1.0 = Sentinel-1's
    4.4 looks, 0 = none). ``cloud_cover`` (0-1, or ``"auto"``: 40 % of acquisitions clear,
    the rest 5-70 % cloudy; default none) lays clouds and their shadows over optical renders
    and labels them ``cloud`` and ``cloud shadow``; ``cloud_seed`` (default ``seed``) picks the
    clouds, the aerosol and the cloud brightness, the same for every sensor. ``seed`` varies
    the acquisition (noise, haze, glint, gains, speckle), never the ground. Zeros switch effects
    off.
    """
    spec = get_sensor(sensor) if isinstance(sensor, str) else sensor
    gsd = float(spec.gsd if gsd is None else gsd)
    if gsd <= 0:
        raise SimulatorError(f"GSD must be positive metres, got {gsd}")
    if seed < 0:
        raise SimulatorError(f"seed must be a non-negative integer, got {seed}")
    if not 0.0 <= nodata_fraction < 1.0:
        raise SimulatorError(f"nodata_fraction must be in [0, 1), got {nodata_fraction}")
    shape = grid_shape(landcover, gsd)
    rng = _rng(landcover, spec, seed)
    radar = [b.modality == RADAR for b in spec.bands]
    level_out = None
    labels = render_labels(landcover, gsd)
    if all(radar):
        data = render_radar(landcover, spec, gsd, shape, rng, noise)
        nodata = None if nodata_fraction == 0 else float("nan")
    elif not any(radar):
        # fmt: skip below: arguments grouped by meaning (ruff format would add 14 lines)
        effects = _effects(landcover, spec, seed, level, haze, adjacency, illumination,
                           terrain, glint, blur, misregistration, gain_error, noise,
                           cloud_cover, cloud_seed)  # fmt: skip
        data, labels = _render_optical(landcover, spec, gsd, shape, rng, effects, labels)
        level_out = effects.level
        nodata = 0 if spec.nodata is None else spec.nodata
    else:
        raise SimulatorError(f"sensor {spec.name!r} mixes radar and optical bands; split it")
    mask = swath_mask(landcover, gsd, nodata_fraction)
    if mask.any():
        data[:, mask] = np.nan if nodata is None or np.isnan(nodata) else nodata
        labels[mask] = LABEL_NODATA
    transform = landcover.transform(gsd)
    return Rendering(data, labels, spec, gsd, transform, landcover.crs, nodata, level_out)
