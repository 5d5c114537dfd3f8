"""The shell examples in docs/*.md marked to run (```sh test blocks) run as written, in order,
from a folder that holds examples/ (so the docs can use the shipped example scene)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh test\n(.*?)^```", re.DOTALL | re.MULTILINE)
DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if BLOCK.search(p.read_text()))
BIN = Path(sys.executable).parent


def _commands(doc: Path) -> list[str]:
    lines = []
    for block in BLOCK.findall(doc.read_text()):
        lines += [line for line in block.splitlines() if line and not line.startswith("#")]
    return lines


def test_the_cli_reference_has_shell_examples():
    assert "cli.md" in {p.name for p in DOCS}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_shell_examples_run(doc, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for line in _commands(doc):
        proc = subprocess.run(
            line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
        if "--json" in shlex.split(line) and "|" not in line:
            records = [json.loads(text) for text in proc.stdout.splitlines() if text.strip()]
            assert records and all(r.get("status") != "failed" for r in records), line
