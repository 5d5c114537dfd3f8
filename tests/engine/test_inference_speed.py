"""Inference-time behaviour that makes CPU runs fast without changing the maps (issue #10):
CPU replicas in the device pool, and layers that stay in the autocast dtype in eval mode."""

import threading
from typing import ClassVar

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from gfmcli.engine.inference import DevicePool, cpu_layout
from gfmcli.engine.jobs import Job, run_jobs
from gfmcli.engine.options import MapOptions
from gfmcli.model.bands import Bands
from gfmcli.model.checkpoint import load_checkpoint
from gfmcli.model.layers import LayerScale


@pytest.fixture
def torch_threads():
    """Set torch's intra-op thread count for a test and restore it afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


class Recorder(nn.Module):
    """A stand-in model that returns its input and records, per call, the calling thread and
    torch's thread count there (class attributes: the pool's deep copies share them)."""

    calls: ClassVar[list[tuple[int, int]]] = []
    lock = threading.Lock()

    def forward(self, x, **kwargs):
        with self.lock:
            self.calls.append((threading.get_ident(), torch.get_num_threads()))
        return x


@pytest.mark.parametrize(
    ("threads", "layout"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 1)), (16, (2, 8))]
)
def test_cpu_layout(threads, layout):
    assert cpu_layout(threads) == layout


def test_cpu_pool_runs_two_single_threaded_replicas_in_order(torch_threads):
    torch_threads(2)
    Recorder.calls = []
    batches = [np.full((1, 2, 4, 4), i, dtype=np.float32) for i in range(6)]
    bands = Bands.of([490.0, 560.0], ["optical"] * 2, 10.0)
    with DevicePool(Recorder(), [torch.device("cpu")], "fp32") as pool:
        outputs = [out for _, out in pool.map_ordered(batches, lambda b: b, bands, "values")]
        assert pool.precisions == ["fp32"]
    assert [float(out[0, 0, 0, 0]) for out in outputs] == [0, 1, 2, 3, 4, 5]  # in order
    assert len({name for name, _ in Recorder.calls}) == 2
    assert {count for _, count in Recorder.calls} == {1}
    assert torch.get_num_threads() == 2  # restored on close


def test_single_thread_pool_keeps_one_replica(torch_threads):
    torch_threads(1)
    Recorder.calls = []
    batches = [np.zeros((1, 2, 4, 4), dtype=np.float32)] * 4
    bands = Bands.of([490.0, 560.0], ["optical"] * 2, 10.0)
    with DevicePool(Recorder(), [torch.device("cpu")], "fp32") as pool:
        list(pool.map_ordered(batches, lambda b: b, bands, "values"))
    assert len({name for name, _ in Recorder.calls}) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_map_does_not_depend_on_the_cpu_layout(
    tiny_model, s2_scene, tmp_path, torch_threads, precision
):
    model, contract = load_checkpoint(tiny_model)
    options = MapOptions(window=32, overlap=8, precision=precision)
    maps = []
    for threads in (1, 2):  # one replica, then two single-threaded ones
        torch_threads(threads)
        out = tmp_path / f"map-{threads}.tif"
        run_jobs([Job(str(s2_scene()), out, "tif")], model, contract, options, kind="predict")
        with rasterio.open(out) as done:
            maps.append(done.read(1))
    assert np.array_equal(maps[0], maps[1])


def test_layer_scale_stays_in_the_autocast_dtype_at_eval_only():
    scale = LayerScale(8, 0.5)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert scale.eval()(x).dtype == torch.bfloat16
    assert scale.train()(x).dtype == torch.float32  # training keeps the fp32 gain
    x32 = torch.randn(2, 8)
    assert torch.equal(scale.eval()(x32), x32 * scale.gamma)  # fp32: exactly as before
