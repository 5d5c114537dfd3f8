"""Every command line of README's "What it does" block and of the ``--help`` examples runs as
written (with the default weights), on small crops of the shipped example scene.

The lines run in this process through click's runner (a subprocess per line would cost seconds
each); a line with a pipe runs its left side in a shell and feeds its output to gfm's stdin.
Lines that need a training run (``gfm pretrain``/``finetune --config examples/...``, the demo
script) are run by tests/docs/test_examples.py through examples/train-demo.sh instead.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window
from shapely.geometry import box

from gfmcli.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "data" / "s2-l2a-example.tif"
ITEM = ROOT / "examples" / "data" / "stac" / "s2-l2a-example.json"
NEEDS_TRAINING = ("gfm pretrain", "gfm finetune", "bash examples/train-demo.sh")


def _crop(path: Path, bands: list[int] | None = None, descriptions: bool = True, at: int = 0):
    """A 64 x 64 crop of the example scene (its band subset ``bands``, 1-based)."""
    with rasterio.open(EXAMPLE) as src:
        indexes = bands or list(range(1, src.count + 1))
        window = Window(at, at, 64, 64)
        profile = {**src.profile, "width": 64, "height": 64, "count": len(indexes)}
        profile.update(transform=src.window_transform(window), tiled=False)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        data = src.read(indexes, window=window)
        names = [src.descriptions[i - 1] for i in indexes]
        tags = src.tags()
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        if descriptions:
            dst.descriptions = names
    return path


def _workspace(folder: Path, l2a_bands: list[int] | None) -> Path:
    """The files the command lines name: scene.tif, l2a.tif (no band descriptions), scenes/,
    data/, item.json (a STAC item over scene.tif), labels.gpkg and classes.toml."""
    scene = _crop(folder / "scene.tif")
    _crop(folder / "l2a.tif", bands=l2a_bands, descriptions=False)
    _crop(folder / "scenes" / "a.tif")
    _crop(folder / "scenes" / "b.tif", at=64)
    _crop(folder / "data" / "c.tif", at=128)
    item = json.loads(ITEM.read_text())
    item["id"] = "item"
    item["assets"]["data"]["href"] = str(scene)
    for key in ("proj:shape", "proj:transform"):
        item["assets"]["data"].pop(key, None)
        item["properties"].pop(key, None)
    (folder / "item.json").write_text(json.dumps(item))
    with rasterio.open(EXAMPLE) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    x = (left + right) / 2
    halves = [box(left, bottom, x, top), box(x, bottom, right, top)]
    gpd.GeoDataFrame({"class": [0, 1]}, geometry=halves, crs=crs).to_file(folder / "labels.gpkg")
    (folder / "classes.toml").write_text(
        '[[classes]]\nid = 0\nname = "west"\n\n[[classes]]\nid = 1\nname = "east"\n'
    )
    return folder


def _run(line: str, cwd: Path, monkeypatch) -> None:
    """Run one documented line in ``cwd``; fails the test with the line and its output."""
    feed = None
    if "|" in line:
        left, line = (part.strip() for part in line.split("|", 1))
        feed = subprocess.run(left, shell=True, cwd=cwd, capture_output=True, text=True).stdout
    args = shlex.split(line)
    assert args[0] == "gfm", line
    expanded = []
    for arg in args[1:]:  # the shell's glob expansion (scenes/*.tif)
        matches = sorted(str(p.relative_to(cwd)) for p in cwd.glob(arg)) if "*" in arg else []
        expanded += matches or [arg]
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(cli, expanded, input=feed)
    assert result.exit_code == 0, f"{line}\n{result.output[-2000:]}\n{result.exception!r}"


def _readme_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## What it does", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def _help_lines() -> list[str]:
    lines = []
    for name in sorted(COMMANDS):
        text = CliRunner().invoke(cli, [name, "--help"]).output
        match = re.search(r"Examples?:\n(.*?)(\n\n|\Z)", text, re.DOTALL)
        if match:
            lines += [line.strip() for line in match.group(1).splitlines() if line.strip()]
    return lines


def test_every_readme_command_line_runs(tmp_path, monkeypatch):
    lines = [line for line in _readme_lines() if not line.startswith(NEEDS_TRAINING)]
    assert len(lines) >= 10 and any(line.startswith("gfm tile") for line in lines)
    folder = _workspace(tmp_path / "readme", l2a_bands=None)  # l2a.tif: all 12 bands
    for line in lines:
        _run(line, folder, monkeypatch)
    assert (folder / "chips" / "chips.json").is_file() and (folder / "classes.gpkg").is_file()


def test_every_help_example_runs(tmp_path, monkeypatch):
    lines = _help_lines()
    assert any("--bands B02,B03,B04,B08" in line for line in lines)
    folder = _workspace(tmp_path / "help", l2a_bands=[2, 3, 4, 8])  # l2a.tif: B02,B03,B04,B08
    # an example that reads the map another one writes runs after it (stable: the rest keep order)
    for line in sorted(lines, key=lambda line: line.startswith("gfm info map.tif")):
        if line.startswith("gfm simulate"):
            pytest.importorskip("earthlib")
        _run(line, folder, monkeypatch)
    assert (folder / "map.tif").is_file() and (folder / "embeddings").is_dir()


def test_example_configs_point_at_where_their_names_are_listed():
    from gfmcli.model.registry import list_models
    from gfmcli.tomlconf import load_config
    from gfmcli.train.config import PretrainConfig

    toml = ROOT / "examples" / "pretrain.toml"
    name = load_config(toml, PretrainConfig).model.name
    assert name in list_models() and f"`{name}`" in (ROOT / "docs" / "model.md").read_text()
    # `gfm models` lists shipped weights, not architectures: the comment must not send users there
    line = next(line for line in toml.read_text().splitlines() if line.startswith("name ="))
    assert "gfm models" not in line and "docs/model.md" in line
