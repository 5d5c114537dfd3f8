"""The package's import graph (tools/check_imports.py, also run by .ci/run): no circles, each
layer importing only from those below it, click only in gfmcli.cli."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location(
        "check_imports", ROOT / "tools" / "check_imports.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module
    spec.loader.exec_module(module)
    return module


def test_gfmcli_has_no_circles_no_layer_breaks_and_click_only_in_the_cli(checker):
    assert checker.problems(checker.graph()) == []


def test_the_checker_finds_a_circle_a_sibling_import_and_click(checker):
    edges = {
        "gfmcli.io.reader": {"gfmcli.io.bands"},
        "gfmcli.io.bands": {"gfmcli.io.reader"},
        "gfmcli.train.run": {"gfmcli.engine.runner"},
        "gfmcli.engine.runner": {"click"},
        "gfmcli.model.less": {"gfmcli.engine.runner"},
    }
    found = checker.problems(edges)
    assert "import circle: gfmcli.io.bands <-> gfmcli.io.reader" in found
    assert any(line.startswith("gfmcli.train.run imports gfmcli.engine.runner") for line in found)
    assert any(line.startswith("gfmcli.model.less imports gfmcli.engine.runner") for line in found)
    assert any(line.startswith("gfmcli.engine.runner imports click") for line in found)


def test_every_module_is_in_a_layer(checker):
    edges = checker.graph()
    for module in edges:
        checker.layer(module)  # raises for a part the table does not know


def test_every_package_is_in_pyprojects_list():
    """A non-editable install ships only the packages pyproject names; an editable one (the
    test suite's) imports any folder, so a missing entry broke only the README's quick start."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "gfmcli").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
