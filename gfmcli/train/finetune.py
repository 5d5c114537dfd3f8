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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gfmcli.contract import ClassInfo
from gfmcli.errors import BandContractError, ConfigError, InputError
from gfmcli.runtime import distributed as D
from gfmcli.train.base import Trainer
from gfmcli.train.config import ARCHITECTURE_KEYS, FinetuneConfig, encoder_overrides
from gfmcli.train.datasets import (
    ChipDataset,
    ChipFolder,
    GroupedBatchSampler,
    collate,
    open_chip_folder,
)
from gfmcli.train.labels import IGNORE_INDEX
from gfmcli.train.metrics import default_metric, is_better, metric_value, score_batches
from gfmcli.train.optim import build_optimizer, lr_at, set_lr
from gfmcli.train.run import BEST, VAL_METRICS, json_safe, model_inputs

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


def resolve_classes(cfg: FinetuneConfig, folders: list[ChipFolder]) -> tuple[ClassInfo, ...]:
    """The output classes: ``[[classes]]`` from the config, else the chips' class list; an
    InputError if chips hold class ids the list lacks."""
    if cfg.model.task == "regression":
        return ()
    if cfg.classes:
        classes = tuple(ClassInfo(c.id, c.name, c.color) for c in cfg.classes)
    else:
        merged: dict[int, ClassInfo] = {}
        for folder in folders:
            for c in folder.meta.get("classes", []):
                merged.setdefault(
                    int(c["id"]), ClassInfo(int(c["id"]), c["name"], tuple(c["color"]))
                )
        classes = tuple(merged[i] for i in sorted(merged))
    ids = {c.id for c in classes}
    if len(ids) != len(classes):
        raise ConfigError("[[classes]] lists the same class id twice")
    for folder in folders:
        present = set(folder.meta.get("class_ids_present", []))
        unknown = sorted(present - ids)
        if unknown:
            raise InputError(
                f"{folder.path}: labels hold class id(s) {', '.join(map(str, unknown))} that are "
                f"not in the class list ({', '.join(map(str, sorted(ids)))}); add them to "
                "[[classes]] or fix the labels"
            )
    if len(classes) < 2 and cfg.model.task != "regression":
        raise InputError(f"{cfg.model.task} needs at least 2 classes; found {len(classes)}")
    return classes


def _check_folders(cfg: FinetuneConfig, folders: list[ChipFolder]) -> None:
    want = "regression" if cfg.model.task == "regression" else "classes"
    for folder in folders:
        kind = folder.meta.get("task")
        if kind is None:
            raise InputError(f"{folder.path}: chips have no labels; run `gfm tile --labels ...`")
        if kind != want:
            what = "numeric targets" if kind == "regression" else "class ids"
            raise InputError(
                f"{folder.path}: labels are {what} but model.task is {cfg.model.task!r}"
            )


def build_task_model(cfg: FinetuneConfig, num_outputs: int, classes: Sequence[ClassInfo] = ()):
    """The task model, with the pretrained encoder's weights when ``model.pretrained`` is set.

    A pretrained checkpoint with a head of the same task and the same classes (ids and names,
    in order) keeps its head too; any other head is dropped with a warning that says so, so
    fine-tuning shipped segmentation weights on other classes never loses the head silently.
    """
    from gfmcli.model.checkpoint import load_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for

    head: dict[str, Any] = {}
    if cfg.model.head_width is not None and cfg.model.task != "classification":
        head = {"width": cfg.model.head_width, "min_width": min(32, cfg.model.head_width)}
    if cfg.model.pretrained is None:
        overrides = encoder_overrides(cfg.model)
        if cfg.model.channel_embedding is not None:  # ablation switch, fine-tuning only
            overrides["channel_embedding"] = cfg.model.channel_embedding
        config = model_config_for(
            cfg.model.name,
            cfg.model.task,
            num_outputs=num_outputs,
            encoder_overrides=overrides,
            **head,
        )
        return build_model(config), None
    given = [
        k for k in (*ARCHITECTURE_KEYS, "channel_embedding") if getattr(cfg.model, k) is not None
    ]
    if given:
        raise ConfigError(
            f"model.{given[0]} cannot be set with model.pretrained: the architecture comes from "
            "the pretrained checkpoint"
        )
    pretrained, contract = load_checkpoint(cfg.model.pretrained)
    spec = pretrained.spec
    overrides = {**spec.encoder_overrides, "drop_path_rate": cfg.model.drop_path}
    config = model_config_for(
        spec.encoder, cfg.model.task, num_outputs=num_outputs, encoder_overrides=overrides, **head
    )
    model = build_model(config)
    model.encoder.load_state_dict(pretrained.encoder.state_dict(), strict=True)
    if pretrained.head is not None:
        _reuse_head(model, pretrained, contract, cfg, classes)
    return model, contract


def _reuse_head(model, pretrained, contract, cfg: FinetuneConfig, classes) -> None:
    """Load ``pretrained``'s head into ``model`` when task and classes match; else warn."""
    source = cfg.model.pretrained
    theirs = [(c.id, c.name) for c in contract.classes]
    ours = [(c.id, c.name) for c in classes]
    if contract.task == cfg.model.task and theirs == ours:
        try:
            model.head.load_state_dict(pretrained.head.state_dict(), strict=True)
        except RuntimeError:  # another head width: the classes match but the shapes do not
            pass
        else:
            log.info(
                "%s: keeping its %s head (the same %d classes)", source, contract.task, len(ours)
            )
            return
    names = ", ".join(name for _, name in theirs) or "no classes"
    log.warning(
        "%s: its %s head (%s) does not match this run's %s classes, so it is dropped and a new "
        "head is trained on the pretrained encoder",
        source,
        contract.task,
        names,
        cfg.model.task,
    )


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
        _check_folders(cfg, self.folders)
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
    _check_folders(cfg, folders)
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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores without the bulky confusion matrix (for logs and provenance)."""
    return {k: v for k, v in scores.items() if k != "confusion_matrix"}
