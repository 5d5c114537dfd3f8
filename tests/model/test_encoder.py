"""LESS ViT encoder, full-attention reference, CPCE, PFM and registry (tiny configs, CPU, fast)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from gfmcli.errors import BandContractError, ModelError
from gfmcli.model.embedding import EncoderOutput, PatchEmbed, PosChanEmbed, pos_chan_embedding
from gfmcli.model.layers import init_normal, sincos_1d
from gfmcli.model.less import LessBlock, recombine_project
from gfmcli.model.pfm import PfmCache, perception_field_mask
from gfmcli.model.registry import create_model, get_config, list_models

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8}
S2_WL = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7]


def tiny(**overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("less_vit_tiny", **{**TINY, **overrides}).eval()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- registry and parameter counts -------------------------------------------------------------


def test_base_has_exactly_the_paper_parameter_count() -> None:
    with torch.device("meta"):
        assert n_params(create_model("less_vit_base")) == 83_219_328
        assert n_params(create_model("less_vit_base", radar_embed=False)) == 81_644_160


def test_small_has_21_05m_parameters() -> None:
    with torch.device("meta"):
        assert n_params(create_model("less_vit_small")) == 21_045_888


def test_registry_names_overrides_and_errors() -> None:
    assert {"less_vit_tiny", "less_vit_small", "less_vit_base"} <= set(list_models())
    with pytest.raises(ModelError, match="unknown model"):
        create_model("vit_huge")
    with pytest.raises(ModelError, match="unknown option"):
        create_model("less_vit_tiny", embed_dims=32)
    with pytest.raises(ModelError, match="multiple of"):
        create_model("less_vit_tiny", embed_dim=36, num_heads=4)
    with pytest.raises(ModelError, match="attention"):
        create_model("less_vit_tiny", attention="sparse")


def test_config_round_trips_through_asdict() -> None:
    model = tiny(rank=3, attention_radius=None)
    rebuilt = create_model("less_vit_tiny", **dataclasses.asdict(model.cfg))
    assert rebuilt.cfg == model.cfg
    assert model.embed_dim == 32 and model.patch_size == 8
    assert get_config("less_vit_tiny", attention="full").attention == "full"


# --- shapes: band counts, modalities, non-square -----------------------------------------------


@pytest.mark.parametrize("bands", [1, 3, 202])
def test_any_band_count(bands: int) -> None:
    model = tiny(embed_dim=16, depth=1)
    x = torch.randn(1, bands, 16, 16)
    out = model(x, wavelengths=torch.linspace(400, 2500, bands), gsd=10.0)
    assert isinstance(out, EncoderOutput)
    assert out.tokens.shape == (1, bands + 1, 5, 16)
    assert torch.isfinite(out.tokens).all()


@pytest.mark.parametrize("attention", ["less", "full"])
def test_non_square_optical_radar_and_both(attention: str) -> None:
    model = tiny(attention=attention)
    opt, sar = torch.randn(2, 4, 96, 160), torch.randn(2, 2, 96, 160)
    wl, swl = S2_WL[:4], [5500.0, 5700.0]
    both = model(opt, wavelengths=wl, gsd=10.0, radar=sar, radar_wavelengths=swl)
    assert both.tokens.shape == (2, 7, 12 * 20 + 1, 32) and both.grid_size == (12, 20)
    only_opt = model(opt, wavelengths=wl, gsd=10.0)
    assert only_opt.tokens.shape == (2, 5, 241, 32)
    only_sar = model(None, gsd=10.0, radar=sar, radar_wavelengths=swl)
    assert only_sar.tokens.shape == (2, 3, 241, 32)
    # Modality comes from the embedder a band went through, not from its position.
    as_optical = model(sar, wavelengths=swl, gsd=10.0)
    assert not torch.allclose(as_optical.tokens, only_sar.tokens)


def test_input_errors() -> None:
    model = tiny(radar_embed=False)
    with pytest.raises(ModelError, match="multiple of the patch size"):
        model(torch.randn(1, 2, 20, 16), wavelengths=[500, 600], gsd=10.0)
    with pytest.raises(BandContractError):
        model(torch.randn(1, 2, 16, 16), wavelengths=[500, 600, 700], gsd=10.0)
    with pytest.raises(ModelError, match="no input"):
        model(None, gsd=10.0)
    with pytest.raises(ModelError, match="gsd"):
        model(torch.randn(1, 2, 16, 16), wavelengths=[500, 600], gsd=0)
    with pytest.raises(ModelError, match="radar embedder"):
        model(None, gsd=10.0, radar=torch.randn(1, 2, 16, 16), radar_wavelengths=[5500, 5700])


def test_eval_is_deterministic_even_with_dropout_configured() -> None:
    model = tiny(drop_path_rate=0.5, proj_drop=0.5, attn_drop=0.5)
    x = torch.randn(1, 3, 16, 24)
    a = model(x, wavelengths=S2_WL[:3], gsd=10.0).tokens
    b = model(x, wavelengths=S2_WL[:3], gsd=10.0).tokens
    assert torch.equal(a, b)
    model.train()
    c = model(x, wavelengths=S2_WL[:3], gsd=10.0).tokens
    assert not torch.allclose(a, c)


def test_forward_intermediates_and_training_after_inference_mode() -> None:
    model = tiny()
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        ref = model(x, wavelengths=S2_WL[:3], gsd=10.0).tokens
    out, inter = model.forward_intermediates(x, S2_WL[:3], 10.0, indices=(0, -1))
    assert len(inter) == 2 and inter[0].shape == out.tokens.shape
    torch.testing.assert_close(out.tokens, ref)
    out.tokens.sum().backward()  # cached CPCE/PFM built under inference_mode are reusable
    assert model.cls_token.grad is not None


# --- permutation invariance -------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["less", "full"])
def test_permuting_bands_with_wavelengths_keeps_global_cls(attention: str) -> None:
    model = tiny(attention=attention, depth=2)
    assert model.cfg.attention_radius is not None  # PFM on
    x, sar = torch.randn(2, 6, 32, 48), torch.randn(2, 2, 32, 48)
    wl = torch.tensor(S2_WL[:6])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    kw = {"gsd": 10.0, "radar": sar, "radar_wavelengths": [5500.0, 5700.0]}
    ref = model(x, wavelengths=wl, **kw).tokens
    out = model(x[:, perm], wavelengths=wl[perm], **kw).tokens
    torch.testing.assert_close(out[:, 0, 0], ref[:, 0, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 1:7], ref[:, 1 + perm], atol=1e-5, rtol=1e-5)
    # The wavelengths matter: permuting the bands alone changes the result.
    moved = model(x[:, perm], wavelengths=wl, **kw).tokens
    assert not torch.allclose(moved[:, 0, 0], ref[:, 0, 0], atol=1e-4)


# --- fused recombination ----------------------------------------------------------------------


def naive_recombine_project(out_c, out_s, weight, bias):
    """Literal reference: per-rank outer products, summed over ranks, heads concatenated, Linear."""
    b, r, h, c, a = out_c.shape
    n, s = out_s.shape[3], out_s.shape[4]
    outer = torch.zeros(b, r, h, c, n, a, s)
    for k in range(r):
        for head in range(h):
            for i in range(c):
                for j in range(n):
                    outer[:, k, head, i, j] = (
                        out_c[:, k, head, i, :, None] * out_s[:, k, head, j, None, :]
                    )
    summed = outer.sum(1)  # (B, h, C', N', a, s)
    flat = summed.permute(0, 2, 3, 1, 4, 5).reshape(b, c, n, h * a * s)
    return F.linear(flat, weight, bias)


@pytest.mark.parametrize("rank", [1, 3])
def test_fused_recombination_equals_naive(rank: int) -> None:
    g = torch.Generator().manual_seed(rank)
    b, h, c, n, a, s = 2, 3, 5, 7, 2, 4
    dim = h * a * s
    out_c = torch.randn(b, rank, h, c, a, generator=g)
    out_s = torch.randn(b, rank, h, n, s, generator=g)
    weight, bias = torch.randn(dim, dim, generator=g), torch.randn(dim, generator=g)
    fused = recombine_project(out_c, out_s, weight, bias)
    torch.testing.assert_close(
        fused, naive_recombine_project(out_c, out_s, weight, bias), atol=1e-5, rtol=1e-5
    )


# --- Perception Field Mask --------------------------------------------------------------------


def naive_pfm(h: int, w: int, gsd: float, radius: float, p: int) -> torch.Tensor:
    cells = [(i, j) for i in range(h) for j in range(w)]
    mask = torch.ones(h * w + 1, h * w + 1, dtype=torch.bool)
    for u, (i1, j1) in enumerate(cells):
        for v, (i2, j2) in enumerate(cells):
            mask[u + 1, v + 1] = math.dist((i1, j1), (i2, j2)) * p * gsd <= radius
    return mask


@pytest.mark.parametrize(("h", "w", "gsd"), [(6, 11, 10.0), (5, 3, 30.0), (4, 4, 2.5)])
def test_pfm_matches_naive_loop(h: int, w: int, gsd: float) -> None:
    assert torch.equal(perception_field_mask((h, w), gsd, 640.0, 16), naive_pfm(h, w, gsd, 640, 16))


def test_pfm_radius_in_metres_and_cache() -> None:
    s2 = perception_field_mask((9, 9), 10.0, 640.0, 16)  # 160 m steps: radius 4 steps inclusive
    centre = 1 + 4 * 9 + 4
    assert s2[centre, 1:].sum() == 49 and s2[centre, 1 + 4 * 9 + 8]
    landsat = perception_field_mask((3, 3), 30.0, 640.0, 16)  # 480 m: 4 neighbours, no diagonal
    assert landsat[1 + 4, 1:].sum() == 5
    cache = PfmCache(max_entries=2)
    first = cache.get((3, 4), 10.0, 640.0, 16, torch.device("cpu"))
    assert cache.get((3, 4), 10.0, 640.0, 16, torch.device("cpu")) is first
    assert cache.get((3, 4), 10.0, None, 16, torch.device("cpu")) is None
    for size in [(1, 2), (2, 2), (3, 3)]:
        cache.get(size, 10.0, 640.0, 16, torch.device("cpu"))
    assert len(cache._cache) == 2


def test_spatial_path_ignores_patches_beyond_radius() -> None:
    """Pooling over bands + the masked spatial branch: location n sees only its PFM disc."""
    torch.manual_seed(0)
    block = LessBlock(32, 2, 2, rank=2).eval()
    h, w, gsd = 4, 9, 10.0  # 160 m per patch step, radius 640 m = 4 steps
    mask = perception_field_mask((h, w), gsd, 640.0, 16)
    x = torch.randn(1, 4, h * w + 1, 32)

    def spatial_out(grid: torch.Tensor) -> torch.Tensor:
        _, spatial = block.low_dim_pool(block.norm1(grid))
        return block.attn.spatial_branch(block.spatial_norm(spatial), mask)

    ref = spatial_out(x)
    n, far, near = 1 + 0, 1 + 0 * w + 8, 1 + 1 * w + 2  # (0,0) vs (0,8) at 1280 m, (1,2)
    assert not mask[n, far] and mask[n, near]
    x_far = x.clone()
    x_far[:, :, far] += torch.randn(4, 32)
    torch.testing.assert_close(spatial_out(x_far)[..., n, :], ref[..., n, :], atol=1e-6, rtol=0)
    x_near = x.clone()
    x_near[:, :, near] += torch.randn(4, 32)
    assert not torch.allclose(spatial_out(x_near)[..., n, :], ref[..., n, :], atol=1e-4)


# --- embeddings -------------------------------------------------------------------------------


def test_patch_embed_equals_conv3d() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(4, 8)
    embed.init_weights()
    x = torch.randn(2, 3, 8, 12)
    ref = embed.proj(x[:, None]).flatten(3).permute(0, 2, 3, 1)  # (B, C, N, D)
    torch.testing.assert_close(embed(x), ref, atol=1e-5, rtol=1e-5)


def test_cpce_physical_position_wavelength_and_cls() -> None:
    wl = (442.7, 5500.0)
    emb = pos_chan_embedding(16, (2, 3), 160.0, wl, combine="sum", cls_embedding="none")
    assert emb[0].abs().sum() == 0 and emb[:, 0].abs().sum() == 0  # [CLS] row and column
    chan = sincos_1d(16, torch.tensor(wl, dtype=torch.float64))
    # patch (row 1, col 2): first half from the column (320 m), second from the row (160 m)
    col, row = torch.tensor([320.0]), torch.tensor([160.0])
    pos = torch.cat([sincos_1d(8, col), sincos_1d(8, row)], 1)
    torch.testing.assert_close(emb[1:, 1 + 1 * 3 + 2], pos[0] + chan)
    mean = pos_chan_embedding(16, (2, 3), 160.0, wl, combine="mean", cls_embedding="none")
    torch.testing.assert_close(mean * 2, emb)

    with_p = PosChanEmbed(16, 16, include_patch_size=True, combine="sum")
    without_p = PosChanEmbed(16, 16, include_patch_size=False, combine="sum")
    a = with_p((2, 3), 10.0, wl, torch.device("cpu"), torch.float64)
    b = without_p((2, 3), 160.0, wl, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(a, b)  # 10 m x 16 px steps == 160 m steps without p
    assert with_p((2, 3), 10.0, wl, torch.device("cpu"), torch.float64) is a  # cached


def test_cls_row_and_column_get_half_the_position_and_wavelength_embedding() -> None:
    # The reference pads position and channel parts with a zero [CLS] entry, then averages:
    # location token n gets pos(n)/2, band token c gets chan(c)/2, the global [CLS] gets 0.
    wl = (442.7, 864.7, 5500.0)
    emb = pos_chan_embedding(16, (2, 3), 160.0, wl, combine="mean")  # default "partial"
    old = pos_chan_embedding(16, (2, 3), 160.0, wl, combine="mean", cls_embedding="none")
    torch.testing.assert_close(emb[1:, 1:], old[1:, 1:])  # patch tokens unchanged
    rows = torch.tensor([0.0, 0, 0, 1, 1, 1]) * 160.0
    cols = torch.tensor([0.0, 1, 2, 0, 1, 2]) * 160.0
    pos = torch.cat([sincos_1d(8, cols), sincos_1d(8, rows)], 1)
    chan = sincos_1d(16, torch.tensor(wl, dtype=torch.float64))
    torch.testing.assert_close(emb[0, 1:], pos / 2)
    torch.testing.assert_close(emb[1:, 0], chan / 2)
    assert emb[0, 0].abs().sum() == 0
    summed = pos_chan_embedding(16, (2, 3), 160.0, wl, combine="sum")
    torch.testing.assert_close(summed[0, 1:], pos)  # combined like the body: pos + 0
    torch.testing.assert_close(summed[1:, 0], chan)


def test_encoder_cls_embedding_default_and_validation() -> None:
    assert get_config("less_vit_tiny").cls_embedding == "partial"
    with pytest.raises(ModelError, match="cls_embedding"):
        get_config("less_vit_tiny", cls_embedding="half")
    torch.manual_seed(0)
    new = tiny()
    old = tiny(cls_embedding="none")
    old.load_state_dict(new.state_dict())
    x = torch.rand(1, 3, 16, 24)
    wl = [492.4, 664.6, 832.8]
    a = new.embed_tokens(x, wl, 10.0).tokens
    b = old.embed_tokens(x, wl, 10.0).tokens
    torch.testing.assert_close(a[:, 1:, 1:], b[:, 1:, 1:])
    torch.testing.assert_close(a[:, 0, 0], b[:, 0, 0])
    diff = (a - b)[0].double()
    cpce = pos_chan_embedding(32, (2, 3), 80.0, wl)  # p = 8 px x 10 m
    torch.testing.assert_close(diff[0, 1:], cpce[0, 1:], atol=1e-6, rtol=0)  # pos/2 added
    torch.testing.assert_close(diff[1:, 0], cpce[1:, 0], atol=1e-6, rtol=0)  # chan/2 added
    assert diff[0, 1:].abs().amax() > 0.1 and diff[1:, 0].abs().amax() > 0.1


def test_attention_pool_output_dropout() -> None:
    # The reference drops out each attention pool's output at proj_drop; pool_drop sets it apart
    # (None = proj_drop) and 0 keeps the pools deterministic.
    assert get_config("less_vit_tiny", proj_drop=0.3).pool_drop_rate == 0.3
    assert get_config("less_vit_tiny", proj_drop=0.3, pool_drop=0.0).pool_drop_rate == 0.0
    with pytest.raises(ModelError, match="pool_drop"):
        get_config("less_vit_tiny", pool_drop=1.0)
    enc = tiny(pool_drop=0.5)
    for block in enc.blocks:
        for pool in (block.low_dim_pool.channel_pool, block.low_dim_pool.spatial_pool):
            assert pool.proj_drop.p == 0.5
    pool = enc.blocks[0].low_dim_pool.spatial_pool
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, pool.q.in_features)
    reference = pool.eval()(x)
    dropped = pool.train()(x)
    zeroed = dropped == 0
    assert 0.3 < zeroed.float().mean() < 0.7
    torch.testing.assert_close(dropped[~zeroed], 2 * reference[~zeroed])
    torch.testing.assert_close(pool.eval()(x), reference)  # inert at inference
    torch.manual_seed(0)
    plain = tiny(pool_drop=0.0).train()
    assert plain.blocks[0].low_dim_pool.channel_pool.proj_drop.p == 0.0
    wl = [492.4, 664.6, 832.8]
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(plain(x, wl, 10.0).tokens, plain(x, wl, 10.0).tokens)


# --- channel_embedding="index": the ablation baseline that knows bands by position ------------


def test_channel_embedding_is_validated() -> None:
    assert get_config("less_vit_tiny").channel_embedding == "wavelength"
    with pytest.raises(ModelError, match="channel_embedding"):
        get_config("less_vit_tiny", channel_embedding="nm")


def test_index_embedding_knows_bands_by_position_not_wavelength() -> None:
    model = tiny(channel_embedding="index")
    x, sar = torch.randn(2, 6, 32, 48), torch.randn(2, 2, 32, 48)
    wl = torch.tensor(S2_WL[:6])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    kw = {"gsd": 10.0, "radar": sar, "radar_wavelengths": [5500.0, 5700.0]}
    ref = model(x, wavelengths=wl, **kw).tokens
    # Permuting bands together with their wavelengths changes the global [CLS] ...
    out = model(x[:, perm], wavelengths=wl[perm], **kw).tokens
    assert not torch.allclose(out[:, 0, 0], ref[:, 0, 0], atol=1e-4)
    # ... and the wavelength values themselves are ignored.
    other = model(x, wavelengths=wl + 100.0, **{**kw, "radar_wavelengths": [1.0, 2.0]}).tokens
    torch.testing.assert_close(other, ref)
    grid = model.embed_tokens(x, wl, 10.0, sar, [5500.0, 5700.0])
    assert grid.wavelengths == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 1000.0, 1001.0)
    # Same weights, wavelength CPCE: a different network function.
    by_wl = tiny(channel_embedding="wavelength")
    by_wl.load_state_dict(model.state_dict())
    assert not torch.allclose(by_wl(x, wavelengths=wl, **kw).tokens, ref, atol=1e-4)


@pytest.mark.parametrize("mode", ["wavelength", "index"])
def test_head_and_decoder_follow_channel_embedding(mode: str) -> None:
    from gfmcli.model.mae import HyperMAE
    from gfmcli.model.tasks import build_model, model_config_for

    torch.manual_seed(0)
    overrides = {**TINY, "channel_embedding": mode}
    model = build_model(
        model_config_for(
            "less_vit_tiny", "segmentation", num_outputs=3, encoder_overrides=overrides
        )
    ).eval()
    mae = HyperMAE(
        "less_vit_tiny", decoder_depth=1, decoder_dim=32, decoder_heads=2, **overrides
    ).eval()
    x, wl = torch.randn(1, 4, 32, 32), torch.tensor(S2_WL[:4])
    shifted = wl + 50.0
    seg = [model(x, wavelengths=w, gsd=10.0) for w in (wl, shifted)]
    # Same encoder tokens for both calls, so only the head's pixel branch can tell them apart.
    head = [
        model.head(model.encoder(x, wavelengths=wl, gsd=10.0).tokens, (4, 4), x, ids)
        for ids in (wl, shifted)
    ]
    gen = [torch.Generator().manual_seed(1) for _ in range(2)]
    loss = [mae(x, w, 10.0, generator=g).loss for w, g in zip((wl, shifted), gen, strict=True)]
    if mode == "index":  # positions only: wavelengths change nothing anywhere
        torch.testing.assert_close(seg[0], seg[1])
        torch.testing.assert_close(loss[0], loss[1])
    else:
        assert not torch.allclose(seg[0], seg[1], atol=1e-5)
        assert not torch.allclose(head[0], head[1], atol=1e-5)
        assert not torch.allclose(loss[0], loss[1], atol=1e-6)


def test_checkpoint_round_trip_keeps_channel_embedding(tmp_path) -> None:
    from gfmcli.contract import BandInfo, ModelContract
    from gfmcli.model.checkpoint import load_checkpoint, save_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for

    overrides = {**TINY, "channel_embedding": "index"}
    config = model_config_for(
        "less_vit_tiny", "segmentation", num_outputs=2, encoder_overrides=overrides
    )
    model = build_model(config).eval()
    assert model.config["encoder"]["overrides"]["channel_embedding"] == "index"
    bands = tuple(BandInfo(f"B{i}", w) for i, w in enumerate(S2_WL[:4]))
    contract = ModelContract("less_vit_tiny", model.config, "segmentation", "s2", bands, 10.0, 8)
    save_checkpoint(tmp_path / "m.pt", model, contract)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.encoder.cfg.channel_embedding == "index"
    x, wl = torch.randn(1, 4, 16, 16), S2_WL[:4]
    torch.testing.assert_close(loaded(x, wl, 10.0), model(x, wl, 10.0))


def test_init_normal_draws_like_torch_and_skips_meta_tensors():
    torch.manual_seed(3)
    expected = torch.nn.init.normal_(torch.empty(4, 5), std=0.02)
    torch.manual_seed(3)
    drawn = torch.empty(4, 5)
    init_normal(drawn, std=0.02)
    assert torch.equal(drawn, expected)
    # Same seed, same next draw: a meta tensor consumed nothing from the generator.
    torch.manual_seed(3)
    init_normal(torch.empty(4, 5, device="meta"), std=0.02)
    assert torch.equal(torch.nn.init.normal_(torch.empty(4, 5), std=0.02), expected)
