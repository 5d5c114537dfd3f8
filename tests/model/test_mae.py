"""Hyper-MAE: exact mask ratios, masked-only loss, modalities, grid gather/restore (tiny, CPU)."""

from __future__ import annotations

import pytest
import torch

from gfmcli.errors import ModelError
from gfmcli.model.mae import (
    HyperMAE,
    gather_grid,
    hyper_mae_loss,
    keep_count,
    patchify,
    random_keep,
)

WL = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4]
SAR_WL = [5500.0, 5700.0]


def tiny_mae(**overrides: object) -> HyperMAE:
    torch.manual_seed(0)
    kw = {"embed_dim": 32, "depth": 1, "num_heads": 2, "patch_size": 8}
    return HyperMAE(
        "less_vit_tiny", decoder_depth=1, decoder_dim=32, decoder_heads=2, **{**kw, **overrides}
    )


def test_decoder_parameter_counts_match_reference() -> None:
    with torch.device("meta"):
        for depth, expected in ((8, 24_517_120), (4, 12_588_032)):
            mae = HyperMAE("less_vit_base", decoder_depth=depth)
            params = sum(p.numel() for n, p in mae.named_parameters() if not n.startswith("enc"))
            assert params == expected


def test_keep_counts() -> None:
    assert keep_count(13, 0.5, 2) == 6 and keep_count(3, 0.5, 2) == 2 and keep_count(1, 0.5, 2) == 1
    assert keep_count(64, 0.75) == 16 and keep_count(10, 0.7) == 3 and keep_count(2, 0.75) == 1


@pytest.mark.parametrize("radius", [640.0, None])
def test_mask_ratios_are_exact(radius: float | None) -> None:
    mae = tiny_mae(attention_radius=radius)
    x, sar = torch.rand(4, 13, 64, 64), torch.rand(4, 2, 64, 64)  # N = 64, C = 15
    out = mae(x, WL, 10.0, sar, SAR_WL, generator=torch.Generator().manual_seed(1))
    assert out.position_mask.shape == (4, 64) and out.channel_mask.shape == (4, 15)
    assert (out.position_mask.sum(1) == 48).all()  # keep floor(64 * 0.25) = 16
    assert (out.channel_mask.sum(1) == 8).all()  # keep max(floor(15 * 0.5), 2) = 7
    assert len({tuple(m.tolist()) for m in out.channel_mask}) > 1  # per-sample band masks
    shared = len({tuple(m.tolist()) for m in out.position_mask}) == 1
    assert shared == (radius is not None)  # one permutation per batch only with the PFM on
    assert out.is_radar.tolist() == [False] * 13 + [True] * 2


def test_loss_counts_only_hidden_tokens() -> None:
    mae = tiny_mae().eval()
    x, sar = torch.rand(2, 5, 32, 32), torch.rand(2, 2, 32, 32)
    out = mae(x, WL[:5], 10.0, sar, SAR_WL, generator=torch.Generator().manual_seed(0))
    args = (out.position_mask, out.channel_mask, out.is_radar)
    torch.testing.assert_close(hyper_mae_loss(out.pred, out.target, *args), out.loss)
    visible = (~out.channel_mask[:, :, None]) & (~out.position_mask[:, None, :])  # (B, C, N)
    hidden = ~visible
    assert visible.any() and hidden.any()
    b, c, n = visible.nonzero()[0].tolist()
    target = out.target.clone()
    target[b, c, n] += 10.0
    torch.testing.assert_close(hyper_mae_loss(out.pred, target, *args), out.loss)
    b, c, n = hidden.nonzero()[-1].tolist()
    target = out.target.clone()
    target[b, c, n] += 10.0
    assert hyper_mae_loss(out.pred, target, *args) > out.loss + 1e-3


def test_loss_is_per_modality_mean_of_position_and_channel_terms() -> None:
    err = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # (B=1, C=3, N=2), bands 0-1 optical
    pred, target = err.sqrt()[..., None], torch.zeros(1, 3, 2, 1)
    position_mask = torch.tensor([[False, True]])
    channel_mask = torch.tensor([[True, False, False]])
    is_radar = torch.tensor([False, False, True])
    # optical: position term mean(2, 4) = 3, channel term mean(1, 2) = 1.5
    # radar: position term 6, no channel term (no radar band hidden), so the channel loss is
    # optical's alone and is not halved by a modality that had nothing to reconstruct
    expected = (3 + 6) / 2 + 1.5
    loss = hyper_mae_loss(pred, target, position_mask, channel_mask, is_radar)
    torch.testing.assert_close(loss, torch.tensor(expected))
    # both modalities with a hidden band: the mean of both channel terms
    both = torch.tensor([[True, False, True]])
    loss = hyper_mae_loss(pred, target, position_mask, both, is_radar)
    torch.testing.assert_close(loss, torch.tensor((3 + 6) / 2 + (1.5 + 5.5) / 2))
    # no band hidden at all: position loss only
    none = torch.zeros(1, 3, dtype=torch.bool)
    loss = hyper_mae_loss(pred, target, position_mask, none, is_radar)
    torch.testing.assert_close(loss, torch.tensor((3 + 6) / 2))


def test_decoder_stochastic_depth_follows_the_encoder_rate_by_default() -> None:
    def rates(mae: HyperMAE) -> list[float]:
        return [getattr(b.drop_path1, "prob", 0.0) for b in mae.decoder_blocks]

    kw = {"embed_dim": 32, "depth": 1, "num_heads": 2, "patch_size": 8}
    mae = HyperMAE(
        "less_vit_tiny", decoder_depth=3, decoder_dim=32, decoder_heads=2, drop_path_rate=0.2, **kw
    )
    assert rates(mae) == pytest.approx([0.0, 0.1, 0.2])  # linear over the decoder, as encoder
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    mae = HyperMAE("less_vit_tiny", decoder_depth=3, decoder_dim=32, decoder_heads=2,
                   decoder_drop_path=0.4, **kw)  # fmt: skip
    assert rates(mae) == pytest.approx([0.0, 0.2, 0.4])
    assert mae.encoder.cfg.drop_path_rate == 0.0  # the encoder keeps its own rate
    # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
    mae = HyperMAE("less_vit_tiny", decoder_depth=3, decoder_dim=32, decoder_heads=2,
                   drop_path_rate=0.2, decoder_drop_path=0.0, **kw)  # fmt: skip
    assert rates(mae) == [0.0, 0.0, 0.0]
    with pytest.raises(ModelError, match="decoder_drop_path"):
        tiny_mae(decoder_drop_path=1.0)
    # it acts while training: two passes with the same masks differ, eval passes do not
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    mae = HyperMAE("less_vit_tiny", decoder_depth=2, decoder_dim=32, decoder_heads=2,
                   decoder_drop_path=0.5, **kw)  # fmt: skip
    x = torch.rand(4, 3, 16, 16)
    losses = [
        mae(x, WL[:3], 10.0, generator=torch.Generator().manual_seed(0)).loss for _ in range(2)
    ]
    assert not torch.allclose(losses[0], losses[1])
    mae.eval()
    losses = [
        mae(x, WL[:3], 10.0, generator=torch.Generator().manual_seed(0)).loss for _ in range(2)
    ]
    torch.testing.assert_close(losses[0], losses[1])


def test_decoder_follows_the_encoders_cls_embedding() -> None:
    assert tiny_mae().decoder_pos_chan_embed.cls_embedding == "partial"
    assert tiny_mae(cls_embedding="none").decoder_pos_chan_embed.cls_embedding == "none"


@pytest.mark.parametrize("mode", ["optical", "radar", "both"])
def test_optical_radar_and_both_train(mode: str) -> None:
    mae = tiny_mae(norm_pix_loss=True) if mode == "both" else tiny_mae()
    x, sar = torch.rand(2, 4, 16, 32), torch.rand(2, 2, 16, 32)
    if mode == "optical":
        out = mae(x, WL[:4], 10.0)
    elif mode == "radar":
        out = mae(None, None, 10.0, sar, SAR_WL)
    else:
        out = mae(x, WL[:4], 10.0, sar, SAR_WL)
    bands = {"optical": 4, "radar": 2, "both": 6}[mode]
    assert out.pred.shape == out.target.shape == (2, bands, 8, 64)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    # Each band's modality is the embedder it went through: the other head gets no gradient.
    assert (mae.optical_pred.weight.grad is None) == (mode == "radar")
    assert (mae.radar_pred.weight.grad is None) == (mode == "optical")


def test_gather_restore_round_trip() -> None:
    mae = tiny_mae()
    b, c, n, e = 2, 4, 6, 32
    grid = torch.randn(b, c + 1, n + 1, e)
    kept_c, _ = random_keep(b, c, 2, False, torch.device("cpu"))
    kept_n, _ = random_keep(b, n, 3, True, torch.device("cpu"))
    zero = torch.zeros(b, 1, dtype=torch.long)
    rows, cols = torch.cat([zero, kept_c + 1], 1), torch.cat([zero, kept_n + 1], 1)
    visible = gather_grid(grid, rows, cols)
    assert visible.shape == (b, 3, 4, e)
    restored = mae._restore(visible, rows, cols, c, n)
    for i in range(b):
        for r in range(c + 1):
            for col in range(n + 1):
                if r in rows[i] and col in cols[i]:
                    want = grid[i, r, col]
                elif r == 0:
                    want = mae.location_mask_token[0, 0]
                elif col == 0:
                    want = mae.band_mask_token[0, 0]
                else:
                    want = mae.mask_token[0, 0]
                torch.testing.assert_close(restored[i, r, col], want)


def test_patchify_matches_token_order_and_errors() -> None:
    img = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    patches = patchify(img, 2)  # grid 2 x 3
    assert patches.shape == (1, 2, 6, 4)
    assert patches[0, 1, 4].tolist() == img[0, 1, 2:4, 2:4].flatten().tolist()  # row 1, col 1
    with pytest.raises(ModelError):
        HyperMAE("less_vit_tiny", mask_ratio=1.0)
    with pytest.raises(ModelError):
        HyperMAE(tiny_mae().encoder, depth=3)
