"""Model replicas on devices: batches of normalised windows in, per-pixel or per-patch arrays out.

One :class:`DevicePool` holds one replica of the model per device (the model itself for the first
device, deep copies for the others) and one worker thread per device, so that every visible GPU
works on the windows of one raster. Batches are dispatched round-robin and their results are
handed back **in submission order**, which keeps the blend order (and so the map) independent of
the device count. Torch releases the GIL inside its kernels, so the workers, the reader thread and
the writer thread run side by side.

A pool on the CPU alone runs :func:`cpu_layout` replicas, each with its share of torch's
intra-op threads: on 2 cores two single-threaded replicas work on two batches at once. One
forward split over 2 OpenMP threads stalls at every barrier whenever the reader, blend or writer
thread takes a core (most of its ops are small or memory-bound), and the two replicas' serial
stretches overlap: a 2048^2 12-band ``gfm predict`` took 10.3 s instead of 12.9 s this way
(docs/benchmarks.md), for one more batch's activations in memory.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from gfmcli.errors import ModelError, first_line
from gfmcli.model.bands import Bands
from gfmcli.model.tasks import GfmModel
from gfmcli.runtime.devices import autocast_context, inference_precision

log = logging.getLogger(__name__)

MODES = ("probabilities", "values", "embeddings", "cls")


def _forward(model: GfmModel, batch: torch.Tensor, bands: Bands, mode: str) -> torch.Tensor:
    inputs = bands.encoder_inputs(batch)
    x = inputs.pop("x")
    if mode in ("embeddings", "cls"):
        return model.embed(x, **inputs, pool="none" if mode == "embeddings" else "cls")
    out = model(x, **inputs)
    if mode == "probabilities":
        out = torch.softmax(out.float(), dim=1)
    return out


def cpu_layout(threads: int) -> tuple[int, int]:
    """``(replicas, intra-op threads per replica)`` of a CPU-only pool, given torch's intra-op
    thread count (the core count unless OMP_NUM_THREADS or torch.set_num_threads says less):
    two replicas sharing the threads from 2 up, one below (see the module docstring)."""
    if threads < 2:
        return 1, max(threads, 1)
    return 2, threads // 2


class DevicePool:
    """Model replicas, one per device (:func:`cpu_layout` of them on the CPU alone), each fed by
    its own worker thread.

    A CPU-only pool sets torch's intra-op thread count to each replica's share while it is open
    (in the worker threads) and restores the previous count on ``close``.
    """

    def __init__(self, model: GfmModel, devices: list[torch.device], precision: str) -> None:
        if not devices:
            raise ValueError("DevicePool needs at least one device")
        model.eval()
        self.devices = devices
        self.model = model.to(devices[0])
        self.precisions = [inference_precision(device, precision) for device in devices]
        self._threads = torch.get_num_threads()
        layout: tuple[int, int | None] = (
            cpu_layout(self._threads) if [d.type for d in devices] == ["cpu"] else (1, None)
        )
        replicas, self._replica_threads = layout
        slots = [(i, device) for i, device in enumerate(devices)] * replicas
        self._slot_devices = [device for _, device in slots]
        self._replicas = [self.model]
        self._replicas += [copy.deepcopy(model).to(device) for _, device in slots[1:]]
        self._autocast = [autocast_context(device, self.precisions[i]) for i, device in slots]
        initializer: Callable[..., object] | None = (
            torch.set_num_threads if self._replica_threads else None
        )
        initargs: tuple[Any, ...] = (self._replica_threads,) if initializer else ()
        log.info(
            "model on %s: %d replica(s)%s, precision %s",
            ", ".join(str(d) for d in devices),
            len(slots),
            f" of {self._replica_threads} thread(s)" if self._replica_threads else "",
            ", ".join(dict.fromkeys(self.precisions)),
        )
        self._executors = [
            ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"gfm-{device}",
                initializer=initializer,
                initargs=initargs,
            )
            for _, device in slots
        ]

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._replica_threads:
            torch.set_num_threads(self._threads)

    def __enter__(self) -> DevicePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, slot: int, batch: np.ndarray, bands: Bands, mode: str) -> np.ndarray:
        device = self._slot_devices[slot]
        try:
            with torch.inference_mode(), self._autocast[slot]:
                tensor = torch.from_numpy(batch).to(device, non_blocking=True)
                out = _forward(self._replicas[slot], tensor, bands, mode)
            return out.float().cpu().numpy()
        except (RuntimeError, MemoryError) as exc:  # out of memory, device failure
            first = first_line(exc)
            raise ModelError(
                f"the model failed on a batch of {batch.shape[0]} window(s) of "
                f"{batch.shape[2]}x{batch.shape[3]} px on {device} ({first[:200]}); "
                "try a smaller --window or --batch-size"
            ) from exc

    def map_ordered(
        self,
        items: Iterable[Any],
        batch_of: Callable[[Any], np.ndarray | None],
        bands: Bands,
        mode: str,
        max_in_flight: int | None = None,
    ) -> Iterator[tuple[Any, np.ndarray | None]]:
        """Yield ``(item, output)`` for every item, in the items' order.

        ``batch_of(item)`` gives the (B, C, h, w) float32 input of an item, or None for items
        that need no model call (their output is None). At most ``max_in_flight`` batches (two per
        replica by default) are queued, so memory stays bounded whatever the raster size.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        limit = max_in_flight or 2 * len(self._executors)
        pending: deque[tuple[Any, Future[np.ndarray] | None]] = deque()
        turn = 0
        for item in items:
            batch = batch_of(item)
            future = None
            if batch is not None:
                slot = turn % len(self._executors)
                turn += 1
                future = self._executors[slot].submit(self._run, slot, batch, bands, mode)
            pending.append((item, future))
            while len(pending) > limit:
                yield _resolve(pending.popleft())
        while pending:
            yield _resolve(pending.popleft())


def _resolve(entry: tuple[Any, Future[np.ndarray] | None]) -> tuple[Any, np.ndarray | None]:
    item, future = entry
    return item, None if future is None else future.result()
