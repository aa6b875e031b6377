"""Property-based tests: random configurations (shape, stride, padding incl. "same", dilation,
groups, grid size, spline order, grid range, dtype, memory layout, empty batch) for every backend
available on the CPU, forward and all gradients against the fp64 reference.

A quick profile runs in `make test`; the thorough one (500 examples per backend) is marked slow.
A failure prints the drawn case and a snippet that reproduces it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import mkcc_kernels

from .helpers import TOLERANCE, assert_close, run_layer

BACKENDS = [b for b in ("cpu", "triton", "unfold") if b in mkcc_kernels.available_backends("cpu")]
# dtypes each backend runs on CPU tensors (the Triton interpreter runs the fp32 kernels).
DTYPES = {
    "cpu": [torch.float32, torch.float64],
    "triton": [torch.float32],
    "unfold": [torch.float32, torch.float64],
}
LAYOUTS = ("contiguous", "strided-time", "channels-last", "transposed-weights")


@dataclass(frozen=True)
class Case:
    batch: int
    in_channels: int
    out_channels: int
    length: int
    kernel_size: int
    stride: int
    padding: int | str
    dilation: int
    groups: int
    grid_size: int
    spline_order: int
    grid_range: tuple[float, float]
    dtype: torch.dtype
    layout: str
    seed: int

    def conv(self) -> dict:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "spline_order": self.spline_order,
            "grid_range": self.grid_range,
        }

    def reproducer(self, backend: str) -> str:
        return (
            f"# reproduce: backend={backend!r}\n"
            f"case = {self!r}\n"
            "x, base, spline = make_case_inputs(case)  # tests/test_properties.py\n"
            f"mkcc_kernels.kan_conv1d(x, base, spline, backend={backend!r}, **case.conv())"
        )


@st.composite
def cases(draw, backend: str) -> Case:
    groups = draw(st.integers(1, 3))
    kernel_size = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 3))
    choices = [st.integers(0, 4), st.just("valid")] + ([st.just("same")] if stride == 1 else [])
    padding = draw(st.one_of(*choices))
    pad_total = {"valid": 0, "same": dilation * (kernel_size - 1)}.get(padding, None)
    if pad_total is None:
        pad_total = 2 * padding
    span = dilation * (kernel_size - 1) + 1
    length = draw(st.integers(max(1, span - pad_total), span + 40))
    lo = draw(st.floats(-2.0, 1.0, allow_nan=False).map(lambda v: round(v, 3)))
    width = draw(st.floats(0.25, 3.0, allow_nan=False).map(lambda v: round(v, 3)))
    return Case(
        batch=draw(st.integers(0, 3)),
        in_channels=groups * draw(st.integers(1, 4)),
        out_channels=groups * draw(st.integers(1, 5)),
        length=length,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        grid_size=draw(st.integers(1, 8)),
        spline_order=draw(st.integers(1, 4)),
        grid_range=(lo, lo + width),
        dtype=draw(st.sampled_from(DTYPES[backend])),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def make_case_inputs(case: Case):
    """x [B, C_in, T] with values inside and outside the grid, and the weights, in the case's
    dtype and memory layout (never zeros)."""
    gen = torch.Generator().manual_seed(case.seed)
    lo, hi = case.grid_range
    cin_g = case.in_channels // case.groups
    x = torch.randn(case.batch, case.in_channels, case.length, generator=gen, dtype=torch.float64)
    x = x * 0.8 * (hi - lo) + (lo + hi) / 2
    base = torch.randn(
        case.out_channels, cin_g, case.kernel_size, generator=gen, dtype=torch.float64
    )
    spline = torch.randn(
        case.out_channels,
        cin_g,
        case.kernel_size,
        case.grid_size + case.spline_order,
        generator=gen,
        dtype=torch.float64,
    )
    x, base, spline = (t.to(case.dtype) for t in (x, base, spline))
    if case.layout == "strided-time":
        wide = torch.randn(case.batch, case.in_channels, 2 * case.length, dtype=case.dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif case.layout == "channels-last":
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    elif case.layout == "transposed-weights":
        base = base.transpose(0, 2).contiguous().transpose(0, 2)
        spline = spline.permute(3, 2, 1, 0).contiguous().permute(3, 2, 1, 0)
    return x, base, spline


def check_against_reference(backend: str, case: Case) -> None:
    note(case.reproducer(backend))
    x, base, spline = make_case_inputs(case)
    out, grads, grad_out = run_layer(backend, x, base, spline, **case.conv())
    ref_out, ref_grads, _ = run_layer(
        "reference",
        *(t.double() for t in (x, base, spline)),
        grad_out=grad_out.double(),
        **case.conv(),
    )
    tol = TOLERANCE[case.dtype]
    assert out.dtype == case.dtype
    assert_close(out, ref_out, tol, f"[{backend}] output")
    for name, grad, ref in zip(("x", "base_weight", "spline_weight"), grads, ref_grads):
        assert_close(grad, ref, tol, f"[{backend}] grad {name}")


COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_quick_profile(backend):
    @settings(max_examples=25, derandomize=True, **COMMON)
    @given(case=cases(backend))
    def run(case):
        check_against_reference(backend, case)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_thorough_profile(backend):
    @settings(max_examples=500, **COMMON)
    @given(case=cases(backend))
    def run(case):
        check_against_reference(backend, case)

    run()
