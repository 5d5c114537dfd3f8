"""Window planning: full-size windows, every pixel covered, edge-flush last windows, bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from gfmcli.engine.tiling import PlannedWindow, plan_windows
from gfmcli.errors import InputError

SIZES = [
    (1, 1, 16, 0),
    (5, 40, 16, 4),
    (16, 16, 16, 8),
    (17, 33, 16, 4),
    (100, 37, 32, 8),
    (64, 64, 32, 0),
    (250, 300, 64, 63),
]


@pytest.mark.parametrize(("height", "width", "window", "overlap"), SIZES)
def test_every_pixel_covered_by_full_windows(height, width, window, overlap):
    plan = plan_windows(height, width, window, overlap)
    cover = np.zeros((height, width), dtype=int)
    for tile in plan.tiles:
        assert (tile.height, tile.width) == (plan.window, plan.window)
        assert plan.window == window or plan.window == max(height, width) < window
        assert tile.row_off >= 0 and tile.col_off >= 0
        cover[tile.row_off : tile.row_stop, tile.col_off : tile.col_stop] += 1
    assert cover.min() >= 1


@pytest.mark.parametrize(("height", "width", "window", "overlap"), SIZES)
def test_windows_stay_inside_when_raster_is_large_enough(height, width, window, overlap):
    plan = plan_windows(height, width, window, overlap)
    window = plan.window
    for tile in plan.tiles:
        if height >= window:
            assert tile.row_stop <= height
        else:
            assert tile.row_off == 0
        if width >= window:
            assert tile.col_stop <= width
        else:
            assert tile.col_off == 0


def test_a_raster_smaller_than_the_window_gets_one_window_of_its_size():
    plan = plan_windows(100, 101, 512, 64, multiple_of=16)
    assert plan.window == 112 and len(plan) == 1 and plan.overlap <= 112 - 16
    assert plan_windows(600, 101, 512, 64, multiple_of=16).window == 512  # taller than a window
    assert plan_windows(32, 32, 512, 64, multiple_of=16).window == 32


def test_offsets_stride_then_flush_edge():
    plan = plan_windows(100, 64, 32, 8)
    assert plan.stride == 24
    assert plan.row_offsets == (0, 24, 48, 68)
    assert plan.col_offsets == (0, 24, 32)
    assert plan.n_rows == 4 and plan.n_cols == 3 and len(plan) == 12


def test_exact_fit_has_no_duplicate_windows():
    plan = plan_windows(32 + 24 * 3, 32, 32, 8)
    assert plan.row_offsets == (0, 24, 48, 72)
    assert plan.col_offsets == (0,)


def test_row_major_order_and_indices():
    plan = plan_windows(70, 90, 32, 16)
    keys = [(t.row_off, t.col_off) for t in plan.tiles]
    assert keys == sorted(keys)
    assert [t.index for t in plan.tiles] == list(range(len(plan)))
    for tile in plan.tiles:
        assert plan.row_offsets[plan.window_row(tile)] == tile.row_off


def test_small_raster_gets_one_window_past_edge():
    plan = plan_windows(1, 1, 16, 0, multiple_of=8)
    assert plan.tiles == (PlannedWindow(0, 0, 0, 8, 8),)
    assert plan.clip(plan.tiles[0]) == (1, 1)
    assert plan.edges(plan.tiles[0]) == (False, False, False, False)


def test_row_bookkeeping_final_rows_not_reached_later():
    plan = plan_windows(100, 50, 32, 8)
    for done in range(plan.n_rows + 1):
        final = plan.final_row_stop(done)
        later = [plan.row_offsets[r] for r in range(done, plan.n_rows)]
        assert all(final <= off for off in later)
        if done:
            assert plan.row_stop(done - 1) >= final
    assert plan.final_row_stop(plan.n_rows) == 100
    assert plan.final_row_stop(0) == 0
    assert [plan.row_stop(r) for r in range(plan.n_rows)] == [32, 56, 80, 100]


def test_edges_interior_flags():
    plan = plan_windows(64, 64, 32, 8)
    first, last = plan.tiles[0], plan.tiles[-1]
    assert plan.edges(first) == (False, True, False, True)
    assert plan.edges(last) == (True, False, True, False)
    middle = plan.tiles[plan.n_cols + 1]
    assert plan.edges(middle) == (True, True, True, True)


@pytest.mark.parametrize(
    ("window", "overlap", "multiple_of", "match"),
    [
        (0, 0, 1, "window size 0"),
        (30, 0, 16, "multiple of the patch size 16; use e.g. 16 or 32"),
        (32, 32, 16, "overlap 32"),
        (32, -1, 16, "overlap -1"),
    ],
)
def test_bad_arguments_raise_input_error(window, overlap, multiple_of, match):
    with pytest.raises(InputError, match=match):
        plan_windows(100, 100, window, overlap, multiple_of=multiple_of)


def test_empty_raster_rejected():
    with pytest.raises(InputError, match="empty"):
        plan_windows(0, 10, 16, 0)
