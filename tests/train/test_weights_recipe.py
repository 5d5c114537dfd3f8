"""The stage-2 recipe of the default weights (weights/train_landcover.py): weak-label loss,
chip cutting and augmentation keep labels and pixels together."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

RECIPE = Path(__file__).resolve().parents[2] / "weights" / "train_landcover.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("train_landcover", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_set_loss_is_zero_when_all_mass_is_inside_the_allowed_set(recipe):
    logits = torch.full((1, 9, 2, 2), -20.0)
    logits[:, 1] = 10.0  # tree cover everywhere
    land = torch.full((1, 2, 2), recipe.bits(*recipe.LAND))
    assert float(recipe.set_nll(logits, land)) < 1e-6
    water = torch.full((1, 2, 2), recipe.bits(recipe.WATER))
    assert float(recipe.set_nll(logits, water)) > 25


def test_set_loss_ignores_unlabelled_pixels(recipe):
    logits = torch.zeros((1, 9, 1, 2))
    logits[0, 0, 0, 0] = 30.0  # confident water on the labelled pixel
    allowed = torch.tensor([[[recipe.bits(recipe.WATER), 0]]])
    assert float(recipe.set_nll(logits, allowed)) < 1e-6


def test_rare_exact_classes_weigh_more(recipe):
    logits = torch.zeros((1, 9, 1, 10))
    allowed = torch.full((1, 1, 10), recipe.bits(recipe.TREE))
    allowed[0, 0, 0] = recipe.bits(recipe.WATER)
    # every pixel equally wrong: the weighted mean equals the plain mean
    assert float(recipe.set_nll(logits, allowed)) == pytest.approx(np.log(9), rel=1e-5)
    logits[0, 0, 0, 0] = 50.0  # get the single water pixel right
    # the rare water pixel carries more than a tenth of the loss
    assert float(recipe.set_nll(logits, allowed)) < 0.85 * np.log(9)


def test_chips_cover_the_image_flush_with_its_edges(recipe):
    image = np.arange(2 * 100 * 70, dtype=np.float32).reshape(2, 100, 70)
    allowed = np.ones((100, 70), np.uint16)
    chips = list(recipe.chips_of(image, allowed, 64, 36))
    starts = {(int(c[0][0, 0, 0]) // 70, int(c[0][0, 0, 0]) % 70) for c in chips}
    assert starts == {(0, 0), (36, 0), (0, 6), (36, 6)}
    assert all(c[0].shape == (2, 64, 64) and c[1].shape == (64, 64) for c in chips)


def test_water_chips_are_the_quarter_step_chips_that_hold_enough_water(recipe):
    image = np.arange(128 * 128, dtype=np.float32).reshape(1, 128, 128)
    allowed = np.full((128, 128), recipe.bits(*recipe.LAND), np.uint16)
    allowed[100:104, 100:104] = recipe.bits(recipe.WATER)  # 16 px: 0.4 % of a 64 px chip
    assert list(recipe.water_chips(image, allowed, 64, share=0.02)) == []
    allowed[96:128, 96:128] = recipe.bits(recipe.WATER)  # 32 x 32 px of water
    chips = list(recipe.water_chips(image, allowed, 64, share=0.02))
    starts = {(int(c[0][0, 0, 0]) // 128, int(c[0][0, 0, 0]) % 128) for c in chips}
    # chips start every 16 px; those reaching row and column 96 hold 16 x 16 px or more of it
    assert starts == {(y, x) for y in (48, 64) for x in (48, 64)}
    for img, al in chips:
        assert (al == recipe.bits(recipe.WATER)).mean() >= 0.02
        assert img.shape == (1, 64, 64)


def test_augmented_labels_follow_the_pixels(recipe):
    rng = np.random.default_rng(0)
    images = np.zeros((4, 6, 64, 64), np.float32)
    images[:, 3, :, :32] = 0.4  # bright NIR on the left half: tree cover
    labels = np.full((4, 64, 64), recipe.bits(recipe.WATER), np.uint16)
    labels[:, :, :32] = recipe.bits(recipe.TREE)
    pool = recipe.Pool("t", images, labels, [490, 560, 665, 842, 1610, 2190], 30.0, True, True)
    for _ in range(5):
        out, allowed, wl = recipe.augment(pool, np.arange(4), rng, recipe.Recipe())
        assert out.shape[1] == len(wl) == 6
        tree = allowed == recipe.bits(recipe.TREE)
        water = allowed == recipe.bits(recipe.WATER)
        assert out[:, 3][tree].mean() > out[:, 3][water].mean() + 0.2


def test_sentinel2_chips_are_shown_as_landsat_band_sets_at_landsat_centres(recipe):
    rng = np.random.default_rng(1)
    names = tuple(recipe.S2_NM)
    images = np.stack([np.full((4, 4), 2.0**i, np.float32) for i in range(len(names))])[
        None
    ].repeat(2, axis=0)  # band i holds 2**i: which bands were kept survives gain and noise
    labels = np.full((2, 4, 4), recipe.bits(recipe.TREE), np.uint16)
    pool = recipe.Pool("s2", images, labels, list(recipe.S2_NM.values()), 10.0, False, False, names)
    seen = set()
    for _ in range(200):
        out, _, wl = recipe.augment(pool, np.arange(2), rng, recipe.Recipe(jitter=False))
        kept = tuple(names[round(float(np.log2(v)))] for v in out[0, :, 0, 0])
        if len(wl) == 7:
            assert kept == ("B01", "B02", "B03", "B04", "B8A", "B11", "B12")
            assert tuple(wl) == recipe.L8_NM
            seen.add("landsat8")
        elif tuple(wl) == recipe.TM_NM:
            assert kept == ("B02", "B03", "B04", "B08", "B11", "B12")
            seen.add("tm")
    assert seen == {"landsat8", "tm"}
    for _ in range(50):  # switched off, no Landsat view and no subset appear
        out, _, wl = recipe.augment(pool, np.arange(2), rng, recipe.Recipe(subsets=False))
        assert len(wl) == len(names)


def test_darkened_land_leaves_water_and_the_input_alone(recipe):
    rng = np.random.default_rng(0)
    image = np.full((4, 64, 64), 0.3, np.float32)
    image[3] = 0.5  # the fourth band above the others, as NIR is over land
    allowed = np.full((64, 64), recipe.bits(recipe.BUILT), np.uint16)
    allowed[:, :16] = recipe.bits(recipe.WATER)
    before = image.copy()
    out = recipe.darken_land(image, allowed, rng, 10.0)
    assert out.shape == image.shape and np.array_equal(image, before)  # the input is not changed
    assert np.array_equal(out[:, :, :16], image[:, :, :16])  # water untouched
    land = out[:, :, 16:]
    assert (land < image[:, :, 16:] - 1e-6).any(axis=0).mean() > 0.2  # a share made darker
    assert land.min() >= 0.03 * 0.6  # never black


def test_water_edge_pixels_may_be_any_class_covering_a_third_of_their_ground(recipe):
    from gfmcli.simulate.landcover import LandCoverMap

    # 1 m base grid, 10 m pixels: object 0 (water) fills column 0 and 6 m of column 1, object 1
    # (tree cover) the rest; object 2 (built-up) is 2 m of pixel (0, 2) and 6 m of pixel (0, 3)
    objects = np.ones((10, 40), np.int32)
    objects[:, :16] = 0
    objects[:2, 20:30] = 2
    objects[:, 30:36] = 2
    landcover = LandCoverMap(
        objects=objects,
        object_kind=np.zeros(3, np.int32),
        object_class=np.array([recipe.WATER, recipe.TREE, recipe.BUILT], np.uint8),
        mix=np.zeros_like(objects, np.uint8),
        texture=np.full(objects.shape, 128, np.uint8),
        resolution_m=1.0,
        origin=(0.0, 0.0),
        crs="EPSG:32633",
        seed=0,
    )
    labels = np.array([[recipe.WATER, recipe.WATER, recipe.CLOUD, recipe.BUILT]], np.uint8)
    sets = recipe.mixed_sets(landcover, 10.0, labels)
    assert sets[0, 0] == recipe.bits(recipe.WATER)  # pure water
    assert sets[0, 1] == recipe.bits(recipe.WATER, recipe.TREE)  # 60 % water, 40 % trees
    assert sets[0, 2] == recipe.bits(recipe.CLOUD)  # the rendering painted a cloud there
    assert sets[0, 3] == recipe.bits(recipe.BUILT)  # 60 % roofs, 40 % trees: a built-up block


def test_painting_clouds_keeps_the_sets_it_does_not_cover(recipe):
    allowed = np.array(
        [[recipe.bits(recipe.WATER, recipe.TREE), recipe.bits(recipe.GRASS)]], np.uint16
    )
    before = recipe.exact_labels(allowed)
    after = before.copy()
    after[0, 1] = recipe.CLOUD
    out = recipe.repaint(allowed, before, after)
    assert out[0, 0] == allowed[0, 0] and out[0, 1] == recipe.bits(recipe.CLOUD)


def test_distillation_is_cross_entropy_to_the_teachers_mean(recipe):
    teacher = torch.zeros((1, 9, 1, 2))
    teacher[0, recipe.WATER], teacher[0, recipe.SHADOW] = 0.7, 0.3  # unsure water or shadow
    allowed = torch.tensor([[[recipe.bits(recipe.WATER), 0]]])  # second pixel unlabelled

    def loss_of(favoured: int) -> float:
        logits = torch.zeros((1, 9, 1, 2))
        logits[0, favoured] = 5.0
        return float(recipe.distill_nll(logits, teacher, allowed))

    assert loss_of(recipe.WATER) < loss_of(recipe.SHADOW) < loss_of(recipe.TREE)
    best = torch.full((1, 9, 1, 2), -30.0)
    best[0, recipe.WATER], best[0, recipe.SHADOW] = np.log(0.7), np.log(0.3)
    best[0, :, 0, 1] = 0.0  # anything on the unlabelled pixel costs nothing
    entropy = -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))
    assert float(recipe.distill_nll(best, teacher, allowed)) == pytest.approx(entropy, abs=1e-4)


def test_the_stage2_model_keeps_what_fits_and_starts_a_resized_head_afresh(
    recipe, tiny_checkpoint_factory, tmp_path
):
    from gfmcli.model.checkpoint import load_model

    path = tiny_checkpoint_factory(tmp_path / "three-classes.pt")
    old = load_model(path)[0].state_dict()
    grown = recipe.start_model(str(path))[0].state_dict()
    wide, _ = recipe.start_model(str(path), head_width=256)
    wide_state = wide.state_dict()

    assert wide.config["head"]["width"] == 256
    assert grown["head.classifier.weight"].shape[0] == recipe.K
    for state in (grown, wide_state):
        # the three old classes keep their rows; the six new ones start afresh
        assert torch.equal(state["head.classifier.weight"][:3], old["head.classifier.weight"])
        assert not torch.equal(
            state["head.classifier.weight"][3:6],
            torch.zeros_like(state["head.classifier.weight"][3:6]),
        )
        for key, value in old.items():
            if key.startswith("encoder."):
                assert torch.equal(state[key], value), key
    assert torch.equal(grown["head.stages.0.1.weight"], old["head.stages.0.1.weight"])
    # the first upsampling stage changed shape: fresh weights, not the old ones half-copied
    first = wide_state["head.stages.0.1.weight"]
    assert first.shape[0] == 256 != old["head.stages.0.1.weight"].shape[0]
    assert not torch.equal(
        first[: old["head.stages.0.1.weight"].shape[0]], old["head.stages.0.1.weight"]
    )


def test_painted_sea_is_labelled_water_in_the_pools_own_water_spectrum(recipe):
    rng = np.random.default_rng(3)
    image = rng.uniform(0.1, 0.4, size=(4, 48, 48)).astype(np.float32)
    allowed = np.full((48, 48), recipe.bits(recipe.TREE), np.uint16)
    allowed[:5] = recipe.bits(recipe.WATER)
    water = recipe.water_spectra(image[None], allowed[None], rng)
    pixels = image[:, :5].reshape(4, -1).T
    assert water.shape == pixels.shape  # every water pixel (fewer than 4,000), nothing else
    assert np.array_equal(np.sort(water, axis=0), np.sort(pixels, axis=0))
    before = image.copy()
    painted, labels = recipe.paint_sea(image, allowed, water, np.random.default_rng(0))
    sea = labels == recipe.bits(recipe.WATER)
    assert 0.55 <= sea.mean() <= 1.0
    assert np.array_equal(image, before)  # the pool's chip is not changed in place
    assert np.array_equal(painted[:, ~sea], image[:, ~sea])  # land outside the sea kept
    ratio = painted[:, sea] / painted[:, sea].mean(axis=1, keepdims=True)
    assert np.abs(ratio - 1).max() < 0.25  # one spectrum, a smooth few-per-cent gradient
    assert any(np.allclose(painted[:, sea].mean(axis=1), w, rtol=0.02) for w in water)


def test_the_weight_average_moves_part_of_the_way_to_the_model(recipe):
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(-2.0)
    average = {"weight": torch.zeros(1, 2), "bias": torch.zeros(1)}
    recipe.update_ema(average, model, 0.75)
    assert torch.allclose(average["weight"], torch.full((1, 2), 0.25))
    assert torch.allclose(average["bias"], torch.tensor([-0.5]))
    assert float(model.weight.detach().sum()) == 2.0  # the model itself is untouched


def test_the_anchor_penalty_is_the_squared_distance_from_the_start(recipe):
    model = torch.nn.Linear(2, 1)
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert recipe.anchor_penalty(model, anchor).detach().item() == 0.0
    with torch.no_grad():
        model.weight.add_(torch.tensor([[1.0, -2.0]]))
        model.bias.add_(3.0)
    assert recipe.anchor_penalty(model, anchor).detach().item() == pytest.approx(1 + 4 + 9)
    recipe.anchor_penalty(model, anchor).backward()
    assert torch.allclose(model.weight.grad, torch.tensor([[2.0, -4.0]]))  # pulls back


def test_clean_chips_keep_every_band_and_value_and_turn_with_their_labels(recipe):
    rng = np.random.default_rng(0)
    images = np.zeros((3, 4, 8, 8), np.float32)
    images[:, 2, :, :4] = 0.4  # bright left half
    labels = np.full((3, 8, 8), recipe.bits(recipe.WATER), np.uint16)
    labels[:, :, :4] = recipe.bits(recipe.TREE)
    pool = recipe.Pool("t", images, labels, [490, 560, 665, 842], 10.0, True, True)
    for _ in range(4):
        out, allowed, wl = recipe.clean_batch(pool, np.arange(3), rng)
        assert wl == [490, 560, 665, 842] and out.shape == (3, 4, 8, 8)
        assert set(np.unique(out).tolist()) == {0.0, np.float32(0.4)}  # no gain, no noise
        assert (out[:, 2][allowed == recipe.bits(recipe.TREE)] == np.float32(0.4)).all()
        assert (out[:, 2][allowed == recipe.bits(recipe.WATER)] == 0.0).all()


def _cloud_batches(recipe, **kwargs):
    """Cloud and shadow masks and the blue band of cloud pixels over eight batches of a flat
    grass chip (seed 5 each call; ``thin_cloud`` > 0 draws more from it)."""
    images = np.full((4, 6, 64, 64), 0.1, np.float32)
    labels = np.full((4, 64, 64), recipe.bits(recipe.GRASS), np.uint16)
    pool = recipe.Pool("t", images, labels, [490, 560, 665, 842, 1610, 2190], 30.0, True, True)
    rng = np.random.default_rng(5)
    clouds, shadows, blues, outs = [], [], [], []
    for _ in range(8):
        out, allowed, _ = recipe.augment(pool, np.arange(4), rng, recipe.Recipe(), **kwargs)
        is_cloud = allowed == recipe.bits(recipe.CLOUD)
        clouds.append(is_cloud)
        shadows.append(allowed == recipe.bits(recipe.SHADOW))
        blues.append(out[:, 0][is_cloud])
        outs.append(out)
    return np.stack(clouds), np.stack(shadows), np.concatenate(blues), np.stack(outs)


def test_a_lower_cloud_label_threshold_labels_more_of_the_same_clouds(recipe):
    thick_cloud, thick_shadow, _, thick_pixels = _cloud_batches(recipe)
    edge_cloud, edge_shadow, _, edge_pixels = _cloud_batches(recipe, cloud_label=0.1)
    assert 0 < thick_cloud.sum() < edge_cloud.sum()  # the thin edges now count as cloud
    assert edge_cloud[thick_cloud].all()  # every thick cloud stays cloud
    assert edge_shadow.any()
    assert not (edge_shadow & ~thick_shadow).any()  # shadows keep their 0.4 threshold
    np.testing.assert_array_equal(edge_pixels, thick_pixels)  # the pixels are the same


def test_thin_cloud_veils_are_dim_and_still_labelled_cloud(recipe):
    _, _, thick_blue, _ = _cloud_batches(recipe, cloud_label=0.1)
    veil_cloud, _, veil_blue, _ = _cloud_batches(recipe, cloud_label=0.1, thin_cloud=1.0)
    unlabelled, _, _, _ = _cloud_batches(recipe, cloud_label=0.6, thin_cloud=1.0)
    assert veil_cloud.mean() > 0.05  # veils peak at 0.15-0.5: above 0.1 they are cloud
    assert not unlabelled.any()  # and never above 0.6
    # grass at 0.1 under a veil of peak opacity <= 0.5 against clouds 0.85-1 opaque
    assert np.median(veil_blue) < np.median(thick_blue) - 0.1


REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"


@pytest.mark.skipif(
    not (REALDATA / "ukis_csmask" / "landsat7.tif").is_file(),
    reason="../shared/realdata/ukis_csmask absent (see ../shared/realdata/README.md)",
)
def test_cloud_mask_chips_take_the_size_asked_for(recipe):
    pools = {p.name: p for p in recipe.real_pools(REALDATA, {"eolearn", "bigearthnet"}, 128)}
    assert set(pools) == {"ukis sentinel2", "ukis landsat7", "ukis landsat5"}
    for pool in pools.values():
        assert pool.images.shape[-2:] == (128, 128) == pool.allowed.shape[-2:]
        assert len(pool.images) == 49  # 512 px at stride 64: 7 x 7 chips


def test_window_by_gsd_is_read_as_contract_steps(recipe):
    import argparse

    assert recipe.window_steps("20:128") == ((20.0, 128),)
    assert recipe.window_steps("20:128,100:256") == ((20.0, 128), (100.0, 256))
    assert recipe.window_steps("") == ()
    for bad in ("20", "20:1.5", "a:128"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a list of FROM_M:PX"):
            recipe.window_steps(bad)
