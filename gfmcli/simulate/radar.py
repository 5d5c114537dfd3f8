"""C-band radar (Sentinel-1 like) images of a simulated land cover: per-kind backscatter in dB
for VV and VH with a spread between objects, averaged in linear power on the sensor grid, a
noise floor, and speckle with Sentinel-1 IW's equivalent number of looks.
"""

from __future__ import annotations

import numpy as np

from gfmcli.simulate.grid import render_bands
from gfmcli.simulate.spectra import KINDS

# C-band backscatter (dB) VV, VH and the spread between objects, by kind.
# fmt: skip below: a table, kept in rows (ruff format would add 11 lines)
_BACKSCATTER = {"lake": (-22.0, -29.0, 1.5), "river": (-19.0, -26.0, 1.5),
                "tree": (-7.5, -13.5, 1.0), "crop": (-10.0, -17.0, 2.0),
                "grass": (-12.0, -19.5, 1.5), "soil": (-13.0, -22.0, 2.0),
                "roof": (1.0, -4.0, 3.0), "pavement": (-15.0, -23.0, 2.0),
                "burned": (-12.5, -20.0, 1.5), "shadow": (-4.0, -9.0, 3.0),
                "rail": (-8.0, -15.0, 2.0), "flatroof": (-2.0, -7.0, 3.0),
                "concrete": (-13.0, -21.0, 2.0), "conifer": (-7.0, -12.5, 1.0),
                "stubble": (-11.5, -19.0, 1.5), "shallow": (-20.0, -27.0, 1.5),
                "snow": (-15.0, -23.0, 2.0), "steppe": (-14.0, -22.5, 2.0)}  # fmt: skip


_NOISE_FLOOR_DB = -25.0  # Sentinel-1 IW NESZ is about -22 to -26 dB


_ENL = 4.4  # equivalent number of looks of Sentinel-1 IW GRDH


def render_radar(landcover, sensor, gsd, shape, rng, noise):
    kinds = landcover.object_kind
    scatter = np.random.default_rng([landcover.seed, 2])
    table = np.array([_BACKSCATTER[k] for k in KINDS], dtype=np.float32)
    image = np.empty((len(sensor.bands), *shape), dtype=np.float32)
    texture = np.full(len(KINDS), 0.25, dtype=np.float32)  # about +-1 dB
    for b, band in enumerate(sensor.bands):
        column = 1 if band.name.upper() == "VH" else 0
        db = table[kinds, column] + table[kinds, 2] * scatter.standard_normal(len(kinds))
        # One value per object (both "spectra" equal), textured and averaged in linear power.
        power = (10.0 ** (db / 10.0)).astype(np.float32)
        values = np.stack([power, power], axis=1)[:, :, None]
        image[b] = render_bands(landcover, gsd, shape, values, texture)[0]
    image += 10.0 ** (_NOISE_FLOOR_DB / 10.0)
    if noise > 0:
        image *= rng.gamma(_ENL / noise, noise / _ENL, size=image.shape).astype(np.float32)
    return (10.0 * np.log10(np.maximum(image, 1e-6))).astype(np.float32)
