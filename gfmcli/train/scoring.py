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

from gfmcli.errors import BandContractError, InputError
from gfmcli.runtime import distributed as D
from gfmcli.train.config import FinetuneConfig
from gfmcli.train.datasets import ChipDataset, GroupedBatchSampler, collate, open_chip_folder
from gfmcli.train.metrics import score_batches
from gfmcli.train.run import BEST, json_safe, model_inputs
from gfmcli.train.task_model import check_labels


def evaluate(
    cfg: FinetuneConfig,
    checkpoint: Path | None = None,
    split: str | None = None,
    output: Path | None = None,
) -> dict[str, Any]:
    """Score ``checkpoint`` (default ``output.dir/best.pt``) on the test split; write JSON."""
    from gfmcli.model.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint or Path(cfg.output.dir) / BEST)
    split = split or cfg.data.test_split
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
    output = Path(output or Path(cfg.output.dir) / f"{split}_metrics.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(json_safe(scores), indent=1) + "\n")
    return scores
