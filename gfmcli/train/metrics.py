"""Validation and test metrics: confusion-matrix scores for classes, error scores for regression.

Definitions (docs/training.md repeats them), from a K x K confusion matrix ``cm[truth, pred]``
over labelled pixels (or chips) only, ``ignore_index`` excluded:

* overall accuracy = trace / total;
* IoU_k = TP_k / (TP_k + FP_k + FN_k); F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k);
* a class absent from both truth and prediction has an undefined (NaN) IoU and F1; it is
  reported as NaN and **excluded** from the class means (mIoU, macro F1). A class present in the
  truth but never predicted (or predicted but absent) scores 0 and counts. The reference code's
  finalized mIoU counted NaN as 0 (penalising classes a small validation split lacks) and its
  later version used a micro average, which is not mIoU at all (less_vit.md §5.2).

Counts are int64 and summed across processes before scoring, so distributed validation gives the
same numbers as one process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from gfmcli.scores import scores_from_confusion
from gfmcli.train.labels import IGNORE_INDEX


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """(K, K) int64 counts, rows = truth, columns = prediction, ignored targets left out."""
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass
class ConfusionMeter:
    """Accumulates a confusion matrix over batches; ``all_reduce`` sums it across processes."""

    num_classes: int
    names: list[str] | None = None
    ignore_index: int = IGNORE_INDEX
    counts: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.counts = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``logits`` (B, K, ...) and integer ``target`` (B, ...)."""
        pred = logits.argmax(dim=1)
        self.counts += confusion_matrix(
            pred.cpu(), target.cpu(), self.num_classes, self.ignore_index
        )

    def all_reduce(self, reduce) -> None:
        self.counts = reduce(self.counts)

    def compute(self) -> dict[str, Any]:
        return scores_from_confusion(self.counts.numpy(), self.names)


@dataclass
class RegressionMeter:
    """RMSE, MAE and R² over valid (finite-target) pixels, accumulated in float64."""

    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(5, dtype=torch.float64))

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` (B, 1, ...) or (B, ...) and ``target`` (B, ...), NaN targets ignored."""
        pred = pred.detach().reshape(target.shape).double().cpu()
        target = target.double().cpu()
        keep = torch.isfinite(target)
        err = pred[keep] - target[keep]
        y = target[keep]
        self.sums += torch.stack(
            [
                torch.tensor(float(keep.sum()), dtype=torch.float64),
                err.abs().sum(),
                (err**2).sum(),
                y.sum(),
                (y**2).sum(),
            ]
        )

    def all_reduce(self, reduce) -> None:
        self.sums = reduce(self.sums)

    def compute(self) -> dict[str, Any]:
        n, abs_sum, sq_sum, y_sum, y2_sum = self.sums.tolist()
        if n == 0:
            return {"rmse": math.nan, "mae": math.nan, "r2": math.nan, "pixels": 0}
        variance = y2_sum / n - (y_sum / n) ** 2
        mse = sq_sum / n
        return {
            "rmse": math.sqrt(mse),
            "mae": abs_sum / n,
            "r2": 1 - mse / variance if variance > 0 else math.nan,
            "pixels": int(n),
        }


HIGHER_IS_BETTER = {"miou": True, "accuracy": True, "f1": True, "rmse": False, "mae": False}
_METRIC_KEYS = {"miou": "miou", "accuracy": "overall_accuracy", "f1": "macro_f1"}


def score_batches(
    task: str,
    class_names: list[str],
    batches: Iterable[dict[str, Any]],
    forward: Callable[[dict[str, Any]], torch.Tensor],
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The one scoring loop, of fine-tuning's validation and of ``gfm finetune --evaluate``:
    ``forward(batch)`` per batch, targets masked where chips have no valid pixels (ignored
    classes, NaN values), counts summed with ``reduce`` across processes, then scored."""
    meter: Any
    if task == "regression":
        meter = RegressionMeter()
    else:
        meter = ConfusionMeter(len(class_names), list(class_names))
    for batch in batches:
        out = forward(batch)
        target = batch["target"]
        if task == "segmentation":
            target = torch.where(batch["valid"], target, IGNORE_INDEX)
        elif task == "regression":
            target = torch.where(batch["valid"], target, float("nan"))
        meter.update(out.float().cpu(), target)
    if reduce is not None:
        meter.all_reduce(reduce)
    return meter.compute()


def default_metric(task: str) -> str:
    """The validation metric that picks the best checkpoint when the config says ``auto``."""
    return {"segmentation": "miou", "classification": "accuracy", "regression": "rmse"}[task]


def metric_value(scores: dict[str, Any], metric: str) -> float:
    return float(scores[_METRIC_KEYS.get(metric, metric)])


def is_better(value: float, best: float | None, metric: str) -> bool:
    """True if ``value`` improves on ``best`` (NaN never improves; anything beats None)."""
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best
