"""``gfm finetune``: learns, selects on validation, carries the contract, evaluates on test."""

from __future__ import annotations

import functools
import json

import pytest
from click.testing import CliRunner

from gfmcli.cli.main import cli
from gfmcli.model.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def chips(tmp_path_factory, optical_chips):
    return optical_chips(tmp_path_factory.mktemp("ft"), labels=True)


@pytest.fixture
def write_config(tiny_encoder_toml):
    """``write_config(tmp_path, chips, task=..., model=..., extra=..., epochs=...)`` writes a
    finetune TOML (the tiny encoder with a 16-wide head unless ``model`` is given)."""
    return functools.partial(_write_config, default_model=tiny_encoder_toml + "head_width = 16\n")


def _write_config(
    tmp_path, chips, task="segmentation", model=None, extra="", epochs=4, *, default_model
):
    model = default_model if model is None else model
    text = f"""
[data]
chips = ["{chips}"]
batch_size = 4
{model}
task = "{task}"

[optim]
lr = 3e-3
warmup_ratio = 0.0

[train]
epochs = {epochs}
patience = 2
progress = false

[output]
dir = "out"
{extra}"""
    path = tmp_path / "finetune.toml"
    path.write_text(text)
    return path


CLASSES = """
[[classes]]
id = 0
name = "dark"
color = [0, 0, 0]

[[classes]]
id = 1
name = "mid"
color = [128, 128, 128]

[[classes]]
id = 2
name = "bright"
color = [255, 255, 255]
"""


def run(*args):
    return CliRunner().invoke(cli, ["finetune", *map(str, args)], catch_exceptions=False)


def epochs_logged(out):
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if "epoch" in r]


def test_segmentation_learns_and_best_is_chosen_on_validation(
    write_config, tmp_path, chips, monkeypatch
):
    from gfmcli.train import finetune as finetune_module

    seen_splits = []
    real_dataset = finetune_module.ChipDataset

    def recording_dataset(folders, splits, *args, **kwargs):
        seen_splits.extend(splits)
        return real_dataset(folders, splits, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "ChipDataset", recording_dataset)
    config = write_config(tmp_path, chips, extra=CLASSES, epochs=4)
    result = run("-c", config)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(tmp_path / "out" / "best.pt")]  # the result
    assert sorted(set(seen_splits)) == ["train", "val"]  # training never reads the test split
    log = epochs_logged(tmp_path / "out")
    best = max(log, key=lambda r: r["miou"])
    assert [r["epoch"] for r in log if r["best"]][-1] == best["epoch"]
    assert best["miou"] > 0.5  # the classes follow the band values: learnable in a few epochs
    _, contract = load_checkpoint(tmp_path / "out" / "best.pt")
    assert contract.provenance["epoch"] == best["epoch"]
    assert contract.provenance["selected_on"] == "validation miou"
    assert [c.name for c in contract.classes] == ["dark", "mid", "bright"]
    assert contract.classes[2].color == (255, 255, 255)
    assert contract.band_names == ("blue", "green", "red", "nir")
    stats = json.loads((chips / "stats.json").read_text())["bands"]
    assert [b.mean for b in contract.bands] == [b["mean"] for b in stats]
    assert contract.bands[0].scale == 1e-4 and contract.gsd == pytest.approx(10.004, abs=1e-3)
    assert contract.window == 32  # the chips' size: the model maps in windows like them
    assert "finetune" in contract.provenance["command"]
    assert (tmp_path / "out" / "config.toml").exists()

    result = run("-c", config, "--evaluate")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "out" / "test_metrics.json").read_text())
    assert scores["split"] == "test" and len(scores["confusion_matrix"]) == 3
    assert 0 <= scores["miou"] <= 1
    assert run("-c", config, "--evaluate").exit_code == 0  # its own earlier score is replaced

    # --metrics never replaces what --evaluate reads, nor a file it did not write
    best = tmp_path / "out" / "best.pt"
    notes = tmp_path / "notes.json"
    notes.write_text("my notes")
    kept = {best: best.read_bytes(), chips / "chips.json": (chips / "chips.json").read_bytes()}
    for target, why in [
        (best, "is the checkpoint being scored"),
        (chips / "chips.json", "lies in the chip folder"),
        (notes, "exists and is not a score file of gfm finetune --evaluate"),
    ]:
        result = run("-c", config, "--evaluate", "--metrics", target)
        assert result.exit_code == 5 and why in result.output, result.output
    assert notes.read_text() == "my notes"
    assert all(path.read_bytes() == data for path, data in kept.items())

    # starting over removes the earlier run's test scores with its checkpoint
    again = run("-c", config, "--set", "output.overwrite=true", "--set", "train.epochs=1")
    assert again.exit_code == 0, again.output
    assert not (tmp_path / "out" / "test_metrics.json").exists()


def test_finetune_from_pretrained_linear_probe_classification(
    tiny_encoder_toml, write_config, tmp_path, chips
):
    pre = tmp_path / "pre.toml"
    pre.write_text(f"""
[data]
chips = ["{chips}"]
batch_size = 4
{tiny_encoder_toml}
decoder_dim = 32
decoder_depth = 1
decoder_heads = 2
[train]
steps = 2
progress = false
[output]
dir = "pre"
""")
    assert CliRunner().invoke(cli, ["pretrain", "-c", pre]).exit_code == 0
    model = '[model]\npretrained = "pre/last.pt"\nmode = "linear_probe"'
    config = write_config(tmp_path, chips, task="classification", model=model, epochs=2)
    result = run("-c", config)
    assert result.exit_code == 0, result.output
    tuned, contract = load_checkpoint(tmp_path / "out" / "best.pt")
    pretrained, _ = load_checkpoint(tmp_path / "pre" / "last.pt")
    for key, value in pretrained.encoder.state_dict().items():
        assert (tuned.encoder.state_dict()[key] == value).all(), key  # frozen encoder kept
    assert contract.task == "classification" and contract.provenance["pretrained"]
    log = epochs_logged(tmp_path / "out")
    assert "accuracy" in log[0]


def test_a_pretrained_head_is_kept_for_the_same_classes_else_dropped_with_a_warning(
    write_config, tmp_path, chips, caplog
):
    import logging

    first = write_config(tmp_path, chips, extra=CLASSES, epochs=1)
    assert run("-c", first).exit_code == 0
    (tmp_path / "base").mkdir()
    (tmp_path / "out").rename(tmp_path / "base" / "out")
    model = '[model]\npretrained = "base/out/best.pt"\n'
    caplog.set_level(logging.INFO, logger="gfmcli")
    model += "head_width = 16\n"
    same = write_config(tmp_path, chips, model=model, extra=CLASSES, epochs=1)
    assert CliRunner().invoke(cli, ["-v", "finetune", "-c", str(same)]).exit_code == 0
    assert "keeping its segmentation head (the same 3 classes)" in caplog.text
    assert "is dropped" not in caplog.text
    caplog.clear()
    (tmp_path / "out").rename(tmp_path / "kept")
    other = write_config(tmp_path, chips, model=model, epochs=1)
    assert run("-c", other).exit_code == 0
    assert "its segmentation head (dark, mid, bright) does not match" in caplog.text
    assert "is dropped and a new head is trained" in caplog.text


def test_pretrained_may_name_the_shipped_weights_as_predict_does(
    write_config, tmp_path, chips, caplog
):
    shipped = '[model]\npretrained = "landcover-tiny"\n'
    result = run("-c", write_config(tmp_path, chips, model=shipped, epochs=1))
    assert result.exit_code == 0, result.output
    assert "its segmentation head (water, tree cover," in caplog.text  # the shipped model's
    _, contract = load_checkpoint(tmp_path / "out" / "best.pt")
    assert contract.provenance["pretrained"] == "landcover-tiny"
    typo = '[model]\npretrained = "landcover-tyni"\n'
    (tmp_path / "out").rename(tmp_path / "first")
    result = run("-c", write_config(tmp_path, chips, model=typo, epochs=1))
    assert result.exit_code == 4 and "not a file and not a shipped model (" in result.output


def test_architecture_with_pretrained_is_a_config_error(write_config, tmp_path, chips):
    model = '[model]\npretrained = "x.pt"\ndepth = 2'
    result = run("-c", write_config(tmp_path, chips, model=model))
    assert result.exit_code == 7 and "model.depth cannot be set" in result.output


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ("embed_dim = 100\nnum_heads = 3", "embed_dim=100 must be a multiple of"),
        ("patch_size = 7", "dense heads need a power-of-two patch size, got 7"),
    ],
)
def test_sizes_that_make_no_model_are_a_config_error(write_config, tmp_path, chips, sizes, message):
    result = run("-c", write_config(tmp_path, chips, model=f"[model]\n{sizes}\n"))
    assert result.exit_code == 7, result.output
    assert "[model]: " in result.output and message in result.output
    assert not (tmp_path / "out").exists()


def test_labels_with_unknown_classes_are_rejected(write_config, tmp_path, chips):
    two = CLASSES.split("[[classes]]\nid = 2")[0]
    result = run("-c", write_config(tmp_path, chips, extra=two))
    assert result.exit_code == 3 and "class id(s) 2" in result.output


def test_regression_task_needs_numeric_labels(write_config, tmp_path, chips):
    result = run("-c", write_config(tmp_path, chips, task="regression"))
    assert result.exit_code == 3 and "class ids" in result.output


def test_unknown_class_weight_name(write_config, tmp_path, chips):
    extra = CLASSES + "\n"
    config = write_config(tmp_path, chips, extra=extra)
    text = config.read_text().replace(
        "warmup_ratio = 0.0", "warmup_ratio = 0.0\nclass_weights = { shiny = 2.0 }"
    )
    config.write_text(text)
    result = run("-c", config)
    assert result.exit_code == 7 and "shiny" in result.output


def test_regression_end_to_end(make_raster, write_config, tmp_path):
    import numpy as np

    from gfmcli.train.chips import ChipOptions, tile
    from gfmcli.train.labels import LabelSource

    rng = np.random.default_rng(3)
    data = rng.integers(1000, 4000, (4, 64, 96)).astype("uint16")
    raster = make_raster(tmp_path, "img.tif", data=data, nodata=0)
    target = (data[2] / 1000.0).astype("float32")  # a target the red band explains
    labels = make_raster(tmp_path, "height.tif", data=target, dtype="float32")
    chips = tmp_path / "chips"
    options = ChipOptions(
        size=32, stride=32, sensor="vnir4", block=1, regression=True, fractions=(0.5, 0.25, 0.25)
    )
    tile([raster], chips, options, LabelSource(labels, regression=True))
    config = write_config(tmp_path, chips, task="regression", epochs=1)
    result = run("-c", config)
    assert result.exit_code == 0, result.output
    log = epochs_logged(tmp_path / "out")
    assert log[0]["rmse"] > 0 and "r2" in log[0]["val"]
    _, contract = load_checkpoint(tmp_path / "out" / "best.pt")
    assert contract.task == "regression" and contract.classes == ()


def test_an_earlier_run_is_never_replaced(write_config, tmp_path, chips):
    out = tmp_path / "out"
    out.mkdir()
    (out / "best.pt").write_bytes(b"earlier best")
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    config = write_config(tmp_path, chips, extra=CLASSES, epochs=1)
    result = run("-c", config)
    assert result.exit_code == 5, result.output
    assert "holds an earlier run (best.pt, metrics.jsonl)" in result.output
    assert (out / "best.pt").read_bytes() == b"earlier best"
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


def test_epochs_override_train_epochs_and_steps_is_refused_with_the_fix(
    write_config, tmp_path, chips
):
    config = write_config(tmp_path, chips, extra=CLASSES, epochs=4)
    result = run("-c", config, "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in epochs_logged(tmp_path / "out")] == [1]  # not the TOML's 4
    refused = run("-c", config, "--steps", "1", "-o", tmp_path / "other")
    assert refused.exit_code == 2
    assert "trains in epochs, not steps: pass --epochs N" in refused.output
    assert not (tmp_path / "other").exists()
