"""Non-finite inputs on every backend available on the CPU.

NaN in x poisons exactly the outputs whose window covers it (in the output channels of its
group), as in the reference; +Inf and -Inf follow the reference's math: the basis is zero outside
the grid, so only the silu term remains, and torch's silu gives silu(+Inf) = +Inf and
silu(-Inf) = NaN."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels

from .helpers import TOLERANCE, make_inputs
from .test_reference import spec_kan_conv1d

BACKENDS = [
    b
    for b in ("cpu", "triton", "reference", "unfold")
    if b in mkcc_kernels.available_backends("cpu")
]
CONV = {"stride": 2, "padding": 3, "dilation": 2, "groups": 2}


def dtype_for(backend: str) -> torch.dtype:
    return torch.float32 if backend == "triton" else torch.float64


def expected_nan_mask(shape_out, position, channel, in_per_group, out_per_group, k, conv):
    """[B, C_out, T_out] True where an output window reads x[0, channel, position]."""
    mask = torch.zeros(shape_out, dtype=torch.bool)
    group = channel // in_per_group
    for t in range(shape_out[-1]):
        for j in range(k):
            if t * conv["stride"] + j * conv["dilation"] - conv["padding"] == position:
                mask[0, group * out_per_group : (group + 1) * out_per_group, t] = True
    return mask


@pytest.mark.parametrize("backend", BACKENDS)
# With stride 2, dilation 2 and padding 3 the windows read the odd positions only.
@pytest.mark.parametrize("position", [1, 7, 23], ids=["first", "middle", "last"])
def test_nan_poisons_exactly_the_covering_windows(backend, position):
    k = 3  # C_in 4, C_out 6, groups 2: channel 3 is in group 1, read by output channels 3..5
    x, base, spline = make_inputs(2, 4, 6, 25, k, CONV, 5, dtype_for(backend), seed=4)
    x[0, 3, position] = float("nan")
    out = mkcc_kernels.kan_conv1d(x, base, spline, backend=backend, **CONV)
    expected = expected_nan_mask(out.shape, position, 3, 2, 3, k, CONV)
    assert expected.any()
    assert torch.equal(torch.isnan(out), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_infinities_follow_the_spec(backend):
    """Against the spec's formula evaluated element by element in Python floats (so the
    reference backend is checked too, not compared with itself)."""
    dtype = dtype_for(backend)
    x, base, spline = make_inputs(2, 4, 6, 25, 3, CONV, 5, dtype, seed=5)
    x[0, 0, 5] = float("inf")
    x[0, 1, 11] = float("-inf")
    x[1, 2, 21] = float("inf")
    x[1, 3, 3] = float("-inf")
    out = mkcc_kernels.kan_conv1d(x, base, spline, backend=backend, **CONV)
    pad = CONV["padding"]
    geometry = (CONV["stride"], pad, pad, CONV["dilation"], CONV["groups"])
    ref = spec_kan_conv1d(x.double(), base.double(), spline.double(), *geometry, 3, -1.0, 1.0)
    for name, pattern in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        assert torch.equal(pattern(out), pattern(ref)), f"{name} pattern differs"
    assert torch.isnan(ref).any() and torch.isinf(ref).any()
    finite = torch.isfinite(ref)
    scale = max(1.0, float(ref[finite].abs().max()))
    error = float((out.double() - ref)[finite].abs().max())
    assert error <= TOLERANCE[dtype] * scale, error


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_far_outside_the_grid_leave_only_silu(backend):
    """Large finite inputs: every basis function is zero, out = sum base * silu(x)."""
    dtype = dtype_for(backend)
    x, base, spline = make_inputs(1, 3, 4, 12, 3, {}, 5, dtype, seed=6)
    x = torch.where(x > 0, torch.full_like(x, 1e4), torch.full_like(x, -1e4))
    out = mkcc_kernels.kan_conv1d(x, base, spline, padding=1, backend=backend)
    silu_only = torch.nn.functional.conv1d(
        torch.nn.functional.silu(x.double()), base.double(), padding=1
    )
    scale = float(silu_only.abs().max())
    assert float((out.double() - silu_only).abs().max()) <= TOLERANCE[dtype] * scale
