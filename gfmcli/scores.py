"""Scores from a confusion matrix: the one rulebook for validation, ``--evaluate`` and
``gfm evaluate`` (numpy only, so scoring a map needs no torch).

From a K x K confusion matrix ``cm[truth, pred]``: overall accuracy = trace / total;
IoU_k = TP_k / (TP_k + FP_k + FN_k); F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k). A class absent from
both truth and prediction has an undefined (NaN) IoU and F1 and is **excluded** from the class
means (mIoU, macro F1); see ``gfmcli.train.metrics`` for why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def scores_from_confusion(cm: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
    """Overall accuracy, per-class IoU/F1/precision/recall, mIoU and macro F1 (NaN-aware)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    total = cm.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    names = names or [str(i) for i in range(len(cm))]
    return {
        "overall_accuracy": _num(tp.sum() / total) if total else math.nan,
        "miou": _nanmean(iou),
        "macro_f1": _nanmean(f1),
        "per_class": {
            name: {
                "iou": _num(iou[i]),
                "f1": _num(f1[i]),
                "precision": _num(precision[i]),
                "recall": _num(recall[i]),
                "support": int(cm[i].sum()),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "pixels": int(total),
    }


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _num(value: float) -> float:
    return float(value)
