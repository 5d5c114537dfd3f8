"""Which files a run reads, which files it writes, and which of those already exist.

``gfm predict INPUT... -o OUTPUT`` accepts files, folders, glob patterns, ``-`` (paths read from a
text stream, one per line) and any path GDAL opens (``/vsizip/``, ``/vsicurl/``, ``s3://`` ...).
This module turns those arguments into a list of input paths and pairs each with its output path,
without opening any raster: it is pure path logic, so a dry run can show the plan instantly.

Output naming is deterministic so reruns are idempotent: the output of ``a/scene.tif`` in folder
mode is ``DIR/scene.tif`` (or ``.gpkg``). Two inputs with the same stem would collide; that is an
InputError naming both (rename one or run them separately), never a silent ``scene_1.tif``.

Writers stage their work in hidden temporary files beside the final path,
``.<stem>.partial-<pid>-<host><ext>`` (see :func:`gfmcli.atomic.partial_path`), and rename
them when complete.
Temporaries of interrupted runs never count as "existing" and are never picked up as inputs.
While a run writes an output it holds that output's lock (:mod:`gfmcli.io.output_lock`), so two
runs (on one host or on several sharing the folder) never write, or clean up after, the same
output at once.
"""

from __future__ import annotations

import contextlib
import glob
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from gfmcli.atomic import PARTIAL_MARK
from gfmcli.errors import InputError, OutputError, UsageError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")
OUTPUT_FORMATS = {".tif": "tif", ".tiff": "tif", ".gpkg": "gpkg", ".parquet": "parquet"}
#: GDAL virtual file systems (``/vsis3/...``, ``/vsizip/...``): paths no local check applies to.
GDAL_FILE_SYSTEMS = ("/vsi", "vsi")
_GLOB_CHARS = set("*?[")
# A suffix that reads as a file extension (".png", ".cog", ".jp2"), not a folder name like "v1.5".
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}")


def is_gdal_path(arg: str) -> bool:
    """True for paths only GDAL can resolve: virtual file systems and URLs."""
    return arg.startswith(GDAL_FILE_SYSTEMS) or "://" in arg


# Names gfm itself writes beside its maps: probabilities and embeddings. A rerun over a folder
# that also holds outputs (``gfm predict data -o data``) must not map those again.
_OWN_OUTPUT_ENDINGS = (
    ".probs.tif",
    ".probs.tiff",
    ".emb.tif",
    ".emb.tiff",
    ".emb.gpkg",
    ".emb.parquet",
)


def _is_hidden_or_partial(path: Path) -> bool:
    return path.name.startswith(".") or PARTIAL_MARK in path.name


def _is_skipped(path: Path) -> bool:
    """Hidden files, writer temporaries and gfm's own probability/embedding outputs."""
    return _is_hidden_or_partial(path) or path.name.lower().endswith(_OWN_OUTPUT_ENDINGS)


def _folder_rasters(folder: Path, recursive: bool) -> list[str]:
    """A folder's rasters and STAC item files; rasters that an item names as its assets are
    left out (the item maps them together)."""
    from gfmcli.io.stac import STAC_SUFFIXES, asset_files, looks_like_stac

    pattern = "**/*" if recursive else "*"
    files = [p for p in folder.glob(pattern) if p.is_file() and not _is_skipped(p)]
    items = [p for p in files if p.suffix.lower() in STAC_SUFFIXES and looks_like_stac(p)]
    assets = set().union(*(asset_files(p) for p in items)) if items else set()
    found = [
        p
        for p in files
        if p.suffix.lower() in RASTER_SUFFIXES and (not assets or p.resolve() not in assets)
    ]
    return [str(p) for p in sorted(found + items)]


def _read_list(stream: TextIO | None) -> list[str]:
    if stream is None:
        raise InputError("'-' reads input paths from standard input, but none was given")
    lines = (line.strip() for line in stream)
    return [line for line in lines if line and not line.startswith("#")]


def expand_inputs_lenient(
    args: Sequence[str], stdin: TextIO | None = None, *, recursive: bool = False
) -> tuple[list[str], list[tuple[str, str]]]:
    """Like :func:`expand_inputs` but returns ``(paths, problems)`` instead of raising.

    ``problems`` holds ``(argument, message)`` for every argument that gave no input, so a
    ``--keep-going`` run can report each one and still process the rest.
    """
    paths: list[str] = []
    problems: list[tuple[str, str]] = []
    args = list(args)
    if "-" in args:
        try:
            listed = _read_list(stdin)
        except InputError as exc:
            listed, problems = [], [("-", str(exc))]
        position = args.index("-")
        args = args[:position] + listed + [a for a in args[position + 1 :] if a != "-"]
    for arg in args:
        try:
            paths.extend(_expand_one(arg, recursive))
        except InputError as exc:
            problems.append((arg, str(exc)))
    return list(dict.fromkeys(paths)), problems


def expand_inputs(
    args: Sequence[str], stdin: TextIO | None = None, *, recursive: bool = False
) -> list[str]:
    """Input paths named by ``args``, in order, without duplicates.

    * a file: itself (any extension: GDAL decides later whether it is a raster);
    * a folder: its ``*.tif``/``*.tiff``/``*.vrt`` files, sorted; subfolders only with
      ``recursive``; hidden files, writer temporaries and gfm's own side outputs
      (``*.probs.tif``, ``*.emb.tif``, ``*.emb.gpkg``) are skipped;
    * a glob pattern: its matches, sorted, with the same files skipped;
    * ``-``: paths read from ``stdin``, one per line (blank lines and ``#`` comments ignored);
    * a GDAL path (``/vsizip/...``, ``/vsicurl/...``, ``s3://...``): passed through untouched.

    A file named explicitly is always taken, whatever its name. Raises InputError for the first
    argument that names nothing (a missing path, a pattern without matches, an empty folder).
    """
    paths, problems = expand_inputs_lenient(args, stdin, recursive=recursive)
    if problems:
        raise InputError(problems[0][1])
    if not paths:
        raise InputError("no input given; name raster files, folders, patterns or '-'")
    return paths


def _expand_one(arg: str, recursive: bool) -> list[str]:
    if is_gdal_path(arg):
        return [arg]
    path = Path(arg).expanduser()
    if path.is_dir():
        found = _folder_rasters(path, recursive)
        if not found:
            suffixes = "/".join(RASTER_SUFFIXES)
            raise InputError(f"{arg}: folder holds no {suffixes} files or STAC items")
        return found
    if path.exists():
        if not path.is_file():
            raise InputError(
                f"{arg}: not a regular file (a pipe, device or socket); pass a raster file"
            )
        return [str(path)]
    if _GLOB_CHARS & set(arg):
        matches = sorted(
            m
            for m in glob.glob(str(path), recursive=recursive)
            if Path(m).is_file() and not _is_skipped(Path(m))
        )
        if not matches:
            raise InputError(f"{arg}: pattern matches no file; check the pattern and quoting")
        return matches
    raise InputError(f"{arg}: no such file or folder; check the path")


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """``"tif"``, ``"gpkg"`` or ``"parquet"``: ``fmt`` if given, else from the extension (else
    OutputError); which formats a command takes is the runner's business."""
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        fmt = "tif" if fmt == "tiff" else fmt
        if fmt not in set(OUTPUT_FORMATS.values()):
            raise OutputError(f"unknown output format {fmt!r}; use tif, gpkg or parquet")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise OutputError(
            f"{path}: cannot tell the output format from the extension; "
            "end the name in .tif, .gpkg or .parquet (or pass a format)"
        )
    return OUTPUT_FORMATS[suffix]


def names_a_file(out: Path) -> bool:
    """Whether ``-o out`` names one output file (its extension is an output format and it is
    not an existing folder) rather than a folder of outputs: the one rule :func:`plan_outputs`,
    :func:`planned_format` and :func:`output_folder` share."""
    return out.suffix.lower() in OUTPUT_FORMATS and not out.is_dir()


def planned_format(output: str | Path, fmt: str | None = None) -> str:
    """The format a run writes under ``-o output``, as :func:`plan_outputs` pairs it: ``fmt``
    if given, else the extension of an output that names a file, else ``"tif"`` (a folder,
    even an existing one named ``maps.gpkg``)."""
    if fmt is not None:
        return output_format(output, fmt)
    out = Path(output).expanduser()
    return output_format(out) if names_a_file(out) else "tif"


def _stem(input_path: str) -> str:
    """The input's base name without extension; GDAL paths use their last path component."""
    name = input_path.rstrip("/").rsplit("/", 1)[-1]
    name = name.split("?", 1)[0]
    return Path(name).stem


def _same_file(a: str, b: Path) -> bool:
    if is_gdal_path(a):
        return False
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


DEFAULT_NAME_TEMPLATE = "{stem}"
# The fields of --name-template: the input's base name without extension, and the names of its
# folder and of that folder's parent (empty when the path has none).
NAME_FIELDS = ("stem", "parent", "grandparent")


def check_name_template(template: str) -> None:
    """UsageError unless ``template`` names only ``NAME_FIELDS`` and makes a plain file name."""
    try:
        sample = template.format(stem="scene", parent="folder", grandparent="root")
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join(f"{{{f}}}" for f in NAME_FIELDS)
        what = f"{{{exc.args[0]}}} is not a field" if isinstance(exc, KeyError) else "not valid"
        raise UsageError(f"--name-template {template!r}: {what}; use {fields}") from None
    if "{stem}" not in template or "/" in sample or sample.startswith("."):
        raise UsageError(
            f"--name-template {template!r}: must contain {{stem}} and make a plain file name "
            "(no '/', not hidden), e.g. '{parent}_{stem}'"
        )


def output_name(input_path: str, template: str = DEFAULT_NAME_TEMPLATE) -> str:
    """The base name (no extension) of ``input_path``'s output in folder mode."""
    if is_gdal_path(input_path):
        folders = [p for p in input_path.split("?", 1)[0].split("/")[:-1] if p]
    else:
        folders = [p.name for p in reversed(Path(input_path).absolute().parents) if p.name]
    parent = folders[-1] if folders else ""
    grandparent = folders[-2] if len(folders) > 1 else ""
    return template.format(stem=_stem(input_path), parent=parent, grandparent=grandparent)


def plan_outputs(
    inputs: Sequence[str],
    output: str | Path,
    fmt: str | None = None,
    *,
    suffix: str = "",
    name_template: str = DEFAULT_NAME_TEMPLATE,
    extensions: Sequence[str] = (".tif", ".gpkg", ".parquet"),
) -> list[tuple[str, Path]]:
    """Pair every input with its output path.

    * One input and an ``output`` that ends in ``.tif``/``.tiff``/``.gpkg``/``.parquet`` (and is
      not an existing folder): that file.
    * Otherwise ``output`` is a folder (created if missing) and each input gets
      ``<name><suffix>.<fmt>`` in it, ``<name>`` made by ``name_template`` (default
      ``{stem}``; see :func:`output_name`), ``fmt`` defaulting to ``tif``; ``suffix`` lets
      ``embed`` write ``scene.emb.tif`` style names. Several inputs always need a folder.

    ``extensions`` are the ones the command writes, for the message that refuses another.
    InputError when two inputs get the same name (the message offers ``--name-template``).
    OutputError when an output equals its input, when
    several inputs are given with a file name, when one input is given a name with another
    extension (``-o map.png`` would silently become a folder), when the folder cannot be created,
    or when a planned output file is an existing folder (all before any compute).
    """
    out = Path(output).expanduser()
    looks_like_file = names_a_file(out)
    unknown_extension = _EXTENSION.fullmatch(out.suffix) and not looks_like_file
    if len(inputs) == 1 and unknown_extension and not out.is_dir():
        *others, last = extensions
        raise OutputError(
            f"{output}: unsupported output extension {out.suffix}; use {', '.join(others)} or "
            f"{last}, or a folder name without extension"
        )
    if looks_like_file:
        if len(inputs) != 1:
            raise OutputError(
                f"{output}: {len(inputs)} inputs need an output folder, not a file name; "
                "pass -o DIR"
            )
        if fmt is not None and output_format(out) != output_format(out, fmt):
            raise OutputError(f"{output}: the extension does not match the format {fmt!r}")
        pairs = [(inputs[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise OutputError(f"{output}: exists and is not a folder; pass -o DIR or -o FILE.tif")
        ext = output_format(f"x.{fmt or 'tif'}")
        seen: dict[str, str] = {}
        pairs = []
        for item in inputs:
            stem = output_name(item, name_template)
            if stem in seen:
                raise InputError(
                    f"{seen[stem]} and {item} would both write {stem}{suffix}.{ext}; name the "
                    "outputs after their folders too with --name-template '{parent}_{stem}', "
                    "or rename one"
                )
            seen[stem] = item
            pairs.append((item, out / f"{stem}{suffix}.{ext}"))
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"{out}: cannot create the output folder ({exc.strerror or exc}); choose another -o"
            ) from exc
    for item, target in pairs:
        _check_not_folder(target)
        if _same_file(item, target):
            raise OutputError(f"{target}: output would overwrite its input; choose another -o")
    return pairs


def output_folder(output: str | Path) -> Path:
    """The folder a run's outputs go in: ``-o`` itself in folder mode, else its parent."""
    out = Path(output).expanduser()
    return out.parent if names_a_file(out) else out


@contextlib.contextmanager
def no_empty_new_folders(folder: str | Path) -> Iterator[None]:
    """Run the body; afterwards remove the folders of ``folder``'s path that did not exist
    before and are still empty, so a run that fails (or writes nothing) leaves no empty output
    folder behind. Only empty folders are removed (``rmdir``), never anything in them."""
    folder = Path(folder).absolute()
    new = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    finally:
        for path in new:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break  # not empty (or gone): its parents are not empty either


def _check_not_folder(target: Path) -> None:
    if target.is_dir():
        raise OutputError(
            f"{target}: is a folder, so the output file cannot be written there; rename or "
            "remove that folder, or choose another -o"
        )


def should_skip_existing(path: str | Path, overwrite: bool) -> bool:
    """True when ``path`` is already complete and must be kept (resume), False to (re)write it.

    Writers only ever rename finished, validated files to their final name, so existence means
    complete; temporaries of interrupted runs have other names and are not looked at. A folder
    at ``path`` is an OutputError: no file can ever be written there.
    """
    _check_not_folder(Path(path))
    return not overwrite and Path(path).is_file()
