"""Write one simulated scene as GeoTIFFs: an image and a label raster per sensor.

The scene is defined once on the ground (a land-cover map in a projected CRS); each sensor
renders it at its own GSD, so the files overlap exactly and can be used to test multi-sensor
code, to make training data or to feed examples. Images carry the sensor's band names as band
descriptions (so gfm recognises them without ``--bands``) unless asked not to; label rasters
hold the majority class per pixel with a colour table and the class names as tags. Every file
is staged under a hidden temporary name and renamed into place only when all are written, so
a full disk or a kill never leaves a truncated scene at a final path.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import rasterio
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.errors import RasterioError

from gfmcli.atomic import partial_path, remove_with_prefix, stale_partials
from gfmcli.errors import OutputError, first_line
from gfmcli.sensors import get_sensor
from gfmcli.simulate.landcover import BIOMES, LANDCOVER_CLASSES, SimulatorError, simulate_landcover
from gfmcli.simulate.render import LABEL_NODATA, LEVELS, Rendering, render
from gfmcli.simulate.spectra import SEASONS

log = logging.getLogger(__name__)

DEFAULT_SENSORS = ("sentinel2-l2a", "landsat8", "sentinel1")


def _check_crs(crs: str) -> None:
    try:
        parsed = CRS.from_user_input(crs)
    except CRSError as exc:
        raise SimulatorError(f"unknown CRS {crs!r}; give one like 'EPSG:32633'") from exc
    units = {axis.unit_name for axis in parsed.axis_info}
    if not parsed.is_projected or units != {"metre"}:
        raise SimulatorError(
            f"CRS {crs!r} is not a projected CRS in metres; use a UTM zone such as 'EPSG:32633'"
        )


def _write_image(
    path: Path, rendering: Rendering, with_descriptions: bool, seed: int, season: str
) -> None:
    profile = rendering.profile()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rendering.data)
        if with_descriptions:
            for i, name in enumerate(rendering.band_names, start=1):
                dst.set_band_description(i, name)
        tags = {"GFM_SIMULATED": "true", "GFM_SEED": str(seed), "GFM_SEASON": season}
        if rendering.level is not None:
            tags["GFM_LEVEL"] = rendering.level
        dst.update_tags(**tags)


def _write_labels(path: Path, rendering: Rendering) -> None:
    height, width = rendering.labels.shape
    # fmt: skip below: a table, kept in rows (ruff format would add 9 lines)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
        "crs": rendering.crs, "transform": rendering.transform, "nodata": LABEL_NODATA,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rendering.labels[None])
        dst.set_band_description(1, "landcover")
        dst.write_colormap(1, {c.id: (*c.color, 255) for c in LANDCOVER_CLASSES})
        dst.update_tags(**{f"CLASS_{c.id}": c.name for c in LANDCOVER_CLASSES})


def simulate_scene(
    out_dir: str | os.PathLike[str],
    sensors: Sequence[str] = DEFAULT_SENSORS,
    size_m: float | tuple[float, float] = 2560.0,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (400000.0, 5500000.0),
    resolution_m: float | None = None,
    with_descriptions: bool = True,
    nodata_fraction: float = 0.0,
    haze: float | None = None,
    noise: float = 1.0,
    overwrite: bool = False,
    season: str | None = None,
    level: str | None = None,
    cloud_cover: float | str | None = None,
    cloud_seed: int | None = None,
    biome: str = "temperate",
) -> dict[str, Path]:
    """Simulate a scene and write ``<sensor>.tif`` and ``<sensor>_labels.tif`` per sensor.

    ``size_m`` is the ground extent (height, width or one number for a square);
    ``resolution_m`` the land-cover base grid (default: half the finest sensor GSD, so every
    pixel mixes at least 2x2 map cells); ``origin`` the top-left corner in ``crs``.
    ``nodata_fraction`` cuts a slanted swath edge off the east side. ``season`` (default: drawn
    from the seed) and ``level`` (``"surface"`` or ``"toa"``; default: top of atmosphere for
    L1C sensors only) go to ``simulate_landcover`` and ``render``, as do ``cloud_cover`` (0-1 or
    ``"auto"``) and ``cloud_seed``: the optical images get the same clouds and shadows, and
    their labels the classes ``cloud`` and ``cloud shadow``; ``biome`` (``"temperate"`` or
    ``"arid"``) goes to ``simulate_landcover``. Returns the written paths
    keyed ``<sensor>`` and ``<sensor>_labels``; the same arguments write the same bytes.
    """
    specs = [get_sensor(name) for name in ([sensors] if isinstance(sensors, str) else sensors)]
    if not specs:
        raise SimulatorError("no sensors given; name at least one, e.g. 'sentinel2-l2a'")
    _check_crs(crs)
    if season is not None and season not in SEASONS:
        raise SimulatorError(f"unknown season {season!r}; use one of {', '.join(SEASONS)}")
    if biome not in BIOMES:
        raise SimulatorError(f"unknown biome {biome!r}; use one of {', '.join(BIOMES)}")
    if level is not None and level not in LEVELS:
        raise SimulatorError(f"unknown product level {level!r}; use one of {', '.join(LEVELS)}")
    if cloud_cover is not None and cloud_cover != "auto" and not 0.0 <= float(cloud_cover) <= 1:
        raise SimulatorError(f"cloud_cover must be 'auto' or in [0, 1], got {cloud_cover!r}")
    if cloud_seed is not None and cloud_seed < 0:
        raise SimulatorError(f"cloud_seed must be a non-negative integer, got {cloud_seed}")
    height_m, width_m = cast(
        "tuple[float, float]", (size_m, size_m) if np.isscalar(size_m) else size_m
    )
    base = resolution_m if resolution_m is not None else min(s.gsd for s in specs) / 2.0
    out = Path(out_dir)
    targets = {}
    for spec in specs:
        targets[spec.name] = out / f"{spec.name}.tif"
        targets[f"{spec.name}_labels"] = out / f"{spec.name}_labels.tif"
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} exists; pass overwrite=True or choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc}") from exc
    landcover = simulate_landcover(
        float(height_m),
        float(width_m),
        base,
        seed=seed,
        crs=crs,
        origin=origin,
        season=season,
        biome=biome,
    )
    for target in targets.values():
        for stale in stale_partials(target):  # left by a killed run (same host, or old)
            remove_with_prefix(stale)
    staged = {key: partial_path(target) for key, target in targets.items()}
    try:
        for spec in specs:
            # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
            rendering = render(
                landcover, spec, seed=seed, haze=haze, noise=noise,
                nodata_fraction=nodata_fraction, level=level, cloud_cover=cloud_cover,
                cloud_seed=cloud_seed,
            )  # fmt: skip
            with _writing(targets[spec.name]):
                _write_image(
                    staged[spec.name], rendering, with_descriptions, seed, landcover.season
                )
            with _writing(targets[f"{spec.name}_labels"]):
                _write_labels(staged[f"{spec.name}_labels"], rendering)
            log.info("rendered %s (%s bands, %s m)", spec.name, rendering.data.shape[0], spec.gsd)
        for key, target in targets.items():  # every file is complete: rename them into place
            with _writing(target):
                os.replace(staged[key], target)
    finally:
        for path in staged.values():
            remove_with_prefix(path)
    return targets


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """A failed write (a full disk above all) as one OutputError naming the final file; the
    staged temporaries are removed by the caller, so no truncated scene is ever left."""
    try:
        yield
    except (OSError, RasterioError) as exc:  # RasterioIOError is an OSError too
        reason = getattr(exc, "strerror", None) or first_line(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC or "no space" in str(exc).lower():
            reason = "no space left on the device; free some space or choose another -o"
        raise OutputError(f"{target}: cannot write the simulated scene ({reason})") from exc
