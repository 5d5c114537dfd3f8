"""Benchmark: training throughput, LESS vs full attention, and 1 vs 2 CPU processes (not a test).

    python bench/train.py [--model less_vit_tiny] [--bands 13] [--size 64] [--batch 8]
                          [--steps 6] [--warmup 2] [--threads 1] [--skip-ddp]

Part 1 (attention): for ``attention="less"`` and its full spatial-spectral twin
(``attention="full"``, same widths, embeddings and decoder) it times two training steps on
synthetic C-band chips, each forward + backward + AdamW step:

- ``pretrain``: a Hyper-MAE step (75 % positions and 50 % bands hidden, LESS decoder);
- ``finetune``: a segmentation step of the full task model (encoder + dense head, no masking).

Part 2 (scaling): the Hyper-MAE step under DDP with gloo, 1 process vs 2 processes (each with
``--threads`` torch threads and its own batch), reporting total chips/s and the ratio. On a
2-core machine with 1 thread per process the ideal ratio is 2.0.

Every case runs in its own child process; times are the median of ``--steps`` steps after
``--warmup`` steps. Prints a Markdown table and one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import torch

# fmt: skip below: a table, kept in rows (ruff format would add 13 lines)
WAVELENGTHS_S2 = [442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5,
                  1613.7, 2202.4]  # fmt: skip


def _wavelengths(bands: int) -> list[float]:
    if bands <= len(WAVELENGTHS_S2):
        return WAVELENGTHS_S2[:bands]
    return [420.0 + 2000.0 * i / (bands - 1) for i in range(bands)]


def _build(args, attention: str, kind: str):
    from gfmcli.model.mae import HyperMAE
    from gfmcli.model.tasks import build_model, model_config_for

    # fmt: skip below: a table, kept in rows (ruff format would add 4 lines)
    overrides = {"attention": attention, "embed_dim": args.dim, "depth": args.depth,
                 "num_heads": args.heads}  # fmt: skip
    if kind == "pretrain":
        return HyperMAE(args.model, decoder_depth=1, decoder_dim=64, decoder_heads=4, **overrides)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    config = model_config_for(args.model, "segmentation", num_outputs=6,
                              encoder_overrides=overrides, width=32, min_width=16)  # fmt: skip
    return build_model(config)


def _step_fn(model, kind: str, args):
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.bands, args.size, args.size)
    wl = _wavelengths(args.bands)
    target = torch.randint(0, 6, (args.batch, args.size, args.size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))

    def step() -> None:
        if kind == "pretrain":
            loss = model(x, wl, 10.0).loss
        else:
            loss = torch.nn.functional.cross_entropy(model(x, wl, 10.0), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _time(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child_attention(args) -> dict:
    torch.set_num_threads(args.threads)
    model = _build(args, args.attention, args.kind).train()
    seconds = _time(_step_fn(model, args.kind, args), args.steps, args.warmup)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    return {
        "part": "attention", "kind": args.kind, "attention": args.attention, "step_s": seconds,
        "steps_per_s": 1 / seconds, "chips_per_s": args.batch / seconds,
    }  # fmt: skip


def child_ddp(args) -> dict:
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = torch.nn.parallel.DistributedDataParallel(
        _build(args, "less", "pretrain").train(), find_unused_parameters=True
    )
    seconds = _time(_step_fn(model, "pretrain", args), args.steps, args.warmup)
    total = torch.tensor([seconds])
    dist.all_reduce(total, op=dist.ReduceOp.MAX)  # the slowest process sets the pace
    dist.destroy_process_group()
    if rank:
        return {}
    step_s = float(total.item())
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    return {"part": "ddp", "processes": world, "step_s": step_s,
            "chips_per_s": world * args.batch / step_s}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_child(argv: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _ddp_case(common: list[str], processes: int) -> dict:
    # fmt: skip below: a table, kept in rows (ruff format would add 4 lines)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("RANK", None)
    env["WORLD_SIZE"] = str(processes)
    procs = []
    for rank in range(processes):
        env_r = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", "ddp", *common],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env_r))  # fmt: skip
    outputs = [p.communicate() for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("\n".join(err[-2000:] for _, err in outputs))
    line = [x for x in outputs[0][0].splitlines() if x.startswith("{")][-1]
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="less_vit_tiny")
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--bands", type=int, default=13)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--child", choices=["attention", "ddp"], help=argparse.SUPPRESS)
    parser.add_argument("--attention", default="less", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="pretrain", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "attention":
        print(json.dumps(child_attention(args)))
        return
    if args.child == "ddp":
        result = child_ddp(args)
        if result:
            print(json.dumps(result))
        return
    # fmt: skip below: arguments grouped by meaning (ruff format would add 11 lines)
    common = [f"--{k}={v}" for k, v in (("model", args.model), ("dim", args.dim),
              ("depth", args.depth), ("heads", args.heads), ("bands", args.bands),
              ("size", args.size), ("batch", args.batch), ("steps", args.steps),
              ("warmup", args.warmup), ("threads", args.threads))]  # fmt: skip
    print(
        f"model {args.model} D={args.dim} depth={args.depth} heads={args.heads}, "
        f"C={args.bands}, {args.size}x{args.size} px, batch {args.batch}, "
        f"{args.threads} thread(s)/process"
    )
    print("\n| step | attention | s/step | steps/s | chips/s |\n|---|---|---|---|---|")
    results = {}
    for kind in ("pretrain", "finetune"):
        for attention in ("less", "full"):
            r = _run_child(
                ["--child", "attention", f"--kind={kind}", f"--attention={attention}", *common]
            )
            results[kind, attention] = r
            print(
                f"| {kind} | {attention} | {r['step_s']:.3f} | {r['steps_per_s']:.2f} | "
                f"{r['chips_per_s']:.1f} |",
                flush=True,
            )
    for kind in ("pretrain", "finetune"):
        ratio = results[kind, "full"]["step_s"] / results[kind, "less"]["step_s"]
        print(f"{kind}: full / LESS step time = {ratio:.2f}x")
    if not args.skip_ddp:
        print("\n| processes (gloo) | s/step | chips/s (total) |\n|---|---|---|")
        ddp = {n: _ddp_case(common, n) for n in (1, 2)}
        for n, r in ddp.items():
            print(f"| {n} | {r['step_s']:.3f} | {r['chips_per_s']:.1f} |")
        print(
            f"scaling 2 vs 1 process: {ddp[2]['chips_per_s'] / ddp[1]['chips_per_s']:.2f}x "
            "(ideal 2.0)"
        )
        results.update({("ddp", n): r for n, r in ddp.items()})
    for r in results.values():
        print(json.dumps(r))


if __name__ == "__main__":
    main()
