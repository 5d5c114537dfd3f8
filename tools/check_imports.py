"""Check gfmcli's import graph: no circles, the layering, and no library module importing click.

Every import counts, at module level or inside a function (a lazy import is still a
dependency a reader has to follow), except those under ``if TYPE_CHECKING:``. A cycle is
reported between modules; a package's ``__init__`` counts as a module of its own.

Run ``python tools/check_imports.py`` (exit 1 on a problem); ``--stats`` also prints the
module count, the largest modules and the arrows between top-level parts.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gfmcli"
#: The only package allowed to import click: the command line.
CLICK_ALLOWED = ("gfmcli.cli",)
#: The layers, bottom first, by top-level part of gfmcli (a package or a module; "" is
#: gfmcli/__init__). A module may import its own part and the parts of lower layers, never a
#: sibling in its own layer: engine, train and evaluate know nothing of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "errors"),
    ("sensors", "scaling", "contract", "tomlconf", "scores", "atomic"),
    ("spectral",),
    ("io", "model", "runtime", "simulate"),
    ("engine", "train", "evaluate"),
    ("api",),
    ("cli",),
    ("",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The gfmcli modules (and ``click``) that the file at ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                # ``from pkg import module`` depends on the module, not on pkg/__init__
                sub = f"{mod}.{alias.name}"
                found.add(sub if sub in modules else mod)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    result = set()
    for mod in found:
        if mod == "click" or mod.startswith("click."):
            result.add("click")
        elif mod in modules and mod != name:
            result.add(mod)
        elif mod.startswith(PACKAGE + "."):
            # an import of a name from a package __init__ resolves to the package
            while mod and mod not in modules:
                mod = mod.rpartition(".")[0]
            if mod and mod != name:
                result.add(mod)
    return result


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def part(module: str) -> str:
    """The top-level part of gfmcli a module belongs to (``gfmcli.io.reader`` -> ``io``)."""
    return module.split(".")[1] if "." in module else ""


def layer(module: str) -> int:
    name = part(module)
    for level, parts in enumerate(LAYERS):
        if name in parts:
            return level
    raise SystemExit(f"{module}: part {name!r} is in no layer of tools/check_imports.py")


def layering(edges: dict[str, set[str]]) -> list[str]:
    """Imports of a sibling part or of a higher layer."""
    out = []
    for name, deps in sorted(edges.items()):
        for dep in sorted(deps - {"click"}):
            if part(dep) != part(name) and layer(dep) >= layer(name):
                out.append(f"{name} imports {dep}: {part(dep) or 'gfmcli'} is not below it")
    return out


def problems(edges: dict[str, set[str]]) -> list[str]:
    out = [f"import circle: {' <-> '.join(c)}" for c in cycles(edges)]
    out += layering(edges)
    for name, deps in sorted(edges.items()):
        if "click" in deps and not any(
            name == a or name.startswith(a + ".") for a in CLICK_ALLOWED
        ):
            out.append(f"{name} imports click (only {', '.join(CLICK_ALLOWED)} may)")
    return out


def stats(edges: dict[str, set[str]]) -> None:
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in files.items()), reverse=True)
    print(f"modules: {len(files)}; circles: {len(cycles(edges))}")
    print("largest:", ", ".join(f"{n} {s}" for s, n in sizes[:6]))

    arrows = {(part(a), part(b)) for a, deps in edges.items() for b in deps if b != "click"}
    arrows = {(a, b) for a, b in arrows if a != b}
    print(f"arrows between top-level parts: {len(arrows)}")


def main(argv: list[str]) -> int:
    edges = graph()
    if "--stats" in argv:
        stats(edges)
    found = problems(edges)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
