"""``gfm embed -o x.parquet``: GeoParquet window embeddings, streamed in row groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from gfmcli.cli.main import cli
from gfmcli.contract import contract_hash
from gfmcli.io import geoparquet
from gfmcli.model.checkpoint import read_checkpoint


def _embed(model, *args):
    return CliRunner().invoke(
        cli,
        ["-q", "embed", "-m", str(model), "--window", "32", "--overlap", "0", *args],
        catch_exceptions=False,
    )


def test_geoparquet_rows_match_the_geopackage_vectors(tiny_model, s2_scene, tmp_path):
    import geopandas as gpd
    import pyarrow.parquet as pq

    src = s2_scene()
    parquet, gpkg = tmp_path / "emb.parquet", tmp_path / "emb.gpkg"
    assert _embed(tiny_model, str(src), "-o", str(parquet)).exit_code == 0
    assert _embed(tiny_model, str(src), "-o", str(gpkg)).exit_code == 0

    table = gpd.read_parquet(parquet)
    reference = gpd.read_file(gpkg)
    assert table.crs.to_epsg() == 32632
    assert len(table) == len(reference) == 9  # 3 x 3 windows of 32 px over 70 x 90
    assert list(zip(table.row_off, table.col_off, strict=True)) == list(
        zip(reference.row_off, reference.col_off, strict=True)
    )
    vectors = np.stack(table.embedding.to_numpy())
    assert vectors.shape == (9, 24) and vectors.dtype == np.float32
    columns = [c for c in reference.columns if c.startswith("e") and c[1:].isdigit()]
    np.testing.assert_allclose(vectors, reference[columns].to_numpy(), rtol=1e-6, atol=1e-6)
    assert table.geometry.geom_equals(reference.geometry).all()
    # windows on the 16 px patch grid (5 x 6 patches), the last ones flush with the grid's edge
    # and their footprints clipped to the raster: rows 48..70, columns 64..90
    assert set(table.width) == {32, 26} and set(table.height) == {32, 22}

    contract = read_checkpoint(tiny_model).contract
    assert set(table.source) == {str(src)} and set(table.model) == {contract.model_name}
    assert set(table.contract_hash) == {contract_hash(contract)}
    assert set(table["pool"]) == {"mean"}

    file = pq.ParquetFile(parquet)
    assert str(file.schema_arrow.field("embedding").type) == "fixed_size_list<element: float>[24]"
    geo = json.loads(file.metadata.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    column = geo["columns"]["geometry"]
    assert column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 32632}
    np.testing.assert_allclose(column["bbox"], table.total_bounds)
    bbox = pq.read_table(parquet, columns=["bbox"]).column("bbox").to_pylist()
    assert bbox[0] == dict(
        zip(("xmin", "ymin", "xmax", "ymax"), table.geometry[0].bounds, strict=True)
    )


def test_rows_are_written_in_row_groups_as_windows_finish(
    tiny_model, s2_scene, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    monkeypatch.setattr(geoparquet, "ROW_GROUP_ROWS", 2)
    out = tmp_path / "emb.parquet"
    assert _embed(tiny_model, str(s2_scene()), "-o", str(out)).exit_code == 0
    file = pq.ParquetFile(out)
    assert file.metadata.num_rows == 9 and file.metadata.num_row_groups == 5


def test_a_failure_leaves_no_parquet_and_no_temporary(tiny_model, s2_scene, tmp_path, monkeypatch):
    real_flush = geoparquet.EmbeddingTableWriter._flush
    calls = []

    def failing_flush(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_flush(self)

    monkeypatch.setattr(geoparquet, "ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(geoparquet.EmbeddingTableWriter, "_flush", failing_flush)
    src = s2_scene()
    result = _embed(tiny_model, str(src), "-o", str(tmp_path / "emb.parquet"))
    assert result.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def test_folder_mode_names_and_predict_refuses_parquet(tiny_model, s2_scene, tmp_path):
    src = s2_scene()
    out = tmp_path / "embeddings"
    result = _embed(tiny_model, str(src), "-o", str(out), "--format", "parquet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "scene.emb.parquet")

    refused = CliRunner().invoke(
        cli, ["-q", "predict", "-m", str(tiny_model), str(src), "-o", str(tmp_path / "m.parquet")]
    )
    assert refused.exit_code == 5  # the -o is wrong, not the scene
    assert "gfm embed" in refused.stderr and not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize("pool", ["cls"])
def test_cls_pooling_is_recorded(tiny_model, s2_scene, tmp_path, pool):
    import geopandas as gpd

    out = tmp_path / "emb.parquet"
    assert _embed(tiny_model, str(s2_scene()), "-o", str(out), "--pool", pool).exit_code == 0
    assert set(gpd.read_parquet(out)["pool"]) == {pool}
