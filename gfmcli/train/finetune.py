"""``gfm finetune``: a task model from a pretrained encoder (or from scratch), chosen on val.

Segmentation, classification (one class per chip: the majority label) and dense regression.
Full fine-tuning trains everything; linear probing freezes the encoder, runs it once over the
training and validation chips (eval mode, no augmentation) and trains only the head on the
cached tokens (less_vit.md §3.3). Cross-entropy ignores ``IGNORE_INDEX`` (unlabelled and nodata
pixels); regression's MSE ignores NaN targets and invalid pixels.

Model selection is on the **validation** split only (the reference code chose learning rates on
the test metric, §3.5): after each epoch the validation metric (``train.metric``; mIoU,
accuracy or RMSE by default) decides whether ``best.pt`` is replaced, and training stops after
``patience`` epochs without improvement. The test split is touched only by ``gfm finetune
--evaluate``. ``best.pt`` carries the whole contract (bands, wavelengths, GSD, scale/offset, the
chips' normalisation, classes and colours, provenance with command and configuration), so
``gfm predict --model best.pt`` needs nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gfmcli.errors import ConfigError, InputError
from gfmcli.runtime import distributed as D
from gfmcli.train.base import Trainer
from gfmcli.train.config import FinetuneConfig
from gfmcli.train.datasets import (
    ChipDataset,
    GroupedBatchSampler,
    collate,
)
from gfmcli.train.labels import IGNORE_INDEX
from gfmcli.train.metrics import default_metric, is_better, metric_value, score_batches
from gfmcli.train.optim import build_optimizer, lr_at, set_lr
from gfmcli.train.run import BEST, VAL_METRICS, json_safe, model_inputs
from gfmcli.train.task_model import build_task_model, check_labels, resolve_classes

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    """Summary of a fine-tuning run."""

    epochs: int
    best_epoch: int
    metric: str
    best_value: float
    val_scores: dict[str, Any]
    checkpoint: Path
    seconds: float


def _loss(task: str, out: torch.Tensor, batch: dict, weights: torch.Tensor | None) -> torch.Tensor:
    target = batch["target"].to(out.device)
    if task == "regression":
        valid = torch.isfinite(target) & batch["valid"].to(out.device)
        pred = out[:, 0].float()
        return F.mse_loss(pred[valid], target[valid]) if valid.any() else pred.sum() * 0.0
    if task == "segmentation":
        target = torch.where(batch["valid"].to(out.device), target, IGNORE_INDEX)
    return F.cross_entropy(out.float(), target, weight=weights, ignore_index=IGNORE_INDEX)


def finetune(cfg: FinetuneConfig, *, command: str = "") -> FinetuneResult:
    """Fine-tune (or linear-probe) as configured; writes ``best.pt`` chosen on validation."""
    return _Finetuner.launch(cfg, command=command)


class _Finetuner(Trainer):
    """An epoch of supervised steps, then validation decides ``best.pt`` and early stopping."""

    cfg: FinetuneConfig

    def __init__(self, cfg: FinetuneConfig, ctx: D.DistContext, command: str) -> None:
        super().__init__(cfg, ctx, command)
        self.task = cfg.model.task
        check_labels(cfg, self.folders)
        self.classes = resolve_classes(cfg, self.folders)
        class_ids = [c.id for c in self.classes]
        seed = cfg.train.seed
        self.train_set = ChipDataset(
            self.folders,
            [cfg.data.train_split],
            self.task,
            class_ids,
            augment=cfg.data.augment,
            seed=seed,
        )
        self.val_set = ChipDataset(self.folders, [cfg.data.val_split], self.task, class_ids)
        for split, ds in (
            (cfg.data.train_split, self.train_set),
            (cfg.data.val_split, self.val_set),
        ):
            if len(ds) == 0:
                raise InputError(
                    f"no chips in split {split!r} of {', '.join(cfg.data.chips)}; re-tile with a "
                    "--split that gives it blocks (or set data.train_split/val_split)"
                )
        self.weights = self._class_weights()
        self.open_run_dir(resumable=False)
        self.model, self.pretrained_contract = build_task_model(
            cfg, len(self.classes) if self.classes else 1, self.classes or ()
        )
        self.model.to(ctx.device)
        self.probe = cfg.model.mode == "linear_probe"
        if self.probe:
            self.model.freeze_encoder()
        self.trainable = self.model.head if self.probe else self.model
        self.optimizer = build_optimizer(self.trainable, cfg.optim)
        self.metric = default_metric(self.task) if cfg.train.metric == "auto" else cfg.train.metric
        if self.task == "regression" and self.metric not in ("rmse", "mae"):
            raise ConfigError(f"train.metric {self.metric!r} does not apply to regression")
        if self.task != "regression" and self.metric in ("rmse", "mae"):
            raise ConfigError(f"train.metric {self.metric!r} does not apply to {self.task}")

    def _class_weights(self) -> torch.Tensor | None:
        given = self.cfg.optim.class_weights
        if not given:
            return None
        names = [c.name for c in self.classes]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(
                f"optim.class_weights names unknown class(es) {', '.join(unknown)}; "
                f"classes are {', '.join(names)}"
            )
        return torch.tensor([given.get(n, 1.0) for n in names], dtype=torch.float32)

    def _sampler(self, dataset: ChipDataset, shuffle: bool) -> GroupedBatchSampler:
        return GroupedBatchSampler(
            dataset.group_of,
            self.cfg.data.batch_size,
            shuffle=shuffle,
            seed=self.cfg.train.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )

    def _loader(self, dataset: ChipDataset, sampler: GroupedBatchSampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.data.num_workers,
            generator=torch.Generator(),
        )

    def run(self) -> FinetuneResult:
        cfg, ctx = self.cfg, self.ctx
        train_sampler = self._sampler(self.train_set, True)
        val_sampler = self._sampler(self.val_set, False)
        if len(train_sampler) == 0 or len(val_sampler) == 0:
            raise InputError(
                f"too few chips for {ctx.world_size} process(es): need at least one batch of "
                "training and of validation chips per process"
            )
        train_loader = self._loader(self.train_set, train_sampler)
        val_loader = self._loader(self.val_set, val_sampler)
        if self.probe:
            train_batches = self._cache(train_loader)
            val_batches = self._cache(val_loader)
        net = self.wrap(self.trainable)
        weights = None if self.weights is None else self.weights.to(ctx.device)
        total_steps = cfg.train.epochs * len(train_sampler)
        step, best, best_epoch, best_scores, stale = 0, None, 0, {}, 0
        started = time.perf_counter()
        epoch = 0
        for epoch in range(1, cfg.train.epochs + 1):
            self.model.train()
            train_sampler.set_epoch(epoch)
            self.train_set.set_epoch(epoch)
            batches = self._shuffled(train_batches, epoch) if self.probe else train_loader
            losses = []
            for batch in self.progress(batches, desc=f"epoch {epoch}", unit="batch"):
                set_lr(self.optimizer, lr_at(step, total_steps, cfg.optim))
                with self.autocast:
                    out = self._forward(net, batch)
                loss = _loss(self.task, out, batch, weights)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.trainable.parameters(), cfg.optim.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                step += 1
            scores = self.validate(val_batches if self.probe else val_loader)
            value = metric_value(scores, self.metric)
            improved = is_better(value, best, self.metric)
            self.log.write(
                {
                    "epoch": epoch,
                    "step": step,
                    "train_loss": _mean(losses),
                    "val": _brief(scores),
                    self.metric: value,
                    "best": improved,
                }
            )
            if improved:
                best, best_epoch, best_scores, stale = value, epoch, scores, 0
                self._save(epoch, scores)
            else:
                stale += 1
            if D.broadcast_flag(stale >= cfg.train.patience, ctx):
                log.info("early stop after epoch %d (best epoch %d)", epoch, best_epoch)
                break
        seconds = time.perf_counter() - started
        if ctx.is_main:
            (self.out / VAL_METRICS).write_text(json.dumps(json_safe(best_scores), indent=1) + "\n")
        return FinetuneResult(
            epoch,
            best_epoch,
            self.metric,
            float("nan") if best is None else best,
            best_scores,
            self.out / BEST,
            seconds,
        )

    def _forward(self, net, batch: dict) -> torch.Tensor:
        if self.probe:
            tokens = batch["tokens"].to(self.ctx.device)
            pixels = batch["pixels"].to(self.ctx.device)
            return net(tokens, batch["grid"], pixels, batch["wavelengths"])
        group = self.train_set.groups[batch["group"]]
        return net(**model_inputs(batch, group, self.ctx.device))

    @torch.no_grad()
    def _cache(self, loader: DataLoader) -> list[dict]:
        """Linear probing: the frozen encoder's tokens for every batch, computed once."""
        from gfmcli.model.tasks import _all_bands

        cached = []
        self.model.eval()
        for batch in loader:
            group = self.train_set.groups[batch["group"]]
            inputs = model_inputs(batch, group, self.ctx.device)
            with self.autocast:
                out = self.model.encoder(**inputs)
            pixels, wavelengths = _all_bands(
                inputs["x"],
                inputs["wavelengths"],
                inputs.get("radar"),
                inputs.get("radar_wavelengths"),
                self.model.channel_embedding,
            )
            cached.append(
                {
                    **batch,
                    "tokens": out.tokens.float().cpu(),
                    "grid": out.grid_size,
                    "pixels": pixels.cpu(),
                    "wavelengths": wavelengths,
                }
            )
        return cached

    def _shuffled(self, batches: list[dict], epoch: int) -> list[dict]:
        order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(epoch))
        return [batches[i] for i in order]

    @torch.no_grad()
    def validate(self, batches) -> dict[str, Any]:
        """Scores on the validation batches, summed over processes."""
        self.model.eval()
        net = self.model.head if self.probe else self.model

        def forward(batch: dict[str, Any]) -> torch.Tensor:
            with self.autocast:
                return self._forward(net, batch)

        def reduce(counts: torch.Tensor) -> torch.Tensor:
            return D.all_reduce_sum(counts, self.ctx)

        names = [c.name for c in self.classes]
        return score_batches(self.task, names, batches, forward, reduce)

    def _save(self, epoch: int, scores: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        first = self.folders[0]
        if len({f.band_key for f in self.folders}) > 1:
            log.warning("several band sets: the checkpoint's contract describes %s", first.path)
        contract = self.contract(
            self.model,
            [first],
            model_name=self.model.spec.encoder,
            task=self.task,
            classes=self.classes,
            epoch=epoch,
            selected_on=f"validation {self.metric}",
            val_scores=json_safe(_brief(scores)),
            pretrained=self.cfg.model.pretrained,
            pretrained_provenance=(
                self.pretrained_contract.provenance if self.pretrained_contract else None
            ),
        )
        self.save(self.out / BEST, self.model, contract)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores without the bulky confusion matrix (for logs and provenance)."""
    return {k: v for k, v in scores.items() if k != "confusion_matrix"}
