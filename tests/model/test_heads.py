"""Heads and task models: shapes on square and non-square grids, any band count, which tokens
each head reads, and the build/config round trip."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
import torch
from torch import nn

from gfmcli.errors import BandContractError, ModelError
from gfmcli.model import tasks
from gfmcli.model.heads import (
    ClassificationHead,
    RegressionHead,
    SegmentationHead,
    decoder_widths,
    tokens_to_map,
)
from gfmcli.model.tasks import GfmModel, build_model, model_config_for

WAVELENGTHS = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5]
WAVELENGTHS += [1613.7, 2202.4]  # Sentinel-2, 13 bands


class _Out(NamedTuple):
    tokens: torch.Tensor
    grid_size: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class _StandInCfg:
    embed_dim: int = 16
    patch_size: int = 16


class StandInEncoder(nn.Module):
    """The encoder API (tokens (B, C+1, N+1, D), grid_size) with a trivial per-patch linear map;
    ``perturb`` adds noise to every token except the global [CLS] at [0, 0]."""

    def __init__(self, embed_dim: int = 16, patch_size: int = 16) -> None:
        super().__init__()
        self.cfg = _StandInCfg(embed_dim, patch_size)
        self.embed_dim, self.patch_size = embed_dim, patch_size
        self.proj = nn.Linear(patch_size * patch_size, embed_dim)
        self.perturb = False

    def forward(self, x, wavelengths=None, gsd=None, radar=None, radar_wavelengths=None) -> _Out:
        if radar is not None:
            x = torch.cat([x, radar], dim=1)
        b, c, height, width = x.shape
        p = self.patch_size
        h, w = height // p, width // p
        patches = x.reshape(b, c, h, p, w, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h * w, -1)
        body = self.proj(patches)  # (B, C, N, D)
        tokens = torch.zeros(b, c + 1, h * w + 1, self.embed_dim)
        tokens[:, 1:, 1:] = body
        tokens[:, 0, 1:] = body.mean(dim=1)
        tokens[:, 1:, 0] = body.mean(dim=2)
        tokens[:, 0, 0] = body.mean(dim=(1, 2))
        if self.perturb:
            noise = torch.randn_like(tokens)
            noise[:, 0, 0] = 0
            tokens = tokens + noise
        return _Out(tokens, (h, w))


@pytest.fixture(scope="module")
def seg_head() -> SegmentationHead:
    torch.manual_seed(0)
    return SegmentationHead(16, 16, 5, width=16, min_width=8, pixel_dim=8).eval()


def _tokens(b: int, c: int, h: int, w: int, d: int = 16) -> torch.Tensor:
    return torch.randn(b, c + 1, h * w + 1, d)


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
@pytest.mark.parametrize("bands", [1, 4, 13])
def test_dense_heads_full_resolution_for_any_band_count(seg_head, size, bands):
    """One head (same weights) serves 1, 4 and 13 bands, square and non-square grids."""
    height, width = size
    tokens = _tokens(2, bands, height // 16, width // 16)
    pixels = torch.randn(2, bands, height, width)
    out = seg_head(tokens, (height // 16, width // 16), pixels, WAVELENGTHS[:bands])
    assert out.shape == (2, 5, height, width)
    assert torch.isfinite(out).all()
    reg = RegressionHead(16, 16, 3, width=16, min_width=8, pixel_dim=8)
    assert reg(tokens, (height // 16, width // 16), pixels, WAVELENGTHS[:bands]).shape == (
        2,
        3,
        height,
        width,
    )


def test_pixel_branch_follows_wavelengths_not_band_order(seg_head):
    """Bands are identified by wavelength: permuting bands and wavelengths together changes
    nothing; permuting the bands alone does change the output."""
    torch.manual_seed(1)
    tokens, pixels = _tokens(1, 4, 2, 3), torch.randn(1, 4, 32, 48)
    wl = torch.tensor(WAVELENGTHS[:4])
    perm = torch.tensor([2, 0, 3, 1])
    ref = seg_head(tokens, (2, 3), pixels, wl)
    same = seg_head(tokens, (2, 3), pixels[:, perm], wl[perm])
    torch.testing.assert_close(same, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(seg_head(tokens, (2, 3), pixels[:, perm], wl), ref, atol=1e-4)


def test_pixel_branch_gives_pixel_sharp_output():
    """With fixed tokens, one changed input pixel changes the output at that pixel and only
    within the two 3x3 convs' reach (norm off so statistics do not spread it): boundaries can
    move at pixel steps, not 16-pixel steps."""
    torch.manual_seed(2)
    head = SegmentationHead(16, 16, 3, width=16, pixel_dim=8, norm_layer=nn.Identity).eval()
    tokens, pixels = _tokens(1, 3, 6, 10), torch.randn(1, 3, 96, 160)
    changed = pixels.clone()
    changed[0, :, 50, 70] += 5.0
    diff = (
        (
            head(tokens, (6, 10), changed, WAVELENGTHS[:3])
            - head(tokens, (6, 10), pixels, WAVELENGTHS[:3])
        )
        .abs()
        .sum(dim=1)[0]
    )
    assert diff[50, 70] > 1e-3
    rows, cols = torch.nonzero(diff > 1e-6, as_tuple=True)
    assert rows.min() >= 48 and rows.max() <= 52 and cols.min() >= 68 and cols.max() <= 72


def test_tokens_to_map_is_row_major_on_non_square_grid():
    tokens = torch.randn(2, 6 * 10, 4)
    fmap = tokens_to_map(tokens, (6, 10))
    for n in range(60):
        torch.testing.assert_close(fmap[:, :, n // 10, n % 10], tokens[:, n])
    with pytest.raises(ModelError, match="60 patch tokens for a 5x10 grid"):
        tokens_to_map(tokens, (5, 10))


def test_patch_features_are_location_tokens_plus_band_mean(seg_head):
    tokens = _tokens(2, 3, 2, 3)
    feats = seg_head.patch_features(tokens, (2, 3))
    assert feats.shape == (2, 32, 2, 3)
    torch.testing.assert_close(feats[:, :16, 1, 2], tokens[:, 0, 1 + 5])
    torch.testing.assert_close(feats[:, 16:, 1, 2], tokens[:, 1:, 1 + 5].mean(dim=1))


@pytest.mark.parametrize("patch_size", [1, 2, 8, 32])
def test_dense_head_any_power_of_two_patch(patch_size):
    head = SegmentationHead(8, patch_size, 2, width=8, min_width=4, pixel_dim=4)
    h, w = 2, 3
    out = head(
        _tokens(1, 2, h, w, 8),
        (h, w),
        torch.randn(1, 2, h * patch_size, w * patch_size),
        WAVELENGTHS[:2],
    )
    assert out.shape == (1, 2, h * patch_size, w * patch_size)
    assert len(head.stages) == max(1, patch_size.bit_length() - 1)


def test_dense_head_errors():
    with pytest.raises(ModelError, match="power-of-two patch size, got 12"):
        decoder_widths(12)
    assert decoder_widths(16, 128, 32) == [128, 64, 32, 32]
    head = SegmentationHead(8, 16, 2, width=8, pixel_dim=4)
    tokens, pixels = _tokens(1, 2, 2, 2, 8), torch.randn(1, 2, 32, 32)
    with pytest.raises(BandContractError, match="2 input bands but 1 wavelengths"):
        head(tokens, (2, 2), pixels, [500.0])
    with pytest.raises(ModelError, match="pass the input pixels"):
        head(tokens, (2, 2), None, None)
    no_pixels = SegmentationHead(8, 16, 2, width=8, pixel_dim=0)
    assert no_pixels.pixel_embed is None
    assert no_pixels(tokens, (2, 2)).shape == (1, 2, 32, 32)


def _standin_model(task: str, k: int = 3) -> GfmModel:
    enc = StandInEncoder()
    head = {
        "classification": lambda: ClassificationHead(16, k),
        "segmentation": lambda: SegmentationHead(16, 16, k, width=16, pixel_dim=4),
        "regression": lambda: RegressionHead(16, 16, k, width=16, pixel_dim=4),
    }.get(task, lambda: None)()
    return GfmModel(enc, head, task, {"stand-in": True}).eval()


def test_classification_reads_only_the_global_cls():
    torch.manual_seed(3)
    model = _standin_model("classification")
    x = torch.randn(2, 4, 32, 48)
    ref = model(x, WAVELENGTHS[:4], 10.0)
    assert ref.shape == (2, 3)
    model.encoder.perturb = True  # every token but [0, 0] changes
    torch.testing.assert_close(model(x, WAVELENGTHS[:4], 10.0), ref, rtol=0, atol=0)
    x2 = x.clone()
    x2[:, 0, :16, :16] += 1.0  # changes the [CLS] (a mean over all patches) too
    assert not torch.allclose(model(x2, WAVELENGTHS[:4], 10.0), ref)


@pytest.mark.parametrize(
    ("task", "shape"),
    [
        ("segmentation", (2, 3, 32, 48)),
        ("regression", (2, 3, 32, 48)),
        ("classification", (2, 3)),
        ("embedding", (2, 16, 2, 3)),
    ],
)
def test_task_model_output_shapes(task, shape):
    model = _standin_model(task)
    assert model(torch.randn(2, 4, 32, 48), WAVELENGTHS[:4], 10.0).shape == shape


def test_radar_bands_reach_the_pixel_branch():
    torch.manual_seed(4)
    model = _standin_model("segmentation")
    x, radar = torch.randn(1, 4, 32, 48), torch.randn(1, 2, 32, 48)
    out = model(x, WAVELENGTHS[:4], 10.0, radar=radar, radar_wavelengths=[5500.0, 5700.0])
    assert out.shape == (1, 3, 32, 48)
    with pytest.raises(BandContractError):
        model(x, WAVELENGTHS[:4], 10.0, radar=radar, radar_wavelengths=[5500.0])


def test_embed_pools():
    torch.manual_seed(5)
    model = _standin_model("segmentation")
    x = torch.randn(2, 4, 32, 48)
    tokens = model.encoder(x).tokens
    grid = model.embed(x, WAVELENGTHS[:4], 10.0)
    assert grid.shape == (2, 16, 2, 3)
    torch.testing.assert_close(grid[:, :, 1, 0], tokens[:, 0, 1 + 3])
    torch.testing.assert_close(model.embed(x, WAVELENGTHS[:4], 10.0, pool="cls"), tokens[:, 0, 0])
    mean = model.embed(x, WAVELENGTHS[:4], 10.0, pool="mean")
    torch.testing.assert_close(mean, tokens[:, 0, 1:].mean(dim=1))
    with pytest.raises(ModelError, match="unknown pool"):
        model.embed(x, WAVELENGTHS[:4], 10.0, pool="max")


def test_freeze_encoder_for_linear_probing():
    model = _standin_model("classification")
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training and model.head.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_task_and_head_must_agree():
    with pytest.raises(ModelError, match="needs a head"):
        GfmModel(StandInEncoder(), None, "segmentation", {})
    with pytest.raises(ModelError, match="takes no head"):
        GfmModel(StandInEncoder(), ClassificationHead(16, 2), "embedding", {})
    with pytest.raises(ModelError, match="unknown task"):
        GfmModel(StandInEncoder(), None, "detection", {})


def test_model_config_validation_names_the_key(monkeypatch):
    monkeypatch.setattr(tasks, "_create_encoder", lambda name, overrides: StandInEncoder())
    cfg = model_config_for("less_vit_tiny", "segmentation", num_outputs=4, pixel_dim=8)
    assert cfg == {
        "encoder": {"name": "less_vit_tiny", "overrides": {}},
        "task": "segmentation",
        "head": {"type": "segmentation", "num_outputs": 4, "pixel_dim": 8},
    }
    assert model_config_for("less_vit_tiny", "embedding")["head"] is None
    with pytest.raises(ModelError, match="num_outputs=None"):
        model_config_for("less_vit_tiny", "classification")
    with pytest.raises(ModelError, match="unknown classification head option"):
        model_config_for("less_vit_tiny", "classification", num_outputs=2, pixel_dim=8)
    with pytest.raises(ModelError, match="unknown task"):
        model_config_for("less_vit_tiny", "detection", num_outputs=2)
    with pytest.raises(ModelError, match="takes no head"):
        model_config_for("less_vit_tiny", "pretrain", num_outputs=2)
    with pytest.raises(ModelError, match='needs "head"'):
        build_model({**cfg, "head": {**cfg["head"], "type": "regression"}})
    with pytest.raises(ModelError, match="JSON"):
        model_config_for("less_vit_tiny", "regression", num_outputs=1, width=object())
    with pytest.raises(ModelError, match="cannot build it"):
        build_model(model_config_for("less_vit_tiny", "regression", num_outputs=1, width="x"))


def test_build_model_records_the_resolved_encoder_config(monkeypatch):
    """The stored config holds every encoder field, so a rebuild never depends on defaults."""
    monkeypatch.setattr(tasks, "_create_encoder", lambda name, kw: StandInEncoder(**kw))
    cfg = model_config_for("stand_in", "segmentation", num_outputs=2, encoder_overrides={})
    model = build_model(cfg)
    assert model.config["encoder"] == {
        "name": "stand_in",
        "overrides": {"embed_dim": 16, "patch_size": 16},
    }
    assert model.config["head"] == cfg["head"]
    assert build_model(model.config).config == model.config
    model.config["task"] = "changed"  # a copy: the model's own config cannot be edited
    assert model.config["task"] == "segmentation"


@pytest.fixture(scope="module")
def tiny_seg() -> GfmModel:
    torch.manual_seed(6)
    overrides = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    cfg = model_config_for(
        "less_vit_tiny", "segmentation", num_outputs=4, encoder_overrides=overrides, width=16
    )
    return build_model(cfg).eval()


@pytest.mark.parametrize("bands", [1, 4, 13])
def test_real_encoder_segmentation_non_square(tiny_seg, bands):
    x = torch.randn(1, bands, 96, 160)
    assert tiny_seg(x, WAVELENGTHS[:bands], 10.0).shape == (1, 4, 96, 160)
    assert tiny_seg.embed(x, WAVELENGTHS[:bands], 10.0).shape == (1, 32, 6, 10)


def test_real_encoder_with_radar_and_resolved_config(tiny_seg):
    x, radar = torch.randn(1, 4, 32, 48), torch.randn(1, 2, 32, 48)
    out = tiny_seg(x, WAVELENGTHS[:4], 10.0, radar=radar, radar_wavelengths=[5500.0, 5700.0])
    assert out.shape == (1, 4, 32, 48)
    overrides = tiny_seg.config["encoder"]["overrides"]
    assert overrides["embed_dim"] == 32 and overrides["attention_radius"] == 640.0
    assert overrides == dataclasses.asdict(tiny_seg.encoder.cfg)
