"""Several processes under ``torchrun``: one reading of its environment for mapping and training.

``torchrun`` (one or many nodes) starts the same command once per rank with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment;
:func:`rank_info` is the only place that reads them (gfm never writes the environment).
Without them the same command runs in one process.

* ``gfm predict``/``embed`` give rank ``r`` the inputs ``r, r + W, r + 2W, ...`` of the
  (deterministically ordered) input list (:func:`shard`), so every output is written by exactly
  one process, and each rank uses the GPU of its ``LOCAL_RANK`` when the device is ``auto``. The
  results are gathered over a gloo process group (:class:`ProcessGroup`: CPU objects, works next
  to NCCL) so that rank 0 prints one summary and every rank exits with the same code.
* Training joins the launcher's process group (``env://``, NCCL on CUDA, gloo on the CPU) with
  :func:`init_distributed`; the collectives below are no-ops when alone. Rank 0 writes
  checkpoints, metrics and logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from gfmcli.errors import InputError
from gfmcli.runtime.devices import resolve_devices

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
        return [item for part in gather_objects(list(items), self.info) for item in part]

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            dist.destroy_process_group()


# --- training: the process group of the whole run -----------------------------------------


@dataclass(frozen=True)
class DistContext(RankInfo):
    """This process's place in the run (:class:`RankInfo`) and its device."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group described by the launcher's environment, or run alone."""
    ranks = rank_info()
    rank, world_size, local_rank = ranks.rank, ranks.world_size, ranks.local_rank
    devices = resolve_devices(device_spec)
    if world_size <= 1:
        return DistContext(0, 1, 0, devices[0])
    if devices[0].type == "cuda":
        if local_rank >= len(devices):
            raise InputError(
                f"LOCAL_RANK {local_rank} but only {len(devices)} GPU(s) visible; start at most "
                f"{len(devices)} processes per node (torchrun --nproc_per_node)"
            )
        device = devices[local_rank]
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, device)


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over processes (a copy, on the tensor's device); itself when alone."""
    if not ctx.distributed:
        return tensor
    out = tensor.clone().to(ctx.device)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(tensor.device)


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's value of ``flag`` on every process (e.g. early stopping)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def gather_objects(obj: T, ranks: RankInfo) -> list[T]:
    """Every process's ``obj`` in rank order, on every process (per-rank RNG states for a
    checkpoint, a mapping run's results); ``[obj]`` when alone."""
    if not ranks.distributed:
        return [obj]
    out: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(out, obj)
    return out
