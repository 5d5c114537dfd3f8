"""``gfm pretrain``: exact resume, incompatible resume, atomic checkpoints, input errors, loss."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from click.testing import CliRunner

from gfmcli.cli.main import cli
from gfmcli.model.checkpoint import load_checkpoint, read_checkpoint
from gfmcli.train import pretrain as pretrain_module


@pytest.fixture(scope="module")
def chips(optical_chips, radar_chips, tmp_path_factory):
    root = tmp_path_factory.mktemp("chips")
    return optical_chips(root), radar_chips(root)


@pytest.fixture
def write_config(tiny_encoder_toml):
    """``write_config(tmp_path, chips, out="out", steps=6, extra="")`` writes a pretrain TOML
    for the tiny encoder."""
    return functools.partial(_write_config, model=tiny_encoder_toml)


def _write_config(tmp_path, chips, out="out", steps=6, extra="", *, model):
    text = f"""
[data]
chips = {json.dumps([str(c) for c in chips])}
batch_size = 4
{model}
decoder_dim = 32
decoder_depth = 1
decoder_heads = 2

[train]
steps = {steps}
log_every = 1
checkpoint_every = 3
progress = false

[output]
dir = "{out}"
{extra}"""
    path = tmp_path / "pretrain.toml"
    path.write_text(text)
    return path


def run(*args):
    return CliRunner().invoke(cli, ["pretrain", *map(str, args)], catch_exceptions=False)


def losses(out):
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "step" in r}


def test_resume_is_bit_exact(write_config, tmp_path, chips, monkeypatch):
    config = write_config(tmp_path, chips, out="straight")
    first = run("-c", config)
    assert first.exit_code == 0
    assert first.stdout.splitlines()[-1].endswith("last.pt")  # the result on stdout
    straight = losses(tmp_path / "straight")
    assert sorted(straight) == [1, 2, 3, 4, 5, 6]

    original = pretrain_module._Pretrainer._checkpoint

    def crash_after_first(self):
        original(self)
        if self.step == 3:
            raise KeyboardInterrupt  # the job is killed right after the step-3 checkpoint

    monkeypatch.setattr(pretrain_module._Pretrainer, "_checkpoint", crash_after_first)
    config = write_config(tmp_path, chips, out="resumed")
    assert run("-c", config).exit_code == 130
    assert read_checkpoint(tmp_path / "resumed" / "last.pt").extra["step"] == 3
    monkeypatch.setattr(pretrain_module._Pretrainer, "_checkpoint", original)
    result = run("-c", config, "--resume")
    assert result.exit_code == 0, result.output
    assert losses(tmp_path / "resumed") == straight  # bit-exact, every step
    a, _ = load_checkpoint(tmp_path / "straight" / "last.pt")
    b, contract = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert contract.task == "pretrain"
    assert [band.name for band in contract.bands] == ["blue", "green", "red", "nir", "VV", "VH"]
    assert contract.bands[0].mean > 0 and contract.bands[0].scale == 1e-4
    assert (tmp_path / "resumed" / "config.toml").exists()


def test_resume_with_incompatible_config_is_a_config_error(write_config, tmp_path, chips):
    config = write_config(tmp_path, chips, steps=3)
    assert run("-c", config).exit_code == 0
    result = run("-c", config, "--resume", "--batch-size", "2", "--steps", "4")
    assert result.exit_code == 7
    assert "data.batch_size (checkpoint 4, config 2)" in result.output
    result = run("-c", config)  # an earlier run is never clobbered silently
    assert result.exit_code == 5 and "--resume" in result.output


def test_failed_checkpoint_write_keeps_the_previous_one(write_config, tmp_path, chips, monkeypatch):
    config = write_config(tmp_path, chips, steps=6)
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    result = run("-c", config)
    assert result.exit_code == 5 and "No space left" in result.output
    data = read_checkpoint(tmp_path / "out" / "last.pt")
    assert data.extra["step"] == 3  # the step-3 checkpoint is intact
    assert not [p for p in (tmp_path / "out").iterdir() if ".partial-" in p.name]


def test_missing_and_empty_chip_folders(write_config, tmp_path, chips):
    config = write_config(tmp_path, [tmp_path / "nope"])
    result = run("-c", config)
    assert result.exit_code == 3 and "chip folder not found" in result.output
    (tmp_path / "empty").mkdir()
    result = run("-c", write_config(tmp_path, [tmp_path / "empty"]))
    assert result.exit_code == 3 and "no chips.json" in result.output


def test_one_band_set_in_two_chip_sizes_trains_in_batches_of_one_size(
    write_config, optical_chips, tmp_path
):
    from gfmcli.train.datasets import ChipDataset, open_chip_folder

    small = optical_chips(tmp_path, name="small", chip=16)  # 64 chips of 16 px
    large = optical_chips(tmp_path, name="large")  # 16 chips of 32 px, the same four bands
    folders = [open_chip_folder(small), open_chip_folder(large)]
    assert folders[0].band_key == folders[1].band_key
    dataset = ChipDataset(folders, ["train", "val", "test"])
    assert sorted(set(dataset.group_of)) == [0, 1]  # one batch group per chip size
    result = run("-c", write_config(tmp_path, [small, large], steps=8))
    assert result.exit_code == 0, result.output  # before: "stack expects each tensor ..."


def test_chip_paths_outside_the_chip_folder_are_refused(write_config, tmp_path, chips):
    import shutil

    folder = tmp_path / "copied"
    shutil.copytree(chips[0], folder)
    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"not for training")
    meta = json.loads((folder / "chips.json").read_text())
    for bad in ("../secret.tif", str(secret)):
        meta["chips"][1]["image"] = bad
        (folder / "chips.json").write_text(json.dumps(meta))
        result = run("-c", write_config(tmp_path, [folder], out="run"))
        assert result.exit_code == 3, result.output
        assert "chip 1 names" in result.output and "outside the chip folder" in result.output
    assert not (tmp_path / "run").exists(), "a refused run leaves no run folder"


def test_zero_std_in_stats_json_is_an_input_error(write_config, tmp_path, chips):
    import shutil

    folder = tmp_path / "copied"
    shutil.copytree(chips[0], folder)
    stats = json.loads((folder / "stats.json").read_text())
    stats["bands"][0]["std"] = 0.0
    (folder / "stats.json").write_text(json.dumps(stats))
    result = run("-c", write_config(tmp_path, [folder]))
    assert result.exit_code == 3 and "std 0.0" in result.output, result.output


def test_bad_toml_is_exit_7(write_config, tmp_path, chips):
    config = write_config(tmp_path, chips, extra="[optim]\nweight_deacy = 0.1\n")
    result = run("-c", config)
    assert result.exit_code == 7 and "did you mean" in result.output


def test_a_device_or_precision_this_machine_lacks_is_a_config_error(write_config, tmp_path, chips):
    for keys, message in (
        ("device = 'tpu'", "train.device = 'tpu': unknown device 'tpu'"),
        ("precision = 'fp16'\ndevice = 'cpu'", "train.precision = 'fp16': precision fp16 needs"),
    ):
        config = write_config(tmp_path, chips)
        config.write_text(config.read_text().replace("[train]\n", f"[train]\n{keys}\n"))
        result = run("-c", config)
        assert result.exit_code == 7 and message in result.output, result.output
        assert not (tmp_path / "out").exists()


def test_decoder_sizes_that_make_no_decoder_are_a_config_error(tiny_encoder_toml, tmp_path, chips):
    config = _write_config(tmp_path, chips, model=tiny_encoder_toml)
    config.write_text(config.read_text().replace("decoder_heads = 2", "decoder_heads = 3"))
    result = run("-c", config)
    assert result.exit_code == 7, result.output
    assert "[model]: HyperMAE decoder (decoder_dim 32, decoder_heads 3" in result.output
    assert not (tmp_path / "out").exists()


def test_masked_loss_matches_library_loss_and_ignores_invalid_pixels():
    from gfmcli.model.mae import HyperMAE
    from gfmcli.train.pretrain import masked_mae_loss

    torch.manual_seed(0)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 8 lines)
    mae = HyperMAE("less_vit_tiny", decoder_depth=1, decoder_dim=32, decoder_heads=2,
                   embed_dim=32, depth=1, num_heads=2, patch_size=8)  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    radar = torch.randn(2, 2, 32, 32)
    gen = torch.Generator().manual_seed(1)
    out = mae(x, [490, 560, 665], 10.0, radar=radar, radar_wavelengths=[5500, 5700], generator=gen)
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    assert torch.allclose(masked_mae_loss(out, valid, 8), out.loss, rtol=1e-5)
    valid[:, 20:, :] = False
    loss = masked_mae_loss(out, valid, 8)
    changed = out._replace(target=out.target.clone())
    changed.target.view(2, 5, 4, 4, 8, 8)[:, :, 3, :, :, :] += 100.0  # rows 24..31: invalid only
    assert torch.equal(masked_mae_loss(changed, valid, 8), loss)
    assert not torch.equal(masked_mae_loss(changed, torch.ones_like(valid), 8), loss)


@pytest.mark.parametrize(("setting", "expected"), [("", None), ("decoder_drop_path = 0.3", 0.3)])
def test_decoder_drop_path_reaches_the_decoder(
    write_config, tmp_path, chips, monkeypatch, setting, expected
):
    # Unset, the decoder takes the encoder's drop_path (HyperMAE's default, as the reference).
    import gfmcli.model.mae as mae_module

    seen = []
    real = mae_module.HyperMAE

    def spy(*args, **kwargs):
        seen.append(kwargs.get("decoder_drop_path", "missing"))
        return real(*args, **kwargs)

    monkeypatch.setattr(mae_module, "HyperMAE", spy)
    text = write_config(tmp_path, chips, steps=1).read_text()
    text = text.replace("decoder_depth = 1", f"decoder_depth = 1\n{setting}")
    config = tmp_path / "drop.toml"
    config.write_text(text)
    result = run("-c", config)
    assert result.exit_code == 0, result.output
    assert seen == [expected]


def test_resume_accepts_the_same_toml_by_a_relative_path_and_q_is_silent(
    write_config, tmp_path, chips, monkeypatch
):
    import os
    import re

    folder = tmp_path / "cfg"
    folder.mkdir()
    config = write_config(folder, chips, steps=3)
    relative = json.dumps([os.path.relpath(c, folder) for c in chips])  # relative to the TOML
    config.write_text(re.sub(r"chips = .*", f"chips = {relative}", config.read_text(), count=1))
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(cli, ["-q", "pretrain", "-c", "cfg/pretrain.toml"])
    assert first.exit_code == 0 and first.stderr == "", first.output  # -q: errors only
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = run("-c", "../cfg/pretrain.toml", "--resume", "--steps", "4")
    assert again.exit_code == 0, again.output
    assert max(losses(folder / "out")) == 4


def test_masked_loss_leaves_a_modality_without_hidden_band_out_of_the_channel_mean():
    from gfmcli.model.mae import MaeOutput, hyper_mae_loss
    from gfmcli.train.pretrain import masked_mae_loss

    err = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # (B=1, C=3, N=2), 2 optical
    pred, target = err.sqrt()[..., None], torch.zeros(1, 3, 2, 1)
    masks = (torch.tensor([[False, True]]), torch.tensor([[True, False, False]]))
    is_radar = torch.tensor([False, False, True])
    out = MaeOutput(hyper_mae_loss(pred, target, *masks, is_radar), pred, target, *masks, is_radar)
    # optical: position 3, channel 1.5; radar: position 6 and no hidden band, so no channel
    # term (a 0 term would halve optical's: 5.25)
    loss = masked_mae_loss(out, torch.ones(1, 1, 2, dtype=torch.bool), 1)
    torch.testing.assert_close(loss, torch.tensor((3 + 6) / 2 + 1.5))
    torch.testing.assert_close(loss, out.loss)
    # the hidden optical band's only valid token is its first: channel term 1, not 1.5
    loss = masked_mae_loss(out, torch.tensor([[[True, False]]]), 1)
    torch.testing.assert_close(loss, torch.tensor((0 + 0) / 2 + 1.0))
