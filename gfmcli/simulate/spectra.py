"""Reflectance spectra for the scene simulator: earthlib's library plus a model for water.

earthlib (MIT, ``pip install earthlib``) ships 7,261 reflectance spectra on a 10 nm grid from 400
to 2450 nm: about 4,200 laboratory soil spectra (ICRAF-ISRIC), sand, dirt and gravel, about 1,000
built materials (roofing, asphalt, roads, sidewalks, paint, metal), non-photosynthetic vegetation
(bark, litter, wood), char from burned areas, and 2,000 PROSAIL canopy spectra (the vegetation in
earthlib is simulated by a leaf/canopy radiative transfer model, not measured). It has no water,
so open water comes from a semi-analytical ocean-colour model (``water_reflectance``).

The simulator never uses a library spectrum for a whole class. Each *object* (a field, a forest
stand, a roof, a lake) draws two spectra from the pool of its *kind*, mixed the way the surface
is mixed in reality (crops over soil, dry grass with litter, char with soil, shaded canopies);
the renderer blends the two per pixel with a smooth field, so a parcel varies inside itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gfmcli.errors import GfmError
from gfmcli.simulate.atmosphere import snow_spectrum

# Spectral kinds: which pool and which mixing rule an object's spectra come from. The order is
# part of the simulator's stable vocabulary (``gfmcli.simulate.landcover`` maps each kind to a
# class). New kinds are appended, never inserted.
# fmt: skip below: a table, kept in rows (ruff format would add 15 lines)
KINDS = (
    "lake", "river", "tree", "crop", "grass", "soil", "roof", "pavement", "burned",
    "shadow", "rail", "flatroof", "concrete", "conifer", "stubble", "shallow", "snow",
    "steppe",
)  # fmt: skip
KIND_ID = {name: i for i, name in enumerate(KINDS)}
# Seasons change what vegetation and fields look like (``sample_object_spectra``).
SEASONS = ("spring", "summer", "autumn", "winter")

# earthlib (LEVEL_2 type, LEVEL_3 sub-types) grouped into the simulator's pools.
_POOLS = {
    "canopy": ("vegetation", ("canopy",)),
    "npv": ("npv", ("litter", "npv", "bark", "wood")),
    "bare": ("bare", ("soil", "sand", "dirt", "gravel")),
    "roof": ("built", ("comp_shingle", "concrete_tile", "tile", "metal", "wood_shingle", "paint")),
    "flatroof": ("built", ("metal", "paint", "gravel", "concrete_tile")),
    "pavement": ("built", ("road", "asphalt", "parking_lot")),
    "concrete": ("built", ("sidewalk", "driveway", "bridge")),
    "char": ("burned", ("char",)),
}


class SimulatorDependencyError(GfmError, ImportError):
    """The scene simulator's optional dependency (earthlib) is not installed."""


@dataclass(frozen=True)
class SpectralLibrary:
    """Spectra pools on one wavelength grid (nm); each pool is an (n, n_wavelengths) array."""

    wavelengths_nm: np.ndarray
    pools: dict[str, np.ndarray]

    def pool(self, name: str) -> np.ndarray:
        return self.pools[name]


@functools.lru_cache(maxsize=1)
def load_library() -> SpectralLibrary:
    """earthlib's full library grouped into pools; read once per process (it is read-only)."""
    try:
        import earthlib
    except ImportError as exc:
        raise SimulatorDependencyError(
            "the scene simulator needs earthlib's measured spectra: pip install earthlib "
            "(or pip install 'gfmcli[simulate]')"
        ) from exc
    library = earthlib.full_library
    centres = np.asarray(library.sensor.band_centers, dtype=np.float64)
    if library.sensor.wavelength_unit.lower() == "micrometers":
        centres = centres * 1000.0
    data = np.clip(np.asarray(library.data, dtype=np.float32), 0.0, 1.0)
    level2 = library.metadata["LEVEL_2"].to_numpy()
    level3 = library.metadata["LEVEL_3"].to_numpy()
    pools: dict[str, np.ndarray] = {}
    for pool, (kind, subtypes) in _POOLS.items():
        pools[pool] = data[(level2 == kind) & np.isin(level3, subtypes)]
    # Dense canopies (NDVI >= 0.85) stand in for tree crowns; all canopies serve crops/grass.
    red = data[:, np.argmin(np.abs(centres - 670.0))]
    nir = data[:, np.argmin(np.abs(centres - 860.0))]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    pools["dense_canopy"] = data[(level3 == "canopy") & (ndvi >= 0.85)]
    # Railway ballast: crushed rock, from the built and the bare gravels.
    pools["ballast"] = data[level3 == "gravel"]
    empty = sorted(name for name, spectra in pools.items() if len(spectra) == 0)
    if empty:
        raise SimulatorDependencyError(
            f"earthlib's library has no spectra for pool(s) {', '.join(empty)}; "
            "upgrade it: pip install -U earthlib"
        )
    # The cached arrays are shared by every caller in the process: make them immutable.
    wavelengths = np.round(centres, 3)
    for array in (wavelengths, *pools.values()):
        array.setflags(write=False)
    return SpectralLibrary(wavelengths, pools)


# --- open water --------------------------------------------------------------------------------

# Pure-water absorption a_w (1/m): Pope & Fry (1997) from 400 to 700 nm; beyond, values derived
# from Hale & Querry (1973) and Kou et al. (1993) (a = 4*pi*k/lambda), coarsely tabulated and
# interpolated in log space. Past ~750 nm water absorbs so strongly that only the surface
# reflection is left, so coarse values there change nothing visible.
# fmt: skip below: a table, kept in rows (ruff format would add 54 lines)
_AW_NM = np.array(
    [400, 420, 440, 460, 480, 500, 520, 540, 560, 580, 600, 620, 640, 660, 680, 700, 720, 740,
     760, 780, 800, 820, 840, 860, 880, 900, 920, 940, 960, 980, 1000, 1050, 1100, 1150, 1200,
     1250, 1300, 1350, 1400, 1450, 1500, 1550, 1600, 1650, 1700, 1750, 1800, 1850, 1900, 1950,
     2000, 2100, 2200, 2300, 2400, 2500],
    dtype=np.float64,
)  # fmt: skip
_AW = np.array(
    [0.00663, 0.00454, 0.00635, 0.00979, 0.0127, 0.0204, 0.0409, 0.0474, 0.0619, 0.0896,
     0.2224, 0.2755, 0.3108, 0.410, 0.465, 0.624, 1.169, 2.47, 2.55, 2.36, 1.96, 2.8, 3.9, 4.7,
     5.3, 6.8, 16.0, 29.0, 44.0, 45.0, 36.0, 17.0, 19.0, 75.0, 104.0, 90.0, 115.0, 300.0,
     1240.0, 3000.0, 1750.0, 950.0, 671.0, 580.0, 530.0, 600.0, 800.0, 1500.0, 7000.0, 11000.0,
     6900.0, 2600.0, 1650.0, 2100.0, 5000.0, 8000.0],
    dtype=np.float64,
)  # fmt: skip


def water_reflectance(
    wavelengths_nm: np.ndarray,
    chlorophyll: np.ndarray,
    cdom_440: np.ndarray,
    tsm: np.ndarray,
    surface: np.ndarray,
    depth_m: np.ndarray | None = None,
    bottom: np.ndarray | None = None,
) -> np.ndarray:
    """Reflectance (0-1, as a surface-reflectance product reports it) of water; optically deep
    unless ``depth_m`` (n,) and a ``bottom`` reflectance (n, n_wavelengths) are given.

    Inherent optical properties, per water body (arrays of shape (n,)):

    * absorption a = a_w + a_ph + a_g + a_d: pure water (table above); phytoplankton
      a_ph(440) = 0.06 Chl^0.65 (Lee et al. 1998) with peaks at 440 and 675 nm; CDOM
      a_g = a_g(440) exp(-0.015 (lambda - 440)); sediment a_d = 0.03 TSM exp(-0.011 (lambda - 440));
    * backscattering b_b = b_bw + b_bp: pure water 0.0011 (lambda/500)^-4.32 (Morel 1974) and
      particles 0.01 TSM (550/lambda)^0.7 (TSM in g/m^3).

    Subsurface r_rs = g0 u + g1 u^2 with u = b_b/(a + b_b), g0 = 0.084, g1 = 0.17 (Gordon et al.
    1988, Lee et al. 1999); in shallow water the bottom shows through, r_rs = r_rs_deep (1 - A)
    + (bottom / pi) A with A = exp(-2.7 (a + b_b) depth) (after Lee et al. 1998/1999, down- and
    upwelling attenuation lumped); above-water R_rs = 0.52 r_rs / (1 - 1.7 r_rs) (Lee et al.
    2002), and
    reflectance pi R_rs plus ``surface``, a spectrally flat reflected-skylight term. Turbid rivers
    come out brighter and greener/redder than clear lakes; NIR and SWIR are near zero.
    """
    wl = np.asarray(wavelengths_nm, dtype=np.float64)[None, :]
    chl = np.asarray(chlorophyll, dtype=np.float64)[:, None]
    a_g440 = np.asarray(cdom_440, dtype=np.float64)[:, None]
    tsm_ = np.asarray(tsm, dtype=np.float64)[:, None]
    a_w = np.exp(np.interp(wl, _AW_NM, np.log(_AW)))
    shape_ph = (
        np.exp(-0.5 * ((wl - 440.0) / 45.0) ** 2)
        + 0.45 * np.exp(-0.5 * ((wl - 675.0) / 12.0) ** 2)
        + 0.08 * ((wl > 400.0) & (wl < 700.0))
    )
    a_ph = 0.06 * chl**0.65 * shape_ph
    a_g = a_g440 * np.exp(-0.015 * (wl - 440.0))
    a_d = 0.03 * tsm_ * np.exp(-0.011 * (wl - 440.0))
    b_b = 0.0011 * (wl / 500.0) ** -4.32 + 0.01 * tsm_ * (550.0 / wl) ** 0.7
    u = b_b / (a_w + a_ph + a_g + a_d + b_b)
    r_rs = 0.084 * u + 0.17 * u**2
    if depth_m is not None and bottom is not None:
        kappa = a_w + a_ph + a_g + a_d + b_b
        depth = np.asarray(depth_m, dtype=np.float64)[:, None]
        through = np.exp(-2.7 * kappa * depth)
        r_rs = r_rs * (1.0 - through) + np.asarray(bottom, dtype=np.float64) / np.pi * through
    rrs_above = 0.52 * r_rs / (1.0 - 1.7 * r_rs)
    reflectance = np.pi * rrs_above + np.asarray(surface, dtype=np.float64)[:, None]
    return reflectance.astype(np.float32)


# --- per-object spectra ------------------------------------------------------------------------


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return pool[rng.integers(0, len(pool), size=n)]


def _mix(a: np.ndarray, b: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    return a * (1.0 - fraction[:, None]) + b * fraction[:, None]


def _water(library, kind, n, rng) -> np.ndarray:
    """Lakes: clear, algal (chlorophyll up to 200 mg/m^3, with a surface scum's red edge) or
    turbid; rivers: from clear to turbid; shallow margins: a lake over a sand, soil or weed
    bottom.

    Most inland water in real scenes is dark (lakes and slow rivers; e.g. the Potsdam lakes in
    EnMAP L2A: 0.007 at 560 nm, about 0 beyond 700 nm). Rivers drawn all turbid (sediment
    5-150 g/m^3) made the simulated water at 30 m mostly bright river pixels, and a model
    trained on them mapped real dark lakes and sea as shadow or forest; rivers now span
    1-60 g/m^3 (log-uniform) and lakes are 60 % clear."""
    u = rng.uniform
    wl = library.wavelengths_nm
    if kind == "river":
        chl = np.exp(u(np.log(0.5), np.log(15.0), n))
        cdom, tsm = u(0.1, 1.2, n), np.exp(u(np.log(1.0), np.log(60.0), n))
    else:
        # A water type per body: 60 % clear, 20 % algal, 20 % turbid.
        kind_draw = rng.random(n)
        algal, turbid = (kind_draw >= 0.6) & (kind_draw < 0.8), kind_draw >= 0.8
        chl = np.exp(u(np.log(0.5), np.log(10.0), n))
        chl = np.where(algal, np.exp(u(np.log(20.0), np.log(200.0), n)), chl)
        cdom = np.where(turbid, u(0.3, 1.5, n), u(0.05, 0.6, n))
        tsm = np.exp(u(np.log(0.5), np.log(8.0), n))
        tsm = np.where(turbid, np.exp(u(np.log(15.0), np.log(120.0), n)), tsm)
    glint = u(0.003, 0.012, n)
    if kind == "shallow":
        bottom = np.where(
            (rng.random(n) < 0.35)[:, None],
            _pick(library.pools["canopy"], n, rng) * u(0.2, 0.5, n)[:, None],  # weeds
            _pick(library.pools["bare"], n, rng) * u(0.5, 1.0, n)[:, None],
        )
        depth = np.exp(u(np.log(0.2), np.log(3.0), n))
        water = water_reflectance(wl, chl, cdom, tsm, glint, depth, bottom)
    else:
        water = water_reflectance(wl, chl, cdom, tsm, glint)
    if kind == "lake":
        # Dense blooms float: a few percent of the surface reflects like a canopy (red edge).
        scum = np.where(chl > 80.0, u(0.0, 0.08, n), 0.0)
        water = _mix(water, _pick(library.pools["canopy"], n, rng), scum)
    return water


def _draw(
    library: SpectralLibrary, kind: str, n: int, rng: np.random.Generator, season: str
) -> np.ndarray:
    """``n`` spectra of one kind in ``season``; the mixing rule is the kind's physical make-up."""
    pools = library.pools
    u = rng.uniform
    if kind == "tree":
        # Broadleaf stands: sunlit and shaded crowns, leafing out in spring, turning in autumn,
        # bare branches over litter and understory in winter.
        crowns = _pick(pools["dense_canopy"], n, rng)
        if season == "spring":
            crowns = _mix(_pick(pools["canopy"], n, rng), _pick(pools["npv"], n, rng), u(0, 0.3, n))
        elif season == "autumn":
            crowns = _mix(crowns, _pick(pools["npv"], n, rng), u(0.2, 0.7, n))
        elif season == "winter":
            crowns = _mix(_pick(pools["npv"], n, rng), _pick(pools["canopy"], n, rng), u(0, 0.3, n))
        return crowns * u(0.5, 0.85, n)[:, None]
    if kind == "conifer":
        # Needle-leaf stands: darker than broadleaf (clumped shoots, deep crown shadows).
        return _pick(pools["dense_canopy"], n, rng) * u(0.3, 0.55, n)[:, None]
    if kind == "crop":
        green = _mix(_pick(pools["canopy"], n, rng), _pick(pools["bare"], n, rng), u(0, 0.5, n))
        ripe = _mix(_pick(pools["canopy"], n, rng), _pick(pools["npv"], n, rng), u(0.3, 0.7, n))
        young = _mix(_pick(pools["canopy"], n, rng), _pick(pools["bare"], n, rng), u(0.5, 0.9, n))
        draw = u(0, 1, n)[:, None]
        if season == "summer":
            return np.where(draw < 0.25, ripe, green)
        if season == "autumn":
            return np.where(draw < 0.5, ripe, young)
        return np.where(draw < 0.3, green, young)  # spring and winter: sown, sparse
    if kind == "stubble":
        # Harvested fields: straw and stubble over soil, a little regrowth.
        straw = _mix(_pick(pools["npv"], n, rng), _pick(pools["bare"], n, rng), u(0.2, 0.6, n))
        return _mix(straw, _pick(pools["canopy"], n, rng), u(0, 0.15, n))
    if kind == "grass":
        dry = {"spring": (0.0, 0.2), "summer": (0.05, 0.45), "autumn": (0.2, 0.55)}
        low, high = dry.get(season, (0.4, 0.8))
        mixed = _mix(_pick(pools["canopy"], n, rng), _pick(pools["npv"], n, rng), u(low, high, n))
        return mixed * u(0.8 if season == "winter" else 0.85, 1.0, n)[:, None]
    if kind == "soil":
        # Laboratory soils are dry and smooth; moisture and roughness darken them in the field.
        wet = 0.45 if season == "winter" else 0.55
        return _pick(pools["bare"], n, rng) * u(wet, 1.0, n)[:, None]
    if kind == "steppe":
        # Arid steppe and scrub: soil, gravel and sand with 5-35 % cover of dry tussocks and
        # shrubs (mostly litter-coloured, a little green), darkened by stones and their shadows.
        ground = _pick(pools["bare"], n, rng) * u(0.45, 0.9, n)[:, None]
        tufts = _mix(_pick(pools["npv"], n, rng), _pick(pools["canopy"], n, rng), u(0, 0.35, n))
        return _mix(ground, tufts, u(0.05, 0.35, n))
    if kind in ("roof", "pavement", "flatroof", "concrete"):
        return _pick(pools[kind], n, rng)
    if kind == "shadow":
        # Ground lit by the sky only: dark and bluish (skylight ~ lambda^-1.5 relative to sun).
        ground = np.where(
            (u(0, 1, n) < 0.5)[:, None],
            _pick(pools["canopy"], n, rng),
            _pick(pools[("pavement", "concrete")[int(rng.integers(2))]], n, rng),
        )
        sky = (library.wavelengths_nm / 550.0)[None, :] ** -1.5
        return ground * sky * u(0.1, 0.25, n)[:, None]
    if kind == "rail":
        # Ballast with wooden or concrete sleepers and steel rails (dark).
        sleepers = _pick(pools[("npv", "concrete")[int(rng.integers(2))]], n, rng)
        return (
            _mix(_pick(pools["ballast"], n, rng), sleepers, u(0.15, 0.35, n))
            * u(0.5, 0.85, n)[:, None]
        )
    if kind == "burned":
        return _mix(_pick(pools["char"], n, rng), _pick(pools["bare"], n, rng), u(0, 0.4, n))
    if kind == "snow":
        # earthlib has no snow: the analytic spectrum of ``atmosphere.snow_spectrum`` (grain
        # size drawn), with up to 15 % soil or stubble showing through and shading.
        wl = library.wavelengths_nm
        snow = np.stack([snow_spectrum(wl, grain) for grain in u(0, 1, n)])
        return _mix(snow, _pick(pools["bare"], n, rng), u(0, 0.15, n)) * u(0.8, 1.0, n)[:, None]
    if kind in ("lake", "river", "shallow"):
        return _water(library, kind, n, rng)
    raise ValueError(f"unknown spectral kind {kind!r}")


def sample_object_spectra(
    library: SpectralLibrary,
    kinds: np.ndarray,
    seed: int | Sequence[int],
    season: str = "summer",
) -> np.ndarray:
    """Two spectra per object in ``season``, shape (n_objects, 2, n_wavelengths), float32 in
    [0, 1].

    The renderer blends the pair per pixel. Roofs keep one material (both spectra equal): a roof
    is one surface, unlike a field. The result depends only on ``kinds`` and ``seed``.
    """
    if season not in SEASONS:
        raise ValueError(f"unknown season {season!r}; use one of {', '.join(SEASONS)}")
    kinds = np.asarray(kinds)
    out = np.zeros((len(kinds), 2, len(library.wavelengths_nm)), dtype=np.float32)
    for kind_id, kind in enumerate(KINDS):
        rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), kind_id])
        members = np.flatnonzero(kinds == kind_id)
        if members.size == 0:
            continue
        first = _draw(library, kind, members.size, rng, season)
        one = kind in ("roof", "flatroof")
        second = first if one else _draw(library, kind, members.size, rng, season)
        out[members, 0] = first
        out[members, 1] = second
    return np.clip(out, 0.0, 1.0)
