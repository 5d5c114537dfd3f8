"""The estimate of a mapping run's peak memory that ``--dry-run`` and ``gfm info`` print."""

from __future__ import annotations

from gfmcli.contract import ModelContract
from gfmcli.engine.inference import cpu_layout
from gfmcli.engine.options import PREFETCH, WRITE_QUEUE, ResolvedOptions
from gfmcli.engine.tiling import WindowPlan


def estimate_peak_memory(
    contract: ModelContract,
    plan: WindowPlan,
    bands: int,
    options: ResolvedOptions,
    kind: str,
    windows: int,
) -> int:
    """A generous estimate of the run's peak resident memory in bytes (documented in docs/cli.md).

    Sum of: the interpreter with torch and GDAL loaded (~450 MB), the model's weights, the
    reader's prefetched batches, the devices' batches and their activations (about eight
    D-wide float32 tensors of (C+1)(N+1) tokens per window, for each of the CPU replicas of
    :func:`~gfmcli.engine.inference.cpu_layout` that run at once), the mosaic (one window of
    rows over the width, twice for popped blocks) and GDAL's block cache for the staged output.
    A raster of fewer ``windows`` than a batch holds fills one smaller batch, and no more
    batches are in flight than it has.
    """
    import torch

    batch = max(1, min(options.batch_size, windows))
    batches = -(-max(windows, 1) // batch)
    replicas = min(cpu_layout(torch.get_num_threads())[0], batches)
    config = contract.model_config.get("encoder", {}).get("overrides", {})
    dim = int(config.get("embed_dim", 192))
    depth = int(config.get("depth", 6))
    patch = contract.patch_size
    cell = patch if kind == "embed" else 1
    pixels = (plan.window * cell) ** 2
    patches = pixels // patch**2 + 1
    tokens = (bands + 1) * patches
    batch_inputs = min(PREFETCH + 2 * replicas, batches) * batch * bands * pixels * 4
    activations = replicas * batch * tokens * dim * 4 * 12
    # Dense heads run convolutions at full resolution: about 256 float32 maps per pixel alive
    # at once (160 undershot a 6-band 30 m scene in 64 and 128 px windows: 805 / 1,580 MiB
    # estimated, 896 / 1,884 MiB measured; docs/benchmarks.md, thirteenth session). The
    # Perception Field Mask is a (N+1)^2 boolean matrix per call.
    head = 0 if kind == "embed" else replicas * batch * 256 * pixels * 4
    attention_mask = 2 * replicas * patches**2
    weights = replicas * (12 * depth * dim * dim * 4) + 4_000_000
    channels = dim if kind == "embed" else max(contract.num_classes, 1)
    mosaic = 2 * (channels + 1) * plan.window * plan.width * 4
    writer = (WRITE_QUEUE + 1) * mosaic // 2 + 512 * plan.width * channels * 4
    return (
        450_000_000 + weights + batch_inputs + activations + head + attention_mask + mosaic + writer
    )
