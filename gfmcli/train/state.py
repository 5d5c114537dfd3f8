"""What a resumed training run must restore and check: every RNG's state, and that the
configuration it resumes with is compatible with the one it was started with.

RNG states are stored in the checkpoint's ``extra`` (``model.checkpoint`` checks that they are
plain values) so ``--resume`` continues bit-exactly (tests/train/test_pretrain.py).
"""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import torch

from gfmcli.errors import ConfigError


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as plain data, for ``extra`` (resume exactly)."""
    np_state = cast(tuple[Any, ...], np.random.get_state())  # the legacy tuple form
    state: dict[str, Any] = {
        "python": [list(s) if isinstance(s, tuple) else s for s in random.getstate()],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by ``rng_state`` (after a weights_only load)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume_config(saved: dict[str, Any], current: dict[str, Any], keys: list[str]) -> None:
    """ConfigError listing the settings (dotted ``keys``) that differ from the saved run."""
    diffs = []
    for key in keys:
        a, b = _dig(saved, key), _dig(current, key)
        if _norm(a) != _norm(b):
            diffs.append(f"{key} (checkpoint {_norm(a)!r}, config {_norm(b)!r})")
    if diffs:
        raise ConfigError(
            "cannot resume: the configuration differs from the checkpoint's in "
            + "; ".join(diffs)
            + "; restore those settings or start a new output.dir"
        )


def _dig(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in sorted(value.items())}
    return value
