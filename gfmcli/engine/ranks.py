"""Running one ``gfm predict``/``embed`` command as several processes under ``torchrun``.

``torchrun`` (one or many nodes) starts the same command once per rank with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in the environment. gfm then gives rank ``r`` the inputs
``r, r + W, r + 2W, ...`` of the (deterministically ordered) input list, so every output is
written by exactly one process, and each rank uses the GPU of its ``LOCAL_RANK`` when the
device is ``auto``. The results are gathered over a gloo process group (CPU objects, works next
to NCCL) so that rank 0 prints one summary and every rank exits with the same code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from gfmcli.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class RankInfo:
    """This process's place in a multi-process run (``world_size == 1`` when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_info(environ: Mapping[str, str] | None = None) -> RankInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (as ``torchrun`` sets them)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise InputError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"RANK {rank} does not fit WORLD_SIZE {world}")
    return RankInfo(rank, world, local)


def shard(items: Sequence[T], info: RankInfo) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th item starting at ``rank``."""
    return list(items[info.rank :: info.world_size])


def device_spec_for_rank(spec: str, info: RankInfo) -> str:
    """Under torchrun, ``auto``/``cuda`` mean "this rank's GPU" (or the CPU when there is none)."""
    if not info.distributed or spec not in ("auto", "cuda"):
        return spec
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return "cpu" if spec == "auto" else spec


class ProcessGroup:
    """A gloo process group for the lifetime of a ``with`` block (no-op when alone)."""

    def __init__(self, info: RankInfo) -> None:
        self.info = info
        self._owned = False

    def __enter__(self) -> ProcessGroup:
        if self.info.distributed and not dist.is_initialized():
            dist.init_process_group("gloo", rank=self.info.rank, world_size=self.info.world_size)
            self._owned = True
        return self

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's ``items``, concatenated in rank order, on every rank."""
        if not self.info.distributed:
            return list(items)
        gathered: list[list[Any] | None] = [None] * self.info.world_size
        dist.all_gather_object(gathered, items)
        return [item for part in gathered for item in (part or [])]

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            dist.destroy_process_group()
