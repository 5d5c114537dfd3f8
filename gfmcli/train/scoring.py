"""``gfm finetune --evaluate``: a checkpoint scored on the test split, once training is done.

Kept apart from training so the test split is read only here (model selection in
``train/finetune.py`` sees the validation split alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from gfmcli.atomic import atomic_write
from gfmcli.errors import BandContractError, InputError, OutputError
from gfmcli.runtime import distributed as D
from gfmcli.train.config import FinetuneConfig
from gfmcli.train.datasets import ChipDataset, GroupedBatchSampler, collate, open_chip_folder
from gfmcli.train.metrics import score_batches
from gfmcli.train.run import BEST, is_scores_file, json_safe, model_inputs
from gfmcli.train.task_model import check_labels


def evaluate(
    cfg: FinetuneConfig,
    checkpoint: Path | None = None,
    split: str | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """Score ``checkpoint`` (default ``output.dir/best.pt``) on the test split; write JSON.

    ``output`` (default ``output.dir/<split>_metrics.json``) is checked before any work: it
    may not be the checkpoint or lie in a chip folder it reads, and a file already there is
    replaced only if it is an earlier score of gfm's (:func:`~gfmcli.train.run.is_scores_file`).
    """
    from gfmcli.model.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint or Path(cfg.output.dir) / BEST)
    split = split or cfg.data.test_split
    output = Path(output or Path(cfg.output.dir) / f"{split}_metrics.json")
    _check_scores_path(output, checkpoint, [Path(p) for p in cfg.data.chips])
    model, contract = load_checkpoint(checkpoint)
    folders = [open_chip_folder(p) for p in cfg.data.chips]
    check_labels(cfg, folders)
    for folder in folders:
        if folder.band_names != contract.band_names:
            raise BandContractError(
                f"{folder.path}: bands {', '.join(folder.band_names)} differ from the "
                f"checkpoint's {', '.join(contract.band_names)}"
            )
    ctx = D.DistContext(0, 1, 0, torch.device("cpu"))
    dataset = ChipDataset(folders, [split], contract.task, [c.id for c in contract.classes])
    if len(dataset) == 0:
        raise InputError(f"no chips in split {split!r} of {', '.join(cfg.data.chips)}")
    sampler = GroupedBatchSampler(dataset.group_of, cfg.data.batch_size, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

    def forward(batch: dict[str, Any]) -> torch.Tensor:
        return model(**model_inputs(batch, dataset.groups[batch["group"]], ctx.device))

    names = [c.name for c in contract.classes]
    with torch.no_grad():
        computed = score_batches(contract.task, names, loader, forward)
    scores = {"split": split, "checkpoint": str(checkpoint), "chips": len(dataset), **computed}
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output}: cannot create its folder ({exc})") from exc
    with atomic_write(output, "w", what="scores") as handle:
        handle.write(json.dumps(json_safe(scores), indent=1) + "\n")
    return scores


def _check_scores_path(output: Path, checkpoint: Path, chip_folders: list[Path]) -> None:
    target = output.resolve()
    if target == checkpoint.resolve():
        raise OutputError(f"{output}: is the checkpoint being scored; choose another --metrics")
    for folder in chip_folders:
        if target.is_relative_to(folder.resolve()):
            raise OutputError(
                f"{output}: lies in the chip folder {folder}, which --evaluate reads; choose "
                "another --metrics"
            )
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; --metrics names a JSON file")
    if output.exists() and not is_scores_file(output):
        raise OutputError(
            f"{output}: exists and is not a score file of gfm finetune --evaluate, so gfm "
            "will not replace it; move it away or choose another --metrics"
        )
