"""The Triton kernels against the fp64 reference: forward and every gradient. Without a GPU they
run under Triton's interpreter on CPU tensors (fp32, a curated set of configurations); on a GPU
natively over fp32, fp16 and bf16, plus opcheck and compile parity."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import mkcc_kernels
from mkcc_kernels.ops import triton_ops
from mkcc_kernels.ops.common import Conv1dArgs
from mkcc_kernels.reference import knots

from .helpers import (
    CONFIGS,
    TOLERANCE,
    TOLERANCE_TF32,
    assert_close,
    compare_with_reference,
    compare_with_same_knots,
    make_inputs,
)

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
pytestmark = pytest.mark.skipif(
    triton_ops is None or not triton_ops.runs_on(DEVICE),
    reason="Triton is not installed, or neither a GPU nor TRITON_INTERPRET=1 is present",
)
# (dtype, whether fp32 dots may use TF32): fp32 runs both ways, as torch.backends.cudnn.allow_tf32
# decides; the interpreter computes both exactly, a GPU rounds TF32 inputs to 10-bit mantissas.
PRECISIONS = (
    [(torch.float32, False), (torch.float32, True), (torch.float16, True), (torch.bfloat16, True)]
    if ON_GPU
    else [(torch.float32, False), (torch.float32, True)]
)
PRECISION_IDS = {
    (torch.float32, False): "fp32-ieee",
    (torch.float32, True): "fp32-tf32",
    (torch.float16, True): "fp16",
    (torch.bfloat16, True): "bf16",
}


@pytest.fixture(autouse=True)
def ieee_fp32_on_gpu():
    """On a GPU, fp32 dots in IEEE fp32 unless a test asks for TF32, so that fp32 results meet
    the fp32 tolerance. The interpreter computes both exactly: there the tensor-core tiles,
    which it runs 3-5x faster, serve the tests that are not about precision."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not ON_GPU
    yield
    torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("precision", PRECISIONS, ids=lambda p: PRECISION_IDS[p])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_reference(config, precision):
    dtype, allow_tf32 = precision
    torch.backends.cudnn.allow_tf32 = allow_tf32
    tf32 = ON_GPU and dtype == torch.float32 and allow_tf32
    b, cin, cout, t, k, conv, grid = config
    x, base, spline = make_inputs(b, cin, cout, t, k, conv, grid, dtype)
    compare_with_reference(
        "triton", x, base, spline, dtype, f"[triton {DEVICE} {PRECISION_IDS[precision]}]",
        tol=TOLERANCE_TF32 if tf32 else None, device=DEVICE, **conv,
    )  # fmt: skip


@pytest.mark.parametrize("allow_tf32", [True, False])
def test_fp32_dots_follow_cudnn_allow_tf32(allow_tf32):
    """The planners read torch.backends.cudnn.allow_tf32 (as nn.Conv1d does) for fp32 only."""
    torch.backends.cudnn.allow_tf32 = allow_tf32
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        launches = []
        x = torch.empty(2, 6, 30, device="meta", dtype=dtype)
        base = torch.empty(8, 6, 3, device="meta", dtype=dtype)
        spline = torch.empty(8, 6, 3, 8, device="meta", dtype=dtype)
        conv = Conv1dArgs(1, 1, 1, 1, 1, 3, -1.0, 1.0)
        triton_ops.plan_forward(x, base, spline, conv, launches.append)
        grad_out = torch.empty(2, 8, 30, device="meta", dtype=dtype)
        triton_ops.plan_backward(grad_out, x, base, spline, conv, True, True, launches.append, 4)
        assert [launch.name for launch in launches] == ["fwd", "dx", "dw"]
        ieee = dtype == torch.float32 and not allow_tf32
        assert all(launch.constants["IEEE_FP32"] == ieee for launch in launches)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_inputs_on_knots_and_outside_grid(order):
    grid_size, grid_range = 4, (-1.0, 1.5)
    t = knots(grid_size, order, grid_range, torch.float32)
    special = torch.cat([t, t[:1] - 0.25, t[-1:] + 0.25, torch.tensor([-7.0, 9.0])])
    generator = torch.Generator().manual_seed(order)
    x = special[torch.randint(0, special.numel(), (2, 3, 24), generator=generator)]
    base = torch.randn(5, 3, 3, generator=generator)
    spline = torch.randn(5, 3, 3, grid_size + order, generator=generator)
    conv = {"padding": 1, "spline_order": order, "grid_range": grid_range}
    if order >= 2:
        compare_with_reference(
            "triton", x, base, spline, torch.float32, "knots", device=DEVICE, **conv
        )
    else:
        # Linear splines have a kink at every knot and an fp32 knot is not an fp64 knot: compare
        # with the reference computed on the same fp32 knots.
        compare_with_same_knots("triton", x, base, spline, "K=1 knots", device=DEVICE, **conv)


def test_non_contiguous_input():
    x, base, spline = make_inputs(3, 4, 6, 40, 3, {}, 5, torch.float32, seed=3)
    x_strided = torch.randn(3, 40, 8, device=DEVICE).transpose(1, 2)[:, ::2]
    x_strided.copy_(x)
    assert not x_strided.is_contiguous()
    compare_with_reference(
        "triton",
        x_strided,
        base,
        spline,
        torch.float32,
        "non-contiguous",
        device=DEVICE,
        stride=2,
        padding=1,
    )


def test_empty_batch_and_partial_gradients():
    x, base, spline = make_inputs(0, 3, 4, 12, 3, {}, 5, torch.float32)
    x, base, spline = (t.to(DEVICE).requires_grad_(True) for t in (x, base, spline))
    out = mkcc_kernels.kan_conv1d(x, base, spline, padding=1, backend="triton")
    assert out.shape == (0, 4, 12)
    out.sum().backward()
    assert x.grad.shape == x.shape and bool((base.grad == 0).all())

    x, base, spline = make_inputs(2, 3, 4, 12, 3, {}, 5, torch.float32, seed=1)
    spline = spline.to(DEVICE).requires_grad_(True)
    out = mkcc_kernels.kan_conv1d(
        x.to(DEVICE), base.to(DEVICE), spline, padding=1, backend="triton"
    )
    (grad,) = torch.autograd.grad(out.square().sum(), spline)
    leaf = spline.detach().cpu().double().requires_grad_(True)
    ref = mkcc_kernels.kan_conv1d(x.double(), base.double(), leaf, padding=1, backend="reference")
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), leaf)
    assert_close(grad.cpu(), ref_grad, TOLERANCE[torch.float32], "spline gradient only")


@pytest.mark.skipif(
    not ON_GPU, reason="the interpreter runs programs one at a time in order: nothing to reorder"
)
def test_deterministic():
    x, base, spline = make_inputs(4, 6, 8, 64, 5, {}, 5, torch.float32, seed=9)
    results = []
    for _ in range(2):
        leaves = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline)]
        out = mkcc_kernels.kan_conv1d(*leaves, backend="triton")
        out.backward(torch.ones_like(out))
        results.append([out.detach()] + [leaf.grad for leaf in leaves])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_saves_only_x_and_weights():
    x = torch.randn(2, 8, 50, device=DEVICE, requires_grad=True)
    layer = mkcc_kernels.KANConv1d(8, 16, 5, padding=2, backend="triton", bias=False, device=DEVICE)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    limit = sum(t.numel() * t.element_size() for t in (x, layer.base_weight, layer.spline_weight))
    assert sum(t.numel() * t.element_size() for t in saved) <= 1.1 * limit


@pytest.mark.skipif(not ON_GPU, reason="opcheck of a triton_op needs a GPU")
def test_opcheck():
    x, base, spline = make_inputs(2, 4, 6, 20, 3, {}, 5, torch.float32)
    args = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline)]
    conv = Conv1dArgs(1, 1, 1, 1, 1, 3, -1.0, 1.0)
    torch.library.opcheck(torch.ops.mkcc.kan_conv1d_fwd_triton.default, (*args, *conv))
    grad_out = torch.randn(2, 6, 20, device=DEVICE)
    plain = [a.detach() for a in args]
    torch.library.opcheck(
        torch.ops.mkcc.kan_conv1d_bwd_triton.default, (grad_out, *plain, *conv, True, True)
    )


@pytest.mark.skipif(not ON_GPU, reason="compiling a triton_op on CPU tensors is not supported")
def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        mkcc_kernels.MultiScaleKANConv1d(3, 8, kernel_sizes=(3, 5), backend="triton"),
        torch.nn.BatchNorm1d(16),
        mkcc_kernels.KANConv1d(16, 4, 3, stride=2, padding=1, backend="triton"),
    ).to(DEVICE)
    x = torch.randn(4, 3, 33, device=DEVICE)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)(x)
    assert_close(compiled, eager, TOLERANCE[torch.float32], "compiled output")


@pytest.mark.skipif(ON_GPU, reason="checks CPU tensors without the interpreter")
def test_cpu_tensors_without_interpreter_are_a_clear_error():
    script = (
        "import torch, mkcc_kernels\n"
        "x, b, s = torch.randn(1, 2, 8), torch.randn(3, 2, 3), torch.randn(3, 2, 3, 8)\n"
        "for call in (lambda: mkcc_kernels.kan_conv1d(x, b, s, backend='triton'),\n"
        "             lambda: torch.ops.mkcc.kan_conv1d_fwd_triton(x, b, s, 1, 0, 0, 1, 1, 3,"
        " -1.0, 1.0)):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as error:\n"
        "        print(error)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    assert (
        lines[0].startswith("backend: 'triton' is not available")
        and "TRITON_INTERPRET=1" in lines[0]
    )
    assert lines[1].startswith("x: the Triton kernels run on CUDA tensors")


def test_op_rejects_input_without_channels():
    x = torch.randn(2, 0, 10, device=DEVICE)
    base, spline = torch.randn(6, 0, 3, device=DEVICE), torch.randn(6, 0, 3, 8, device=DEVICE)
    with pytest.raises(ValueError, match=r"^x: expected in_channels >= 1"):
        torch.ops.mkcc.kan_conv1d_fwd_triton(x, base, spline, 1, 1, 1, 1, 1, 3, -1.0, 1.0)
    grad_out = torch.randn(2, 6, 10, device=DEVICE)
    with pytest.raises(ValueError, match=r"^x: expected in_channels >= 1"):
        torch.ops.mkcc.kan_conv1d_bwd_triton(
            grad_out, x, base, spline, 1, 1, 1, 1, 1, 3, -1.0, 1.0, True, True
        )


def test_planners_take_more_rows_than_int32_and_use_one_grid_axis():
    """Rows (batch x time) past 2^31 plan a one-dimensional grid (no axis limited to 65,535) and
    the kernels get the sizes as they are (they form rows in 64 bits); a grid past what one
    launch takes, or packed weights past 32-bit tile offsets, is a clear error naming the
    argument."""
    launches = []
    x = torch.empty(70_000, 4, 40_000, device="meta")
    base, spline = torch.empty(8, 4, 3, device="meta"), torch.empty(8, 4, 3, 8, device="meta")
    conv = Conv1dArgs(1, 1, 1, 1, 1, 3, -1.0, 1.0)
    triton_ops.plan_forward(x, base, spline, conv, launches.append)
    grad_out = torch.empty(70_000, 8, 40_000, device="meta")
    triton_ops.plan_backward(grad_out, x, base, spline, conv, True, True, launches.append, 132)
    rows = 70_000 * 40_000
    assert rows > 2**31
    assert [launch.name for launch in launches] == ["fwd", "dx", "dw"]
    for launch in launches:
        assert len(launch.grid) == 1
        assert launch.args[launch.kernel.arg_names.index("batch")] == 70_000
    # forward and dx: a program per 64 rows (and channel block); dW loops over its row split
    assert launches[0].grid[0] >= rows // 64 and launches[1].grid[0] >= rows // 64
    huge = torch.empty(2**31, 1, 2**10, device="meta")
    with pytest.raises(ValueError, match=r"^x: the Triton kernels need \d+ programs"):
        triton_ops.plan_forward(huge, base[:, :1], spline[:, :1], conv, launches.append)
    x = torch.empty(1, 2048, 4, device="meta")
    base = torch.empty(70_000, 2048, 1, device="meta")
    spline = torch.empty(70_000, 2048, 1, 8, device="meta")
    with pytest.raises(ValueError, match=r"^base_weight, spline_weight: \d+ packed weight values"):
        triton_ops.plan_forward(
            x, base, spline, Conv1dArgs(1, 0, 0, 1, 1, 3, -1.0, 1.0), launches.append
        )


def test_backward_op_checks_grad_out():
    x = torch.randn(2, 3, 10, device=DEVICE)
    base, spline = torch.randn(4, 3, 3, device=DEVICE), torch.randn(4, 3, 3, 8, device=DEVICE)
    conv = (1, 1, 1, 1, 1, 3, -1.0, 1.0)
    with pytest.raises(ValueError, match=r"^grad_out: expected shape \[2, 4, 10\]"):
        torch.ops.mkcc.kan_conv1d_bwd_triton(
            torch.randn(2, 4, 9, device=DEVICE), x, base, spline, *conv, True, True
        )
    with pytest.raises(TypeError, match=r"^grad_out: expected dtype torch.float32"):
        torch.ops.mkcc.kan_conv1d_bwd_triton(
            torch.randn(2, 4, 10, device=DEVICE).double(), x, base, spline, *conv, True, True
        )
