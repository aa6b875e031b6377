"""The fused KANLinear Triton ops (``mkcc::kan_linear_fwd_triton``, ``mkcc::kan_linear_bwd_triton``)
against the fp64 reference: forward and the gradients of x, base_weight, spline_weight and
spline_scaler, on random non-uniform per-feature knots with repeated knots, inputs on knots and
outside the grid. Without a GPU the kernels run under Triton's interpreter on CPU tensors (fp32,
small shapes); on a GPU natively over fp32, fp16 and bf16."""

from __future__ import annotations

import pytest
import torch

from mkcc_kernels.ops import triton_linear
from mkcc_kernels.reference import kan_linear_reference

from .helpers import TOLERANCE, TOLERANCE_TF32, assert_close

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
F64 = torch.float64
pytestmark = pytest.mark.skipif(
    triton_linear is None or not triton_linear.runs_on(DEVICE),
    reason="Triton is not installed, or neither a GPU nor TRITON_INTERPRET=1 is present",
)
# (dtype, whether fp32 dots may use TF32): fp32 runs both ways, as
# torch.backends.cuda.matmul.allow_tf32 decides (nn.Linear's switch); the interpreter computes
# both exactly (with different tiles), a GPU rounds TF32 inputs to 10-bit mantissas.
PRECISIONS = {
    "fp32-ieee": (torch.float32, False),
    "fp32-tf32": (torch.float32, True),
}
if ON_GPU:
    PRECISIONS |= {"fp16": (torch.float16, True), "bf16": (torch.bfloat16, True)}


@pytest.fixture(autouse=True)
def matmul_tf32():
    """fp32 dots in IEEE fp32 on a GPU unless a test asks for TF32 (so that fp32 results meet
    the fp32 tolerance); under the interpreter, which computes both exactly, the tensor-core
    tiles (fewer, larger programs: faster there) unless a test asks for IEEE."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = not ON_GPU
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved


def random_knots(in_features, grid_size, order, generator, dtype=torch.float32):
    """``[in, G + 2K + 1]`` non-decreasing, non-uniform knots, a different vector per feature:
    steps in [0.1, 1) of which about one in four is zero (a repeated knot; runs of several
    happen too), scaled to a span of 4 from a random start in [-2.5, -1.5]."""
    count = grid_size + 2 * order
    steps = torch.rand(in_features, count, generator=generator, dtype=F64) * 0.9 + 0.1
    repeated = torch.rand(in_features, count, generator=generator) < 0.25
    steps = torch.where(repeated, 0.0, steps)
    steps[:, count // 2] = 1.0  # every vector spans an interval
    start = -2.5 + torch.rand(in_features, 1, generator=generator, dtype=F64)
    knots = torch.cat([start, start + 4.0 * steps.cumsum(-1) / steps.sum(-1, keepdim=True)], -1)
    return knots.to(dtype)


def random_inputs(batch, knots, generator):
    """``[batch, in]`` in the knots' dtype: uniform over each feature's span widened by 20 % on
    both sides (so some fall below the first knot or at or past the last), about a quarter
    exactly on one of the feature's knots (first, repeated and last ones included)."""
    in_features, count = knots.shape
    lo, hi = knots[:, 0].double(), knots[:, -1].double()
    u = torch.rand(batch, in_features, generator=generator, dtype=F64)
    x = (lo + (hi - lo) * (1.4 * u - 0.2)).to(knots.dtype)
    pick = torch.randint(0, count, (batch, in_features), generator=generator)
    on_knot = torch.rand(batch, in_features, generator=generator) < 0.25
    return torch.where(on_knot, knots.T.gather(0, pick), x)


def layer_tensors(batch, in_f, out_f, grid_size, order, dtype, seed, scaler=True):
    """x, base_weight, spline_weight, spline_scaler (or None), grid, all in ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    grid = random_knots(in_f, grid_size, order, generator, dtype)
    x = random_inputs(batch, grid, generator)
    base = torch.randn(out_f, in_f, generator=generator, dtype=F64).to(dtype)
    spline = torch.randn(out_f, in_f, grid_size + order, generator=generator, dtype=F64)
    spline = spline.to(dtype)
    scale = (torch.rand(out_f, in_f, generator=generator, dtype=F64) + 0.5).to(dtype)
    return x, base, spline, scale if scaler else None, grid


def run_triton(x, base, spline, scaler, grid, order, grad_out=None):
    """Output and the gradients of (x, base, spline[, scaler]) through the op's autograd."""
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline)]
    if scaler is not None:
        leaves.append(scaler.to(DEVICE).requires_grad_(True))
    scale = leaves[3] if scaler is not None else None
    out = torch.ops.mkcc.kan_linear_fwd_triton(*leaves[:3], scale, grid.to(DEVICE), order)
    if grad_out is None:
        generator = torch.Generator().manual_seed(1234)
        grad_out = torch.randn(out.shape, generator=generator, dtype=F64).to(out.dtype)
    grads = torch.autograd.grad(out, leaves, grad_out.to(DEVICE))
    return out.detach().cpu(), [g.cpu() for g in grads], grad_out.cpu()


def run_reference(x, base, spline, scaler, grid, order, grad_out):
    """The fp64 reference (the expansion + one linear, the scaled weight passed to it) and its
    autograd gradients."""
    leaves = [t.detach().cpu().double().requires_grad_(True) for t in (x, base, spline)]
    if scaler is not None:
        leaves.append(scaler.detach().cpu().double().requires_grad_(True))
    scaled = leaves[2] if scaler is None else leaves[2] * leaves[3].unsqueeze(-1)
    out = kan_linear_reference(leaves[0], leaves[1], scaled, grid.cpu().double(), order)
    grads = torch.autograd.grad(out, leaves, grad_out.cpu().double())
    return out.detach(), list(grads)


def compare(tensors, order, dtype, what, tol=None):
    x, base, spline, scaler, grid = tensors
    out, grads, grad_out = run_triton(x, base, spline, scaler, grid, order)
    ref_out, ref_grads = run_reference(x, base, spline, scaler, grid, order, grad_out)
    tol = TOLERANCE[dtype] if tol is None else tol
    assert out.dtype == dtype and out.shape == (x.shape[0], base.shape[0])
    assert_close(out, ref_out, tol, f"{what} output")
    names = ("x", "base_weight", "spline_weight", "spline_scaler")
    assert len(grads) == (4 if scaler is not None else 3)
    for name, grad, ref in zip(names, grads, ref_grads):
        assert grad.dtype == dtype, name
        assert_close(grad, ref, tol, f"{what} grad {name}")


def tolerance(precision):
    dtype, allow_tf32 = precision
    return TOLERANCE_TF32 if ON_GPU and dtype == torch.float32 and allow_tf32 else None


# id: (N, in, out, G, K)
CONFIGS = {
    "N1": (1, 3, 4, 5, 3),
    "odd-K1": (37, 5, 7, 5, 1),
    "odd-K2": (37, 5, 7, 4, 2),
    "odd-K3": (37, 5, 7, 5, 3),
    "odd-K4": (37, 5, 7, 6, 4),
    "in1": (20, 1, 3, 5, 3),
    "out1": (20, 6, 1, 5, 2),
    "G1": (10, 2, 3, 1, 2),
    # more outputs than one column tile (64 or 128) and more rows than one row tile
    "out150-rows70": (70, 3, 150, 3, 1),
    # 1 + G + K = 18 features: two blocks of 16
    "G13-K4-two-feature-blocks": (25, 3, 5, 13, 4),
    # the weight gradient's reduction split over row ranges
    "rows300-split": (300, 2, 5, 3, 3),
}
# The configurations also run with the IEEE tiles under the interpreter (one input feature per
# dot, 16-row weight-gradient steps): every pass and tile edge, not every shape.
IEEE_CONFIGS = ("odd-K3", "in1", "out150-rows70", "G13-K4-two-feature-blocks", "rows300-split")
CASES = [
    pytest.param(config, precision, id=f"{config}-{precision}")
    for config in CONFIGS
    for precision in PRECISIONS
    if ON_GPU or precision != "fp32-ieee" or config in IEEE_CONFIGS
]


@pytest.mark.parametrize(("config", "precision"), CASES)
def test_matches_reference(config, precision):
    dtype, allow_tf32 = PRECISIONS[precision]
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    batch, in_f, out_f, grid_size, order = CONFIGS[config]
    tensors = layer_tensors(batch, in_f, out_f, grid_size, order, dtype, seed=len(config))
    compare(tensors, order, dtype, f"[{config} {precision}]", tolerance(PRECISIONS[precision]))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_without_scaler(order):
    tensors = layer_tensors(33, 4, 9, 5, order, torch.float32, seed=order, scaler=False)
    compare(tensors, order, torch.float32, f"no scaler K={order}")


@pytest.mark.parametrize("order", [1, 4])
def test_uniform_knots_and_every_input_on_a_knot(order):
    """efficient-kan's initial grid (uniform, the same for every feature), every input a knot or
    beyond the grid (the kinks of linear splines included)."""
    grid_size = 4
    row = torch.arange(-order, grid_size + order + 1, dtype=torch.float32) * 0.5 - 1.0
    grid = row.expand(3, -1).contiguous()
    special = torch.cat([row, row[:1] - 0.25, row[-1:] + 0.25, torch.tensor([-9.0, 9.0])])
    generator = torch.Generator().manual_seed(order)
    x = special[torch.randint(0, special.numel(), (30, 3), generator=generator)]
    base = torch.randn(6, 3, generator=generator)
    spline = torch.randn(6, 3, grid_size + order, generator=generator)
    scaler = torch.rand(6, 3, generator=generator) + 0.5
    compare((x, base, spline, scaler, grid), order, torch.float32, f"knots K={order}")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # silu(-inf)
def test_outside_the_grid_only_silu_counts():
    """The spec, independently of the reference: outside ``[t_0, t_last)`` (below, at the last
    knot, above, +-inf) every basis value is zero, also where the first or last knots repeat
    K + 1 times (at t_0 the recursion would otherwise find a non-empty interval)."""
    order, grid_size = 2, 3
    row = torch.tensor([-1.0, -1.0, -1.0, -0.5, 0.25, 1.0, 1.0, 1.0])  # G + 2K + 1 = 8
    grid = torch.stack([row, row * 2.0 + 0.5])
    x = torch.tensor([[-1.5, 3.0], [1.0, 2.5], [7.0, -1.6], [float("inf"), float("-inf")]])
    x = x.repeat(5, 1)
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(4, 2, generator=generator)
    spline = torch.randn(4, 2, grid_size + order, generator=generator).requires_grad_(True)
    scaler = (torch.rand(4, 2, generator=generator) + 0.5).requires_grad_(True)
    on = [t.to(DEVICE) for t in (x, base, spline, scaler, grid)]
    out = torch.ops.mkcc.kan_linear_fwd_triton(*on, order)
    silu = (
        torch.nn.functional.silu(x[:, :1]) * base[:, 0]
        + torch.nn.functional.silu(x[:, 1:]) * base[:, 1]
    )  # -inf * 0 in silu is NaN, as in torch
    assert_close(out.detach().cpu(), silu, TOLERANCE[torch.float32], "outside: silu only")
    finite = torch.isfinite(x).all(1)
    grad_spline, grad_scaler = torch.autograd.grad(out[finite.to(DEVICE)].sum(), on[2:4])
    assert bool((grad_spline == 0).all()) and bool((grad_scaler == 0).all())


def test_empty_batch():
    x, base, spline, scaler, grid = layer_tensors(0, 3, 4, 5, 3, torch.float32, seed=0)
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline, scaler)]
    out = torch.ops.mkcc.kan_linear_fwd_triton(*leaves, grid.to(DEVICE), 3)
    assert out.shape == (0, 4)
    out.sum().backward()
    assert leaves[0].grad.shape == (0, 3)
    for leaf in leaves[1:]:
        assert leaf.grad.shape == leaf.shape and bool((leaf.grad == 0).all())


@pytest.mark.parametrize("scaler", [True, False], ids=["scaler", "no-scaler"])
@pytest.mark.parametrize("flags", [(True, False), (False, True)], ids=["x-only", "weights-only"])
def test_backward_op_returns_only_what_is_asked(flags, scaler):
    x, base, spline, scale, grid = layer_tensors(20, 3, 5, 4, 2, torch.float32, 7, scaler)
    input_grad, weight_grad = flags
    grad_out = torch.randn(20, 5, generator=torch.Generator().manual_seed(2))
    on = [t.to(DEVICE) if t is not None else None for t in (x, base, spline, scale, grid)]
    grads = torch.ops.mkcc.kan_linear_bwd_triton(
        grad_out.to(DEVICE), *on, 2, input_grad, weight_grad
    )
    _, ref_grads = run_reference(x, base, spline, scale, grid, 2, grad_out)
    asked = (input_grad, weight_grad, weight_grad, weight_grad and scaler)
    for name, grad, ref, wanted in zip(("x", "base", "spline", "scaler"), grads, ref_grads + [None],
                                       asked):  # fmt: skip
        if wanted:
            assert_close(grad.cpu(), ref, TOLERANCE[torch.float32], f"grad {name}")
        else:
            assert grad.shape == (0,), name


def test_gradient_of_one_parameter_only():
    x, base, spline, scaler, grid = layer_tensors(30, 4, 6, 5, 3, torch.float32, seed=5)
    leaf = scaler.to(DEVICE).requires_grad_(True)
    out = torch.ops.mkcc.kan_linear_fwd_triton(
        x.to(DEVICE), base.to(DEVICE), spline.to(DEVICE), leaf, grid.to(DEVICE), 3
    )
    (grad,) = torch.autograd.grad(out.square().sum(), leaf)
    ref_leaf = scaler.double().requires_grad_(True)
    ref = kan_linear_reference(
        x.double(), base.double(), spline.double() * ref_leaf.unsqueeze(-1), grid.double(), 3
    )
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), ref_leaf)
    assert_close(grad.cpu(), ref_grad, TOLERANCE[torch.float32], "scaler gradient only")


def test_strided_input_and_expanded_grad_out():
    """x a transposed view, grad_out the stride-0 gradient of ``y.sum()``: both read through
    their strides."""
    x, base, spline, scaler, grid = layer_tensors(40, 5, 6, 5, 3, torch.float32, seed=11)
    x_view = torch.empty(5, 40, device=DEVICE).t()
    x_view.copy_(x)
    assert not x_view.is_contiguous()
    leaves = [x_view.requires_grad_(True)] + [
        t.to(DEVICE).requires_grad_(True) for t in (base, spline, scaler)
    ]
    out = torch.ops.mkcc.kan_linear_fwd_triton(*leaves, grid.to(DEVICE), 3)
    out.sum().backward()
    ref_out, ref_grads = run_reference(x, base, spline, scaler, grid, 3, torch.ones(40, 6))
    assert_close(out.detach().cpu(), ref_out, TOLERANCE[torch.float32], "strided output")
    for leaf, ref in zip(leaves, ref_grads):
        assert_close(leaf.grad.cpu(), ref, TOLERANCE[torch.float32], "strided gradient")


def test_outputs_are_poisoned_before_the_kernels_write_them():
    """With the suite's poisoning on (conftest), every output of the planners starts as NaN, so
    an element a kernel fails to write fails the reference comparisons."""
    x, base, spline, scaler, grid = (
        t.to(DEVICE) for t in layer_tensors(20, 3, 5, 13, 4, torch.float32, seed=1)
    )
    launched = []
    out = triton_linear.plan_linear_forward(x, base, spline, scaler, grid, 4, launched.append)
    assert bool(out.isnan().all())
    grads = triton_linear.plan_linear_backward(
        torch.ones_like(out), x, base, spline, scaler, grid, 4, True, True, launched.append, 4
    )
    assert [launch.name for launch in launched] == ["linear_fwd", "linear_dx", "linear_dw"]
    for grad in grads:  # dx summed from per-block partials, weights from the dW partials
        assert grad.numel() > 0 and bool(grad.isnan().all())


@pytest.mark.parametrize("allow_tf32", [True, False])
def test_fp32_dots_follow_matmul_allow_tf32(allow_tf32):
    """The planners read torch.backends.cuda.matmul.allow_tf32 (nn.Linear's switch), not the
    convolutions' cudnn flag, and only for fp32."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            launches = []
            meta = dict(device="meta", dtype=dtype)
            x, grad_out = torch.empty(50, 6, **meta), torch.empty(50, 8, **meta)
            base, scaler = torch.empty(8, 6, **meta), torch.empty(8, 6, **meta)
            spline, grid = torch.empty(8, 6, 8, **meta), torch.empty(6, 12, **meta)
            triton_linear.plan_linear_forward(x, base, spline, scaler, grid, 3, launches.append)
            triton_linear.plan_linear_backward(
                grad_out, x, base, spline, scaler, grid, 3, True, True, launches.append, 4
            )
            ieee = dtype == torch.float32 and not allow_tf32
            assert [launch.constants["IEEE_FP32"] for launch in launches] == [ieee] * 3
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def test_planners_take_rows_past_int32_and_refuse_too_large_weights():
    launches = []
    meta = dict(device="meta")
    x, grad_out = torch.empty(3_000_000_000, 2, **meta), torch.empty(3_000_000_000, 4, **meta)
    base, spline = torch.empty(4, 2, **meta), torch.empty(4, 2, 8, **meta)
    grid = torch.empty(2, 12, **meta)
    triton_linear.plan_linear_forward(x, base, spline, None, grid, 3, launches.append)
    triton_linear.plan_linear_backward(
        grad_out, x, base, spline, None, grid, 3, True, True, launches.append, 132
    )
    assert [len(launch.grid) for launch in launches] == [1, 1, 1]
    fwd = launches[0]
    assert fwd.args[fwd.kernel.arg_names.index("batch")] == 3_000_000_000
    assert fwd.grid[0] >= 3_000_000_000 // 64
    base, spline = torch.empty(70_000, 4096, **meta), torch.empty(70_000, 4096, 8, **meta)
    x, grid = torch.empty(2, 4096, **meta), torch.empty(4096, 12, **meta)
    with pytest.raises(ValueError, match=r"^base_weight, spline_weight: \d+ packed weight values"):
        triton_linear.plan_linear_forward(x, base, spline, None, grid, 3, launches.append)


def opcheck_args(scaler=True):
    tensors = layer_tensors(9, 3, 5, 4, 3, torch.float32, seed=3, scaler=scaler)
    return tuple(t.to(DEVICE) if t is not None else None for t in tensors) + (3,)


# The interpreter runs on CPU tensors only eagerly: torch cannot trace an interpreted kernel
# (``triton_ops._launchable``), so torch.compile's check (aot_dispatch) needs a GPU.
OPCHECK_UTILS = None if ON_GPU else ("test_schema", "test_autograd_registration", "test_faketensor")


@pytest.mark.parametrize("scaler", [True, False], ids=["scaler", "no-scaler"])
def test_opcheck_forward(scaler):
    torch.library.opcheck(
        torch.ops.mkcc.kan_linear_fwd_triton.default, opcheck_args(scaler), test_utils=OPCHECK_UTILS
    )


@pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("scaler", [True, False], ids=["scaler", "no-scaler"])
def test_opcheck_backward(scaler, flags):
    args = opcheck_args(scaler)
    grad_out = torch.randn(9, 5, device=DEVICE)
    torch.library.opcheck(
        torch.ops.mkcc.kan_linear_bwd_triton.default,
        (grad_out, *args, *flags),
        test_utils=OPCHECK_UTILS,
    )


def bad_call(x=None, base=None, spline=None, scaler=None, grid=None, order=3, dtype=None):
    """The forward op with one argument replaced."""
    ok = opcheck_args()
    args = [a if b is None else b for a, b in zip(ok[:5], (x, base, spline, scaler, grid))]
    if dtype is not None:
        args = [a.to(dtype) for a in args]
    return torch.ops.mkcc.kan_linear_fwd_triton(*args, order)


def test_bad_inputs_name_the_argument():
    x, base, spline, scaler, grid, _ = opcheck_args()
    with pytest.raises(ValueError, match=r"^x: expected \[\.\.\., in_features\] with in_feat"):
        bad_call(x=torch.randn(9, 4, device=DEVICE))
    with pytest.raises(ValueError, match=r"^x: expected a 2-D tensor \[N, in_features\]"):
        bad_call(x=x.unsqueeze(0))
    with pytest.raises(TypeError, match=r"^base_weight: expected dtype torch.float32"):
        bad_call(base=base.double())
    with pytest.raises(TypeError, match=r"^spline_scaler: expected dtype torch.float32"):
        bad_call(scaler=scaler.half())
    with pytest.raises(TypeError, match=r"^x: backend 'triton' supports float32, float16"):
        bad_call(dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^grid: expected shape \[3, 11\]"):
        bad_call(grid=grid[:, 1:])
    with pytest.raises(ValueError, match=r"^spline_weight: expected shape \[5, 3, grid_size"):
        bad_call(spline=spline[:, :2])
    with pytest.raises(ValueError, match=r"^spline_scaler: expected shape \(5, 3\)"):
        bad_call(scaler=scaler.t())
    with pytest.raises(ValueError, match=r"^spline_order: expected 1, 2, 3 or 4"):
        bad_call(order=5)


def test_backward_op_checks_grad_out():
    args = opcheck_args()
    with pytest.raises(ValueError, match=r"^grad_out: expected shape \[9, 5\]"):
        torch.ops.mkcc.kan_linear_bwd_triton(torch.randn(9, 4, device=DEVICE), *args, True, True)
    with pytest.raises(TypeError, match=r"^grad_out: expected dtype torch.float32"):
        torch.ops.mkcc.kan_linear_bwd_triton(
            torch.randn(9, 5, device=DEVICE, dtype=F64), *args, True, True
        )
    with pytest.raises(ValueError, match=r"^x: expected \[\.\.\., in_features\]"):
        torch.ops.mkcc.kan_linear_bwd_triton(
            torch.randn(9, 5, device=DEVICE), torch.randn(9, 4, device=DEVICE), *args[1:], True,
            True,
        )  # fmt: skip


def test_double_backward_is_an_error():
    x, base, spline, scaler, grid, order = opcheck_args()
    x = x.requires_grad_(True)
    out = torch.ops.mkcc.kan_linear_fwd_triton(x, base, spline, scaler, grid, order)
    (grad_x,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad_x.sum().backward()


def test_saves_only_the_inputs():
    x, base, spline, scaler, grid, order = opcheck_args()
    leaves = [t.requires_grad_(True) for t in (x, base, spline, scaler)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        torch.ops.mkcc.kan_linear_fwd_triton(*leaves, grid, order)
    limit = sum(t.numel() * t.element_size() for t in (*leaves, grid))
    assert 0 < sum(t.numel() * t.element_size() for t in saved) <= limit


@pytest.mark.skipif(
    not ON_GPU, reason="the interpreter runs programs one at a time in order: nothing to reorder"
)
def test_deterministic():
    tensors = layer_tensors(3000, 64, 96, 5, 3, torch.float32, seed=9)
    first, second = (run_triton(*tensors, 3) for _ in range(2))
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_matches_reference_wider(order, precision):
    """Wider layers: several input-feature and column blocks, several row tiles, grids of 8 and
    20 intervals."""
    dtype, allow_tf32 = PRECISIONS[precision]
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    for grid_size, scaler in ((8, True), (20, False)):
        tensors = layer_tensors(150, 9, 70, grid_size, order, dtype, 100 + order, scaler)
        compare(
            tensors, order, dtype, f"[wide G={grid_size} K={order} {precision}]",
            tolerance(PRECISIONS[precision]),
        )  # fmt: skip


def test_module_and_functional_reach_the_triton_ops():
    """``KANLinear(backend="triton")`` and ``kan_linear(..., backend="triton")`` run these
    kernels (here under the interpreter) and match the fp64 reference, gradients included."""
    from mkcc_kernels import KANLinear, kan_linear

    torch.manual_seed(5)
    layer = KANLinear(6, 5, backend="triton")
    layer.update_grid(torch.randn(300, 6) * 0.7)  # non-uniform knots per feature
    x = (torch.randn(2, 9, 6) * 0.8).requires_grad_(True)
    out = layer(x)
    ref_x = x.detach().double().requires_grad_(True)
    expected = kan_linear(
        ref_x, layer.base_weight.double(), layer.spline_weight.double(), layer.grid.double(), 3,
        layer.spline_scaler.double(), backend="reference",
    )  # fmt: skip
    assert_close(out, expected, TOLERANCE[torch.float32], "KANLinear(backend='triton')")
    out.sum().backward()
    expected.sum().backward()
    assert_close(x.grad, ref_x.grad, TOLERANCE[torch.float32], "grad_x")
    functional = kan_linear(
        x.detach(), layer.base_weight, layer.spline_weight, layer.grid, 3, layer.spline_scaler,
        backend="triton",
    )  # fmt: skip
    assert_close(functional, expected, TOLERANCE[torch.float32], "kan_linear(backend='triton')")
