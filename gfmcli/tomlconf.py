"""TOML -> validated frozen dataclasses: parse, override, locate keys, write back.

A run is described by one TOML file that users keep in version control and rerun from cron or a
cluster, so every mistake in it must be reported before any work starts, as one line naming the
file, the dotted key and its line: unknown keys (with a "did you mean" suggestion), wrong types,
missing required keys and TOML syntax errors are all ``ConfigError`` (exit code 7).

This module knows no schema: callers pass a frozen dataclass (``gfmcli.train.config`` holds the
training schema, ``gfmcli.evaluate.classes`` reads class-mapping files with ``find_key_line``).
Command-line options override TOML values by dotted key (``{"optim.lr": 3e-4}``) *before*
validation, so an override is checked exactly like a TOML value. Relative paths are resolved
against the TOML file's folder and made absolute (so a config works from any working directory,
e.g. cron); paths given as overrides should be made absolute by the caller. Numbers are checked
against each key's ``range`` metadata (``train.config._range``) and must be finite, so ``lr = nan``
or ``log_every = 0`` is a ConfigError before any work, not a crash or an endless loop later.

``config_to_toml`` writes the effective configuration back as TOML; it is saved beside every
checkpoint so a run can be reproduced from its outputs alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gfmcli.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# --- loading -----------------------------------------------------------------------------------

ConfigT = typing.TypeVar("ConfigT")


def load_config(
    path: str | Path, schema: type[ConfigT], overrides: Mapping[str, Any] | None = None
) -> ConfigT:
    """Read ``path``, apply ``overrides`` (dotted keys) and validate against ``schema``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc})") from exc
    return parse_config(text, schema, source=str(path), base_dir=path.parent, overrides=overrides)


def parse_config(
    text: str,
    schema: type[ConfigT],
    *,
    source: str = "<config>",
    base_dir: str | Path = ".",
    overrides: Mapping[str, Any] | None = None,
) -> ConfigT:
    """Validate TOML ``text``; ``source`` names it in errors, ``base_dir`` anchors paths."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f":{match.group(1)}" if match else ""
        raise ConfigError(f"{source}{where}: TOML syntax error: {exc}") from None
    overridden: set[str] = set()
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value, source)
            overridden.add(key)
    ctx = _Context(source, text, Path(base_dir), overridden)
    return ctx.build(schema, raw, "")


def _set_dotted(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: cannot override {key!r}: {part!r} is not a table")
        node = child
    node[leaf] = value


@dataclass
class _Context:
    source: str
    text: str
    base_dir: Path
    overridden: set[str]

    def where(self, dotted: str) -> str:
        if dotted in self.overridden:
            return f"{self.source} (command-line override {dotted})"
        line = find_key_line(self.text, dotted)
        return f"{self.source}:{line}" if line else self.source

    def fail(self, dotted: str, message: str) -> typing.NoReturn:
        raise ConfigError(f"{self.where(dotted)}: {message}")

    def build(self, cls: type, raw: Any, prefix: str) -> Any:
        if not isinstance(raw, dict):
            self.fail(prefix, f"{prefix!r} must be a table, got {_kind(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in raw:
            if key not in fields:
                dotted = f"{prefix}.{key}" if prefix else key
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(fields)
                where = f"in [{prefix}]" if prefix else "at the top level"
                self.fail(dotted, f"unknown key {dotted!r} {where}{hint} (known: {known})")
        values = {}
        for name, fld in fields.items():
            dotted = f"{prefix}.{name}" if prefix else name
            if name not in raw:
                required = (
                    fld.default is dataclasses.MISSING
                    and fld.default_factory is dataclasses.MISSING
                )
                if required:
                    self.fail(dotted, f"missing required key {dotted!r}")
                continue
            value = self.convert(hints[name], raw[name], dotted)
            choices = fld.metadata.get("choices")
            if choices and value is not None and value not in choices:
                self.fail(dotted, f"{dotted} = {value!r} is not one of {', '.join(choices)}")
            if (
                fld.metadata.get("path")
                and value is not None
                and not self.names_weights(fld, value)
            ):
                value = self.resolve(value)
            self.check_numbers(dotted, value, fld.metadata.get("range"))
            values[name] = value
        try:
            return cls(**values)
        except ValueError as exc:
            self.fail(prefix, str(exc))

    def check_numbers(self, dotted: str, value: Any, bounds: tuple | None) -> None:
        """Every number in ``value`` (a scalar, array or table of them) is finite and within
        ``bounds`` (``_range``); ConfigError naming the key otherwise."""
        if isinstance(value, dict):
            for key, item in value.items():
                self.check_numbers(f"{dotted}.{key}", item, bounds)
            return
        if isinstance(value, tuple):
            for item in value:
                self.check_numbers(dotted, item, bounds)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            self.fail(dotted, f"{dotted} = {value!r} must be a finite number")
        if bounds is None:
            return
        low, high, low_open, high_open = bounds
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            self.fail(dotted, f"{dotted} = {value!r} is out of range: {_span(*bounds)}")

    def names_weights(self, fld: dataclasses.Field, value: Any) -> bool:
        """True when a model key holds the name of shipped weights (``landcover-tiny``), which
        stays a name: one word without ``.pt`` that is not a file beside the TOML."""
        if not fld.metadata.get("or_weights_name") or not isinstance(value, str):
            return False
        path = Path(value)
        return len(path.parts) == 1 and path.suffix != ".pt" and not (self.base_dir / path).exists()

    def resolve(self, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(value, tuple):
            return tuple(str(self.resolve(v)) for v in value)
        # Absolute and normalised, so one TOML named by a relative path, from another folder
        # or by a symlink gives the same paths (a --resume compares them with the saved run).
        return str((self.base_dir / Path(value).expanduser()).resolve())

    def convert(self, hint: Any, value: Any, dotted: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            return self.convert(inner[0], value, dotted)
        if dataclasses.is_dataclass(hint):
            return self.build(typing.cast(type, hint), value, dotted)
        if origin is tuple:
            if not isinstance(value, list):
                self.fail(dotted, f"{dotted} must be an array, got {_kind(value)}")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(
                    self.convert(args[0], v, f"{dotted}[{i}]") for i, v in enumerate(value)
                )
            if len(value) != len(args):
                self.fail(dotted, f"{dotted} must have {len(args)} elements, got {len(value)}")
            return tuple(
                self.convert(a, v, f"{dotted}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(dotted, f"{dotted} must be a table, got {_kind(value)}")
            return {str(k): self.convert(args[1], v, f"{dotted}.{k}") for k, v in value.items()}
        return self.scalar(hint, value, dotted)

    def scalar(self, hint: type, value: Any, dotted: str) -> Any:
        base = re.sub(r"\[\d+\]$", "", dotted)
        if hint is bool:
            if isinstance(value, bool):
                return value
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif hint is str:
            if isinstance(value, str):
                return value
        else:  # pragma: no cover - schema error, not user error
            raise TypeError(f"unsupported config type {hint!r}")
        self.fail(base, f"{dotted} must be {_TYPE_NAMES[hint]}, got {_kind(value)} {value!r}")


def _span(low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    """``_range`` bounds in words: "must be at least 1", "must be in [0, 1)"."""
    if high is None:
        return f"must be {'greater than' if low_open else 'at least'} {low}"
    if low is None:
        return f"must be {'less than' if high_open else 'at most'} {high}"
    return f"must be in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return {int: "an integer", float: "a number", str: "a string"}.get(type(value), "a value")


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


def find_key_line(text: str, dotted: str) -> int | None:
    """The 1-based line where ``dotted`` (e.g. ``optim.lr``) is set in TOML ``text``, if found.

    Understands ``[table]`` headers, ``[[array]]`` headers (``classes[1].name`` is looked up in
    the second ``[[classes]]``), dotted keys (``optim.lr = 1``) and inline tables by their key.
    Falls back to the table's header line, then None. It only locates keys for messages;
    ``tomllib`` does the parsing.
    """
    parts, wanted_index = _split_dotted(dotted)
    table: list[str] = []
    index: int | None = None
    counts: dict[str, int] = {}
    header_line: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = [_unquote(p) for p in header.group(1).split(".")]
            index = None
            if line.strip().startswith("[["):
                key = ".".join(table)
                counts[key] = counts.get(key, 0) + 1
                index = counts[key] - 1
            matched = table == parts and _index_ok(table, index, wanted_index)
            if matched and header_line is None:
                header_line = number
            continue
        key_match = _KEY.match(line)
        if key_match and _index_ok(table, index, wanted_index):
            full = table + [_unquote(p) for p in key_match.group(1).split(".")]
            if full == parts or (len(full) < len(parts) and parts[: len(full)] == full):
                return number
    if header_line is not None:
        return header_line
    if len(parts) > 1:
        return find_key_line(text, ".".join(parts[:-1]))
    return None


def _split_dotted(dotted: str) -> tuple[list[str], dict[int, int]]:
    """``classes[1].name`` -> (["classes", "name"], {0: 1}): names and array indices by depth."""
    parts, indices = [], {}
    for depth, part in enumerate(p for p in dotted.split(".") if p):
        match = re.fullmatch(r"(.*?)\[(\d+)\]", part)
        if match:
            indices[depth] = int(match.group(2))
            part = match.group(1)
        parts.append(part)
    return parts, indices


def _index_ok(table: list[str], index: int | None, wanted: dict[int, int]) -> bool:
    depth = len(table) - 1
    return index is None or depth not in wanted or wanted[depth] == index


def _unquote(part: str) -> str:
    return part.strip().strip("\"'")


# --- writing -----------------------------------------------------------------------------------


def config_to_toml(cfg: Any) -> str:
    """The configuration ``cfg`` (a schema dataclass) as TOML text that ``load_config`` accepts.

    Every key is written, defaults included, so the file records the *effective* configuration;
    ``None`` values are left out (TOML has no null), which reads back as the same default.
    """
    lines: list[str] = []
    _write_table(cfg, [], lines)
    return "\n".join(lines).strip() + "\n"


def _write_table(obj: Any, prefix: list[str], lines: list[str]) -> None:
    scalars, tables, arrays = [], [], []
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            tables.append((fld.name, value))
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            arrays.append((fld.name, value))
        else:
            scalars.append((fld.name, value))
    for name, value in scalars:
        lines.append(f"{name} = {_toml_value(value)}")
    for name, value in tables:
        lines.append("")
        lines.append(f"[{'.'.join([*prefix, name])}]")
        _write_table(value, [*prefix, name], lines)
    for name, items in arrays:
        for item in items:
            lines.append("")
            lines.append(f"[[{'.'.join([*prefix, name])}]]")
            _write_table(item, [*prefix, name], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else _special(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + (f" {items} " if items else "") + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _special(value: float) -> str:
    return "nan" if value != value else ("inf" if value > 0 else "-inf")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else _toml_value(key)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of ``cfg`` (for checkpoint provenance and compatibility checks)."""
    return dataclasses.asdict(cfg)
