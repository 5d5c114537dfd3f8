"""Distributed training: deterministic batch sharding and a 2-process gloo run via torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gfmcli.model.checkpoint import read_checkpoint
from gfmcli.train.datasets import GroupedBatchSampler


def test_batches_hold_one_group_and_shards_are_disjoint_and_deterministic():
    groups = [0] * 23 + [1] * 10
    shards = []
    for rank in range(2):
        sampler = GroupedBatchSampler(groups, 4, seed=5, rank=rank, world_size=2)
        sampler.set_epoch(3)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(len({groups[i] for i in b}) == 1 for b in batches)
        again = GroupedBatchSampler(groups, 4, seed=5, rank=rank, world_size=2)
        again.set_epoch(3)
        assert list(again) == batches
        shards.append(batches)
    assert len(shards[0]) == len(shards[1])  # DDP needs equal step counts
    flat = [i for shard in shards for b in shard for i in b]
    assert len(flat) == len(set(flat))  # no chip on two ranks
    other_epoch = GroupedBatchSampler(groups, 4, seed=5, rank=0, world_size=2)
    other_epoch.set_epoch(4)
    assert list(other_epoch) != shards[0]


def test_sampler_resumes_mid_epoch():
    groups = [0] * 40
    sampler = GroupedBatchSampler(groups, 4, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=3)
    assert list(sampler) == full[3:]


def test_pretrain_with_two_gloo_processes(optical_chips, tiny_encoder_toml, tmp_path):
    chips = optical_chips(tmp_path)
    config = tmp_path / "pretrain.toml"
    config.write_text(f"""
[data]
chips = ["{chips}"]
batch_size = 2
{tiny_encoder_toml}
decoder_dim = 32
decoder_depth = 1
decoder_heads = 2
[train]
steps = 2
log_every = 1
progress = false
[output]
dir = "out"
""")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    # fmt: skip below: a table, one entry per line (ruff format would add 9 lines)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "gfmcli.cli", "pretrain", "-c", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = read_checkpoint(tmp_path / "out" / "last.pt")
    assert data.extra["step"] == 2 and len(data.extra["rng"]) == 2  # one RNG state per rank
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "step" in r]
    assert [r["step"] for r in steps] == [1, 2]  # rank 0 alone writes the log
    assert steps[-1]["chips"] == 2 * 2 * 2  # steps x batch x processes
