"""Blend weights and kernels: ramp shape, Numba/NumPy parity, nodata, hand-checked values, the
warm-up and the cache fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gfmcli.engine import blend


def test_weights_flat_middle_and_untapered_raster_edges():
    w = blend.window_weights(32, 32, 8, edges=(False, True, True, False))
    assert w.dtype == np.float32 and w.shape == (32, 32)
    assert np.all(w[:24, 8:] == 1.0)  # top is a raster edge: not tapered; middle flat
    assert np.all(w[0, 8:] == 1.0) and np.all(w[:24, -1] == 1.0)
    assert w[31, 16] < 0.05 and w[16, 0] < 0.05  # interior sides taper
    assert np.all(np.diff(w[24:, 16]) < 0)  # monotone fall towards the interior edge
    assert w.min() > 0


def test_no_taper_without_overlap_or_on_all_raster_edges():
    assert np.all(blend.window_weights(16, 16, 0) == 1.0)
    assert np.all(blend.window_weights(16, 16, 4, edges=(False,) * 4) == 1.0)


def test_weights_floor_keeps_positive():
    w = blend.window_weights(64, 64, 64, floor=1e-3)
    assert w.min() == pytest.approx(1e-3)


@pytest.mark.parametrize("overlap", [1, 5, 8, 16])
def test_neighbouring_ramps_sum_to_one(overlap):
    window = 32
    left = blend.window_weights(1, window, overlap, edges=(False, False, False, True))[0]
    right = blend.window_weights(1, window, overlap, edges=(False, False, True, False))[0]
    np.testing.assert_allclose(left[window - overlap :] + right[:overlap], 1.0, atol=1e-6)


def _random_case(rng, k=3, rows=20, cols=23, h=8, w=8):
    acc = rng.random((k, rows, cols), dtype=np.float32)
    wsum = rng.random((rows, cols), dtype=np.float32)
    pred = rng.random((k, h, w), dtype=np.float32)
    weight = blend.window_weights(h, w, 3)
    valid = rng.random((h, w)) > 0.2
    return acc, wsum, pred, weight, valid


@pytest.mark.parametrize(("r0", "c0"), [(0, 0), (5, 7), (15, 18), (-3, -2), (19, 22), (-8, 0)])
def test_accumulate_parity_with_numpy(r0, c0):
    rng = np.random.default_rng(1)
    acc, wsum, pred, weight, valid = _random_case(rng)
    acc2, wsum2 = acc.copy(), wsum.copy()
    before = acc.copy()
    blend.accumulate(acc, wsum, pred, weight, valid, r0, c0)
    blend.accumulate_numpy(acc2, wsum2, pred, weight, valid, r0, c0)
    np.testing.assert_array_equal(acc, acc2)
    np.testing.assert_array_equal(wsum, wsum2)
    assert np.array_equal(acc, before) == (r0 == -8)  # fully outside: nothing lands


def test_accumulate_clips_and_respects_valid():
    acc = np.zeros((1, 3, 3), np.float32)
    wsum = np.zeros((3, 3), np.float32)
    pred = np.full((1, 4, 4), 2.0, np.float32)
    weight = np.full((4, 4), 0.5, np.float32)
    valid = np.ones((4, 4), bool)
    valid[1, 1] = False
    blend.accumulate(acc, wsum, pred, weight, valid, 1, 1)  # only the 2x2 top-left part lands
    expected_w = np.array([[0, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0]], np.float32)
    np.testing.assert_array_equal(wsum, expected_w)
    np.testing.assert_array_equal(acc[0], expected_w * 2)


def test_accumulate_ignores_nan_at_invalid_pixels():
    acc = np.zeros((2, 4, 4), np.float32)
    wsum = np.zeros((4, 4), np.float32)
    pred = np.full((2, 4, 4), 0.25, np.float32)
    valid = np.ones((4, 4), bool)
    pred[:, 0, :], valid[0, :] = np.nan, False
    weight = np.ones((4, 4), np.float32)
    blend.accumulate(acc, wsum, pred, weight, valid, 0, 0)
    assert np.isfinite(acc).all()
    assert (acc[:, 0] == 0).all() and (acc[:, 1:] == 0.25).all()


def test_normalize_parity_and_nodata():
    rng = np.random.default_rng(2)
    acc = rng.random((4, 9, 11), dtype=np.float32)
    wsum = rng.random((9, 11), dtype=np.float32)
    wsum[2, 3] = 0
    out, out2 = np.empty_like(acc), np.empty_like(acc)
    blend.normalize(acc, wsum, out, np.float32(np.nan))
    blend.normalize_numpy(acc, wsum, out2, np.float32(np.nan))
    np.testing.assert_array_equal(out, out2)
    assert np.isnan(out[:, 2, 3]).all()
    np.testing.assert_allclose(out[:, 0, 0], acc[:, 0, 0] / wsum[0, 0], rtol=1e-6)


def test_argmax_classes_parity_and_values():
    rng = np.random.default_rng(3)
    k = 5
    probs = rng.dirichlet(np.ones(k), size=(13, 17)).astype(np.float32).transpose(2, 0, 1)
    wsum = rng.uniform(0.5, 3, (13, 17)).astype(np.float32)
    wsum[0, :4] = 0
    acc = np.ascontiguousarray(probs * wsum)
    cls = np.empty((13, 17), np.uint8)
    cls2 = np.empty_like(cls)
    blend.argmax_classes(acc, wsum, cls, 255)
    blend.argmax_classes_numpy(acc, wsum, cls2, 255)
    np.testing.assert_array_equal(cls, cls2)
    assert (cls[0, :4] == 255).all()
    covered = wsum > 0
    np.testing.assert_array_equal(cls[covered], probs.argmax(0)[covered])


def test_argmax_ties_take_the_first_class():
    acc = np.array([[[2.0, 0.0]], [[0.0, 0.0]]], np.float32)  # (K=2, 1, 2)
    wsum = np.array([[2.0, 1.0]], np.float32)
    cls = np.empty((1, 2), np.uint8)
    blend.argmax_classes(acc, wsum, cls, 255)
    assert cls.tolist() == [[0, 0]]  # tie at zero: first class, like np.argmax


_KERNELS = ("accumulate", "normalize", "argmax_classes")
_SIGNATURES = """
import json, sys
from gfmcli import MapOptions, map_rasters
from gfmcli.engine import blend

def signatures():
    return {k: sorted(str(s) for s in getattr(blend, k).dispatcher().signatures) for k in %r}

blend.warm_up()
warm = signatures()
options = MapOptions(window=32, overlap=8, probabilities=True)
map_rasters([sys.argv[1]], sys.argv[2], options, model=sys.argv[3])
print(json.dumps([warm, signatures()]))
"""


def test_warm_up_loads_every_kernel_signature_a_run_calls(tiny_model, s2_scene, tmp_path):
    # A fresh process: this one's kernels may have been called with other types already.
    script = _SIGNATURES % (_KERNELS,)
    cmd = [sys.executable, "-c", script, str(s2_scene()), str(tmp_path / "map.tif")]
    proc = subprocess.run([*cmd, str(tiny_model)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warm, after_run = json.loads(proc.stdout.splitlines()[-1])
    assert all(warm[k] for k in _KERNELS)  # each kernel loaded once
    assert after_run == warm  # and the run needed no other argument types


_ACCUMULATE_ONCE = (
    "import numpy as np\n"
    "from gfmcli.engine import blend\n"
    "acc, wsum = np.zeros((2, 3, 3), np.float32), np.zeros((3, 3), np.float32)\n"
    "pred, w, v = np.ones((2, 2, 2), np.float32), np.ones((2, 2), np.float32), "
    "np.ones((2, 2), bool)\n"
    "blend.accumulate(acc, wsum, pred, w, v, 1, 1)\n"
    "print(acc.sum(), wsum.sum())\n"
)


def _accumulate_in_a_process(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _ACCUMULATE_ONCE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["8.0", "4.0"]


def _cached_kernels(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("blend.*.nbi"))


def test_kernels_work_without_a_writable_cache_folder(tmp_path):
    # Only the NUMBA_CACHE_DIR locator, no NUMBA_CACHE_DIR and a home that cannot be written:
    # Numba finds nowhere to cache, as in a read-only container.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_LOCATOR_CLASSES"] = "UserProvidedCacheLocator"
    env["HOME"] = env["XDG_CACHE_HOME"] = "/proc/no-home"
    _accumulate_in_a_process(env)


def test_kernels_are_cached_in_the_users_cache_folder_not_the_package(tmp_path):
    # Numba's files beside an installed gfmcli outlive `pip uninstall` and shadow a later
    # editable install; only the NUMBA_CACHE_DIR locator and the in-tree one are allowed here,
    # so a kernel cached anywhere but the user's folder would land beside blend.py.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["NUMBA_CACHE_LOCATOR_CLASSES"] = "UserProvidedCacheLocator,InTreeCacheLocator"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    _accumulate_in_a_process(env)
    assert "accumulate" in " ".join(_cached_kernels(tmp_path / "cache" / "gfm" / "numba"))


def test_a_users_numba_cache_dir_wins(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "mine"))
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    _accumulate_in_a_process(env)
    assert _cached_kernels(tmp_path / "mine")
    assert not (tmp_path / "cache").exists()
