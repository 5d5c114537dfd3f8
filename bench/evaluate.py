"""Evaluate a land-cover checkpoint on held-out simulated scenes, per sensor (not a test).

The scenes are simulated from seeds that no training run uses (5001...), and each is rendered
for several sensors from the same landscape, so the numbers compare sensors on equal ground.
Each image is mapped with the full ``gfm predict`` pipeline (``map_file``) and compared with
the label raster of the same sensor: overall accuracy, per-class IoU and mIoU (classes absent
from both truth and prediction are left out of the mean).

Usage::

    python bench/evaluate.py --model weights/landcover-tiny.pt --scenes 3 [--json out.json]

Cross-sensor use (as in the paper's NLCD-L test): the default weights were fine-tuned on
Sentinel-2 only; Landsat 8, the 4-band VNIR sensor and the EnMAP-like spectrometer are read by
wavelength without any retraining.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from gfmcli import MapOptions, load_model, map_rasters
from gfmcli.scores import scores_from_confusion
from gfmcli.simulate import simulate_scene

SENSORS = ("sentinel2-l2a", "landsat8", "vnir4", "enmap")


def evaluate(model_spec: str, scenes: int, size_m: float, window: int) -> dict:
    model, contract = load_model(model_spec)
    names = [c.name for c in contract.classes]
    k = len(names)
    totals = {sensor: np.zeros((k, k), np.int64) for sensor in SENSORS}
    with tempfile.TemporaryDirectory(prefix="gfm-eval-") as tmp:
        for i in range(scenes):
            paths = simulate_scene(Path(tmp) / f"s{i}", SENSORS, size_m=size_m, seed=5001 + i)
            for sensor in SENSORS:
                out = Path(tmp) / f"s{i}-{sensor}.tif"
                options = MapOptions(
                    window=window,
                    overlap=window // 8,
                    batch_size=2,
                    precision="fp32",
                    sensor=sensor,
                )
                map_rasters([paths[sensor]], out, options, model=(model, contract), device="cpu")
                with rasterio.open(out) as pred, rasterio.open(paths[f"{sensor}_labels"]) as ref:
                    p, t = pred.read(1).ravel(), ref.read(1).ravel()
                keep = (t < k) & (p < k)
                totals[sensor] += np.bincount(
                    t[keep].astype(np.int64) * k + p[keep], minlength=k * k
                ).reshape(k, k)
    return {sensor: scores_from_confusion(cm, names) for sensor, cm in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="landcover-tiny")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--size-m", type=float, default=3072.0)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = evaluate(args.model, args.scenes, args.size_m, args.window)
    names = list(next(iter(results.values()))["per_class"])
    print("| sensor | OA | mIoU | " + " | ".join(f"IoU {n}" for n in names) + " |")
    print("|---" * (3 + len(names)) + "|")
    for sensor, scores in results.items():
        ious = [scores["per_class"][n]["iou"] for n in names]
        cells = " | ".join("-" if v is None or v != v else f"{v:.2f}" for v in ious)
        print(f"| {sensor} | {scores['overall_accuracy']:.3f} | {scores['miou']:.3f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
