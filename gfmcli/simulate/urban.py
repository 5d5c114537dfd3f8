"""Settlements at the scale of roofs, gardens and streets, labelled at the scale of blocks.

A town is a noisy blob holding a rotated street grid. Each block has a *zone* drawn by its
distance from the centre (a dense core, residential rings, industrial edges, parks and
plazas) and is laid out in its own frame:

* residential: two rows of lots facing the streets, a house per lot set back from the
  sidewalk, a driveway beside it, lawns with garden trees (about half the block is vegetation);
* dense: perimeter buildings around a green or paved courtyard;
* industrial: up to four large flat-roofed halls in paved yards, with gravel lots and verges;
* park: lawn and trees; plaza: paved or asphalt parking with a few trees.

Buildings cast shadows away from the sun (length height / tan(elevation)); streets have
sidewalks and, in some blocks, rows of street trees. Every object of a residential, dense,
industrial or plaza block (lawns, garden trees and shadows included) is labelled built-up,
as land-use maps do, while parks keep their kinds' classes; at 10 m a residential pixel is
therefore often a mixture of roof, lawn, tree, asphalt and shadow and still built-up.

A *dry* town (arid land, and many tropical cities in the dry season) has yards of bare earth and
dry grass instead of lawns in most blocks, 30-100 % of a green town's garden trees, more bare
lots and mostly flat concrete roofs: at 10 m its blocks range from green-town spectra to bare
ground with a street grid, and all are built-up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gfmcli.simulate.layout import BY_KIND, Objects, blob, coords, cuts
from gfmcli.simulate.noise import fractal_noise
from gfmcli.simulate.spectra import KIND_ID

# Object slots of each block; buildings take the slots from FIRST_BUILDING on.
ROAD, SIDEWALK, LAWN, TREES, PAVED, SOIL, SHADOW, PARKING = range(8)
FIRST_BUILDING = 8
SLOTS = 48
# Block zones.
RESIDENTIAL, DENSE, INDUSTRIAL, PARK, PLAZA = range(5)
ZONES = ("residential", "dense", "industrial", "park", "plaza")
# Zone probabilities in the core (< 0.35 radius), the middle ring and the edge (> 0.8 radius).
TOWN_ZONES = (
    (0.20, 0.55, 0.05, 0.10, 0.10),
    (0.65, 0.10, 0.10, 0.10, 0.05),
    (0.45, 0.02, 0.38, 0.10, 0.05),
)
VILLAGE_ZONES = ((0.80, 0.05, 0.05, 0.05, 0.05),) * 3
_ROWS_PER_CHUNK_CELLS = 1_000_000  # cells laid out at once: bounds the temporaries


@dataclass(frozen=True)
class _Blocks:
    """Per-block parameters of one street grid (arrays indexed by block id)."""

    cuts_p: np.ndarray
    cuts_q: np.ndarray
    road_w: float
    zone: np.ndarray
    sidewalk: np.ndarray
    lot_w: np.ndarray
    house_w: np.ndarray
    house_d: np.ndarray
    setback: np.ndarray
    depth: np.ndarray
    margin: np.ndarray
    split_u: np.ndarray
    split_v: np.ndarray
    split: np.ndarray
    hall: np.ndarray
    height: np.ndarray
    street_trees: np.ndarray
    tree_level: np.ndarray
    soil_level: np.ndarray
    paved_court: np.ndarray


def _draw_blocks(rng, reach, radius, zones) -> _Blocks:
    """Street grid and per-block parameters; the zone depends on the block's ring."""
    road_w = float(rng.uniform(7.0, 12.0))
    # Blocks are longer along p (lots line the q-streets): 70-200 m by 50-120 m.
    cuts_p = np.concatenate([[-reach - 200.0], cuts(-reach, reach, 70.0, 200.0, rng)])
    cuts_q = np.concatenate([[-reach - 120.0], cuts(-reach, reach, 50.0, 120.0, rng)])
    n_p, n_q = len(cuts_p), len(cuts_q)
    n = n_p * n_q
    mid_p = cuts_p + 0.5 * np.diff(cuts_p, append=cuts_p[-1] + 200.0)
    mid_q = cuts_q + 0.5 * np.diff(cuts_q, append=cuts_q[-1] + 120.0)
    ring = np.hypot(mid_p[:, None], mid_q[None, :]).ravel() / radius
    ring = np.digitize(ring, [0.35, 0.8])
    probs = np.asarray(zones, dtype=np.float64)[ring]
    zone = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    zone = np.minimum(zone, len(ZONES) - 1)
    u = rng.uniform
    height = np.select(
        [zone == RESIDENTIAL, zone == DENSE, zone == INDUSTRIAL],
        [u(5.0, 9.0, n), u(12.0, 25.0, n), u(7.0, 15.0, n)],
        0.0,
    )
    # Tree cover per block, as a quantile level of one shared noise field.
    tree_cover = np.select(
        [zone == RESIDENTIAL, zone == DENSE, zone == INDUSTRIAL, zone == PARK],
        [u(0.15, 0.5, n), u(0.05, 0.4, n), u(0.0, 0.1, n), u(0.25, 0.85, n)],
        u(0.0, 0.15, n),
    )
    return _Blocks(
        cuts_p=cuts_p.astype(np.float32),
        cuts_q=cuts_q.astype(np.float32),
        road_w=road_w,
        zone=zone,
        sidewalk=u(1.5, 3.0, n),
        lot_w=u(14.0, 26.0, n),
        house_w=u(0.5, 0.8, n),
        house_d=u(9.0, 15.0, n),
        setback=u(2.0, 8.0, n),
        depth=u(10.0, 16.0, n),
        margin=u(3.0, 10.0, n),
        split_u=u(0.3, 0.7, n),
        split_v=u(0.3, 0.7, n),
        split=rng.random((n, 2)) < 0.5,
        hall=rng.random((n, 4)) < 0.85,
        height=height,
        street_trees=rng.random(n) < 0.5,
        tree_level=1.0 - tree_cover,
        soil_level=u(0.85, 1.0, n),
        paved_court=rng.random(n) < 0.5,
    )


def _frame(blocks: _Blocks, p: np.ndarray, q: np.ndarray):
    """Block id, in-block coordinates (u, v) from the sidewalk side, interior size (w, h) and
    whether the point is on the street."""
    ip = np.searchsorted(blocks.cuts_p, p, side="right") - 1
    iq = np.searchsorted(blocks.cuts_q, q, side="right") - 1
    ip = np.clip(ip, 0, len(blocks.cuts_p) - 1)
    iq = np.clip(iq, 0, len(blocks.cuts_q) - 1)
    size_p = np.diff(blocks.cuts_p, append=blocks.cuts_p[-1] + 200.0)
    size_q = np.diff(blocks.cuts_q, append=blocks.cuts_q[-1] + 120.0)
    road_w = np.float32(blocks.road_w)
    u = p - blocks.cuts_p[ip] - road_w
    v = q - blocks.cuts_q[iq] - road_w
    w = size_p[ip] - road_w
    h = size_q[iq] - road_w
    block = ip * len(blocks.cuts_q) + iq
    return block, u, v, w, h, (u < 0) | (v < 0)


def _buildings(blocks: _Blocks, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Slot of the building at each point (>= FIRST_BUILDING), or -1 where there is none."""
    block, u, v, w, h, street = _frame(blocks, p, q)
    zone = blocks.zone[block]
    sw = blocks.sidewalk[block]
    slot = np.full(p.shape, -1, dtype=np.int32)
    # Residential: lots along u in two rows facing the two streets along the block.
    row = v >= h / 2
    depth_in = np.where(row, h - v, v) - sw - blocks.setback[block]
    lot_w = blocks.lot_w[block]
    lot = np.floor(u / lot_w)
    across = u - lot * lot_w - lot_w / 2
    house = (np.abs(across) < blocks.house_w[block] * lot_w / 2) & (depth_in > 0)
    house &= (depth_in < blocks.house_d[block]) & (u < w - lot_w / 4)
    lot_slot = FIRST_BUILDING + np.minimum(2 * lot.astype(np.int32) + row, SLOTS - 9)
    slot = np.where((zone == RESIDENTIAL) & house, lot_slot, slot)
    # Dense: a ring of buildings set back a little from the sidewalk, cut into segments.
    edge = np.minimum(np.minimum(u, w - u), np.minimum(v, h - v)) - sw
    ring = (edge > 0.5 * blocks.setback[block] - 1.0) & (edge < blocks.depth[block])
    along = np.where(np.minimum(u, w - u) < np.minimum(v, h - v), v, u)
    side = (np.minimum(u, w - u) < np.minimum(v, h - v)).astype(np.int32)
    segment = FIRST_BUILDING + np.minimum(np.floor(along / 22.0).astype(np.int32), 19) * 2 + side
    slot = np.where((zone == DENSE) & ring, segment, slot)
    # Industrial: one hall, or the block split in two or four, each part a hall in a paved
    # margin.
    iu = ((u > blocks.split_u[block] * w) & blocks.split[block, 0]).astype(np.int32)
    iv = ((v > blocks.split_v[block] * h) & blocks.split[block, 1]).astype(np.int32)
    cut_u = np.where(blocks.split[block, 0], blocks.split_u[block] * w, w)
    cut_v = np.where(blocks.split[block, 1], blocks.split_v[block] * h, h)
    u0, u1 = np.where(iu == 1, cut_u, 0.0), np.where(iu == 1, w, cut_u)
    v0, v1 = np.where(iv == 1, cut_v, 0.0), np.where(iv == 1, h, cut_v)
    inside = np.minimum(np.minimum(u - u0, u1 - u), np.minimum(v - v0, v1 - v))
    part = 2 * iu + iv
    hall = (inside > blocks.margin[block]) & blocks.hall[block, part]
    slot = np.where((zone == INDUSTRIAL) & hall, FIRST_BUILDING + part, slot)
    slot[street] = -1
    return slot


def _slots(blocks: _Blocks, p, q, trees, soil, shadow_shift):
    """(block id, slot) of every point: streets, sidewalks, buildings, shadows, yards."""
    block, u, v, w, h, street = _frame(blocks, p, q)
    zone = blocks.zone[block]
    sw = blocks.sidewalk[block]
    edge = np.minimum(np.minimum(u, w - u), np.minimum(v, h - v))
    building = _buildings(blocks, p, q)
    built_zone = (zone == RESIDENTIAL) | (zone == DENSE) | (zone == INDUSTRIAL)
    # Shadow: a building lies toward the sun within the shadow length (tested at 3 steps).
    shadow = np.zeros(p.shape, dtype=bool)
    length = blocks.height[block] * np.float32(shadow_shift[2])
    for step in (0.35, 0.7, 1.0):
        dp = length * np.float32(step * shadow_shift[0])
        dq = length * np.float32(step * shadow_shift[1])
        shadow |= _buildings(blocks, p + dp, q + dq) >= 0
    tree = trees > blocks.tree_level[block]
    yard = np.full(p.shape, LAWN, dtype=np.int32)
    yard = np.where((zone == DENSE) & blocks.paved_court[block], PAVED, yard)
    yard = np.where(zone == INDUSTRIAL, np.where((u > w / 2) ^ (v > h / 2), PAVED, PARKING), yard)
    yard = np.where((zone == INDUSTRIAL) & (edge < sw + 3.0), LAWN, yard)
    yard = np.where(zone == PLAZA, np.where(blocks.paved_court[block], PAVED, PARKING), yard)
    bare = (soil > blocks.soil_level[block]) & (zone != PARK) & (zone != PLAZA)
    yard = np.where(bare, SOIL, yard)
    # Residential driveways beside the house, from the sidewalk to its back.
    lot_w = blocks.lot_w[block]
    across = u - np.floor(u / lot_w) * lot_w - lot_w / 2
    half = blocks.house_w[block] * lot_w / 2
    depth_in = np.where(v >= h / 2, h - v, v) - sw
    drive = (across > half) & (across < half + 3.0)
    drive &= depth_in < blocks.setback[block] + blocks.house_d[block]
    yard = np.where((zone == RESIDENTIAL) & drive, PAVED, yard)
    yard = np.where(tree & ~((zone == RESIDENTIAL) & drive), TREES, yard)
    yard = np.where(shadow & built_zone, SHADOW, yard)
    yard = np.where(edge < sw, SIDEWALK, yard)
    slot = np.where(building >= 0, building, yard)
    # Streets, with rows of trees along the kerb in some blocks, and the shadows cast on them.
    from_kerb = np.where(u < 0, -u, -v)
    along = np.where(u < 0, v, u)
    crowns = (from_kerb < 3.0) & ((along % 9.0) < 5.0) & blocks.street_trees[block]
    road = np.where(shadow & (zone != PARK), SHADOW, ROAD)
    slot = np.where(street, np.where(crowns & (zone != PARK), TREES, road), slot)
    return block, slot


def paint_town(
    objects: np.ndarray,
    shape: tuple[int, int],
    res: float,
    table: Objects,
    rng: np.random.Generator,
    *,
    centre: tuple[float, float],
    radius: float,
    sun_azimuth_deg: float,
    sun_elevation_deg: float,
    built_class: int,
    zones=TOWN_ZONES,
    dry: bool = False,
) -> np.ndarray:
    """Paint a settlement of ``radius`` metres around ``centre`` (row, col metres) into
    ``objects``; returns each block's zone (for tests and statistics). ``dry``: a dry town
    (module docstring); parks stay green (they are watered)."""
    window, mask = blob(shape, res, centre, radius, rng)
    reach = 2.3 * radius  # the blob's window spans 1.6 radius each way; its diagonal 2.3
    blocks = _draw_blocks(rng, reach, radius, zones)
    n_blocks = len(blocks.zone)
    dry_yards = np.zeros(n_blocks, dtype=bool)
    if dry:
        not_park = blocks.zone != PARK
        dry_yards = not_park & (rng.random(n_blocks) < 0.6)
        cover = (1.0 - blocks.tree_level) * rng.uniform(0.3, 1.0, n_blocks)
        tree_level = np.where(not_park, 1.0 - cover, blocks.tree_level)
        soil_level = np.where(not_park, rng.uniform(0.5, 0.9, n_blocks), blocks.soil_level)
        blocks = replace(blocks, tree_level=tree_level, soil_level=soil_level)
    sub = mask.shape
    trees = fractal_noise(sub, 8.0 / res, rng, octaves=2)
    soil = fractal_noise(sub, 15.0 / res, rng, octaves=2)
    # Cover fractions become thresholds: the noise is close enough to normal for that.
    levels = [
        float(np.mean(field)) + float(np.std(field)) * _probit(level)
        for field, level in ((trees, blocks.tree_level), (soil, blocks.soil_level))
    ]
    blocks = _replace_levels(blocks, *levels)
    phi = rng.uniform(0, np.pi / 2)
    cos, sin = np.float32(np.cos(phi)), np.float32(np.sin(phi))
    # Toward the sun in the block frame, per metre of building height.
    az = np.radians(sun_azimuth_deg)
    dx, dy = np.sin(az), -np.cos(az)
    shift = (dx * cos + dy * sin, dy * cos - dx * sin, 1.0 / np.tan(np.radians(sun_elevation_deg)))
    kinds = np.empty((n_blocks, SLOTS), dtype=np.uint8)
    kinds[:, [ROAD, SIDEWALK, PAVED, PARKING]] = KIND_ID["pavement"]
    kinds[:, SIDEWALK] = KIND_ID["concrete"]
    kinds[:, PAVED] = KIND_ID["concrete"]
    kinds[:, LAWN] = KIND_ID["grass"]
    kinds[dry_yards, LAWN] = KIND_ID["steppe"]
    kinds[:, TREES] = KIND_ID["tree"]
    kinds[:, SOIL] = KIND_ID["soil"]
    kinds[:, SHADOW] = KIND_ID["shadow"]
    draw = rng.random(n_blocks)
    if dry:
        flat = (blocks.zone == INDUSTRIAL) | ((blocks.zone != PARK) & (draw < 0.7))
    else:
        flat = (blocks.zone == INDUSTRIAL) | ((blocks.zone == DENSE) & (draw < 0.4))
    kinds[:, FIRST_BUILDING:] = np.where(flat, KIND_ID["flatroof"], KIND_ID["roof"])[:, None]
    classes = np.full((n_blocks, SLOTS), built_class, dtype=np.uint8)
    classes[blocks.zone == PARK, LAWN:SHADOW] = BY_KIND
    base = table.add(kinds.ravel(), classes.ravel())
    x, y = coords(shape, res)
    x = x[:, window[1]] - np.float32(centre[1])
    y = y[window[0], :] - np.float32(centre[0])
    step = max(1, _ROWS_PER_CHUNK_CELLS // max(1, sub[1]))
    target = objects[window]
    for r0 in range(0, sub[0], step):
        rows = slice(r0, min(sub[0], r0 + step))
        p = x * cos + y[rows] * sin
        q = y[rows] * cos - x * sin
        block, slot = _slots(blocks, p, q, trees[rows], soil[rows], shift)
        ids = base + block * SLOTS + slot
        chunk = target[rows]
        chunk[mask[rows]] = ids[mask[rows]]
    return blocks.zone


def _probit(level: np.ndarray) -> np.ndarray:
    """Standard normal quantile, approximately (the logistic fit is within 0.02 in probability,
    enough to set cover fractions)."""
    level = np.clip(level, 1e-3, 1 - 1e-3)
    return np.log(level / (1.0 - level)) / 1.702


def _replace_levels(blocks: _Blocks, tree_level: np.ndarray, soil_level: np.ndarray) -> _Blocks:
    return replace(
        blocks, tree_level=tree_level.astype(np.float32), soil_level=soil_level.astype(np.float32)
    )
