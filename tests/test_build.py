"""What the built extension reports, and the ops it registers."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels


def test_build_info():
    info = mkcc_kernels.build_info()
    assert info["torch_version"] == torch.__version__.split("+")[0]
    assert "generic" in info["cpu_isas"] and info["cpu_isa"] in info["cpu_isas"]
    # the report agrees with what the dispatcher holds
    for name in ("kan_conv1d_fwd", "kan_conv1d_bwd"):
        op = getattr(torch.ops.mkcc, name).default
        has_cuda = torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CUDA")
        assert info["cuda_compiled"] is has_cuda
    # KANLinear's C++ ops are CPU only (on CUDA tensors it runs the Triton ops)
    for name in ("kan_linear_fwd", "kan_linear_bwd"):
        op = getattr(torch.ops.mkcc, name).default
        assert not torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CUDA")
    assert bool(info["cuda_archs"]) is info["cuda_compiled"]


def test_ops_registered_with_cpu_kernels():
    for name in ("kan_conv1d_fwd", "kan_conv1d_bwd", "kan_linear_fwd", "kan_linear_bwd"):
        op = getattr(torch.ops.mkcc, name).default
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CPU")
        assert torch._C.Tag.pt2_compliant_tag in op.tags


def test_python_and_cpp_ops_share_one_signature():
    """The C++ ops (csrc/registration.cpp) and the Triton ops (ops/common.py's schemas) take
    the same arguments, so that kan_conv1d, the autograd and the fake kernels serve both."""
    pytest.importorskip("triton")
    from mkcc_kernels.ops.common import (
        BACKWARD_SCHEMA,
        FORWARD_SCHEMA,
        LINEAR_BACKWARD_SCHEMA,
        LINEAR_FORWARD_SCHEMA,
    )

    for name, schema in (
        ("kan_conv1d_fwd", FORWARD_SCHEMA),
        ("kan_conv1d_bwd", BACKWARD_SCHEMA),
        ("kan_linear_fwd", LINEAR_FORWARD_SCHEMA),
        ("kan_linear_bwd", LINEAR_BACKWARD_SCHEMA),
    ):
        cpp = getattr(torch.ops.mkcc, name).default._schema
        triton = getattr(torch.ops.mkcc, name + "_triton").default._schema
        assert str(cpp) == f"mkcc::{name}{schema}"
        assert str(triton) == f"mkcc::{name}_triton{schema}"
