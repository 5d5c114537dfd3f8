"""bench/gpu.py's CPU parts on tiny inputs (its CUDA rows are skipped with a reason)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not (ROOT / "weights" / "landcover-tiny.pt").exists(), reason="default weights absent"
)
def test_gpu_bench_runs_its_cpu_parts_and_skips_cuda_with_a_reason():
    cmd = [sys.executable, "bench/gpu.py", "--cpu-only", "--quick", "--base-model", "less_vit_tiny"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    cases = {cells[1]: cells[2].removesuffix(" |") for cells in rows if cells[1] != "case"}
    agree = cases["CPU bf16 vs CPU fp32"]
    assert float(agree.split(" %")[0]) >= 99.5
    cuda = [value for case, value in cases.items() if "cuda:0" in case]
    assert len(cuda) == 5 and all(value == "skipped: --cpu-only" for value in cuda)
    speeds = [value for case, value in cases.items() if case.endswith(", CPU")]
    assert len(speeds) == 2 and all(float(v.split(" windows/s")[0]) > 0 for v in speeds)
    (tile,) = [value for case, value in cases.items() if case.startswith("256x256")]
    assert float(tile.split(" s wall")[0]) > 0
