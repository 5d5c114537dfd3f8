"""What a run prepares on a thread (engine.jobs.prepare_in_background): Numba, the blend kernels
and rio-cogeo are not imported with the engine, but on that thread, and a failure there is
only logged."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from gfmcli.engine import blend, jobs

_SCRIPT = """
import json, sys
from gfmcli.api import mapping  # everything gfm predict imports before its first input
from gfmcli.engine import blend, jobs

LATER = ("numba", "rio_cogeo.cogeo")
before = [m for m in LATER if m in sys.modules]
jobs.prepare_in_background().join(timeout=300)
after = [m for m in LATER if m in sys.modules]
ready = [k.dispatcher().signatures != [] for k in (blend.accumulate, blend.argmax_classes)]
print(json.dumps([before, after, ready]))
"""


def test_numba_and_rio_cogeo_load_on_the_prepare_thread_not_at_import():
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after, ready = json.loads(proc.stdout.splitlines()[-1])
    assert before == []
    assert after == ["numba", "rio_cogeo.cogeo"]
    assert ready == [True, True]


def test_a_failure_while_preparing_is_only_logged(monkeypatch, caplog):
    def broken() -> None:
        raise ValueError("no LLVM today")

    monkeypatch.setattr(blend, "warm_up", broken)
    with caplog.at_level(logging.DEBUG, logger="gfmcli.engine.jobs"):
        jobs.prepare_in_background().join(timeout=60)
    assert "preparing the blend kernels and the COG check failed" in caplog.text
    assert "no LLVM today" in caplog.text
