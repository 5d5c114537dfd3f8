"""Per-input reporting of ``predict``, ``embed`` and ``tile``, in one place.

Every finished input (written, skipped or failed) goes through :meth:`Reporter.finished`; with
``--json`` that prints one JSON object per line on stdout as soon as the input is final, so
scripts and cron wrappers read results without parsing text; plain output is its output paths
(written or skipped), one per line, at the same moment. The closing summary on stderr is
printed by :meth:`Reporter.close`.

JSON records (docs/cli.md, "Machine-readable output"): ``command``, ``path`` (the input),
``outputs`` (list of paths), ``status`` (``ok``, ``skipped`` or ``failed``), ``seconds``,
``pixels``, ``windows``, ``warnings`` (list of text) and ``message`` (why it was skipped or
failed; empty when ok), plus ``exit_code`` for failures. Keys are stable; new keys may be added.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

# FileResult.status -> the status scripts see (``written`` reads oddly for a skipped-free run).
_STATUS = {"written": "ok", "skipped": "skipped", "failed": "failed"}


def result_record(command: str, result: Any) -> dict[str, Any]:
    """The JSON record of one ``FileResult`` (``gfmcli.engine.runner``)."""
    record: dict[str, Any] = {
        "command": command,
        "path": str(result.input),
        "outputs": [str(p) for p in result.outputs],
        "status": _STATUS.get(result.status, result.status),
        "seconds": round(float(result.seconds), 3),
        "pixels": int(result.pixels),
        "windows": int(result.windows),
        "warnings": list(result.warnings),
        "message": result.message,
    }
    if result.status == "failed":
        record["exit_code"] = int(result.exit_code)
    return record


def problem_record(command: str, argument: str, message: str, exit_code: int) -> dict[str, Any]:
    """The record of an input argument that named no raster (missing file, empty folder)."""
    return {
        "command": command,
        "path": argument,
        "outputs": [],
        "status": "failed",
        "seconds": 0.0,
        "pixels": 0,
        "windows": 0,
        "warnings": [],
        "message": message,
        "exit_code": exit_code,
    }


def plan_record(command: str, plan: Any) -> dict[str, Any]:
    """The ``--dry-run --json`` record of a ``FilePlan`` (status ``planned``) or of an input that
    would be skipped or fail (a ``FileResult``)."""
    if not hasattr(plan, "peak_memory_bytes"):
        return result_record(command, plan)
    return {
        "command": command,
        "path": str(plan.input),
        "outputs": [str(plan.output)],
        "status": "planned",
        "width": plan.width,
        "height": plan.height,
        "bands": list(plan.bands),
        "gsd_m": plan.gsd_m,
        "window": plan.window,
        "overlap": plan.overlap,
        "windows": plan.windows,
        "peak_memory_bytes": plan.peak_memory_bytes,
        "warnings": list(plan.warnings),
        "message": "",
    }


def counted(count: int, noun: str) -> str:
    """``1 window``, ``4 windows``: summary lines read as English at every count."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def echo_json(record: dict[str, Any]) -> None:
    """One compact JSON object on one stdout line, flushed (a pipe reader sees it at once)."""
    click.echo(json.dumps(record, sort_keys=False, separators=(",", ":")))
    sys.stdout.flush()


class Reporter:
    """Reports each input of one run: JSON lines as they finish, or paths and a summary."""

    def __init__(self, command: str, *, json_lines: bool, quiet: bool) -> None:
        self.command = command
        self.json_lines = json_lines
        self.quiet = quiet

    def problem(self, argument: str, message: str, exit_code: int) -> None:
        """An argument that gave no input (reported even when the run stops at it)."""
        if self.json_lines:
            echo_json(problem_record(self.command, argument, message, exit_code))

    def finished(self, result: Any) -> None:
        """One input is final: its JSON line, or (plain mode) its output paths, written or
        skipped, at once and flushed, so ``gfm predict ... | xargs`` gets every finished map
        even when a later input fails, the run is interrupted, or everything was skipped."""
        if self.json_lines:
            echo_json(result_record(self.command, result))
        elif result.status in ("written", "skipped"):
            for path in result.outputs:
                click.echo(str(Path(path)))
            sys.stdout.flush()

    def close(self, results: Sequence[Any], problems: int, seconds: float) -> None:
        """The one-line summary on stderr (not with -q)."""
        written = [r for r in results if r.status == "written"]
        skipped = sum(r.status == "skipped" for r in results)
        failed = problems + sum(r.status == "failed" for r in results)
        pixels = sum(r.pixels for r in written)
        rate = f", {_rate(pixels / seconds)}" if written and seconds > 0 else ""
        if not self.quiet:
            click.echo(
                f"gfm {self.command}: {len(written)} written, {skipped} skipped (exist), "
                f"{failed} failed in {seconds:.1f} s{rate}",
                err=True,
            )


def _rate(pixels_per_second: float) -> str:
    """Mpx/s for rasters of real size, kpx/s for a batch of small tiles (not ``0.00 Mpx/s``)."""
    if pixels_per_second >= 1e5:
        return f"{pixels_per_second / 1e6:.2f} Mpx/s"
    return f"{pixels_per_second / 1e3:.3g} kpx/s"
