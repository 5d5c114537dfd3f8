"""Device and mixed-precision policy: ``--device`` / ``--precision`` strings to torch objects.

Device specs: ``auto`` (every visible CUDA device, else the CPU), ``cpu``, ``cuda`` (every visible
GPU), ``cuda:N`` or ``cuda:0,1`` (a list). Visibility follows ``CUDA_VISIBLE_DEVICES`` as torch
sees it; gfm never changes the environment. A CUDA request on a machine without CUDA, or an index
out of range, is a :class:`~gfmcli.errors.UsageError` (the option's value, exit 2; training
reports it as its ``train.device`` / ``train.precision``) rather than a silent CPU fallback,
because a job sized for a GPU would otherwise crawl for hours.

Precision: ``fp32`` (no autocast), ``bf16``, ``fp16``, or ``auto`` (bf16 on GPUs that support it,
else fp16; fp32 on the CPU for training). Autocast runs matmuls in the low precision while keeping
reductions such as softmax in fp32. On the CPU only bf16 is offered; fp16 on the CPU is refused.
For inference (:func:`inference_precision`) ``auto`` on the CPU is bf16 where the CPU has native
bf16 dot products (AMX or AVX512-BF16, which oneDNN uses for matmuls and convolutions: 1.5x less
CPU time per window with the first default weights on a Xeon with AMX), else fp32 (elsewhere bf16 is
emulated and slower than fp32). Training keeps fp32 on the CPU under ``auto``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING

from gfmcli.errors import UsageError

if TYPE_CHECKING:
    import torch

#: The ``--precision`` / ``train.precision`` choices: the one list (CLI and TOML schema read it).
#: torch is imported inside the functions, so the command line can offer the choices without it.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

_SPEC_HELP = "use auto, cpu, cuda, cuda:N or a list such as cuda:0,1"


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_devices(spec: str) -> list[torch.device]:
    """The devices named by ``spec`` (see the module docstring), without duplicates, in order."""
    import torch

    text = spec.strip().lower()
    count = _cuda_count()
    if text == "auto":
        return [torch.device("cuda", i) for i in range(count)] or [torch.device("cpu")]
    if text == "cpu":
        return [torch.device("cpu")]
    if not text.startswith("cuda"):
        raise UsageError(f"unknown device '{spec}'; {_SPEC_HELP}")
    if count == 0:
        raise UsageError(
            f"device '{spec}' asks for CUDA but no CUDA device is visible to torch; "
            "use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES"
        )
    if text == "cuda":
        return [torch.device("cuda", i) for i in range(count)]
    if not text.startswith("cuda:"):
        raise UsageError(f"unknown device '{spec}'; {_SPEC_HELP}")
    indices: list[int] = []
    for part in text[len("cuda:") :].split(","):
        part = part.strip()
        if not part.isdigit():
            raise UsageError(f"device '{spec}': '{part}' is not a GPU index; {_SPEC_HELP}")
        index = int(part)
        if index >= count:
            raise UsageError(
                f"device '{spec}': GPU {index} does not exist; {count} visible "
                f"(valid indices 0..{count - 1})"
            )
        if index in indices:
            raise UsageError(f"device '{spec}' names GPU {index} twice")
        indices.append(index)
    return [torch.device("cuda", i) for i in indices]


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AMX tiles or AVX512-BF16); detected once.

    Read from torch's own CPU feature probe (cpuinfo), the one its oneDNN kernels dispatch on.
    """
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def inference_precision(device: torch.device, precision: str) -> str:
    """The precision a forward pass runs at: ``auto`` resolved for ``device`` (module docstring).

    On the CPU, ``auto`` is ``bf16`` when :func:`cpu_has_native_bf16`, else ``fp32``; explicit
    precisions and CUDA devices are passed through for :func:`autocast_context` to check.
    """
    if device.type == "cpu" and precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """A context manager for the forward pass on ``device`` at ``precision``.

    Returns ``torch.autocast`` for bf16/fp16, or a null context for fp32. Build it once per device
    and enter it around each forward pass (``with ctx, torch.inference_mode(): ...``).
    """
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        if precision == "fp32":
            return contextlib.nullcontext()
        if precision == "auto":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif precision == "bf16":
            if not torch.cuda.is_bf16_supported():
                raise UsageError(
                    f"precision bf16 is not supported on {device}; use --precision fp16 or fp32"
                )
            dtype = torch.bfloat16
        else:
            dtype = torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu":
        if precision in ("auto", "fp32"):
            return contextlib.nullcontext()
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        raise UsageError("precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
    raise UsageError(f"device type '{device.type}' is not supported; {_SPEC_HELP}")
