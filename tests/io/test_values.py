"""The value checks' statistics: the integer median equals NumPy's float64 one bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from gfmcli.io.values import _integer_median


@pytest.mark.parametrize("dtype", ["uint16", "int16", "uint8", "int32"])
@pytest.mark.parametrize("size", [1, 2, 7, 1000, 1001])
@pytest.mark.parametrize(("scale", "offset"), [(1e-4, -0.1), (2.75e-5, -0.2), (-0.3, 0.7), (1, 0)])
def test_integer_median_is_numpys_float64_median_bit_for_bit(dtype, size, scale, offset):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(size)
    values = rng.integers(max(info.min, -20000), min(info.max, 20000), size).astype(dtype)
    expected = float(np.median(values.astype(np.float64) * scale + offset))
    assert _integer_median(values, scale, offset) == expected
