"""Metrics against naive loop references, NaN-class handling and best-metric selection."""

from __future__ import annotations

import math

import numpy as np
import torch

from gfmcli.scores import scores_from_confusion
from gfmcli.train.metrics import ConfusionMeter, RegressionMeter, confusion_matrix, is_better


def naive_scores(pred: np.ndarray, truth: np.ndarray, k: int, ignore: int = 255):
    """Loop reference: per-class IoU/F1 with NaN when a class is in neither array."""
    keep = truth != ignore
    pred, truth = pred[keep], truth[keep]
    ious, f1s = [], []
    for c in range(k):
        tp = sum(1 for p, t in zip(pred, truth, strict=True) if p == c and t == c)
        fp = sum(1 for p, t in zip(pred, truth, strict=True) if p == c and t != c)
        fn = sum(1 for p, t in zip(pred, truth, strict=True) if p != c and t == c)
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan)
    acc = sum(1 for p, t in zip(pred, truth, strict=True) if p == t) / len(truth)
    return acc, ious, f1s


def test_scores_match_naive_reference_with_absent_and_ignored_classes():
    rng = np.random.default_rng(0)
    k = 5
    truth = rng.integers(0, 3, 400)  # classes 3 and 4 absent from the truth
    pred = np.where(rng.random(400) < 0.7, truth, rng.integers(0, 4, 400))  # 4 never predicted
    truth[rng.random(400) < 0.1] = 255
    cm = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(truth), k)
    scores = scores_from_confusion(cm.numpy())
    acc, ious, f1s = naive_scores(pred, truth, k)
    assert math.isclose(scores["overall_accuracy"], acc)
    got_iou = [scores["per_class"][str(c)]["iou"] for c in range(k)]
    np.testing.assert_allclose(got_iou, ious, equal_nan=True)
    assert math.isnan(got_iou[4]) and got_iou[3] == 0.0  # predicted-only class 3 counts as 0
    assert math.isclose(scores["miou"], np.nanmean(ious))
    assert math.isclose(scores["macro_f1"], np.nanmean(f1s))
    assert scores["pixels"] == int((truth != 255).sum())


def test_confusion_meter_accumulates_over_batches():
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(6, 3, 4, 4))).float()
    target = torch.from_numpy(rng.integers(0, 3, (6, 4, 4)))
    meter = ConfusionMeter(3)
    meter.update(logits[:2], target[:2])
    meter.update(logits[2:], target[2:])
    whole = confusion_matrix(logits.argmax(1), target, 3)
    assert torch.equal(meter.counts, whole)
    assert meter.counts.sum() == 96


def test_regression_meter_matches_numpy():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(3, 5, 5))
    target[0, 0, :] = np.nan
    pred = target + rng.normal(scale=0.3, size=target.shape)
    meter = RegressionMeter()
    meter.update(torch.from_numpy(pred[:1, None]), torch.from_numpy(target[:1]))
    meter.update(torch.from_numpy(pred[1:, None]), torch.from_numpy(target[1:]))
    ok = np.isfinite(target)
    err = pred[ok] - target[ok]
    got = meter.compute()
    assert math.isclose(got["rmse"], float(np.sqrt((err**2).mean())))
    assert math.isclose(got["mae"], float(np.abs(err).mean()))
    r2 = 1 - (err**2).sum() / ((target[ok] - target[ok].mean()) ** 2).sum()
    assert math.isclose(got["r2"], float(r2), rel_tol=1e-9)


def test_is_better_respects_direction_and_nan():
    assert is_better(0.5, 0.4, "miou") and not is_better(0.3, 0.4, "miou")
    assert is_better(1.0, 2.0, "rmse") and not is_better(3.0, 2.0, "rmse")
    assert is_better(0.1, None, "miou") and not is_better(math.nan, 0.1, "miou")
