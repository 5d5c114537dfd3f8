"""The Python examples in docs/*.md run as written (blocks of one file share a namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


def test_the_docs_have_python_examples():
    assert {p.name for p in FILES} >= {"api.md", "model.md", "simulator.md"}


@pytest.mark.parametrize("doc", FILES, ids=lambda p: p.name)
def test_python_examples_run(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    (tmp_path / "examples").symlink_to(DOCS.parent / "examples")  # the shipped example scene
    namespace: dict = {}
    for block in BLOCK.findall(doc.read_text()):
        exec(compile(block, str(doc), "exec"), namespace)


def test_every_public_name_is_described_in_the_api_table():
    import gfmcli

    rows = [line.split(" | ")[0] for line in (DOCS / "api.md").read_text().splitlines()]
    described = " ".join(row for row in rows if row.startswith("| `"))
    for name in (n for n in gfmcli.__all__ if not n.startswith("_")):
        assert getattr(gfmcli, name) is not None
        assert f"`{name}" in described, f"docs/api.md does not describe gfmcli.{name}"
