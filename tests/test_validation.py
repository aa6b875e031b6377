"""Every invalid input raises ValueError or TypeError naming the argument, before any kernel
runs: through kan_conv1d (every backend), through KANConv1d, and through the ops directly."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels
from mkcc_kernels import KANConv1d, kan_conv1d


def good():
    torch.manual_seed(0)
    return {
        "x": torch.randn(2, 4, 10),
        "base_weight": torch.randn(6, 4, 3),
        "spline_weight": torch.randn(6, 4, 3, 8),
    }


# An input without channels, and weights that match it.
NO_IN_CHANNELS = {
    "x": torch.randn(2, 0, 10),
    "base_weight": torch.randn(6, 0, 3),
    "spline_weight": torch.randn(6, 0, 3, 8),
}

INVALID = {
    # id: (changes to the good call, exception, text the message must contain)
    "x-rank": ({"x": torch.randn(4, 10)}, ValueError, "x"),
    "x-int": ({"x": torch.ones(2, 4, 10, dtype=torch.int64)}, TypeError, "x"),
    "x-not-tensor": ({"x": [[1.0]]}, TypeError, "x"),
    "channel-mismatch": ({"x": torch.randn(2, 5, 10)}, ValueError, "base_weight"),
    "no-in-channels": (NO_IN_CHANNELS, ValueError, "x"),
    "base-rank": ({"base_weight": torch.randn(6, 4)}, ValueError, "base_weight"),
    "spline-rank": ({"spline_weight": torch.randn(6, 4, 8)}, ValueError, "spline_weight"),
    "spline-shape": ({"spline_weight": torch.randn(6, 4, 2, 8)}, ValueError, "spline_weight"),
    "spline-too-short": ({"spline_weight": torch.randn(6, 4, 3, 3)}, ValueError, "spline_weight"),
    "dtype-mismatch": (
        {"base_weight": torch.randn(6, 4, 3, dtype=torch.float64)},
        TypeError,
        "base_weight",
    ),
    "groups-indivisible": ({"groups": 3}, ValueError, "groups"),
    "groups-zero": ({"groups": 0}, ValueError, "groups"),
    "groups-shape": ({"groups": 2}, ValueError, "base_weight"),
    "stride-zero": ({"stride": 0}, ValueError, "stride"),
    "stride-float": ({"stride": 1.5}, TypeError, "stride"),
    "dilation-zero": ({"dilation": 0}, ValueError, "dilation"),
    "padding-negative": ({"padding": -1}, ValueError, "padding"),
    "padding-word": ({"padding": "full"}, ValueError, "padding"),
    "same-with-stride": ({"padding": "same", "stride": 2}, ValueError, "padding"),
    "kernel-too-long": ({"x": torch.randn(2, 4, 2)}, ValueError, "kernel_size"),
    "order-zero": ({"spline_order": 0}, ValueError, "spline_order"),
    "order-five": (
        {"spline_order": 5, "spline_weight": torch.randn(6, 4, 3, 10)},
        ValueError,
        "spline_order",
    ),
    "grid-reversed": ({"grid_range": (1.0, -1.0)}, ValueError, "grid_range"),
    "grid-empty": ({"grid_range": (0.5, 0.5)}, ValueError, "grid_range"),
    "grid-inf": ({"grid_range": (0.0, float("inf"))}, ValueError, "grid_range"),
    "grid-not-pair": ({"grid_range": 1.0}, TypeError, "grid_range"),
    "base-device": (
        {"base_weight": torch.randn(6, 4, 3, device="meta")},
        ValueError,
        "base_weight",
    ),
    "spline-device": (
        {"spline_weight": torch.randn(6, 4, 3, 8, device="meta")},
        ValueError,
        "spline_weight",
    ),
    "bias-device": ({"bias": torch.randn(6, device="meta")}, ValueError, "bias"),
    "bias-shape": ({"bias": torch.randn(5)}, ValueError, "bias"),
    "bias-dtype": ({"bias": torch.randn(6, dtype=torch.float64)}, TypeError, "bias"),
    "backend-unknown": ({"backend": "fast"}, ValueError, "backend"),
    "backend-unavailable": ({"backend": "cuda"}, ValueError, "backend"),
    "cpu-backend-half": (
        {
            "x": torch.randn(2, 4, 10, dtype=torch.float16),
            "base_weight": torch.randn(6, 4, 3, dtype=torch.float16),
            "spline_weight": torch.randn(6, 4, 3, 8, dtype=torch.float16),
            "backend": "cpu",
        },
        TypeError,
        "x",
    ),
}


CPU_BACKENDS = [
    b
    for b in ("cpu", "triton", "reference", "unfold")
    if b in mkcc_kernels.available_backends("cpu")
]


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_functional_rejects(case):
    """Checked before dispatch: the same error whichever backend would have run (the cases
    about backends name theirs)."""
    changes, error, name = case
    kwargs = {**good(), **changes}
    with pytest.raises(error, match=rf"^{name}\b"):
        kan_conv1d(**kwargs)


def op_call(**changes):
    args = {
        **good(),
        "stride": 1,
        "pad_left": 1,
        "pad_right": 1,
        "dilation": 1,
        "groups": 1,
        "spline_order": 3,
        "grid_lo": -1.0,
        "grid_hi": 1.0,
        **changes,
    }
    return torch.ops.mkcc.kan_conv1d_fwd(*args.values())


OP_INVALID = {
    "x-rank": ({"x": torch.randn(4, 10)}, ValueError, "x"),
    "no-in-channels": (NO_IN_CHANNELS, ValueError, "x"),
    "channel-mismatch": ({"x": torch.randn(2, 5, 10)}, ValueError, "base_weight"),
    "dtype-mismatch": (
        {"spline_weight": torch.randn(6, 4, 3, 8, dtype=torch.float64)},
        TypeError,
        "base_weight, spline_weight",
    ),
    "stride-zero": ({"stride": 0}, ValueError, "stride"),
    "padding-negative": ({"pad_left": -1}, ValueError, "padding"),
    "groups-indivisible": ({"groups": 3}, ValueError, "groups"),
    "order-five": ({"spline_order": 5}, ValueError, "spline_order"),
    "grid-reversed": ({"grid_lo": 1.0, "grid_hi": 0.0}, ValueError, "grid_range"),
    "kernel-too-long": (
        {"x": torch.randn(2, 4, 1), "pad_left": 0, "pad_right": 0},
        ValueError,
        "kernel_size",
    ),
    "half-on-cpu": (
        {
            "x": torch.randn(2, 4, 10).half(),
            "base_weight": torch.randn(6, 4, 3).half(),
            "spline_weight": torch.randn(6, 4, 3, 8).half(),
        },
        TypeError,
        "x",
    ),
}


@pytest.mark.parametrize("case", OP_INVALID.values(), ids=OP_INVALID.keys())
def test_op_rejects(case):
    changes, error, name = case
    with pytest.raises(error, match=rf"^{name}\b"):
        op_call(**changes)


def test_backward_op_checks_grad_out():
    args = list(good().values()) + [1, 1, 1, 1, 1, 3, -1.0, 1.0]
    with pytest.raises(ValueError, match=r"^grad_out\b"):
        torch.ops.mkcc.kan_conv1d_bwd(torch.randn(2, 6, 9), *args, True, True)


MODULE_INVALID = {
    "in-channels": ({"in_channels": 0}, ValueError, "in_channels"),
    "kernel-size": ({"kernel_size": 0}, ValueError, "kernel_size"),
    "groups": ({"groups": 3}, ValueError, "groups"),
    "padding-mode": ({"padding_mode": "mirror"}, ValueError, "padding_mode"),
    "backend": ({"backend": "gpu"}, ValueError, "backend"),
    "order": ({"spline_order": 6}, ValueError, "spline_order"),
    "grid-range": ({"grid_range": (2.0, 1.0)}, ValueError, "grid_range"),
    "same-with-stride": ({"padding": "same", "stride": 2}, ValueError, "padding"),
}


@pytest.mark.parametrize("case", MODULE_INVALID.values(), ids=MODULE_INVALID.keys())
def test_module_rejects(case):
    changes, error, name = case
    kwargs = {"in_channels": 4, "out_channels": 6, "kernel_size": 3, **changes}
    with pytest.raises(error, match=rf"^{name}\b"):
        KANConv1d(**kwargs)


def test_module_rejects_wrong_input():
    layer = KANConv1d(4, 6, 3)
    with pytest.raises(ValueError, match=r"^base_weight\b"):
        layer(torch.randn(2, 5, 10))
    with pytest.raises(TypeError, match=r"^base_weight\b"):
        layer(torch.randn(2, 4, 10, dtype=torch.float64))


def test_available_backends():
    from mkcc_kernels.ops import triton_ops

    on_cpu = mkcc_kernels.available_backends("cpu")
    triton_on_cpu = triton_ops is not None and triton_ops.interpreter_enabled()
    expected = ["cpu"] + (["triton"] if triton_on_cpu else []) + ["reference", "unfold"]
    assert on_cpu == expected
    assert "cpu" in mkcc_kernels.available_backends()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_empty_input_with_padding_gives_zeros(backend):
    """A length-0 input with enough padding has outputs, every tap a padding tap: zeros, with
    an empty x gradient and zero weight gradients, on every backend."""
    x = torch.randn(2, 4, 0, requires_grad=True)
    base = torch.randn(6, 4, 3, requires_grad=True)
    spline = torch.randn(6, 4, 3, 8, requires_grad=True)
    out = kan_conv1d(x, base, spline, padding=2, backend=backend)
    assert out.shape == (2, 6, 2)
    assert bool((out == 0).all())
    out.backward(torch.randn(out.shape))
    assert x.grad.shape == x.shape
    assert bool((base.grad == 0).all()) and bool((spline.grad == 0).all())
