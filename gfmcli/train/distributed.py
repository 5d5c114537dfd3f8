"""One training code path for one CPU, one GPU, or many processes started by ``torchrun``.

``torchrun`` (or any launcher) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; when ``WORLD_SIZE`` > 1 the process group is initialised from them (``env://``),
with NCCL on CUDA and gloo on the CPU. Without them the same command runs in one process. gfm
only reads the environment, never writes it. Rank 0 writes checkpoints, metrics and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gfmcli.engine.devices import resolve_devices
from gfmcli.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group described by the launcher's environment, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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


def gather_objects(obj: object, ctx: DistContext) -> list[object]:
    """Every process's ``obj`` in rank order (e.g. per-rank RNG states for a checkpoint)."""
    if not ctx.distributed:
        return [obj]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
