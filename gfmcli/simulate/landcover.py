"""Spatially coherent land-cover maps on the ground, in metres, at a fine base resolution.

A map is a raster of *object* ids (a field, a forest stand, a roof, a road segment, a lake) at
``resolution_m``; each object has a spectral kind (``gfmcli.simulate.spectra.KINDS``) and
through it a land-cover class. Sensors render the map at their own GSD by sampling it on a
sub-grid, so one scene gives consistent images and labels at 3, 10, 20, 30 and 60 m, with
mixed pixels wherever an object boundary crosses a pixel.

Layers, painted in this order (later ones cover earlier ones): agricultural parcels (strips of
rectangular fields at a random orientation: crops, harvested stubble, grass or bare soil),
meadows, bare patches, broadleaf and conifer forests (thresholded fractal noise cut into
irregular stands), a burn scar, riparian trees, a town and villages (``gfmcli.simulate.urban``:
streets, roofs, gardens, yards and shadows, labelled by block), a railway, rural roads, lakes
(noisy blobs with shallow margins), narrow streams and a meandering river of varying width.
The scene has a season (it changes vegetation and field spectra) and a sun position (it sets
building shadows here and terrain shading in the renderer). Everything is vectorised numpy;
the result depends only on the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from gfmcli.contract import ClassInfo
from gfmcli.errors import ConfigError
from gfmcli.simulate.layout import Objects, blob, blob_level, coords, cuts, line_band, quantile
from gfmcli.simulate.noise import fractal_noise, value_noise
from gfmcli.simulate.spectra import KIND_ID, KINDS, SEASONS
from gfmcli.simulate.urban import TOWN_ZONES, VILLAGE_ZONES, paint_town

LANDCOVER_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "water", (31, 120, 180)),
    ClassInfo(1, "tree cover", (0, 100, 0)),
    ClassInfo(2, "grass/crops", (180, 220, 90)),
    ClassInfo(3, "bare soil", (180, 140, 90)),
    ClassInfo(4, "built-up", (220, 30, 30)),
    ClassInfo(5, "burned", (60, 40, 40)),
    ClassInfo(6, "cloud", (240, 240, 240)),
    ClassInfo(7, "cloud shadow", (90, 90, 120)),
    ClassInfo(8, "snow", (170, 230, 255)),
)

# The land-cover class of each spectral kind, indexed by kind id.
# fmt: skip below: a table, kept in rows (ruff format would add 20 lines)
KIND_CLASS = np.array(
    [{"lake": 0, "river": 0, "tree": 1, "crop": 2, "grass": 2, "soil": 3, "roof": 4,
      "pavement": 4, "burned": 5, "shadow": 4, "rail": 4, "flatroof": 4, "concrete": 4,
      "conifer": 1, "stubble": 2, "shallow": 0, "snow": 8, "steppe": 3}[kind] for kind in KINDS],
    dtype=np.uint8,
)  # fmt: skip


class SimulatorError(ConfigError):
    """Simulator parameters that cannot be used (sizes, resolutions, sensors)."""


@dataclass(frozen=True)
class LandCoverMap:
    """Objects on a north-up grid whose top-left corner is ``origin`` (x, y) in ``crs`` units.

    ``mix`` (0-255) blends each object's two spectra per pixel and ``texture`` (128 = 1.0) scales
    brightness per pixel: within-object variation that is the same for every sensor.
    ``object_class`` is each object's label class, which is its kind's class except where a
    layer labels a larger unit (a garden lawn is built-up with its block). ``season`` sets the
    vegetation's state; the sun (degrees, azimuth clockwise from north) casts the shadows and
    shades the terrain, whose relief (``relief_m``, about the range of heights) the renderer
    lays out from ``seed``.
    """

    objects: np.ndarray
    object_kind: np.ndarray
    object_class: np.ndarray
    mix: np.ndarray
    texture: np.ndarray
    resolution_m: float
    origin: tuple[float, float]
    crs: str
    seed: int
    season: str = "summer"
    sun_elevation_deg: float = 45.0
    sun_azimuth_deg: float = 160.0
    relief_m: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.objects.shape

    @property
    def height_m(self) -> float:
        return self.objects.shape[0] * self.resolution_m

    @property
    def width_m(self) -> float:
        return self.objects.shape[1] * self.resolution_m

    @property
    def classes(self) -> np.ndarray:
        """The class raster at the base resolution (uint8, ids of ``LANDCOVER_CLASSES``)."""
        return self.object_class[self.objects]

    def transform(self, gsd: float) -> Affine:
        return Affine(gsd, 0.0, self.origin[0], 0.0, -gsd, self.origin[1])


def _stands(shape, res, cell_m, rng) -> tuple[np.ndarray, int]:
    """Irregular cells (a jittered grid warped by noise) of about ``cell_m``: stand/patch ids."""
    x, y = coords(shape, res)
    warp = 0.35 * cell_m
    cols = int(shape[1] * res / cell_m) + 4
    rows = int(shape[0] * res / cell_m) + 4
    wx = (x + warp * value_noise(shape, cell_m / res, rng)) / np.float32(cell_m)
    ix = np.clip(wx.astype(np.int32) + 1, 0, cols - 1)
    del wx
    wy = (y + warp * value_noise(shape, cell_m / res, rng)) / np.float32(cell_m)
    ids = np.clip(wy.astype(np.int32) + 1, 0, rows - 1) * np.int32(cols)
    del wy
    ids += ix
    return ids, rows * cols


# Parcel kinds by season: crops, harvested stubble, grass, bare (ploughed or fallow).
_PARCEL_KINDS = ("crop", "stubble", "grass", "soil")
_PARCEL_SHARES = {
    "spring": (0.45, 0.0, 0.27, 0.28),
    "summer": (0.47, 0.08, 0.27, 0.18),
    "autumn": (0.25, 0.22, 0.25, 0.28),
    "winter": (0.35, 0.10, 0.30, 0.25),
}
# Sun elevation range (degrees) at a mid-latitude morning overpass, by season.
_SUN_ELEVATION = {"spring": (35, 55), "summer": (50, 65), "autumn": (25, 45), "winter": (15, 28)}


# Landscapes: temperate farmland (fields, meadows, forests) or arid land (steppe, bare plains and
# slopes, a few irrigated fields and thickets), where bare ground is most of the scene and must
# not be taken for a town.
BIOMES = ("temperate", "arid")
_ARID_PARCEL_SHARES = (0.12, 0.13, 0.15, 0.6)


def _parcels(
    shape, res, table: Objects, rng, season: str, shares: tuple[float, ...] | None = None
) -> np.ndarray:
    x, y = coords(shape, res)
    theta = rng.uniform(0, np.pi)
    u = x * np.float32(np.cos(theta)) + y * np.float32(np.sin(theta))
    v = y * np.float32(np.cos(theta)) - x * np.float32(np.sin(theta))
    diag = float(np.hypot(*shape) * res)
    cuts_u = cuts(-diag, diag, 80.0, 300.0, rng)
    cuts_v = cuts(-diag, diag + 600.0, 100.0, 500.0, rng)
    strip = np.searchsorted(cuts_u, u).astype(np.int32)
    del u
    shift = rng.uniform(0, 500.0, len(cuts_u) + 1).astype(np.float32)
    v += shift[strip]
    n_fields = len(cuts_v) + 1
    kinds = rng.choice(
        [KIND_ID[k] for k in _PARCEL_KINDS],
        size=(len(cuts_u) + 1) * n_fields,
        p=_PARCEL_SHARES[season] if shares is None else shares,
    )
    strip *= np.int32(n_fields)
    strip += np.searchsorted(cuts_v, v).astype(np.int32)
    strip += np.int32(table.add(kinds))
    return strip


def _paint_patches(
    objects, shape, res, table, rng, kind, cell_m, cover, stand_m, other=None, share=0.0
) -> np.ndarray:
    """Cover the top ``cover`` fraction of a fractal field with stands of one kind (a ``share``
    of the stands of kind ``other``)."""
    field = fractal_noise(shape, cell_m / res, rng)
    mask = field > quantile(field, 1.0 - cover)
    ids, n = _stands(shape, res, stand_m, rng)
    kinds = np.full(n, KIND_ID[kind])
    if other is not None:
        kinds[rng.random(n) < share] = KIND_ID[other]
    base = table.add(kinds)
    objects[mask] = base + ids[mask]
    return mask


# Snow on open land: chance of a snowy scene and its cover range, by season.
_SNOW = {"winter": (0.5, 0.3, 1.0), "spring": (0.05, 0.05, 0.3)}
_OPEN_LAND = ("crop", "stubble", "grass", "soil", "burned", "steppe")


def _snow(objects, shape, res, table: Objects, rng, season: str) -> None:
    """Patchy snow (large fractal patches cut into ~200 m objects) over the open land of half
    the winter scenes and a few spring ones; forests, water and towns stay visible."""
    chance, low, high = _SNOW.get(season, (0.0, 0.0, 0.0))
    if rng.random() >= chance:
        return
    cover = rng.uniform(low, high)
    open_land = np.isin(table.kind_array()[objects], [KIND_ID[k] for k in _OPEN_LAND])
    field = fractal_noise(shape, 1500.0 / res, rng, octaves=4)
    snowy = open_land & (field > quantile(field, 1.0 - cover))
    del open_land, field
    ids, n = _stands(shape, res, 200.0, rng)
    objects[snowy] = table.add(np.full(n, KIND_ID["snow"])) + ids[snowy]


def _settlements(objects, shape, res, table, rng, sun, dry: bool = False) -> None:
    """A town of 150 m to a quarter of the scene in radius, and a village (80-250 m) per 8 km^2
    on average: street grids of blocks (``gfmcli.simulate.urban``); ``dry``: dry towns."""
    h_m, w_m = shape[0] * res, shape[1] * res
    radius = max(150.0, rng.uniform(0.12, 0.25) * min(h_m, w_m))
    centre = (rng.uniform(0.3, 0.7) * h_m, rng.uniform(0.3, 0.7) * w_m)
    built = int(KIND_CLASS[KIND_ID["roof"]])
    # fmt: skip below: arguments grouped by meaning (ruff format would add 10 lines)
    paint_town(objects, shape, res, table, rng, centre=centre, radius=radius,
               sun_azimuth_deg=sun[1], sun_elevation_deg=sun[0], built_class=built,
               zones=TOWN_ZONES, dry=dry)  # fmt: skip
    for _ in range(rng.poisson(h_m * w_m / 8e6)):
        centre = (rng.uniform(0, h_m), rng.uniform(0, w_m))
        # fmt: skip below: arguments grouped by meaning (ruff format would add 10 lines)
        paint_town(objects, shape, res, table, rng, centre=centre,
                   radius=rng.uniform(80.0, 250.0), sun_azimuth_deg=sun[1],
                   sun_elevation_deg=sun[0], built_class=built, zones=VILLAGE_ZONES,
                   dry=dry)  # fmt: skip


def _railway(objects, shape, res, table: Objects, rng) -> None:
    """A nearly straight railway 5-12 m wide (ballast, sleepers, rails) in 300 m segments."""
    h_m, w_m = shape[0] * res, shape[1] * res
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    dist, along = line_band(
        shape, res, rng, rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4) * min(h_m, w_m),
        (rng.uniform(5.0, 30.0),), (rng.uniform(3000.0, 8000.0),),
    )  # fmt: skip
    track = dist < rng.uniform(2.5, 6.0)
    segment = ((along[track] + 2 * (h_m + w_m)) / 300.0).astype(np.int32)
    objects[track] = table.add(np.full(int(4 * (h_m + w_m) / 300.0) + 2, KIND_ID["rail"])) + segment


def _streams(shape, res, table: Objects, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Narrow streams 6-25 m wide (under three 10 m pixels), wiggling more than the river:
    their masks and object ids, to paint last."""
    h_m, w_m = shape[0] * res, shape[1] * res
    out = []
    for _ in range(rng.integers(0, 3)):
        # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
        dist, along = line_band(
            shape, res, rng, rng.uniform(0, np.pi), rng.uniform(-0.45, 0.45) * min(h_m, w_m),
            (rng.uniform(30.0, 120.0), rng.uniform(5.0, 25.0)),
            (rng.uniform(400.0, 1200.0), rng.uniform(60.0, 200.0)),
        )  # fmt: skip
        water = dist < np.float32(rng.uniform(3.0, 12.5))
        segment = ((along[water] + 2 * (h_m + w_m)) / 400.0).astype(np.int32)
        base = table.add(np.full(int(4 * (h_m + w_m) / 400.0) + 2, KIND_ID["river"]))
        out.append((water, base + segment))
    return out


def _rural_road(objects, shape, res, table: Objects, rng) -> None:
    """A gently curving road 6-10 m wide across the scene, in 300 m segments."""
    h_m, w_m = shape[0] * res, shape[1] * res
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    dist, along = line_band(
        shape, res, rng, rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4) * min(h_m, w_m),
        (rng.uniform(5.0, 40.0),), (rng.uniform(800.0, 3000.0),),
    )  # fmt: skip
    on_road = dist < rng.uniform(3.0, 5.0)
    segment = ((along[on_road] + 2 * (h_m + w_m)) / 300.0).astype(np.int32)
    base = table.add(np.full(int(4 * (h_m + w_m) / 300.0) + 2, KIND_ID["pavement"]))
    objects[on_road] = base + segment


def _burn_scar(objects, forest, shape, res, table: Objects, rng) -> None:
    """A burned blob of 80-300 m radius, where it overlaps forest."""
    radius = rng.uniform(80.0, 300.0)
    centre = (rng.uniform(0, shape[0] * res), rng.uniform(0, shape[1] * res))
    window, mask = blob(shape, res, centre, radius, rng)
    objects[window][mask & forest[window]] = table.add(np.array([KIND_ID["burned"]]))


def _lake(objects, shape, res, table: Objects, rng) -> None:
    """A noisy blob of water, at most 600 m in radius and smaller in small scenes; in 60 % of
    lakes a shallow margin 5-40 m wide along the shore shows the bottom."""
    h_m, w_m = shape[0] * res, shape[1] * res
    radius = rng.uniform(60.0, min(600.0, max(80.0, 0.15 * min(h_m, w_m))))
    centre = (rng.uniform(0, h_m), rng.uniform(0, w_m))
    window, level = blob_level(shape, res, centre, radius, rng)
    lake = table.add(np.array([KIND_ID["lake"], KIND_ID["shallow"]]))
    margin = rng.uniform(5.0, 40.0) / radius if rng.random() < 0.6 else 0.0
    inside = level < 1.0
    objects[window][inside] = lake + (level[inside] >= 1.0 - margin).astype(np.int32)


def _river(objects, shape, res, table: Objects, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """Paint riparian trees (70 % of scenes) now; return the river's mask, its 400 m segment
    ids and the segment count, to paint the water after the layers it crosses."""
    h_m, w_m = shape[0] * res, shape[1] * res
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(-0.25, 0.25) * min(h_m, w_m)
    amplitudes = (rng.uniform(50.0, 200.0), rng.uniform(10.0, 60.0))
    wavelengths = (rng.uniform(600.0, 2000.0), rng.uniform(150.0, 400.0))
    dist, along = line_band(shape, res, rng, angle, offset, amplitudes, wavelengths)
    dist /= np.float32(rng.uniform(8.0, 30.0)) * (1.0 + 0.25 * np.sin(along / 700.0))
    river = dist < 1.0  # dist is now in half-widths of the river
    segment = ((along + 2 * (h_m + w_m)) / 400.0).astype(np.int32)
    del along
    n_segments = int(4 * (h_m + w_m) / 400.0) + 2
    if rng.random() < 0.7:
        riparian = dist < rng.uniform(1.5, 3.0)
        objects[riparian] = table.add(np.full(n_segments, KIND_ID["tree"])) + segment[riparian]
    return river, segment[river], n_segments


def _to_uint8(field: np.ndarray, centre: float, scale: float) -> np.ndarray:
    """``centre + scale * field`` clipped to 0..255 as uint8, in place on ``field``."""
    field *= np.float32(scale)
    field += np.float32(centre)
    np.clip(field, 0, 255, out=field)
    return field.astype(np.uint8)


def simulate_landcover(
    height_m: float,
    width_m: float,
    resolution_m: float = 5.0,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (500000.0, 5400000.0),
    season: str | None = None,
    biome: str = "temperate",
    dry_towns: bool = False,
) -> LandCoverMap:
    """A random but plausible landscape of ``height_m`` x ``width_m`` at ``resolution_m``.

    Deterministic in ``seed``. Every scene has parcels, forest, bare soil, a town and a river,
    so all five base classes appear once the scene spans more than about 1 km. ``season``
    (one of ``SEASONS``) defaults to one drawn from the seed (summer 40 %, spring and autumn
    20 % each, winter 20 %); it also sets the sun elevation. ``biome`` (one of ``BIOMES``):
    ``"arid"`` turns most of the land into steppe and bare ground on hilly terrain, with few
    fields, thickets and lakes (the town and the river stay). ``dry_towns``: towns and villages
    with bare and dry-grass yards, few trees and flat concrete roofs (``gfmcli.simulate.urban``),
    the way arid and dry-season cities look.
    """
    if not (height_m > 0 and width_m > 0 and resolution_m > 0):
        raise SimulatorError("scene height, width and resolution must be positive metres")
    if seed < 0:
        raise SimulatorError(f"seed must be a non-negative integer, got {seed}")
    shape = (max(1, round(height_m / resolution_m)), max(1, round(width_m / resolution_m)))
    if shape[0] * shape[1] > 120_000_000:
        raise SimulatorError(
            f"a {shape[0]}x{shape[1]} base grid is too large; use a coarser resolution_m "
            "or a smaller scene"
        )
    if biome not in BIOMES:
        raise SimulatorError(f"unknown biome {biome!r}; use one of {', '.join(BIOMES)}")
    if season is not None and season not in SEASONS:
        raise SimulatorError(f"unknown season {season!r}; use one of {', '.join(SEASONS)}")
    # The season and the sun come from their own stream, so choosing a season changes nothing
    # else about the layout.
    sky = np.random.default_rng([seed, 7])
    drawn = str(sky.choice(SEASONS, p=[0.2, 0.4, 0.2, 0.2]))
    season = drawn if season is None else season
    sun = (float(sky.uniform(*_SUN_ELEVATION[season])), float(sky.uniform(140.0, 170.0)))
    # Terrain: half the scenes are flat, a third hilly, the rest mountainous.
    relief = float(
        sky.choice(
            [sky.uniform(0, 30), sky.uniform(30, 200), sky.uniform(200, 800)], p=[0.5, 0.35, 0.15]
        )
    )
    arid = biome == "arid"
    if arid:  # arid land is rarely flat: hills or mountains
        relief = float(sky.uniform(60, 500))
    rng = np.random.default_rng(seed)
    res = float(resolution_m)
    table = Objects()
    objects = _parcels(shape, res, table, rng, season, _ARID_PARCEL_SHARES if arid else None)
    if arid:
        _paint_patches(
            objects, shape, res, table, rng, "steppe", 900.0, 0.65, 300.0, other="soil", share=0.3
        )
    _paint_patches(objects, shape, res, table, rng, "grass", 400.0, 0.05 if arid else 0.15, 250.0)
    _paint_patches(objects, shape, res, table, rng, "soil", 300.0, 0.06, 200.0)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 9 lines)
    forest = _paint_patches(
        objects, shape, res, table, rng, "tree", 600.0, 0.04 if arid else 0.28, 150.0,
        other="conifer", share=rng.uniform(0.0, 0.7),
    )  # fmt: skip
    if rng.random() < 0.5:
        _burn_scar(objects, forest, shape, res, table, rng)
    del forest
    _snow(objects, shape, res, table, rng, season)
    river, river_segment, n_segments = _river(objects, shape, res, table, rng)
    _settlements(objects, shape, res, table, rng, sun, dry=dry_towns)
    if rng.random() < 0.5:
        _railway(objects, shape, res, table, rng)
    for _ in range(rng.integers(1, 3)):
        _rural_road(objects, shape, res, table, rng)
    for _ in range(rng.integers(0, 2) if arid else rng.integers(1, 4)):
        _lake(objects, shape, res, table, rng)
    # Last, so water runs through everything (bridges are below 10 m anyway).
    for water, ids in _streams(shape, res, table, rng):
        objects[water] = ids
    objects[river] = table.add(np.full(n_segments, KIND_ID["river"])) + river_segment
    mix = _to_uint8(np.tanh(fractal_noise(shape, 60.0 / res, rng, octaves=2)), 127.5, 127.5)
    texture = fractal_noise(shape, 20.0 / res, rng, octaves=2)
    texture *= np.float32(0.7)
    texture += np.float32(0.5) * rng.standard_normal(shape, dtype=np.float32)
    texture = _to_uint8(texture, 128.0, 40.0)
    # Layers reserve ids generously; keep only the objects that are visible, numbered 0..n-1.
    used = np.bincount(objects.ravel(), minlength=table.count) > 0
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    return LandCoverMap(
        objects=renumber[objects],
        object_kind=table.kind_array()[used],
        object_class=table.class_array(KIND_CLASS)[used],
        mix=mix,
        texture=texture,
        resolution_m=res,
        origin=(float(origin[0]), float(origin[1])),
        crs=crs,
        seed=int(seed),
        season=season,
        sun_elevation_deg=sun[0],
        sun_azimuth_deg=sun[1],
        relief_m=relief,
    )
