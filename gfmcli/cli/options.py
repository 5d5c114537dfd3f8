"""Shared click options and parameter types, defined once so every command speaks alike.

Option names match the fields of the library's option dataclasses (``--window`` ->
``MapOptions.window``), so the CLI, TOML files and the Python API share one vocabulary. The
mapping stack (``mapping_options``) serves ``predict`` and ``embed``; the training stack
(``config_option``, ``train_options``) serves ``pretrain`` and ``finetune``, where each option
maps to a dotted configuration key and overrides the TOML value (``--set KEY=VALUE`` reaches
any key).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gfmcli.engine.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    MAX_DEFAULT_BATCH,
)
from gfmcli.runtime.devices import PRECISIONS


class KeyValueType(click.ParamType):
    """``KEY=VAL`` (GDAL creation options and the like)."""

    name = "KEY=VAL"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VAL", param, ctx)
        return key.strip(), val.strip()


class BandListType(click.ParamType):
    """A comma-separated list of band names: ``B02,B03,B04,B08``."""

    name = "BANDS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(part.strip() for part in str(value).split(",") if part.strip())
        if not names:
            self.fail("give at least one band name, e.g. B02,B03,B04", param, ctx)
        return names


class NumberListType(click.ParamType):
    """One number, or a comma list of numbers (one per file band): ``1e-4`` or ``1,1,2e-4``."""

    name = "X[,X...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            values = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or a comma list of numbers", param, ctx)
        if not all(math.isfinite(v) for v in values):
            self.fail(f"{value!r}: values must be finite", param, ctx)
        return values


inputs_arg = click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
output_opt = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=True, file_okay=True),
    help="Output file (one input) or folder (several inputs; created if missing).",
)
model_opt = click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Checkpoint path, or the name of shipped weights in weights/.",
)
sensor_opt = click.option(
    "--sensor",
    default=None,
    help="The input's sensor and product (see `gfm sensors`), e.g. landsat8, landsat7-l1, "
    "sentinel2-l2a-pre2022; needed when the file's tags and band names do not say it.",
)
scale_opt = click.option(
    "--scale",
    type=NumberListType(),
    default=None,
    help="physical = DN * scale + offset: one value for all bands or one per file band "
    "(comma list, file order); overrides the file and the sensor. Alone it means --offset 0. "
    "E.g. --scale 1 for files already in reflectance.",
)
offset_opt = click.option(
    "--offset",
    type=NumberListType(),
    default=None,
    help="The offset of physical = DN * scale + offset (one value or one per file band).",
)
gsd_opt = click.option(
    "--gsd",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="METRES",
    help="Pixel size in metres; needed for files without georeferencing (else the sensor's "
    "nominal size is assumed, with a warning) and overrides the file's.",
)
bands_opt = click.option(
    "--bands",
    type=BandListType(),
    default=None,
    help="The input's bands in file order by the sensor's band names, e.g. B02,B03,B04,B08.",
)
order_check_opt = click.option(
    "--order-check/--no-order-check",
    default=True,
    show_default=True,
    help="Refuse inputs whose band-to-band correlations say the band order is wrong "
    "(reversed or shuffled stacks); --no-order-check when you know the order is right.",
)


def count_opt(
    flag: str,
    default: int | None,
    help: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    **kwargs: Any,
) -> Callable[[Any], Any]:
    """An integer option of at least ``minimum`` (sizes, counts, seeds) whose ``--help`` shows
    its default and range, the same way for every command."""
    return click.option(
        flag,
        type=click.IntRange(min=minimum, max=maximum),
        default=default,
        show_default=default is not None,
        help=help,
        **kwargs,
    )


def fraction_opt(flag: str, default: float, help: str) -> Callable[[Any], Any]:
    """A fraction in [0, 1] with its default shown in ``--help``."""
    return click.option(
        flag, type=click.FloatRange(0, 1), default=default, show_default=True, help=help
    )


# Larger windows only cost memory (the blend weights alone are window^2 floats per class);
# 8192 px is 16x the default and well past where bigger windows stop helping.
MAX_WINDOW = 8192
window_opt = count_opt(
    "--window",
    None,
    "Window size in pixels (a multiple of the model's patch size) for every raster of the run "
    "[default: the size of the chips the model was trained on, larger for coarse rasters if "
    f"its contract says so (gfm info MODEL), else {DEFAULT_WINDOW}].",
    maximum=MAX_WINDOW,
)
overlap_opt = count_opt(
    "--overlap",
    None,
    "Overlap between neighbouring windows in pixels; blended with a cosine ramp [default: a "
    f"quarter of the window, at most {DEFAULT_OVERLAP}].",
    minimum=0,
)
batch_size_opt = count_opt(
    "--batch-size",
    None,
    "Windows per model call (per device) [default: as many as two "
    f"{DEFAULT_WINDOW}-px windows hold, {DEFAULT_BATCH_SIZE} to {MAX_DEFAULT_BATCH}].",
)
device_opt = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto, cpu, cuda (every visible GPU), cuda:N or cuda:0,1.",
)
precision_opt = click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="auto = bf16/fp16 autocast on CUDA; on the CPU bf16 where it has AMX/AVX512-BF16, "
    "else fp32.",
)
creation_opt = click.option(
    "--co",
    "creation_options",
    type=KeyValueType(),
    multiple=True,
    help="GDAL creation option for the COG driver, e.g. --co COMPRESS=ZSTD (repeatable).",
)
name_template_opt = click.option(
    "--name-template",
    default="{stem}",
    show_default=True,
    metavar="TEMPLATE",
    help="Output names in folder mode: {stem} (the input's name), {parent} and {grandparent} "
    "(its folders), e.g. '{parent}_{stem}' for inputs that share a file name.",
)
overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Redo outputs that exist (default: skip them, resume)."
)
keep_going_opt = click.option(
    "--keep-going",
    is_flag=True,
    help="Go on past a failing input; the exit code is 1 if any failed.",
)
dry_run_opt = click.option(
    "--dry-run",
    is_flag=True,
    help="Check inputs and print outputs, windows and estimated peak memory; run nothing.",
)
quiet_opt = click.option(
    "-q", "--quiet", is_flag=True, help="Errors only: no progress bars, warnings or summary."
)
json_opt = click.option(
    "--json",
    "json_lines",
    is_flag=True,
    help="One JSON object per finished input on stdout (path, outputs, status, seconds, "
    "pixels, warnings) instead of plain paths.",
)


def mapping_options(command):
    """The options ``predict`` and ``embed`` share, in help order (inputs to run control)."""
    for decorator in reversed(
        (
            inputs_arg,
            output_opt,
            model_opt,
            sensor_opt,
            bands_opt,
            scale_opt,
            offset_opt,
            gsd_opt,
            order_check_opt,
            window_opt,
            overlap_opt,
            batch_size_opt,
            device_opt,
            precision_opt,
            creation_opt,
            name_template_opt,
            overwrite_opt,
            keep_going_opt,
            dry_run_opt,
            quiet_opt,
            json_opt,
        )
    ):
        command = decorator(command)
    return command


# --- pretrain / finetune: overrides of the TOML configuration -----------------------------

# option name -> dotted config key
_OPTIONS = {
    "output_dir": "output.dir",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "device": "train.device",
    "precision": "train.precision",
    "seed": "train.seed",
}


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="TOML configuration (see docs/config.md).",
)


def _epochs_not_steps(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        raise click.UsageError(
            "gfm finetune trains in epochs, not steps: pass --epochs N (train.epochs)", ctx
        )


def train_options(length: str):
    """Add the shared override options to a command; ``length`` names its run length option:
    ``steps`` (pretrain: train.steps) or ``epochs`` (finetune: train.epochs, where a hidden
    ``--steps`` says so instead of counting epochs as steps)."""

    def decorate(func):
        wrapped = _shared_train_options(func)
        unit = click.option(f"--{length}", "length", type=int, help=f"Override train.{length}.")(
            wrapped
        )
        if length == "epochs":
            unit = click.option(
                "--steps", type=int, hidden=True, expose_value=False, callback=_epochs_not_steps
            )(unit)
        return unit

    return decorate


def _shared_train_options(func):
    @click.option(
        "-o", "--output-dir", type=click.Path(path_type=Path), help="Override output.dir."
    )
    @click.option("--batch-size", type=int, help="Override data.batch_size.")
    @click.option("--lr", type=float, help="Override optim.lr.")
    @click.option("--device", help="Override train.device (auto, cpu, cuda, cuda:N).")
    @click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        help="Override train.precision.",
    )
    @click.option("--seed", type=int, help="Override train.seed.")
    @click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override any key, e.g. --set optim.warmup_ratio=0.1 (TOML value).",
    )
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def collect_overrides(options: dict[str, Any], steps_key: str) -> dict[str, Any]:
    """Dotted-key overrides from the parsed options (None = not given)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    from gfmcli.errors import ConfigError

    overrides: dict[str, Any] = {}
    for name, key in _OPTIONS.items():
        value = options.get(name)
        if value is not None:
            overrides[key] = str(Path(value).resolve()) if name == "output_dir" else value
    if options.get("length") is not None:
        overrides[steps_key] = options["length"]
    for setting in options.get("settings") or ():
        key, sep, text = setting.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {setting!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word is a string
        overrides[key.strip()] = value
    return overrides


def command_line(ctx: click.Context) -> str:
    """The command as the user typed it (for provenance): ``sys.argv`` when run as ``gfm``,
    else (called from Python, e.g. tests) the command path and its parsed options."""
    import shlex
    import sys

    if ctx.find_root().info_name == "gfm" and len(sys.argv) > 1:
        return shlex.join(["gfm", *sys.argv[1:]])
    parts = [ctx.command_path]
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params if p.opts}
    for name, value in ctx.params.items():
        if value in (None, False, ()):
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            parts.append(flag if item is True else f"{flag} {shlex.quote(str(item))}")
    return " ".join(parts)
