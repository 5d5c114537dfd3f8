"""How the simulator turns its fine land-cover base grid into a sensor's pixels.

Each pixel of a ``gsd`` grid takes up to 4 x 4 evenly spaced samples of the base grid (the land
cover at ``resolution_m``), in row strips sized so that peak memory does not grow with the
scene: labels are the majority class of the samples (:func:`render_labels`), band values the
mean of the sampled objects' spectra (:func:`render_bands`), each object textured and mixed
with its second spectrum by the scene's fields.
"""

from __future__ import annotations

import numpy as np

from gfmcli.simulate.landcover import LANDCOVER_CLASSES, LandCoverMap

_SUBGRID_BUDGET = 4_000_000  # sample points per strip: bounds peak memory at any scene size


_MAX_SAMPLES = 4  # sample points per pixel and axis: 16 per pixel resolve cover to 1/16


def grid_shape(landcover: LandCoverMap, gsd: float) -> tuple[int, int]:
    """Rows and columns of the ``gsd`` grid inside the scene (whole pixels only)."""
    return (
        max(1, int(landcover.height_m / gsd + 1e-6)),
        max(1, int(landcover.width_m / gsd + 1e-6)),
    )


def _sample_index(
    start: int, stop: int, gsd: float, samples: int, res: float, n_base: int
) -> np.ndarray:
    """Base-grid index of ``samples`` evenly spaced points inside pixels ``start..stop-1``."""
    pixels = np.arange(start, stop)[:, None]
    pos = (pixels + (np.arange(samples)[None, :] + 0.5) / samples) * gsd
    return np.clip((pos / res).astype(np.intp), 0, n_base - 1).ravel()


def strips(landcover: LandCoverMap, gsd: float, shape: tuple[int, int]):
    """Yield (row slice, object ids on the sub-grid, sub-grid row/col indices, samples/axis)."""
    res = landcover.resolution_m
    samples = min(_MAX_SAMPLES, max(1, round(gsd / res)))
    cols = _sample_index(0, shape[1], gsd, samples, res, landcover.shape[1])
    step = max(1, _SUBGRID_BUDGET // (shape[1] * samples * samples))
    for r0 in range(0, shape[0], step):
        r1 = min(shape[0], r0 + step)
        rows = _sample_index(r0, r1, gsd, samples, res, landcover.shape[0])
        yield slice(r0, r1), landcover.objects[rows][:, cols], rows, cols, samples


def render_labels(landcover: LandCoverMap, gsd: float) -> np.ndarray:
    """Majority class per ``gsd`` pixel (ties to the lower class id), uint8."""
    shape = grid_shape(landcover, gsd)
    labels = np.empty(shape, dtype=np.uint8)
    object_class = landcover.object_class
    for rows, objects, _, _, samples in strips(landcover, gsd, shape):
        classes = object_class[objects]
        counts = np.stack(
            [block_sum((classes == c.id).view(np.uint8), samples) for c in LANDCOVER_CLASSES]
        )
        labels[rows] = np.argmax(counts, axis=0).astype(np.uint8)
    return labels


def render_bands(landcover, gsd, shape, values: np.ndarray, texture_amp: np.ndarray):
    """Per-pixel band values (n_bands, rows, cols) on the ``gsd`` grid from object values
    ``values`` of shape (n_objects, 2, n_bands): blend by ``mix``, scale by texture, average.

    A pixel is linear in its objects' values: sum over its samples of v0*(1-w)*t + v1*w*t.
    With many bands (imaging spectrometers) the samples are first merged into one weight per
    (pixel, object, spectrum), so each band costs a pass over pixels rather than samples."""
    n_objects, _, n_bands = values.shape
    out = np.empty((n_bands, *shape), dtype=np.float32)
    kind_amp = texture_amp[landcover.object_kind]
    by_band = np.ascontiguousarray(values.transpose(2, 1, 0), dtype=np.float32)
    for rows, objects, ri, ci, samples in strips(landcover, gsd, shape):
        weight = landcover.mix[ri][:, ci].astype(np.float32) / np.float32(255.0)
        texture = (landcover.texture[ri][:, ci].astype(np.float32) - 128.0) / np.float32(128.0)
        texture = (1.0 + kind_amp[objects] * texture) / np.float32(samples * samples)
        first, second = (1.0 - weight) * texture, weight * texture
        if n_bands <= 8:
            for b in range(n_bands):
                blend = by_band[b, 0][objects]
                blend *= first
                other = by_band[b, 1][objects]
                other *= second
                blend += other
                out[b, rows] = block_sum(blend, samples)
            continue
        h, w = objects.shape[0] // samples, objects.shape[1] // samples
        pixel = np.arange(h * w, dtype=np.int64).reshape(h, 1, w, 1)
        pixel = np.broadcast_to(pixel, (h, samples, w, samples)).reshape(objects.shape)
        keys = pixel * (2 * n_objects) + objects  # column: spectrum * n_objects + object
        keys = np.concatenate([keys, keys + n_objects], axis=None)
        unique, inverse = np.unique(keys, return_inverse=True)
        merged = np.bincount(inverse, weights=np.concatenate([first, second], axis=None))
        pair_pixel, pair_column = np.divmod(unique, 2 * n_objects)
        flat = by_band.reshape(n_bands, 2 * n_objects)
        for b in range(n_bands):
            summed = np.bincount(pair_pixel, flat[b][pair_column] * merged, minlength=h * w)
            out[b, rows] = summed.reshape(h, w)
    return out


def block_sum(values: np.ndarray, samples: int) -> np.ndarray:
    """Sum of each ``samples`` x ``samples`` block, by adding strided slices (several times
    faster than a reduction over the axes of a 4-D reshape)."""
    rows = values[0::samples].copy()
    for i in range(1, samples):
        rows += values[i::samples]
    out = rows[:, 0::samples].copy()
    for j in range(1, samples):
        out += rows[:, j::samples]
    return out


def to_grid(source: np.ndarray, source_gsd: float, gsd: float, shape: tuple[int, int]):
    """Nearest-neighbour resampling of ``source`` (pixels of ``source_gsd``) onto the ``gsd``
    grid of ``shape``: each target pixel takes the source pixel under its centre."""
    if source_gsd == gsd and source.shape == shape:
        return source
    rows = ((np.arange(shape[0]) + 0.5) * gsd / source_gsd).astype(np.intp)
    cols = ((np.arange(shape[1]) + 0.5) * gsd / source_gsd).astype(np.intp)
    rows = np.minimum(rows, source.shape[0] - 1)
    return source[rows][:, np.minimum(cols, source.shape[1] - 1)]
