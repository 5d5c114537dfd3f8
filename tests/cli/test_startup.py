"""What a ``gfm`` process loads and how it ends: fixed costs paid by every run (issue #10).

No timing here: the tests check the behaviour that makes the fixed costs small (heavy optional
modules imported only by the outputs that need them, the GC frozen on the way out).
"""

import gc
import platform
import subprocess
import sys

import pytest

from gfmcli.cli.main import keep_freed_memory, main

VECTOR_MODULES = ("pyogrio", "geopandas", "pandas")
COMPILE_MODULES = ("torch._dynamo", "sympy")


def _imported(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` lines ("import time: ... | name"), with the
    top-level package of each."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names |= {name, name.split(".")[0]}
    return names


def _predict(model, raster, out, *extra):
    cmd = [sys.executable, "-X", "importtime", "-m", "gfmcli.cli", "-q", "predict"]
    cmd += ["-m", str(model), str(raster), "-o", str(out), "--window", "32", "--overlap", "8"]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file()
    return _imported(proc.stderr)


def test_geotiff_run_never_imports_the_vector_stack_or_torch_compile(
    tiny_model, s2_scene, tmp_path
):
    imported = _predict(tiny_model, s2_scene(), tmp_path / "map.tif")
    assert "torch" in imported and "rasterio" in imported  # the parser sees real imports
    assert "torch.nn.functional" in imported
    assert not imported & set(VECTOR_MODULES), imported & set(VECTOR_MODULES)
    # The checkpoint's skeleton on the meta device once ran torch's meta normal_, which imports
    # these (1.3 s per run).
    assert not imported & set(COMPILE_MODULES), imported & set(COMPILE_MODULES)


def test_geopackage_run_imports_it_when_asked(tiny_model, s2_scene, tmp_path):
    imported = _predict(tiny_model, s2_scene(), tmp_path / "map.gpkg")
    assert "pyogrio" in imported


def test_main_freezes_the_gc_on_the_way_out(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gfm", "--version"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_memory_is_kept_for_reuse_on_glibc():
    assert keep_freed_memory() is True
