"""The fused KANConv2d Triton ops (``mkcc::kan_conv2d_fwd_triton``, ``mkcc::kan_conv2d_bwd_triton``)
against the fp64 reference (basis expansion + ``conv2d``): forward and the gradients of x,
base_weight and spline_weight on fresh random inputs, over curated odd geometries. Without a GPU
the kernels run under Triton's interpreter on CPU tensors (fp32 both ways, fp16; bf16 is not
computed correctly by the interpreter, so it runs on a GPU only); on a GPU natively over fp32,
fp16 and bf16, plus opcheck and compile parity."""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels
from mkcc_kernels.conv_args import Conv2dArgs
from mkcc_kernels.ops import triton_conv2d
from mkcc_kernels.reference import kan_conv2d_reference, knots

from .helpers import TOLERANCE, TOLERANCE_TF32, assert_close

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
F64 = torch.float64
pytestmark = pytest.mark.skipif(
    triton_conv2d is None or not triton_conv2d.runs_on(DEVICE),
    reason="Triton is not installed, or neither a GPU nor TRITON_INTERPRET=1 is present",
)
# (dtype, whether fp32 dots may use TF32): fp32 runs both ways, as torch.backends.cudnn.allow_tf32
# decides (nn.Conv2d's switch); the interpreter computes both exactly (with different tiles), a
# GPU rounds TF32 inputs to 10-bit mantissas.
PRECISIONS = {
    "fp32-ieee": (torch.float32, False),
    "fp32-tf32": (torch.float32, True),
    "fp16": (torch.float16, True),
}
if ON_GPU:
    PRECISIONS["bf16"] = (torch.bfloat16, True)


@pytest.fixture(autouse=True)
def cudnn_tf32():
    """fp32 dots in IEEE fp32 on a GPU unless a test asks for TF32 (so that fp32 results meet
    the fp32 tolerance); under the interpreter, which computes both exactly, the tensor-core
    tiles (fewer, larger programs: faster there) unless a test asks for IEEE."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not ON_GPU
    yield
    torch.backends.cudnn.allow_tf32 = saved


def conv2d_args(
    stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, order=3, grid_range=(-1, 1)
) -> Conv2dArgs:
    """``Conv2dArgs`` from pairs; ``padding`` is (top, bottom, left, right)."""
    return Conv2dArgs(*stride, *padding, *dilation, groups, order, *map(float, grid_range))


def make_inputs(batch, c_in, c_out, height, width, kernel, conv, grid_size, dtype, seed=0):
    """x mostly inside the extended grid, some beyond it on both sides; weights standard normal
    (not the layer's small spline init), all in ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    lo, hi = conv.grid_lo, conv.grid_hi
    x = torch.randn(batch, c_in, height, width, generator=generator, dtype=F64)
    x = x * 0.8 * (hi - lo) + (lo + hi) / 2
    shape = (c_out, c_in // conv.groups, *kernel)
    base = torch.randn(shape, generator=generator, dtype=F64)
    spline = torch.randn(*shape, grid_size + conv.spline_order, generator=generator, dtype=F64)
    return x.to(dtype), base.to(dtype), spline.to(dtype)


def run_triton(x, base, spline, conv, grad_out=None):
    """Output and the gradients of (x, base, spline) through the op's autograd."""
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline)]
    out = torch.ops.mkcc.kan_conv2d_fwd_triton(*leaves, *conv)
    if grad_out is None:
        generator = torch.Generator().manual_seed(1234)
        grad_out = torch.randn(out.shape, generator=generator, dtype=F64).to(out.dtype)
    grads = torch.autograd.grad(out, leaves, grad_out.to(DEVICE))
    return out.detach().cpu(), [g.cpu() for g in grads], grad_out.cpu()


def run_reference(x, base, spline, conv, grad_out, dtype=F64):
    """The reference in ``dtype`` (fp64: the oracle) and its autograd gradients."""
    leaves = [t.detach().cpu().to(dtype).requires_grad_(True) for t in (x, base, spline)]
    out = kan_conv2d_reference(*leaves, conv)
    grads = torch.autograd.grad(out, leaves, grad_out.cpu().to(dtype))
    return out.detach(), list(grads)


def compare(x, base, spline, conv, what, tol=None, reference_dtype=F64):
    out, grads, grad_out = run_triton(x, base, spline, conv)
    ref_out, ref_grads = run_reference(x, base, spline, conv, grad_out, reference_dtype)
    tol = TOLERANCE[x.dtype] if tol is None else tol
    assert out.dtype == x.dtype
    assert_close(out, ref_out, tol, f"{what} output")
    for name, grad, ref in zip(("x", "base_weight", "spline_weight"), grads, ref_grads):
        assert grad.dtype == x.dtype, name
        assert_close(grad, ref, tol, f"{what} grad {name}")


def tolerance(precision):
    dtype, allow_tf32 = PRECISIONS[precision]
    return TOLERANCE_TF32 if ON_GPU and dtype == torch.float32 and allow_tf32 else None


# Different stride, dilation and padding per dimension, each side's padding its own.
ASYMMETRIC = {"stride": (3, 2), "padding": (1, 0, 2, 1), "dilation": (2, 1)}
# id: (B, C_in, C_out, H, W, (kh, kw), conv2d_args keywords, grid size)
CONFIGS = {
    "1x1-image-k1": (3, 3, 4, 1, 1, (1, 1), {}, 5),
    "1x1-image-k3-pad1": (2, 3, 4, 1, 1, (3, 3), {"padding": (1, 1, 1, 1)}, 5),
    "kernel-larger-than-image": (2, 2, 3, 2, 3, (5, 4), {"padding": (2, 2, 1, 2)}, 5),
    "stride2": (2, 3, 5, 9, 8, (3, 3), {"stride": (2, 2), "padding": (1, 1, 1, 1)}, 5),
    "stride3x2-dilation2x1-asymmetric-pad": (1, 3, 5, 11, 9, (3, 2), ASYMMETRIC, 3),
    "dilation2-pad2": (1, 2, 3, 6, 7, (3, 3), {"dilation": (2, 2), "padding": (2, 2, 2, 2)}, 5),
    "groups2": (1, 4, 6, 5, 5, (3, 3), {"groups": 2, "padding": (1, 1, 1, 1)}, 5),
    "depthwise": (2, 2, 2, 5, 6, (3, 3), {"groups": 2, "padding": (1, 1, 1, 1)}, 5),
    "depthwise-multiplier2": (1, 2, 4, 5, 5, (3, 2), {"groups": 2, "padding": (0, 1, 1, 0)}, 3),
    # more output channels than one column tile (64), fewer than two (the 128-wide tiles)
    "C_out-70": (1, 2, 70, 4, 5, (2, 2), {"padding": (1, 0, 0, 1)}, 5),
    # several row tiles (144 output pixels) and the weight gradient's split reduction
    "rows-over-tiles": (2, 2, 3, 9, 10, (2, 2), {}, 5),
    "K1-G1": (2, 3, 4, 5, 4, (3, 3), {"padding": (1, 1, 1, 1), "order": 1}, 1),
    "K2-G3": (2, 3, 4, 5, 4, (3, 3), {"padding": (1, 1, 1, 1), "order": 2}, 3),
    "K4-G8": (2, 3, 4, 5, 4, (3, 3), {"padding": (1, 1, 1, 1), "order": 4}, 8),
    # 1 + G + K = 18 features: contracted in two blocks of 16
    "G13-K4-two-feature-blocks": (1, 3, 4, 4, 5, (3, 3), {"order": 4, "padding": (1, 1, 1, 1)}, 13),
    "grid-range": (2, 3, 4, 5, 4, (2, 3), {"grid_range": (-0.5, 3.0), "padding": (0, 1, 1, 1)}, 6),
}
# Under the interpreter (slow: a program's every step is numpy calls) the IEEE tiles (one input
# channel per dot, 16-row weight-gradient steps) and fp16 run on a subset: every pass and tile
# kind, not every shape.
INTERPRETER_SUBSETS = {
    "fp32-tf32": tuple(CONFIGS),
    "fp32-ieee": ("stride3x2-dilation2x1-asymmetric-pad", "depthwise", "rows-over-tiles"),
    "fp16": ("stride3x2-dilation2x1-asymmetric-pad", "depthwise", "G13-K4-two-feature-blocks"),
}
CASES = [
    pytest.param(config, precision, id=f"{config}-{precision}")
    for precision in PRECISIONS
    for config in (CONFIGS if ON_GPU else INTERPRETER_SUBSETS[precision])
]


@pytest.mark.parametrize(("config", "precision"), CASES)
def test_matches_reference(config, precision):
    dtype, allow_tf32 = PRECISIONS[precision]
    torch.backends.cudnn.allow_tf32 = allow_tf32
    batch, c_in, c_out, height, width, kernel, conv, grid_size = CONFIGS[config]
    conv = conv2d_args(**conv)
    x, base, spline = make_inputs(
        batch, c_in, c_out, height, width, kernel, conv, grid_size, dtype, seed=len(config)
    )
    compare(x, base, spline, conv, f"[{config} {precision}]", tolerance(precision))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_inputs_on_knots_and_outside_grid(order):
    grid_size, grid_range = 4, (-1.0, 1.5)
    t = knots(grid_size, order, grid_range, torch.float32)
    special = torch.cat([t, t[:1] - 0.25, t[-1:] + 0.25, torch.tensor([-7.0, 9.0])])
    generator = torch.Generator().manual_seed(order)
    x = special[torch.randint(0, special.numel(), (2, 3, 5, 4), generator=generator)]
    base = torch.randn(4, 3, 2, 2, generator=generator)
    spline = torch.randn(4, 3, 2, 2, grid_size + order, generator=generator)
    conv = conv2d_args(padding=(1, 1, 1, 1), order=order, grid_range=grid_range)
    # Linear splines have a kink at every knot and an fp32 knot is not an fp64 knot: K = 1 is
    # compared with the reference computed on the same fp32 knots.
    compare(x, base, spline, conv, f"knots K={order}",
            reference_dtype=torch.float32 if order == 1 else F64)  # fmt: skip


@pytest.mark.parametrize("allow_tf32", [True, False])
def test_fp32_dots_follow_cudnn_allow_tf32(allow_tf32):
    """The planners read torch.backends.cudnn.allow_tf32 (nn.Conv2d's switch) for fp32 only."""
    torch.backends.cudnn.allow_tf32 = allow_tf32
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        launches = []
        meta = dict(device="meta", dtype=dtype)
        x, grad_out = torch.empty(2, 6, 9, 10, **meta), torch.empty(2, 8, 9, 10, **meta)
        base, spline = torch.empty(8, 6, 3, 3, **meta), torch.empty(8, 6, 3, 3, 8, **meta)
        conv = conv2d_args(padding=(1, 1, 1, 1))
        triton_conv2d.plan_conv2d_forward(x, base, spline, conv, launches.append)
        triton_conv2d.plan_conv2d_backward(
            grad_out, x, base, spline, conv, True, True, launches.append, 4
        )
        assert [launch.name for launch in launches] == ["conv2d_fwd", "conv2d_dx", "conv2d_dw"]
        ieee = dtype == torch.float32 and not allow_tf32
        assert [launch.constants["IEEE_FP32"] for launch in launches] == [ieee] * 3


def test_depthwise_groups_take_one_channel_tiles():
    """Groups of one input channel and at most 16 outputs take 16-deep, 16-wide dots; others
    the KANConv1d tiles (4 channels of 16 features, 64 or 128 output channels)."""
    torch.backends.cudnn.allow_tf32 = True
    conv = conv2d_args(padding=(1, 1, 1, 1), groups=8)
    for c_out, channels, cols in ((8, 1, 16), (128, 1, 16), (256, 4, 64), (640, 4, 128)):
        launches = []
        x = torch.empty(2, 8, 9, 10, device="meta")
        base = torch.empty(c_out, 1, 3, 3, device="meta")
        spline = torch.empty(c_out, 1, 3, 3, 8, device="meta")
        triton_conv2d.plan_conv2d_forward(x, base, spline, conv, launches.append)
        assert launches[0].constants["BLOCK_C"] == channels
        assert launches[0].constants["BLOCK_N"] == cols


def test_channels_last_input_and_expanded_grad_out():
    """x channels-last, grad_out the stride-0 gradient of ``y.sum()``: both read through their
    strides."""
    conv = conv2d_args(stride=(2, 1), padding=(1, 1, 1, 1))
    x, base, spline = make_inputs(2, 5, 6, 5, 4, (2, 2), conv, 5, torch.float32, seed=3)
    x_last = x.to(DEVICE).contiguous(memory_format=torch.channels_last)
    assert not x_last.is_contiguous()
    leaves = [x_last.requires_grad_(True)] + [
        t.to(DEVICE).requires_grad_(True) for t in (base, spline)
    ]
    out = torch.ops.mkcc.kan_conv2d_fwd_triton(*leaves, *conv)
    out.sum().backward()
    ref_out, ref_grads = run_reference(x, base, spline, conv, torch.ones(out.shape))
    tol = TOLERANCE[torch.float32]
    assert_close(out.detach().cpu(), ref_out, tol, "channels-last output")
    for name, leaf, ref in zip(("x", "base_weight", "spline_weight"), leaves, ref_grads):
        assert_close(leaf.grad.cpu(), ref, tol, f"channels-last grad {name}")


def test_outputs_are_poisoned_before_the_kernels_write_them():
    """With the suite's poisoning on (conftest), every output of the planners starts as NaN, so
    an element a kernel fails to write fails the reference comparisons."""
    conv = conv2d_args(padding=(1, 1, 1, 1), order=4)
    x, base, spline = (
        t.to(DEVICE) for t in make_inputs(2, 3, 5, 4, 4, (3, 3), conv, 13, torch.float32)
    )
    launched = []
    out = triton_conv2d.plan_conv2d_forward(x, base, spline, conv, launched.append)
    assert bool(out.isnan().all())
    grads = triton_conv2d.plan_conv2d_backward(
        torch.ones_like(out), x, base, spline, conv, True, True, launched.append, 4
    )
    assert [launch.name for launch in launched] == ["conv2d_fwd", "conv2d_dx", "conv2d_dw"]
    for grad in grads:  # dx summed from per-block partials, weights from the dW partials
        assert grad.numel() > 0 and bool(grad.isnan().all())


def test_empty_batch():
    conv = conv2d_args(padding=(1, 1, 1, 1))
    x, base, spline = make_inputs(0, 3, 4, 5, 6, (3, 3), conv, 5, torch.float32)
    leaves = [t.to(DEVICE).requires_grad_(True) for t in (x, base, spline)]
    out = torch.ops.mkcc.kan_conv2d_fwd_triton(*leaves, *conv)
    assert out.shape == (0, 4, 5, 6)
    out.sum().backward()
    assert leaves[0].grad.shape == x.shape
    for leaf in leaves[1:]:
        assert leaf.grad.shape == leaf.shape and bool((leaf.grad == 0).all())


@pytest.mark.parametrize("flags", [(True, False), (False, True)], ids=["x-only", "weights-only"])
def test_backward_op_returns_only_what_is_asked(flags):
    conv = conv2d_args(stride=(1, 2), padding=(1, 1, 0, 1), groups=2)
    x, base, spline = make_inputs(2, 4, 6, 5, 6, (3, 3), conv, 4, torch.float32, seed=7)
    grad_out = torch.randn(2, 6, 5, 3, generator=torch.Generator().manual_seed(2))
    input_grad, weight_grad = flags
    grads = torch.ops.mkcc.kan_conv2d_bwd_triton(
        grad_out.to(DEVICE), x.to(DEVICE), base.to(DEVICE), spline.to(DEVICE), *conv,
        input_grad, weight_grad,
    )  # fmt: skip
    _, ref_grads = run_reference(x, base, spline, conv, grad_out)
    for name, grad, ref, wanted in zip(("x", "base", "spline"), grads, ref_grads,
                                       (input_grad, weight_grad, weight_grad)):  # fmt: skip
        if wanted:
            assert_close(grad.cpu(), ref, TOLERANCE[torch.float32], f"grad {name}")
        else:
            assert grad.shape == (0,), name


def test_gradient_of_one_weight_only():
    conv = conv2d_args(padding=(1, 1, 1, 1))
    x, base, spline = make_inputs(2, 3, 4, 5, 5, (3, 3), conv, 5, torch.float32, seed=5)
    leaf = spline.to(DEVICE).requires_grad_(True)
    out = torch.ops.mkcc.kan_conv2d_fwd_triton(x.to(DEVICE), base.to(DEVICE), leaf, *conv)
    (grad,) = torch.autograd.grad(out.square().sum(), leaf)
    ref_leaf = spline.double().requires_grad_(True)
    ref = kan_conv2d_reference(x.double(), base.double(), ref_leaf, conv)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), ref_leaf)
    assert_close(grad.cpu(), ref_grad, TOLERANCE[torch.float32], "spline gradient only")


def opcheck_args():
    conv = conv2d_args(stride=(2, 1), padding=(1, 0, 1, 1))
    tensors = make_inputs(2, 3, 4, 5, 4, (3, 2), conv, 4, torch.float32, seed=3)
    return tuple(t.to(DEVICE) for t in tensors), conv


# The interpreter runs on CPU tensors only eagerly: torch cannot trace an interpreted kernel,
# so torch.compile's check (aot_dispatch) needs a GPU.
OPCHECK_UTILS = None if ON_GPU else ("test_schema", "test_autograd_registration", "test_faketensor")


def test_opcheck_forward():
    tensors, conv = opcheck_args()
    torch.library.opcheck(
        torch.ops.mkcc.kan_conv2d_fwd_triton.default, (*tensors, *conv), test_utils=OPCHECK_UTILS
    )


@pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True)])
def test_opcheck_backward(flags):
    tensors, conv = opcheck_args()
    grad_out = torch.randn(2, 4, 2, 5, device=DEVICE)
    torch.library.opcheck(
        torch.ops.mkcc.kan_conv2d_bwd_triton.default,
        (grad_out, *tensors, *conv, *flags),
        test_utils=OPCHECK_UTILS,
    )


def bad_call(x=None, base=None, spline=None, dtype=None, **conv):
    """The forward op with one argument replaced."""
    (x0, base0, spline0), conv0 = opcheck_args()
    args = [a if b is None else b for a, b in zip((x0, base0, spline0), (x, base, spline))]
    if dtype is not None:
        args = [a.to(dtype) for a in args]
    return torch.ops.mkcc.kan_conv2d_fwd_triton(*args, *conv0._replace(**conv))


def test_bad_inputs_name_the_argument():
    (x, base, spline), _ = opcheck_args()
    with pytest.raises(ValueError, match=r"^x: expected a 4-D tensor"):
        bad_call(x=x[0])
    with pytest.raises(TypeError, match=r"^base_weight: expected dtype torch.float32"):
        bad_call(base=base.double())
    with pytest.raises(TypeError, match=r"^x: backend 'triton' supports float32, float16"):
        bad_call(dtype=F64)
    with pytest.raises(ValueError, match=r"^spline_weight: expected shape \[4, 3, 3, 2, grid"):
        bad_call(spline=spline[:, :, :2])
    with pytest.raises(ValueError, match=r"^base_weight: expected shape \[out_channels, 3"):
        bad_call(base=base[:, :2], spline=spline[:, :2])
    with pytest.raises(ValueError, match=r"^spline_order: expected 1, 2, 3 or 4"):
        bad_call(spline_order=5)
    with pytest.raises(ValueError, match=r"^stride_w: "):
        bad_call(stride_w=0)
    with pytest.raises(ValueError, match=r"^pad_bottom: "):
        bad_call(pad_bottom=-1)
    with pytest.raises(ValueError, match=r"^kernel_size: .* padded input height"):
        bad_call(dilation_h=5)


def test_backward_op_checks_grad_out():
    tensors, conv = opcheck_args()
    with pytest.raises(ValueError, match=r"^grad_out: expected shape \[2, 4, 2, 5\]"):
        torch.ops.mkcc.kan_conv2d_bwd_triton(
            torch.randn(2, 4, 3, 5, device=DEVICE), *tensors, *conv, True, True
        )
    with pytest.raises(TypeError, match=r"^grad_out: expected dtype torch.float32"):
        torch.ops.mkcc.kan_conv2d_bwd_triton(
            torch.randn(2, 4, 2, 5, device=DEVICE, dtype=F64), *tensors, *conv, True, True
        )


def test_planners_take_rows_past_int32_and_refuse_what_they_cannot_address():
    """Output pixels (batch x H_out x W_out) past 2^31 plan a one-dimensional grid with the
    sizes as they are (the kernels form rows in 64 bits); images of 2^30 pixels or more, packed
    weights past 32-bit tile offsets and grids past one launch are clear errors."""
    launches = []
    meta = dict(device="meta")
    x, grad_out = torch.empty(70_000, 2, 200, 200, **meta), torch.empty(70_000, 4, 200, 200, **meta)
    base, spline = torch.empty(4, 2, 3, 3, **meta), torch.empty(4, 2, 3, 3, 8, **meta)
    conv = conv2d_args(padding=(1, 1, 1, 1))
    triton_conv2d.plan_conv2d_forward(x, base, spline, conv, launches.append)
    triton_conv2d.plan_conv2d_backward(
        grad_out, x, base, spline, conv, True, True, launches.append, 132
    )
    rows = 70_000 * 200 * 200
    assert rows > 2**31
    assert [len(launch.grid) for launch in launches] == [1, 1, 1]
    fwd = launches[0]
    assert fwd.args[fwd.kernel.arg_names.index("batch")] == 70_000
    assert fwd.grid[0] >= rows // 64 and launches[1].grid[0] >= rows // 64
    with pytest.raises(ValueError, match=r"^x: \d+ pixels per image"):
        triton_conv2d.plan_conv2d_forward(
            torch.empty(1, 2, 2**15, 2**15, **meta), base, spline, conv, launches.append
        )
    big_base = torch.empty(8192, 2048, 3, 3, **meta)
    big_spline = torch.empty(8192, 2048, 3, 3, 8, **meta)
    with pytest.raises(ValueError, match=r"^base_weight, spline_weight: \d+ packed weight"):
        triton_conv2d.plan_conv2d_forward(
            torch.empty(1, 2048, 4, 4, **meta), big_base, big_spline, conv, launches.append
        )
    with pytest.raises(ValueError, match=r"^x: the Triton kernels need \d+ programs"):
        triton_conv2d.plan_conv2d_forward(
            torch.empty(2**31, 2, 8, 8, **meta), base, spline, conv, launches.append
        )


def test_double_backward_is_an_error():
    (x, base, spline), conv = opcheck_args()
    x = x.requires_grad_(True)
    out = torch.ops.mkcc.kan_conv2d_fwd_triton(x, base, spline, *conv)
    (grad_x,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="kan_conv2d: .*double backward"):
        grad_x.sum().backward()


def test_saves_only_x_and_weights():
    (x, base, spline), conv = opcheck_args()
    leaves = [t.requires_grad_(True) for t in (x, base, spline)]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        torch.ops.mkcc.kan_conv2d_fwd_triton(*leaves, *conv)
    limit = sum(t.numel() * t.element_size() for t in leaves)
    assert 0 < sum(t.numel() * t.element_size() for t in saved) <= limit


def test_module_and_functional_reach_the_triton_ops():
    """``KANConv2d(backend="triton")`` and ``kan_conv2d(..., backend="triton")`` run these
    kernels and match the fp64 reference, gradients included."""
    torch.manual_seed(5)
    layer = mkcc_kernels.KANConv2d(4, 6, (3, 2), stride=(2, 1), padding="valid", groups=2,
                                   backend="triton", device=DEVICE)  # fmt: skip
    with torch.no_grad():
        layer.spline_weight.normal_()  # not the small initial noise
    x = (torch.randn(2, 4, 7, 6, device=DEVICE) * 0.8).requires_grad_(True)
    out = layer(x)
    ref_x = x.detach().cpu().double().requires_grad_(True)
    expected = mkcc_kernels.kan_conv2d(
        ref_x, layer.base_weight.detach().cpu().double(),
        layer.spline_weight.detach().cpu().double(), layer.bias.detach().cpu().double(),
        stride=(2, 1), groups=2, backend="reference",
    )  # fmt: skip
    tol = TOLERANCE[torch.float32]
    assert_close(out.detach().cpu(), expected, tol, "KANConv2d(backend='triton')")
    out.sum().backward()
    expected.sum().backward()
    assert_close(x.grad.cpu(), ref_x.grad, tol, "grad_x")
    functional = mkcc_kernels.kan_conv2d(
        x.detach(), layer.base_weight, layer.spline_weight, layer.bias, stride=(2, 1), groups=2,
        backend="triton",
    )  # fmt: skip
    assert_close(functional.detach().cpu(), expected, tol, "kan_conv2d(backend='triton')")


@pytest.mark.skipif(
    not ON_GPU, reason="the interpreter runs programs one at a time in order: nothing to reorder"
)
def test_deterministic():
    conv = conv2d_args(padding=(1, 1, 1, 1))
    x, base, spline = make_inputs(8, 16, 32, 20, 20, (3, 3), conv, 5, torch.float32, seed=9)
    first, second = (run_triton(x, base, spline, conv) for _ in range(2))
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a, b)


@pytest.mark.skipif(not ON_GPU, reason="compiling a triton_op on CPU tensors is not supported")
def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        mkcc_kernels.KANConv2d(3, 8, 3, padding=1, backend="triton"),
        torch.nn.BatchNorm2d(8),
        mkcc_kernels.KANConv2d(8, 8, 3, stride=2, padding=1, groups=8, backend="triton"),
    ).to(DEVICE)
    x = torch.randn(4, 3, 17, 15, device=DEVICE)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)(x)
    assert_close(compiled, eager, TOLERANCE[torch.float32], "compiled output")
