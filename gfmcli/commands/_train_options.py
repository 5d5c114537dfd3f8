"""Command-line options shared by ``gfm pretrain`` and ``gfm finetune``; each maps to a dotted
configuration key and overrides the TOML value (``--set KEY=VALUE`` reaches any key)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

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


def train_options(func):
    """Add the shared override options to a command."""

    @click.option(
        "-o", "--output-dir", type=click.Path(path_type=Path), help="Override output.dir."
    )
    @click.option("--steps", "length", type=int, help="Override train.steps / train.epochs.")
    @click.option("--batch-size", type=int, help="Override data.batch_size.")
    @click.option("--lr", type=float, help="Override optim.lr.")
    @click.option("--device", help="Override train.device (auto, cpu, cuda, cuda:N).")
    @click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
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
