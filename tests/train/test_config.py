"""TOML configuration: validation errors name file, dotted key and line; overrides; round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gfmcli.errors import ConfigError
from gfmcli.tomlconf import config_to_toml, find_key_line, load_config, parse_config
from gfmcli.train.config import FinetuneConfig, PretrainConfig

PRETRAIN = """\
# a comment
[data]
chips = ["chips/s2", "/abs/s1"]
batch_size = 8

[optim]
lr = 3e-4
betas = [0.9, 0.95]

[train]
steps = 20
precision = "fp32"

[output]
dir = "runs/pre"
"""


def write(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_config_parses_with_defaults_and_resolves_paths(tmp_path):
    cfg = load_config(write(tmp_path, PRETRAIN), PretrainConfig)
    assert cfg.data.chips == (str(tmp_path / "chips/s2"), "/abs/s1")
    assert cfg.data.batch_size == 8
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.9, 0.95)
    assert cfg.optim.weight_decay == 0.05  # default kept
    assert cfg.train.steps == 20 and cfg.train.precision == "fp32"
    assert cfg.output.dir == str(tmp_path / "runs/pre")


def test_unknown_key_names_file_key_line_and_suggestion(tmp_path):
    text = PRETRAIN.replace("lr = 3e-4", "lrr = 3e-4")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, PretrainConfig)
    message = str(err.value)
    assert f"{path}:7:" in message
    assert "optim.lrr" in message and "did you mean 'lr'?" in message


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r":1: .*'optimizer'.*did you mean 'optim'"):
        parse_config("[optimizer]\nlr = 1\n" + PRETRAIN, PretrainConfig)


def test_wrong_type_names_key_and_line(tmp_path):
    text = PRETRAIN.replace("batch_size = 8", 'batch_size = "eight"')
    with pytest.raises(ConfigError, match=r"cfg.toml:4: data.batch_size must be an integer"):
        load_config(write(tmp_path, text), PretrainConfig)


def test_bool_is_not_an_integer_and_int_is_a_float(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.batch_size must be an integer"):
        parse_config(PRETRAIN.replace("batch_size = 8", "batch_size = true"), PretrainConfig)
    cfg = parse_config(PRETRAIN.replace("lr = 3e-4", "lr = 1"), PretrainConfig)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_tuple_length_and_choice_checked():
    with pytest.raises(ConfigError, match=r":8: optim.betas must have 2 elements"):
        parse_config(PRETRAIN.replace("[0.9, 0.95]", "[0.9]"), PretrainConfig)
    with pytest.raises(ConfigError, match=r":12: train.precision = 'fp64' is not one of"):
        parse_config(PRETRAIN.replace('"fp32"', '"fp64"'), PretrainConfig)


def test_missing_required_key(tmp_path):
    text = PRETRAIN.replace('[output]\ndir = "runs/pre"\n', "")
    with pytest.raises(ConfigError, match="missing required key 'output'"):
        parse_config(text, PretrainConfig)
    text = PRETRAIN.replace('dir = "runs/pre"', "overwrite = true")
    with pytest.raises(ConfigError, match=r":14: missing required key 'output.dir'"):
        parse_config(text, PretrainConfig)


def test_syntax_error_reports_line(tmp_path):
    path = write(tmp_path, PRETRAIN.replace("steps = 20", "steps = = 20"))
    with pytest.raises(ConfigError, match=r"cfg.toml:11: TOML syntax error"):
        load_config(path, PretrainConfig)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", PretrainConfig)


def test_overrides_apply_by_dotted_key_and_are_validated():
    cfg = parse_config(PRETRAIN, PretrainConfig, overrides={"train.steps": 5, "optim.lr": None})
    assert cfg.train.steps == 5 and cfg.optim.lr == 3e-4  # None means "not given"
    cfg = parse_config(PRETRAIN, PretrainConfig, overrides={"model.name": "less_vit_small"})
    assert cfg.model.name == "less_vit_small"
    with pytest.raises(ConfigError, match=r"command-line override train\.steps"):
        parse_config(PRETRAIN, PretrainConfig, overrides={"train.steps": "many"})


def test_round_trip_through_toml(tmp_path):
    cfg = load_config(write(tmp_path, PRETRAIN), PretrainConfig)
    again = parse_config(config_to_toml(cfg), PretrainConfig, base_dir="/elsewhere")
    assert again == cfg


FINETUNE = """\
[data]
chips = ["chips"]

[model]
task = "segmentation"
pretrained = "pre/last.pt"

[optim]
class_weights = { water = 2.0, "built up" = 0.5 }

[output]
dir = "out"

[[classes]]
id = 1
name = "water"
color = [0, 0, 255]

[[classes]]
id = 2
name = "built up"
"""


def test_finetune_classes_and_weights_round_trip(tmp_path):
    cfg = load_config(write(tmp_path, FINETUNE), FinetuneConfig)
    assert [c.name for c in cfg.classes] == ["water", "built up"]
    assert cfg.classes[0].color == (0, 0, 255) and cfg.classes[1].color == (128, 128, 128)
    assert cfg.optim.class_weights == {"water": 2.0, "built up": 0.5}
    assert cfg.optim.weight_decay == 0.01 and cfg.model.pretrained == str(tmp_path / "pre/last.pt")
    assert load_config(write(tmp_path, config_to_toml(cfg), "again.toml"), FinetuneConfig) == cfg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("landcover-tiny", "landcover-tiny"),  # shipped weights by name, as predict -m takes it
        ("best.pt", "{tmp}/best.pt"),
        ("runs/landcover-tiny", "{tmp}/runs/landcover-tiny"),
        ("mine", "{tmp}/mine"),  # a file of that name beside the TOML is a path
    ],
)
def test_model_pretrained_is_a_path_or_a_shipped_name(tmp_path, value, expected):
    (tmp_path / "mine").write_bytes(b"")
    text = FINETUNE.replace('pretrained = "pre/last.pt"', f'pretrained = "{value}"')
    cfg = load_config(write(tmp_path, text), FinetuneConfig)
    assert cfg.model.pretrained == expected.format(tmp=tmp_path.resolve())


def test_error_inside_array_of_tables_points_at_its_line():
    text = FINETUNE.replace('name = "built up"', 'name = "built up"\ncolour = [1, 2, 3]')
    with pytest.raises(ConfigError, match=r":22: unknown key 'classes\[1\].colour'.*'color'"):
        parse_config(text, FinetuneConfig)


def test_wrong_type_in_second_array_table_points_at_it():
    text = FINETUNE.replace("id = 2", 'id = "two"')
    with pytest.raises(ConfigError, match=r":20: classes\[1\].id must be an integer"):
        parse_config(text, FinetuneConfig)


def test_find_key_line_handles_dotted_keys_and_headers():
    text = "a = 1\n[optim]\nlr = 2\n[train]\nx.y = 3\n"
    assert find_key_line(text, "a") == 1
    assert find_key_line(text, "optim.lr") == 3
    assert find_key_line(text, "train.x.y") == 5
    assert find_key_line(text, "optim.missing") == 2
    assert find_key_line(text, "nothing") is None


PRETRAIN_MINIMAL = '[data]\nchips = ["chips"]\n\n[output]\ndir = "run"\n'
FINETUNE_MINIMAL = (
    '[data]\nchips = ["chips"]\n\n[model]\ntask = "segmentation"\n\n[output]\ndir = "run"\n'
)


@pytest.mark.parametrize(
    ("schema", "table", "line", "message"),
    [
        (PretrainConfig, "train", "checkpoint_every = 0", "train.checkpoint_every = 0 is out"),
        (PretrainConfig, "train", "log_every = 0", "must be at least 1"),
        (PretrainConfig, "train", "steps = -5", "train.steps = -5 is out of range"),
        (PretrainConfig, "optim", "accumulate = 0", "optim.accumulate = 0 is out of range"),
        (PretrainConfig, "optim", "lr = nan", "optim.lr = nan must be a finite number"),
        (PretrainConfig, "optim", "betas = [0.9, 1.5]", "optim.betas = 1.5 is out of range"),
        (PretrainConfig, "data", "num_workers = -1", "data.num_workers = -1 is out of range"),
        (PretrainConfig, "train", "seed = -1", "train.seed = -1 is out of range"),
        (PretrainConfig, "train", f"seed = {2**62}", "must be in [0, 4294967295]"),
        (PretrainConfig, "model", "embed_dim = 100000", "model.embed_dim = 100000 is out"),
        (FinetuneConfig, "train", "epochs = 0", "train.epochs = 0 is out of range"),
        (FinetuneConfig, "optim", "class_weights = { water = -1 }", "class_weights.water"),
    ],
)
def test_values_out_of_range_are_config_errors_naming_key_and_line(schema, table, line, message):
    base = PRETRAIN_MINIMAL if schema is PretrainConfig else FINETUNE_MINIMAL
    text = base.replace(f"[{table}]\n", f"[{table}]\n{line}\n")
    if f"[{table}]" not in base:
        text = f"{base}\n[{table}]\n{line}\n"
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_config(text, schema, source="run.toml")
    number = text.splitlines().index(line) + 1
    assert str(info.value).startswith(f"run.toml:{number}: ")


def test_a_class_id_that_no_uint8_map_holds_is_a_config_error():
    text = FINETUNE_MINIMAL + '\n[[classes]]\nid = 300\nname = "water"\n'
    with pytest.raises(ConfigError, match=r"classes\[0\].id = 300 is out of range"):
        parse_config(text, FinetuneConfig, source="run.toml")


def test_one_toml_gives_the_same_paths_from_any_folder_and_by_any_name(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    path = write(tmp_path / "cfg", PRETRAIN_MINIMAL, "pre.toml")
    absolute = load_config(path, PretrainConfig)
    monkeypatch.chdir(tmp_path)
    relative = load_config(Path("cfg/pre.toml"), PretrainConfig)
    monkeypatch.chdir(tmp_path / "cfg")
    dotted = load_config(Path("../cfg/./pre.toml"), PretrainConfig)
    expected = (str((tmp_path / "cfg" / "chips").resolve()),)
    assert absolute.data.chips == relative.data.chips == dotted.data.chips == expected
    assert absolute.output.dir == relative.output.dir == str((tmp_path / "cfg" / "run").resolve())
