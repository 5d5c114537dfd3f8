"""What a run prepares on a thread (engine.jobs.prepare_in_background): Numba, the blend kernels
and rio-cogeo are not imported with the engine, but on that thread, and a failure there is
only logged; a run never returns while that thread is still running (issue #10: a thread
inside an import or a compile at interpreter exit can crash the process)."""

from __future__ import annotations

import json
import logging
import os
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

# gfm -q predict ARGS in its own interpreter, the real prepare thread held before its work until
# run_jobs joins it (as _HeldPrepare below: the order cannot race) and released anyway once
# main() is done (a run that does not join cannot hang). The step then prints "prepared" to the
# pipe the error goes to: before the error only where the run waited for it.
_HELD_PREPARE = """
import sys, threading
from gfmcli.cli.main import main
from gfmcli.engine import blend, jobs

released = threading.Event()
start, warm_up = jobs.prepare_in_background, blend.warm_up

def held_start():
    thread = start()
    join = thread.join

    def release_and_join(timeout=None):
        released.set()
        join(timeout)

    thread.join = release_and_join
    return thread

def held_warm_up():
    released.wait()
    warm_up()
    print("prepared", flush=True)

jobs.prepare_in_background, blend.warm_up = held_start, held_warm_up
sys.argv = ["gfm", "-q", "predict", *sys.argv[1:]]
try:
    main()
finally:
    released.set()
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


def test_gfm_predict_failing_on_its_input_reports_only_after_the_prepare_step(tiny_model, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    args = [str(bad), "-o", str(tmp_path / "map.tif"), "-m", str(tiny_model)]
    proc = subprocess.run(
        [sys.executable, "-c", _HELD_PREPARE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe: the order of "prepared" and the error is kept
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a crash at exit would show its stack
    )
    assert proc.returncode == 3, proc.stdout[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == "prepared", proc.stdout
    assert lines[1].startswith("gfm: error: ") and "bad.tif" in lines[1]
