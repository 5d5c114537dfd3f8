"""What a run prepares on a thread (engine.jobs.prepare_in_background): Numba, the blend kernels
and rio-cogeo are not imported with the engine, but on that thread, and a failure there is
only logged; a run never returns while that thread is still running (issue #10: a thread
inside an import or a compile at interpreter exit can crash the process)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import pytest

from gfmcli.engine import blend, jobs
from gfmcli.engine.options import MapOptions
from gfmcli.errors import OutputError
from gfmcli.model.checkpoint import load_checkpoint

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


class _HeldPrepare(threading.Thread):
    """A prepare thread that stays in its work until it is joined: a run that returns without
    joining it leaves it alive, whatever the scheduling, so the check below cannot race."""

    def __init__(self) -> None:
        self.release = threading.Event()
        super().__init__(target=self.release.wait, name="gfm-prepare")

    def join(self, timeout: float | None = None) -> None:
        self.release.set()
        super().join(timeout)


@pytest.mark.parametrize("outcome", ["maps", "fails fast"])
def test_a_run_returns_only_after_the_prepare_thread_has_finished(
    tiny_model, s2_scene, tmp_path, monkeypatch, outcome
):
    held = _HeldPrepare()

    def start() -> threading.Thread:
        held.start()
        return held

    monkeypatch.setattr(jobs, "prepare_in_background", start)
    model, contract = load_checkpoint(tiny_model)
    scene = s2_scene()
    # "fails fast": the output would replace the input, refused before any device is set up.
    out = tmp_path / "map.tif" if outcome == "maps" else scene
    run = [jobs.Job(str(scene), out, "tif")], model, contract, MapOptions(window=32, overlap=8)
    try:
        if outcome == "maps":
            jobs.run_jobs(*run, kind="predict")
        else:
            with pytest.raises(OutputError, match="would replace its input"):
                jobs.run_jobs(*run, kind="predict")
        assert not held.is_alive()
    finally:
        held.release.set()  # a failing check leaves no thread behind


def test_the_prepare_thread_is_not_a_daemon():
    # The interpreter then waits for it at exit even where no caller joined it.
    thread = jobs.prepare_in_background()
    thread.join()
    assert not thread.daemon
