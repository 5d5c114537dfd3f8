"""Self-describing checkpoints: weights plus the model contract in one file.

File layout (a ``torch.save`` zip holding one plain dict)::

    {"format": "gfm-checkpoint", "format_version": 1,
     "contract": "<ModelContract as JSON>", "state_dict": {name: tensor}, "extra": {...}}

Only tensors, strings, numbers, booleans, None and nested dicts/lists/tuples are inside, so
loading uses ``torch.load(weights_only=True)`` and never runs pickled code from a downloaded
file. ``extra`` holds training-resume state (optimizer and scheduler ``state_dict()``, RNG
states from ``gfmcli.train.state.rng_state()``) under the same rule; it is checked when
saving, so a numpy array fails at save time with the key named, not at resume time.

Writes are atomic: a temporary file in the target folder (``.<stem>.partial-<pid>-<host>.pt``,
the name every gfm writer stages under) is renamed over the target with ``os.replace`` only
once fully written and synced, so a crash or full disk leaves the previous checkpoint intact;
the temporary of a save killed by ``kill -9`` is removed by the next save under the age/host
rule of ``gfmcli.atomic.stale_partials``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gfmcli._version import __version__
from gfmcli.atomic import atomic_write
from gfmcli.contract import ModelContract
from gfmcli.errors import ModelError, OutputError
from gfmcli.model.config import with_legacy_defaults
from gfmcli.model.tasks import GfmModel, build_model

FORMAT = "gfm-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".pt"

# Values (parameters and buffers) a checkpoint's model may have: ~4 GiB of float32, four
# times the largest registry encoder with a head; a contract asking for more is refused before
# anything is allocated.
MAX_PARAMETERS = 2**30
_PLAIN_SCALARS = (str, int, float, bool, type(None))
# torch.save writes a zip archive (since torch 1.6) or, in the legacy format, a pickle stream.
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80")


@dataclass(frozen=True)
class CheckpointData:
    """A checkpoint's content as read from disk, before a model is built from it."""

    contract: ModelContract
    state_dict: dict[str, torch.Tensor]
    extra: dict[str, Any]
    format_version: int


def _check_plain(value: Any, where: str) -> None:
    """Reject anything ``weights_only`` loading would refuse, naming the key path."""
    if isinstance(value, (torch.Tensor, *_PLAIN_SCALARS)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise ModelError(f"checkpoint extra {where}: key {key!r} must be a str or int")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise ModelError(
        f"checkpoint extra {where} is a {type(value).__name__}; store only tensors, numbers, "
        "strings and dicts/lists of them (convert numpy arrays with torch.from_numpy)"
    )


def _contract_for(model: GfmModel, contract: ModelContract) -> ModelContract:
    """The contract as written: the model's own config and task, plus default provenance."""
    if contract.task != model.task:
        raise ModelError(f"contract task {contract.task!r} but the model's task is {model.task!r}")
    if contract.patch_size != model.patch_size:
        raise ModelError(
            f"contract patch size {contract.patch_size} but the model's is {model.patch_size}"
        )
    head = model.spec.head
    outputs = None if head is None else head.num_outputs
    if (
        contract.classes
        and model.task in ("segmentation", "classification")
        and len(contract.classes) != outputs
    ):
        raise ModelError(
            f"contract lists {len(contract.classes)} classes but the head has {outputs} outputs"
        )
    provenance = {
        "gfm_version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **contract.provenance,
    }
    return dataclasses.replace(contract, model_config=model.config, provenance=provenance)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: GfmModel,
    contract: ModelContract,
    extra: dict[str, Any] | None = None,
) -> ModelContract:
    """Write weights, contract and optional ``extra`` state atomically; return the contract as
    written (model config from ``model.config``; provenance gains gfm version and date unless
    already set). OutputError if the file cannot be written; the old file is then untouched."""
    path = Path(path)
    written = _contract_for(model, contract)
    if extra is not None:
        _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "contract": written.to_json(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    if not path.parent.is_dir():
        raise OutputError(f"cannot write checkpoint {path}: folder {path.parent} does not exist")
    with atomic_write(path, "wb", what="checkpoint") as handle:
        torch.save(payload, handle)
    return written


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> CheckpointData:
    """Read and validate a checkpoint without building a model (e.g. to resume training from
    ``extra``). ModelError, naming the file and what to do, for anything that is not a readable
    gfm checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist; check the path or the model name")
    _check_torch_magic(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign/unsafe files
        raise ModelError(f"checkpoint {path} {_load_failure(exc)}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(
            f"{path} is a torch file but not a gfm checkpoint (no '{FORMAT}' marker); "
            "fine-tune with gfm or save it with gfmcli.model.checkpoint.save_checkpoint"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelError(f"checkpoint {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"checkpoint {path} has format version {version}, newer than this gfm "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade gfm"
        )
    state_dict, contract_json = payload.get("state_dict"), payload.get("contract")
    if not isinstance(state_dict, dict) or not isinstance(contract_json, str):
        raise ModelError(f"checkpoint {path} lacks its weights or contract; re-save it")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise ModelError(f"checkpoint {path}: its weights are not all named tensors; re-save it")
    try:
        contract = _with_legacy_defaults(ModelContract.from_json(contract_json))
    except ModelError as exc:
        raise ModelError(f"checkpoint {path}: {exc}") from exc
    extra = payload.get("extra") or {}
    return CheckpointData(contract, state_dict, extra, version)


def _with_legacy_defaults(contract: ModelContract) -> ModelContract:
    """The contract with its stored encoder config completed by ``LEGACY_DEFAULTS``, so a
    checkpoint written before a behaviour-changing encoder field existed is rebuilt with the
    behaviour it was trained with, not with today's default."""
    encoder = contract.model_config.get("encoder")
    if not isinstance(encoder, dict) or not isinstance(encoder.get("overrides", {}), dict):
        return contract  # malformed: build_model reports it with the key at fault
    config = {
        **contract.model_config,
        "encoder": {**encoder, "overrides": with_legacy_defaults(encoder.get("overrides", {}))},
    }
    return dataclasses.replace(contract, model_config=config)


def _check_torch_magic(path: Path) -> None:
    """ModelError for a file that is not a torch file at all (a text file, a GeoTIFF passed as
    ``--model``), so it is not misdiagnosed by torch's unpickler as holding unsafe objects."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ModelError(f"checkpoint {path} cannot be opened ({exc.strerror or exc})") from exc
    if not head.startswith(_TORCH_MAGICS):
        raise ModelError(
            f"{path} is not a gfm checkpoint (not a torch file); pass a .pt file saved by gfm "
            "or the name of a shipped model"
        )


def _load_failure(exc: Exception) -> str:
    """One line on why ``torch.load`` refused a file (torch's own messages span many lines)."""
    text = str(exc).strip()
    if text.startswith("Weights only load failed"):
        return (
            "holds pickled Python objects, which gfm never executes (only tensors and plain "
            "data load); it is not a gfm checkpoint: re-save it with gfm"
        )
    reason = text.splitlines()[0].split(". ")[0][:120] if text else ""
    return (
        f"cannot be read ({type(exc).__name__}: {reason}); it is truncated, corrupt or not a "
        "checkpoint: re-download or re-save it"
    )


def load_weights(
    model: GfmModel,
    state_dict: dict[str, torch.Tensor],
    source: object,
    *,
    check_only: bool = False,
) -> None:
    """Load ``state_dict`` strictly: every key present, none extra, every shape equal
    (``check_only``: compare only, for a skeleton on the meta device)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(
        k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or wrong:
        parts = [
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if keys
        ]
        raise ModelError(
            f"checkpoint {source}: weights do not match the model its contract describes "
            f"({'; '.join(parts)}); the file was edited or saved by an incompatible gfm"
        )
    if not check_only:
        model.load_state_dict(state_dict, strict=True)


def check_weights_fit(
    config: dict[str, Any], state_dict: dict[str, torch.Tensor], source: object
) -> None:
    """ModelError unless the model ``config`` describes is of a sane size and has exactly the
    weights' names and shapes, checked on a skeleton without memory (torch's ``meta``
    device) before anything is allocated.

    A contract is data in a file anyone can edit: one asking for a 4096-wide, 64-deep encoder
    beside a tiny state dict would otherwise take tens of GB before the shapes are compared.
    """
    try:
        with torch.device("meta"):
            skeleton = build_model(config)
    except ModelError as exc:
        raise ModelError(f"checkpoint {source}: {exc}") from exc
    expected = skeleton.state_dict()
    size = sum(t.numel() for t in expected.values())
    if size > MAX_PARAMETERS:
        raise ModelError(
            f"checkpoint {source}: its contract describes a model of {size / 1e9:.1f} billion "
            f"values, more than gfm loads ({MAX_PARAMETERS / 1e9:.1f} billion); the contract "
            "was edited or the file is not for gfm"
        )
    load_weights(skeleton, state_dict, source, check_only=True)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> tuple[GfmModel, ModelContract]:
    """Rebuild the model from the checkpoint's contract and load its weights strictly.
    The model is returned in eval mode, on ``map_location`` when that names a device."""
    data = read_checkpoint(path, map_location=map_location)
    check_weights_fit(data.contract.model_config, data.state_dict, path)
    try:
        model = build_model(data.contract.model_config)
    except ModelError as exc:
        raise ModelError(f"checkpoint {path}: {exc}") from exc
    load_weights(model, data.state_dict, path)
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), data.contract


def default_weights_dir() -> Path | None:
    """Folder of shipped weights: the installed package data ``gfmcli/weights`` first, then the
    source checkout's top-level ``weights/``; None if neither exists."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "weights", package.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return None


def list_weights(weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the shipped checkpoints (``<name>.pt`` in the weights folder), sorted."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{SUFFIX}") if p.is_file())


def resolve_model_path(
    spec: str | os.PathLike[str], weights_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A checkpoint path, or the file of a shipped weights name; ModelError listing the names
    that exist if ``spec`` is neither."""
    path = Path(spec)
    if path.is_file() or path.suffix == SUFFIX or len(path.parts) > 1:
        return path
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if folder is not None and (folder / f"{spec}{SUFFIX}").is_file():
        return folder / f"{spec}{SUFFIX}"
    names = list_weights(folder) if folder is not None else []
    known = ", ".join(names) if names else "none are installed"
    raise ModelError(f"unknown model {str(spec)!r}: not a file and not a shipped model ({known})")


def load_model(
    spec: str | os.PathLike[str],
    map_location: Any = "cpu",
    weights_dir: str | os.PathLike[str] | None = None,
) -> tuple[GfmModel, ModelContract]:
    """Load a checkpoint given as a path or as the name of shipped weights."""
    return load_checkpoint(resolve_model_path(spec, weights_dir), map_location=map_location)
