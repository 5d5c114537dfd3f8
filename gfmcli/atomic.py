"""The one atomic write of a small file: a temporary file beside it, synced, then renamed.

Checkpoints (``model.checkpoint``) and run files (``train.run``: the effective configuration)
are written through :func:`atomic_write`, so a crash, a full disk or Ctrl-C leaves the previous
file (or none), never half of one. Large raster and vector outputs are staged the same way but
stream into their ``.partial-`` files block by block. Every temporary is named by
:func:`partial_path` (``.<stem>.partial-<pid>-<host><ext>``), so a later run removes the ones
a killed writer left (:func:`stale_partials`: at once on the same host, after
``STALE_AGE_S`` elsewhere) and never another host's live one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gfmcli.errors import OutputError

PARTIAL_MARK = ".partial-"
# A temporary or lock of a writer on another host (or in another pid namespace) cannot be
# judged by its pid; it counts as abandoned once it has not changed for this long.
STALE_AGE_S = 24 * 3600


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", what: str = ""
) -> Iterator[IO[Any]]:
    """Yield a handle to write ``path``'s new content into; on success it is synced and renamed
    over ``path``, on any failure it is removed and the error is an ``OutputError`` that names
    ``what`` and ``path``. The file is readable by others (0644), like any output."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    for stale in stale_partials(path):  # a write killed midway (kill -9): same host, or old
        stale.unlink(missing_ok=True)
    tmp = str(partial_path(path))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a full disk as Runtime
        raise OutputError(f"cannot write {label}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def partial_path(final: str | Path, tag: str = "", pid: int | None = None) -> Path:
    """The hidden temporary a writer stages ``final`` in.

    Its name is ``.<stem>.partial-<pid>-<host><tag><ext>``.

    It lives in the same folder so the final ``os.replace`` is an atomic rename on one file
    system; ``tag`` tells several temporaries of one output apart (``".staged"``). ``<host>``
    (:func:`host_key`) names the host and pid namespace, because a pid means nothing to a
    process on another host or in another container that shares the folder.
    """
    final = Path(final)
    pid = os.getpid() if pid is None else pid
    return final.with_name(f".{final.stem}{PARTIAL_MARK}{pid}-{host_key()}{tag}{final.suffix}")


@functools.lru_cache(maxsize=1)
def host_key() -> str:
    """Eight hex digits naming this host and pid namespace (hostname + ``/proc/self/ns/pid``):
    two writers with the same key can judge each other's liveness by pid, others cannot."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def is_stale(pid: int, host: str | None, mtime: float, now: float) -> bool:
    """A writer of this host and pid namespace is stale when its pid is gone; one elsewhere
    (or of unknown origin) only when its file is older than ``STALE_AGE_S``."""
    if host == host_key():
        return not _process_alive(pid)
    return now - mtime > STALE_AGE_S


def stale_partials(final: str | Path, *, folders: bool = False) -> list[Path]:
    """Temporaries of ``final`` left by writers that no longer run (safe to delete): files, or
    with ``folders`` staging folders (``gfm tile``'s chip folders) of this host and pid
    namespace only, judged by their pid.

    Listed by name prefix, not by a glob pattern, so output names with glob characters
    (``map[1].tif``) find their temporaries too.
    """
    final = Path(final)
    prefix = f".{final.stem}{PARTIAL_MARK}"
    now = time.time()
    stale = []
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return []
    for entry in entries:
        kind_ok = (entry.is_dir if folders else entry.is_file)(follow_symlinks=False)
        if not entry.name.startswith(prefix) or not kind_ok:
            continue
        owner = entry.name[len(prefix) :].split(".", 1)[0]
        pid_text, _, host = owner.partition("-")
        if not pid_text.isdigit() or (folders and host != host_key()):
            continue  # a folder's mtime does not move while files are written inside it
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if is_stale(int(pid_text), host or None, mtime, now):
            stale.append(Path(entry.path))
    return sorted(stale)


def remove_with_prefix(base: Path) -> None:
    """Delete ``base`` and every file beside it whose name starts with ``base``'s name (GDAL's
    ``.aux.xml``/``.ovr`` of a temporary), without treating the name as a glob pattern."""
    try:
        entries = list(os.scandir(base.parent))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(base.name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
