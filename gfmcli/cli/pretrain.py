"""``gfm pretrain``: Hyper-MAE pretraining configured by a TOML file."""

from __future__ import annotations

import click

from gfmcli.cli.options import (
    collect_overrides,
    command_line,
    config_option,
    train_options,
)


@click.command(name="pretrain")
@config_option
@click.option("--resume", is_flag=True, help="Continue the run in output.dir exactly.")
@train_options("steps")
@click.pass_context
def pretrain(ctx, config_path, resume, **options) -> None:
    """Pretrain a LESS ViT encoder with Hyper-MAE on chip folders from `gfm tile`.

    Runs on one CPU as it is; under `torchrun --nproc_per_node N gfm pretrain ...` it trains
    with DDP (NCCL on GPUs, gloo on CPUs). Rank 0 writes OUTPUT/last.pt, OUTPUT/config.toml
    and OUTPUT/metrics.jsonl.
    """
    from gfmcli.tomlconf import load_config
    from gfmcli.train.config import PretrainConfig
    from gfmcli.train.pretrain import pretrain as run_pretrain

    overrides = collect_overrides(options, steps_key="train.steps")
    if ctx.obj and ctx.obj.get("quiet"):
        overrides["train.progress"] = False
    cfg = load_config(config_path, PretrainConfig, overrides)
    command = command_line(ctx)
    result = run_pretrain(cfg, resume=resume, command=command)
    if not result.checkpoint.exists():
        return
    click.echo(str(result.checkpoint))  # the result on stdout: ckpt=$(gfm pretrain ...)
    if not (ctx.obj and ctx.obj.get("quiet")):
        click.echo(
            f"pretrained {result.steps} steps, final loss {result.final_loss:.4f}, "
            f"{result.chips_per_second:.1f} chips/s -> {result.checkpoint}",
            err=True,
        )
