"""The one atomic write of a small file: a temporary file beside it, synced, then renamed.

Checkpoints (``model.checkpoint``) and run files (``train.run``: the effective configuration)
are written through :func:`atomic_write`, so a crash, a full disk or Ctrl-C leaves the previous
file (or none), never half of one. Large raster and vector outputs are staged the same way but
stream into their ``.partial-`` files block by block (``io.paths.partial_path``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gfmcli.errors import OutputError


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", what: str = ""
) -> Iterator[IO[Any]]:
    """Yield a handle to write ``path``'s new content into; on success it is synced and renamed
    over ``path``, on any failure it is removed and the error is an ``OutputError`` that names
    ``what`` and ``path``. The file is readable by others (0644), like any output."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600
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
