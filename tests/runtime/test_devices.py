"""Device specs and autocast policy, with CUDA availability faked by monkeypatching."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gfmcli.errors import UsageError
from gfmcli.runtime import devices
from gfmcli.runtime.devices import autocast_context, inference_precision, resolve_devices


def _fake_cuda(monkeypatch, count: int, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)


def test_auto_without_cuda_is_cpu(monkeypatch):
    _fake_cuda(monkeypatch, 0)
    assert resolve_devices("auto") == [torch.device("cpu")]
    assert resolve_devices(" CPU ") == [torch.device("cpu")]


def test_auto_and_cuda_take_every_visible_gpu(monkeypatch):
    _fake_cuda(monkeypatch, 3)
    expected = [torch.device("cuda", i) for i in range(3)]
    assert resolve_devices("auto") == expected
    assert resolve_devices("cuda") == expected
    assert resolve_devices("cpu") == [torch.device("cpu")]


def test_explicit_indices(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    assert resolve_devices("cuda:1") == [torch.device("cuda", 1)]
    assert resolve_devices("cuda:1, 0") == [torch.device("cuda", 1), torch.device("cuda", 0)]


@pytest.mark.parametrize(
    ("spec", "count", "match"),
    [
        ("cuda", 0, "no CUDA device is visible"),
        ("cuda:0", 0, "no CUDA device is visible"),
        ("cuda:2", 2, "GPU 2 does not exist; 2 visible"),
        ("cuda:0,0", 2, "twice"),
        ("cuda:x", 2, "'x' is not a GPU index"),
        ("cudax", 2, "unknown device"),
        ("gpu", 2, "unknown device 'gpu'"),
        ("mps", 0, "unknown device"),
    ],
)
def test_bad_specs(monkeypatch, spec, count, match):
    _fake_cuda(monkeypatch, count)
    with pytest.raises(UsageError, match=match):
        resolve_devices(spec)


def test_cpu_precisions():
    cpu = torch.device("cpu")
    assert isinstance(autocast_context(cpu, "fp32"), contextlib.nullcontext)
    assert isinstance(autocast_context(cpu, "auto"), contextlib.nullcontext)
    ctx = autocast_context(cpu, "bf16")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    with ctx:
        out = torch.ones(4, 4) @ torch.ones(4, 4)
    assert out.dtype == torch.bfloat16
    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        autocast_context(cpu, "fp16")
    with pytest.raises(UsageError, match="unknown precision 'half'"):
        autocast_context(cpu, "half")


@pytest.mark.parametrize("native", [True, False])
def test_inference_auto_on_the_cpu_is_bf16_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert inference_precision(cpu, "auto") == ("bf16" if native else "fp32")
    assert inference_precision(cpu, "fp32") == "fp32"  # always available
    assert inference_precision(cpu, "bf16") == "bf16"
    assert inference_precision(torch.device("cuda", 0), "auto") == "auto"
    # training keeps fp32 on the CPU under auto
    assert isinstance(autocast_context(cpu, "auto"), contextlib.nullcontext)


def test_native_bf16_detection_follows_the_cpu_flags(monkeypatch):
    devices.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert devices.cpu_has_native_bf16() is False
    devices.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert devices.cpu_has_native_bf16() is True
    devices.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize(
    ("precision", "bf16", "dtype"),
    [
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float16),
        ("bf16", True, torch.bfloat16),
        ("fp16", True, torch.float16),
    ],
)
def test_cuda_precisions(monkeypatch, precision, bf16, dtype):
    _fake_cuda(monkeypatch, 1, bf16=bf16)
    ctx = autocast_context(torch.device("cuda", 0), precision)
    assert isinstance(ctx, torch.autocast)
    assert ctx.device == "cuda" and ctx.fast_dtype == dtype


def test_cuda_fp32_and_unsupported_bf16(monkeypatch):
    _fake_cuda(monkeypatch, 1, bf16=False)
    gpu = torch.device("cuda", 0)
    assert isinstance(autocast_context(gpu, "fp32"), contextlib.nullcontext)
    with pytest.raises(UsageError, match="bf16 is not supported on cuda:0"):
        autocast_context(gpu, "bf16")
