"""bench/pipeline.py's checkpoint for the memory sweep is the model it says it is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gfmcli.model.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _pipeline():
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_checkpoint_builds_the_head_and_encoder_it_is_given(tmp_path):
    light = {"width": 16, "min_width": 8, "pixel_dim": 4}
    path = _pipeline().make_checkpoint(tmp_path / "rss.pt", head=light, embed_dim=48, depth=1)
    config = read_checkpoint(path).contract.model_config
    assert {k: config["head"][k] for k in light} == light
    overrides = config["encoder"]["overrides"]
    assert (overrides["embed_dim"], overrides["depth"]) == (48, 1)
