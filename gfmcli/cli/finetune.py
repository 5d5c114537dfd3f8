"""``gfm finetune``: task fine-tuning (or linear probing) configured by a TOML file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gfmcli.cli.options import (
    collect_overrides,
    command_line,
    config_option,
    train_options,
)


@click.command(name="finetune")
@config_option
@click.option(
    "--evaluate", is_flag=True, help="Score a checkpoint on the test split instead of training."
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Checkpoint for --evaluate [default: OUTPUT/best.pt].",
)
@click.option("--split", "split_name", help="Split for --evaluate [default: data.test_split].")
@click.option(
    "--metrics",
    "metrics_path",
    type=click.Path(path_type=Path),
    help="JSON file for --evaluate [default: OUTPUT/<split>_metrics.json].",
)
@train_options("epochs")
@click.pass_context
def finetune(ctx, config_path, evaluate, checkpoint, split_name, metrics_path, **options) -> None:
    """Fine-tune a segmentation, classification or regression model on labelled chips.

    The best epoch on the validation split is saved as OUTPUT/best.pt with the full model
    contract (bands, normalisation, classes), ready for `gfm predict --model OUTPUT/best.pt`.
    The test split is only used by --evaluate.
    """
    from gfmcli.tomlconf import load_config
    from gfmcli.train.config import FinetuneConfig
    from gfmcli.train.finetune import finetune as run_finetune
    from gfmcli.train.scoring import evaluate as run_evaluate

    overrides = collect_overrides(options, steps_key="train.epochs")
    if ctx.obj and ctx.obj.get("quiet"):
        overrides["train.progress"] = False
    cfg = load_config(config_path, FinetuneConfig, overrides)
    if evaluate:
        scores = run_evaluate(cfg, checkpoint, split_name, metrics_path)
        brief = {
            k: scores[k]
            for k in ("overall_accuracy", "miou", "macro_f1", "rmse", "mae", "r2")
            if k in scores
        }
        click.echo(json.dumps({"split": scores["split"], **brief}))
        return
    command = command_line(ctx)
    result = run_finetune(cfg, command=command)
    click.echo(str(result.checkpoint))  # the result on stdout: ckpt=$(gfm finetune ...)
    if ctx.obj and ctx.obj.get("quiet"):
        return  # -q: errors only
    click.echo(
        f"best epoch {result.best_epoch}/{result.epochs}: validation {result.metric} "
        f"{result.best_value:.4f} -> {result.checkpoint}",
        err=True,
    )
