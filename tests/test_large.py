"""An input past 2^31 elements on the CPU backend: every offset is int64 (slow: 8.6 GB of x)."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels

from .helpers import TOLERANCE, assert_close


@pytest.mark.slow
def test_input_past_2_to_the_31_elements():
    channels, length, k = 2, 2**30 + 40, 3
    stride = 2**20 + 7  # about a thousand outputs per channel, spread over the whole input
    x = torch.empty(1, channels, length).uniform_(-1.2, 1.2)
    assert x.numel() > 2**31
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(3, channels, k, generator=generator).requires_grad_(True)
    spline = torch.randn(3, channels, k, 8, generator=generator).requires_grad_(True)

    out = mkcc_kernels.kan_conv1d(x, base, spline, stride=stride, backend="cpu")
    out_length = (length - k) // stride + 1
    assert out.shape == (1, 3, out_length)
    grad_out = torch.randn(out.shape, generator=generator)
    grads = torch.autograd.grad(out, (base, spline), grad_out)

    # The windows never overlap: gathering them gives a short input with the same answer.
    starts = torch.arange(out_length) * stride
    taps = (starts[:, None] + torch.arange(k)).reshape(-1)
    assert int(taps.max()) + channels * length > 2**31  # the last windows sit past 2^31
    gathered = x[:, :, taps].double()
    ref_base = base.detach().double().requires_grad_(True)
    ref_spline = spline.detach().double().requires_grad_(True)
    ref = mkcc_kernels.kan_conv1d(gathered, ref_base, ref_spline, stride=k, backend="reference")
    ref_grads = torch.autograd.grad(ref, (ref_base, ref_spline), grad_out.double())

    tol = TOLERANCE[torch.float32]
    assert_close(out, ref, tol, "output")
    for name, grad, ref_grad in zip(("base_weight", "spline_weight"), grads, ref_grads):
        assert_close(grad, ref_grad, tol, f"grad {name}")
