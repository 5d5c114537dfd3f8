"""StripMosaic: tiled + blended output equals the untiled result; bounded rows, hand-checked."""

from __future__ import annotations

import numpy as np
import pytest

from gfmcli.engine.mosaic import FinishedRows, StripMosaic
from gfmcli.engine.tiling import plan_windows
from gfmcli.errors import ModelError

BANDS, CLASSES = 3, 4


def _toy_model(pixels: np.ndarray) -> np.ndarray:
    """Pointwise 'model': softmax of a fixed linear map, (C, h, w) -> (K, h, w) float32."""
    weights = np.array(
        [[2.0, -1.0, 0.5], [-1.5, 2.5, 0.0], [0.3, 0.2, -2.0], [1.0, 1.0, 1.0]], np.float32
    )
    logits = np.einsum("kc,chw->khw", weights, pixels) + np.float32(-1.2)
    logits -= logits.max(axis=0, keepdims=True)
    exp = np.exp(logits)
    return (exp / exp.sum(axis=0, keepdims=True)).astype(np.float32)


def _read_boundless(image, valid, tile):
    """What the reader does: a full window, filled with 0 / invalid outside the raster."""
    c, h, w = image.shape
    window = np.zeros((c, tile.height, tile.width), np.float32)
    mask = np.zeros((tile.height, tile.width), bool)
    rows, cols = min(tile.row_stop, h) - tile.row_off, min(tile.col_stop, w) - tile.col_off
    window[:, :rows, :cols] = image[:, tile.row_off : tile.row_off + rows, tile.col_off :][
        ..., :cols
    ]
    mask[:rows, :cols] = valid[tile.row_off : tile.row_off + rows, tile.col_off :][:, :cols]
    return window, mask


def _run(image, valid, window, overlap, order=None, max_pending=16):
    plan = plan_windows(image.shape[1], image.shape[2], window, overlap)
    mosaic = StripMosaic(CLASSES, plan, max_pending=max_pending)
    blocks: list[FinishedRows] = []
    tiles = plan.tiles if order is None else [plan.tiles[i] for i in order]
    for tile in tiles:
        pixels, mask = _read_boundless(image, valid, tile)
        if not mask.any():
            mosaic.skip(tile)
        else:
            mosaic.add(tile, _toy_model(pixels), mask)
        blocks += mosaic.pop_ready()
    blocks += mosaic.finish()
    return plan, mosaic, blocks


def _assemble(blocks, height):
    assert [b.row_off for b in blocks] == sorted(b.row_off for b in blocks)
    assert sum(b.rows for b in blocks) == height
    probs = np.concatenate([b.probabilities() for b in blocks], axis=1)
    classes = np.concatenate([b.classify() for b in blocks])
    wsum = np.concatenate([b.wsum for b in blocks])
    return probs, classes, wsum


def _scene(height, width, seed=0, holes=True):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(BANDS, height, width)).astype(np.float32)
    valid = np.ones((height, width), bool)
    if holes and height > 3 and width > 3:
        valid[1:3, 2:] = False  # a nodata strip
    return image, valid


@pytest.mark.parametrize(
    ("height", "width", "window", "overlap"),
    [
        (1, 1, 16, 0),
        (5, 9, 16, 4),
        (37, 29, 16, 4),
        (40, 33, 16, 0),
        (50, 70, 32, 12),
        (33, 48, 16, 15),
    ],
)
def test_tiled_blend_equals_untiled(height, width, window, overlap):
    image, valid = _scene(height, width)
    _, _, blocks = _run(image, valid, window, overlap)
    probs, classes, wsum = _assemble(blocks, height)
    direct = _toy_model(image)
    expected_classes = np.where(valid, direct.argmax(axis=0), 255)
    np.testing.assert_array_equal(classes, expected_classes)
    assert (wsum[~valid] == 0).all() and (wsum[valid] > 0).all()
    np.testing.assert_allclose(probs[:, valid], direct[:, valid], rtol=2e-6, atol=1e-7)
    assert np.isnan(probs[:, ~valid]).all()


def test_result_independent_of_arrival_order():
    image, valid = _scene(70, 45, seed=4)
    plan, _, in_order = _run(image, valid, 16, 6)
    rng = np.random.default_rng(0)
    order = np.arange(len(plan))
    for start in range(0, len(order), 5):  # shuffle within groups, like out-of-order batches
        rng.shuffle(order[start : start + 5])
    _, _, shuffled = _run(image, valid, 16, 6, order=order.tolist(), max_pending=5)
    for a, b in zip(in_order, shuffled, strict=True):
        np.testing.assert_array_equal(a.acc, b.acc)
        np.testing.assert_array_equal(a.wsum, b.wsum)


def test_two_overlapping_constant_windows_give_weighted_mean():
    plan = plan_windows(8, 12, 8, 4)
    assert plan.col_offsets == (0, 4)
    mosaic = StripMosaic(2, plan)
    ones = np.ones((8, 8), bool)
    p_a, p_b = np.array([0.8, 0.2], np.float32), np.array([0.3, 0.7], np.float32)
    mosaic.add(plan.tiles[0], np.broadcast_to(p_a[:, None, None], (2, 8, 8)), ones)
    mosaic.add(plan.tiles[1], np.broadcast_to(p_b[:, None, None], (2, 8, 8)), ones)
    (block,) = mosaic.finish()
    probs = block.probabilities()
    # Raised cosine over 4 px: 0.5 - 0.5 cos(pi (d + 0.5) / 4), d = 0..3 from the interior edge.
    rise = [0.0380602, 0.3086583, 0.6913417, 0.9619398]
    for d in range(4):
        w_a, w_b = rise[3 - d], rise[d]
        expected = (w_a * p_a + w_b * p_b) / (w_a + w_b)
        np.testing.assert_allclose(probs[:, 0, 4 + d], expected, rtol=1e-5)
        np.testing.assert_allclose(block.wsum[3, 4 + d], w_a + w_b, rtol=1e-5)
    np.testing.assert_allclose(probs[:, 5, :4], np.repeat(p_a[:, None], 4, 1), rtol=1e-6)
    np.testing.assert_allclose(probs[:, 5, 8:], np.repeat(p_b[:, None], 4, 1), rtol=1e-6)
    classes = block.classify()
    assert classes[0].tolist() == [0] * 6 + [1] * 6


def test_memory_bounded_for_tall_raster():
    height, width, window, overlap = 5000, 40, 32, 8
    plan = plan_windows(height, width, window, overlap)
    mosaic = StripMosaic(2, plan)
    assert mosaic.rows_held == window  # the accumulator is one window tall, not the raster
    pred = np.full((2, window, window), 0.5, np.float32)
    ones = np.ones((window, window), bool)
    covered = 0
    for tile in plan.tiles:
        mosaic.add(tile, pred, ones)
        for block in mosaic.pop_ready():
            assert block.row_off == covered
            covered += block.rows
        assert mosaic.rows_held <= window + plan.stride
    covered += sum(b.rows for b in mosaic.finish())
    assert covered == height
    assert mosaic.peak_rows_held <= window + plan.stride


def test_skipped_row_becomes_nodata_and_advances():
    plan = plan_windows(20, 10, 8, 0)
    mosaic = StripMosaic(2, plan)
    pred = np.full((2, 8, 8), 0.5, np.float32)
    for tile in plan.tiles:
        if plan.window_row(tile) == 1:
            mosaic.skip(tile)
        else:
            mosaic.add(tile, pred, np.ones((8, 8), bool))
    blocks = mosaic.finish()
    classes = np.concatenate([b.classify() for b in blocks])
    assert (classes[8:12] == 255).all()  # rows only window row 1 covers
    assert (classes[:8] == 0).all() and (classes[12:] == 0).all()


def test_protocol_errors():
    plan = plan_windows(20, 20, 8, 2)
    mosaic = StripMosaic(2, plan, max_pending=1)
    pred = np.zeros((2, 8, 8), np.float32)
    ones = np.ones((8, 8), bool)
    with pytest.raises(ModelError, match="model output shape"):
        mosaic.add(plan.tiles[0], np.zeros((3, 8, 8), np.float32), ones)
    mosaic.add(plan.tiles[0], pred, ones)
    with pytest.raises(ValueError, match="added twice"):
        mosaic.add(plan.tiles[0], pred, ones)
    mosaic.add(plan.tiles[2], pred, ones)  # parked
    with pytest.raises(ValueError, match="parked"):
        mosaic.add(plan.tiles[3], pred, ones)
    with pytest.raises(ValueError, match="never added"):
        mosaic.finish()
    with pytest.raises(ValueError, match="nodata 1"):
        FinishedRows(0, np.zeros((2, 1, 1), np.float32), np.ones((1, 1), np.float32)).classify(1)
