"""One error hierarchy for gfm, each class with the exit code the CLI maps it to.

Library code raises these with a message that names the file (or key) at fault and says how to fix
it; the CLI prints that single line and exits with ``exit_code``. Every class also inherits a
builtin (``ValueError``, ``OSError``, ...) so that Python callers can catch what they expect.

Exit codes (documented in docs/cli.md):

====  ==========================================================
0     success
1     some inputs failed (batch run with ``--keep-going``) or an unexpected error
2     UsageError: command-line usage or out-of-range option value (click's own errors too)
3     InputError: missing/corrupt raster, wrong bands, no CRS, all nodata
4     ModelError: unknown model, corrupt checkpoint, contract mismatch in the weights
5     OutputError: output exists, unwritable, equal to the input
6     ValidationFailed: an output failed its own validation (e.g. not a valid COG)
7     ConfigError: bad TOML (syntax, unknown key, wrong type, missing key)
130   interrupted (Ctrl-C)
141   stdout closed by its reader (``gfm ... | head``), as a Unix tool killed by SIGPIPE
====  ==========================================================
"""

from __future__ import annotations


class GfmError(Exception):
    """Base of every error gfm reports to a user; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(GfmError, ValueError):
    """The call itself cannot run: no inputs at all, options that contradict each other, or an
    option value the command cannot take (out of range, refused by GDAL), found before any work
    starts. The CLI shows it as one ``gfm: error:`` line naming the command's ``--help``, the
    way it shows click's own usage errors (exit code 2)."""

    exit_code = 2


class InputError(GfmError, ValueError):
    """An input raster, label file or chip folder cannot be used as given."""

    exit_code = 3


class BandContractError(InputError):
    """The input's bands do not match what the model expects (count, names, order, wavelengths)."""


class SensorError(InputError):
    """An unknown sensor name, or band names that the sensor does not have."""


class ModelError(GfmError, ValueError):
    """An unknown model name, or a checkpoint that is corrupt, foreign or inconsistent."""

    exit_code = 4


class OutputError(GfmError, OSError):
    """An output cannot be written: it exists, its folder is unwritable, or it is the input."""

    exit_code = 5


class ValidationFailed(GfmError):
    """An output was written but failed its own validation (for example the COG check)."""

    exit_code = 6


class ConfigError(GfmError, ValueError):
    """A TOML configuration cannot be used: syntax, unknown key, wrong type or missing key."""

    exit_code = 7


EXIT_PARTIAL_FAILURE = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool its pipe reader closed


def first_line(exc: BaseException, empty: str | None = None) -> str:
    """The first line of an exception's message, GDAL's own words where rasterio wrapped them
    in a "See previous exception" error; ``empty`` (else the exception's type name) when the
    message is empty, as ``OSError()``'s is."""
    while exc.__cause__ is not None and "previous exception" in str(exc):
        exc = exc.__cause__
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if empty is None else empty


def unexpected_error(exc: BaseException, where: str = "") -> GfmError:
    """A failure gfm did not foresee (not a ``GfmError``) as one line: the exception's type and
    first line, naming ``where`` (an input) when known, pointing at ``--debug``."""
    text = first_line(exc, "")
    prefix = f"{where}: " if where else ""
    error = GfmError(
        f"{prefix}unexpected error ({type(exc).__name__}{': ' + text if text else ''}); "
        "rerun with --debug for the traceback and report it"
    )
    error.__cause__ = exc
    return error
