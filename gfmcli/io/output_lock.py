"""One run's exclusive claim on one output file, so concurrent runs never write it twice.

Held from the resume check to the final rename (``engine/jobs.py``); works across hosts that
share the output folder. :mod:`gfmcli.io.paths` decides which outputs a run writes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from gfmcli.atomic import host_key, is_stale
from gfmcli.errors import OutputError


class OutputLock:
    """An exclusive claim on one output, held from the resume check to the final rename.

    The lock is a hidden file ``.<name>.lock`` beside the output, created with ``O_EXCL`` (atomic
    on local and NFS file systems) and holding the owner's pid, :func:`host_key` and hostname.
    A second run on the same output gets an OutputError instead of writing it too; a lock left
    by a killed run is taken over when its owner is provably gone (same host key, dead pid) or,
    for an owner elsewhere, when it is older than ``STALE_AGE_S``.
    """

    def __init__(self, final: str | Path) -> None:
        final = Path(final)
        self.final = final
        self.path = final.with_name(f".{final.name}.lock")
        self._text = f"{os.getpid()} {host_key()} {socket.gethostname()}\n"
        self._held = False

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._take_over_stale():
                    continue
                raise OutputError(self._busy_message()) from None
            except OSError as exc:
                raise OutputError(
                    f"{self.final}: cannot create the lock {self.path.name} "
                    f"({exc.strerror or exc}); check the folder's permissions or choose another -o"
                ) from exc
            with os.fdopen(fd, "w") as handle:
                handle.write(self._text)
            self._held = True
            return
        raise OutputError(self._busy_message())

    def _owner(self) -> tuple[str, float] | None:
        try:
            return self.path.read_text(), self.path.stat().st_mtime
        except (OSError, UnicodeDecodeError):
            return None

    def _take_over_stale(self) -> bool:
        """Remove a stale lock; True when the caller may try to create its own again."""
        owner = self._owner()
        if owner is None:
            return True  # removed meanwhile
        text, mtime = owner
        parts = text.split()
        pid = int(parts[0]) if parts and parts[0].isdigit() else -1
        host = parts[1] if len(parts) > 1 else None
        if not is_stale(pid, host, mtime, time.time()):
            return False
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}-{host_key()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            taken = aside.read_text()
        except OSError:
            taken = text
        if taken != text:  # another run replaced the stale lock meanwhile: give it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def _busy_message(self) -> str:
        owner = self._owner()
        parts = owner[0].split() if owner else []
        who = f"pid {parts[0]} on {parts[2]}" if len(parts) > 2 else "another process"
        return (
            f"{self.final}: another gfm run ({who}) is writing this output; wait for it to "
            f"finish and rerun (the output is then skipped), or delete {self.path} if that "
            "run is gone"
        )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        owner = self._owner()
        if owner is not None and owner[0] == self._text:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
