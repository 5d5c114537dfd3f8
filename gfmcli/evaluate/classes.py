"""The class correspondence of ``gfm evaluate --classes``: reference class -> map class.

Reference values listed in ``[classes]`` (many-to-one allowed) are scored as the map class
they name; ``[merge]`` scores several map classes as one. Errors name the file and line
(``ConfigError``, exit code 7).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gfmcli.errors import ConfigError
from gfmcli.tomlconf import find_key_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: A reference class: an id (int) or a class name (str).
RefKey = int | str


@dataclass(frozen=True)
class ClassMapping:
    """A ``--classes`` TOML file: reference class -> map class, and map classes merged.

    ``classes`` keys are reference ids (int) or reference class names (str); values are map
    class names (str) or ids (int). ``merge`` names a scored class made of several map classes.
    ``source`` and ``text`` locate keys for error messages (``file:line``).
    """

    classes: dict[RefKey, RefKey]
    merge: dict[str, tuple[RefKey, ...]] = field(default_factory=dict)
    source: str = "<classes>"
    text: str = ""

    def where(self, dotted: str) -> str:
        line = find_key_line(self.text, dotted) if self.text else None
        return f"{self.source}:{line}" if line else self.source


def load_class_mapping(path: str | Path) -> ClassMapping:
    """Read and validate a ``--classes`` file (ConfigError, exit code 7, on any mistake)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: class mapping file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the class mapping ({exc})") from exc
    return parse_class_mapping(text, source=str(path))


def parse_class_mapping(text: str, source: str = "<classes>") -> ClassMapping:
    """Validate mapping TOML ``text``; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f":{match.group(1)}" if match else ""
        raise ConfigError(f"{source}{where}: TOML syntax error: {exc}") from None
    partial = ClassMapping({}, {}, source, text)
    unknown = sorted(set(raw) - {"classes", "merge"})
    if unknown:
        raise ConfigError(
            f"{partial.where(unknown[0])}: unknown key {unknown[0]!r} at the top level "
            "(known: classes, merge)"
        )
    if "classes" not in raw:
        raise ConfigError(f"{source}: missing table [classes] (reference class = map class)")
    for table in ("classes", "merge"):
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"{partial.where(table)}: {table!r} must be a table")
    classes: dict[RefKey, RefKey] = {}
    for key, value in raw["classes"].items():
        if isinstance(value, dict):
            raise ConfigError(
                f"{partial.where(f'classes.{key}')}: classes.{key} must be a map class name or "
                "id, got a table (quote reference names that contain dots)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(
                f"{partial.where(f'classes.{key}')}: classes.{key} must be a map class name "
                f"(string) or id (integer), got {value!r}"
            )
        classes[_ref_key(key)] = value
    merge: dict[str, tuple[RefKey, ...]] = {}
    for name, members in raw.get("merge", {}).items():
        ok = isinstance(members, list) and bool(members)
        ok = ok and all(isinstance(m, (int, str)) and not isinstance(m, bool) for m in members)
        if not ok:
            raise ConfigError(
                f"{partial.where(f'merge.{name}')}: merge.{name} must be a non-empty array of "
                f'map class names or ids, e.g. "{name}" = ["cloud", "cloud shadow"]'
            )
        merge[name] = tuple(members)
    return ClassMapping(classes, merge, source, text)


def _ref_key(key: str) -> RefKey:
    """TOML keys are strings; those that are integers mean reference ids."""
    stripped = key.strip()
    try:
        return int(stripped)
    except ValueError:
        return key
