"""Fake kernels and autograd of the C++ ops ``mkcc::kan_conv1d_fwd`` / ``mkcc::kan_conv1d_bwd``
(the CPU and CUDA kernels behind one schema, defined in ``csrc/registration.cpp``) and
``mkcc::kan_linear_fwd`` / ``mkcc::kan_linear_bwd`` and ``mkcc::kan_conv2d_fwd`` /
``mkcc::kan_conv2d_bwd`` (CPU).

Backward saves only ``x`` and the two weights; it calls ``mkcc::kan_conv1d_bwd``, which
recomputes the basis.
"""

from __future__ import annotations

import torch

from ._autograd import register, register_linear
from .common import (
    fake_backward,
    fake_conv2d_backward,
    fake_conv2d_forward,
    fake_forward,
    fake_linear_backward,
    fake_linear_forward,
)

torch.library.register_fake("mkcc::kan_conv1d_fwd")(fake_forward)
torch.library.register_fake("mkcc::kan_conv1d_bwd")(fake_backward)
register("mkcc::kan_conv1d_fwd", "mkcc::kan_conv1d_bwd")

torch.library.register_fake("mkcc::kan_linear_fwd")(fake_linear_forward)
torch.library.register_fake("mkcc::kan_linear_bwd")(fake_linear_backward)
register_linear("mkcc::kan_linear_fwd", "mkcc::kan_linear_bwd")

torch.library.register_fake("mkcc::kan_conv2d_fwd")(fake_conv2d_forward)
torch.library.register_fake("mkcc::kan_conv2d_bwd")(fake_conv2d_backward)
register("mkcc::kan_conv2d_fwd", "mkcc::kan_conv2d_bwd", layer="kan_conv2d")
