"""The fused CUDA C++ kernels against the fp64 reference (needs a GPU): forward and every
gradient over the curated configurations and fp32/fp16/bf16 (fp16/bf16 forward on tensor cores
and on CUDA cores), opcheck, compile parity, determinism and saved bytes."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels
from mkcc_kernels import _C

from .helpers import CONFIGS, TOLERANCE, assert_close, compare_with_reference, make_inputs

pytestmark = pytest.mark.skipif(
    "cuda" not in mkcc_kernels.available_backends("cuda"),
    reason="needs a GPU and a build with the CUDA kernels",
)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Shapes for the tensor-core forward's tiling: several input-channel chunks (16), output-channel
# tiles (64) and time tiles (64), groups with stride, a large grid with K = 4.
MMA_CONFIGS = {
    "mma-many-tiles": (2, 35, 130, 140, 7, {"padding": 3}, 5),
    "mma-groups-stride": (2, 36, 72, 150, 5, {"groups": 2, "stride": 2, "padding": 2}, 5),
    "mma-grid12-K4": (1, 17, 65, 70, 3, {"spline_order": 4, "padding": "same"}, 12),
    "mma-dilation": (3, 20, 66, 129, 3, {"dilation": 4, "padding": 4}, 5),
}


@pytest.fixture(params=[True, False], ids=["tensor-cores", "cuda-cores"])
def tensor_cores(request):
    """Runs a test with the tensor-core forward allowed, then with it turned off."""
    previous = _C.cuda_tensor_cores()
    _C.set_cuda_tensor_cores(request.param)
    yield request.param
    _C.set_cuda_tensor_cores(previous)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference(config, dtype):
    b, cin, cout, t, k, conv, grid = config
    x, base, spline = make_inputs(b, cin, cout, t, k, conv, grid, dtype)
    compare_with_reference("cuda", x, base, spline, dtype, "[cuda]", device="cuda", **conv)


@pytest.mark.parametrize("dtype", DTYPES[1:], ids=["fp16", "bf16"])
@pytest.mark.parametrize(
    "config", [*CONFIGS.values(), *MMA_CONFIGS.values()], ids=[*CONFIGS, *MMA_CONFIGS]
)
def test_half_forward_paths_match_reference(config, dtype, tensor_cores):
    b, cin, cout, t, k, conv, grid = config
    x, base, spline = make_inputs(b, cin, cout, t, k, conv, grid, dtype, seed=3)
    compare_with_reference("cuda", x, base, spline, dtype, "[cuda]", device="cuda", **conv)


def test_opcheck():
    x, base, spline = make_inputs(2, 4, 6, 20, 3, {}, 5, torch.float32)
    args = [t.cuda().requires_grad_(True) for t in (x, base, spline)]
    conv = (1, 1, 1, 1, 1, 3, -1.0, 1.0)
    torch.library.opcheck(torch.ops.mkcc.kan_conv1d_fwd.default, (*args, *conv))
    grad_out = torch.randn(2, 6, 20, device="cuda")
    plain = [a.detach() for a in args]
    for masks in ((True, True), (True, False), (False, True)):
        torch.library.opcheck(
            torch.ops.mkcc.kan_conv1d_bwd.default, (grad_out, *plain, *conv, *masks)
        )


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        mkcc_kernels.MultiScaleKANConv1d(3, 8, kernel_sizes=(3, 5), backend="cuda"),
        torch.nn.BatchNorm1d(16),
        mkcc_kernels.KANConv1d(16, 4, 3, stride=2, padding=1, backend="cuda"),
    ).cuda()
    x = torch.randn(4, 3, 33, device="cuda")
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)(x)
    assert_close(compiled, eager, TOLERANCE[torch.float32], "compiled output")


def test_deterministic_gradients():
    x, base, spline = make_inputs(8, 16, 32, 300, 5, {}, 5, torch.float32, seed=9)
    results = []
    for _ in range(2):
        leaves = [t.cuda().requires_grad_(True) for t in (x, base, spline)]
        out = mkcc_kernels.kan_conv1d(*leaves, padding=2, backend="cuda")
        out.backward(torch.ones_like(out))
        results.append([out.detach()] + [leaf.grad for leaf in leaves])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_saves_only_x_and_weights():
    x = torch.randn(2, 8, 50, device="cuda", requires_grad=True)
    layer = mkcc_kernels.KANConv1d(8, 16, 5, padding=2, backend="cuda", bias=False, device="cuda")
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    limit = sum(t.numel() * t.element_size() for t in (x, layer.base_weight, layer.spline_weight))
    assert sum(t.numel() * t.element_size() for t in saved) <= 1.1 * limit
