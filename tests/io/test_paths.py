"""Input expansion, output planning, temporaries and resume checks (pure path logic)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gfmcli.atomic import STALE_AGE_S, host_key, partial_path, remove_with_prefix, stale_partials
from gfmcli.errors import InputError, OutputError, UsageError
from gfmcli.io.output_lock import OutputLock
from gfmcli.io.paths import (
    check_name_template,
    expand_inputs,
    expand_inputs_lenient,
    output_format,
    plan_outputs,
    should_skip_existing,
)


def _touch(folder: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        paths.append(str(path))
    return paths


def test_folder_lists_rasters_sorted_and_skips_others(tmp_path):
    _touch(tmp_path, "b.tif", "a.TIFF", "c.vrt", "notes.txt", ".hidden.tif", "sub/d.tif")
    _touch(tmp_path, ".b.partial-123.tif")
    found = expand_inputs([str(tmp_path)])
    assert [Path(p).name for p in found] == ["a.TIFF", "b.tif", "c.vrt"]
    deep = expand_inputs([str(tmp_path)], recursive=True)
    assert [Path(p).name for p in deep] == ["a.TIFF", "b.tif", "c.vrt", "d.tif"]


def test_glob_files_stdin_gdal_paths_and_duplicates(tmp_path):
    a, b, c = _touch(tmp_path, "s1.tif", "s2.tif", "x.tif")
    stdin = io.StringIO(f"# a list\n\n{c}\n  {a}  \n")
    args = [str(tmp_path / "s*.tif"), "-", a, "/vsizip/archive.zip/scene.tif"]
    assert expand_inputs(args, stdin) == [a, b, c, "/vsizip/archive.zip/scene.tif"]


def test_missing_inputs_are_named(tmp_path):
    (good,) = _touch(tmp_path, "ok.tif")
    missing = str(tmp_path / "missing.tif")
    pattern = str(tmp_path / "nothing*.tif")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"missing\.tif: no such file"):
        expand_inputs([good, missing])
    paths, problems = expand_inputs_lenient([missing, good, pattern, str(empty)])
    assert paths == [good]
    assert [arg for arg, _ in problems] == [missing, pattern, str(empty)]
    assert "pattern matches no file" in problems[1][1]
    with pytest.raises(InputError, match="standard input"):
        expand_inputs(["-"])


def test_single_input_to_file_and_format(tmp_path):
    (a,) = _touch(tmp_path, "in/a.tif")
    assert plan_outputs([a], tmp_path / "map.gpkg") == [(a, tmp_path / "map.gpkg")]
    assert output_format("x.TIFF") == "tif"
    with pytest.raises(OutputError, match="extension"):
        output_format("x.png")
    with pytest.raises(OutputError, match="does not match"):
        plan_outputs([a], tmp_path / "map.tif", "gpkg")


def test_several_inputs_need_folder_which_is_created(tmp_path):
    a, b = _touch(tmp_path, "in/a.tif", "in/b.vrt")
    with pytest.raises(OutputError, match="need an output folder"):
        plan_outputs([a, b], tmp_path / "map.tif")
    out = tmp_path / "out" / "deeper"
    pairs = plan_outputs([a, b, "/vsicurl/https://host/c.tif?sig=1"], out, "gpkg", suffix=".emb")
    assert out.is_dir()
    assert [p.name for _, p in pairs] == ["a.emb.gpkg", "b.emb.gpkg", "c.emb.gpkg"]


def test_a_name_template_separates_inputs_that_share_a_file_name(tmp_path):
    a, b = _touch(tmp_path, "2024/x/scene.tif", "2025/y/scene.tif")
    with pytest.raises(InputError, match=r"--name-template '\{parent\}_\{stem\}'"):
        plan_outputs([a, b], tmp_path / "out")
    pairs = plan_outputs([a, b], tmp_path / "out", name_template="{parent}_{stem}")
    assert [p.name for _, p in pairs] == ["x_scene.tif", "y_scene.tif"]
    pairs = plan_outputs(
        [a, "/vsicurl/https://h/z/c.tif?s=1"], tmp_path / "o", name_template="{grandparent}-{stem}"
    )
    assert [p.name for _, p in pairs] == ["2024-scene.tif", "h-c.tif"]
    for bad in ("{parent}", "{stem}/{parent}", "{folder}_{stem}", ".{stem}"):
        with pytest.raises(UsageError, match="--name-template"):
            check_name_template(bad)


def test_same_stem_and_output_equal_input_are_refused(tmp_path):
    a, b = _touch(tmp_path, "x/scene.tif", "y/scene.tif")
    with pytest.raises(InputError, match=r"would both write scene\.tif"):
        plan_outputs([a, b], tmp_path / "out")
    with pytest.raises(OutputError, match="overwrite its input"):
        plan_outputs([a], a)
    with pytest.raises(OutputError, match="overwrite its input"):
        plan_outputs([a], tmp_path / "x")


def test_skip_existing_ignores_partials(tmp_path):
    final = tmp_path / "map.tif"
    staged = partial_path(final, ".staged", pid=4242)
    assert staged.parent == tmp_path
    assert staged.name == f".map.partial-4242-{host_key()}.staged.tif"
    staged.write_bytes(b"half")
    assert not should_skip_existing(final, overwrite=False)
    final.write_bytes(b"done")
    assert should_skip_existing(final, overwrite=False)
    assert not should_skip_existing(final, overwrite=True)


def test_stale_partials_only_lists_dead_writers(tmp_path):
    final = tmp_path / "map.tif"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    mine = partial_path(final)
    theirs = partial_path(final, pid=dead_pid)
    for p in (mine, theirs, tmp_path / ".other.partial-1.tif"):
        p.write_bytes(b"x")
    assert stale_partials(final) == [theirs]
    assert os.getpid() != dead_pid


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.parametrize("name", ["map[1].tif", "m*p?.tif"])
def test_stale_partials_of_names_with_glob_characters(tmp_path, name):
    final = tmp_path / name
    theirs = partial_path(final, ".staged", pid=_dead_pid())
    theirs.write_bytes(b"x")
    assert stale_partials(final) == [theirs]
    mine = partial_path(final)
    aux = mine.with_name(mine.name + ".aux.xml")
    for path in (mine, aux):
        path.write_bytes(b"x")
    remove_with_prefix(mine)
    assert not mine.exists() and not aux.exists() and theirs.exists()


def test_temporaries_of_another_host_follow_the_age_rule(tmp_path):
    final = tmp_path / "map.tif"
    other = tmp_path / f".map.partial-{os.getpid()}-0badc0de.tif"  # same pid, other host
    other.write_bytes(b"x")
    assert stale_partials(final) == []  # live, as far as this host can tell
    old = time.time() - STALE_AGE_S - 60
    os.utime(other, (old, old))
    assert stale_partials(final) == [other]


def test_output_lock_refuses_a_second_writer(tmp_path):
    final = tmp_path / "map.tif"
    with OutputLock(final) as lock:
        assert lock.path.exists()
        with pytest.raises(OutputError, match=r"another gfm run .* is writing this output"):
            OutputLock(final).acquire()
    assert not lock.path.exists()


def test_output_lock_of_another_host_is_respected_until_stale(tmp_path):
    final = tmp_path / "map.tif"
    lock = OutputLock(final)
    lock.path.write_text("1 0badc0de otherhost\n")
    with pytest.raises(OutputError, match="pid 1 on otherhost"):
        lock.acquire()
    old = time.time() - STALE_AGE_S - 60
    os.utime(lock.path, (old, old))
    with lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())


def test_output_lock_of_a_dead_local_run_is_taken_over(tmp_path):
    final = tmp_path / "map.tif"
    lock = OutputLock(final)
    lock.path.write_text(f"{_dead_pid()} {host_key()} here\n")
    with lock:
        assert lock.path.read_text().split()[0] == str(os.getpid())
    assert not lock.path.exists()


def test_a_fifo_is_refused_not_opened(tmp_path):
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        expand_inputs([str(fifo)])


def test_uncreatable_folder_and_folders_at_output_paths(tmp_path):
    (a,) = _touch(tmp_path, "in/u16.tif")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"a_file/sub: cannot create the output folder"):
        plan_outputs([a], blocker / "sub")
    if Path("/proc/self").is_dir():
        with pytest.raises(OutputError, match="/proc/x"):
            plan_outputs([a], "/proc/x")
    (tmp_path / "out" / "u16.tif").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"u16\.tif: is a folder"):
        plan_outputs([a], tmp_path / "out")
    with pytest.raises(OutputError, match=r"u16\.tif: is a folder"):
        should_skip_existing(tmp_path / "out" / "u16.tif", overwrite=True)


@pytest.mark.parametrize("name", ["map.png", "out.cog", "scene.JP2"])
def test_single_input_with_another_extension_is_refused(tmp_path, name):
    (a,) = _touch(tmp_path, "in/a.tif")
    with pytest.raises(OutputError, match=r"unsupported output extension \.\w+; use \.tif"):
        plan_outputs([a], tmp_path / name)
    assert not (tmp_path / name).exists()
    (b,) = _touch(tmp_path, "in/b.tif")
    assert plan_outputs([a, b], tmp_path / name)[0][1] == tmp_path / name / "a.tif"
    assert plan_outputs([a], tmp_path / "run-v1.5") == [(a, tmp_path / "run-v1.5" / "a.tif")]
    (tmp_path / "existing.d").mkdir()
    assert plan_outputs([a], tmp_path / "existing.d") == [(a, tmp_path / "existing.d" / "a.tif")]


def test_folders_and_globs_skip_gfms_own_outputs(tmp_path):
    _touch(tmp_path, "a.tif", "a.probs.tif", "a.emb.tif", "b.EMB.TIFF", "a.emb.gpkg", "c.tif")
    assert [Path(p).name for p in expand_inputs([str(tmp_path)])] == ["a.tif", "c.tif"]
    assert [Path(p).name for p in expand_inputs([str(tmp_path / "a*")])] == ["a.tif"]
    named = str(tmp_path / "a.emb.tif")
    assert expand_inputs([named]) == [named]
