"""Custom-op registrations (fake kernels, autograd) of each backend."""

import importlib.util

from . import cpp  # noqa: F401

# The Triton kernels need the triton package (shipped with CUDA builds of torch).
if importlib.util.find_spec("triton") is not None:
    from . import triton_conv2d, triton_linear, triton_ops
else:
    triton_ops = triton_linear = triton_conv2d = None
