"""KANConv2d: the spec read loop by loop against the reference, the fused CPU kernels (every
instruction-set build) against the fp64 reference on fresh random inputs with poisoned outputs,
every gradient, hypothesis cases over the geometry, the module as a drop-in for nn.Conv2d,
convert_to_kan, the PyTorch tools (opcheck, torch.compile, torch.export) and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from torch import nn

import mkcc_kernels
from mkcc_kernels import KANConv1d, KANConv2d, convert_to_kan, kan_conv2d
from mkcc_kernels.conv_args import Conv2dArgs
from mkcc_kernels.reference import (
    bspline_basis,
    kan_conv2d_reference,
    kan_conv2d_unfold,
)

from .helpers import TOLERANCE, assert_close

F64 = torch.float64


def make_case(batch, cin, cout, height, width, kh, kw, groups=1, order=3, grid=5, seed=0):
    """Fresh random inputs (never zeros; some outside the grid) and weights with spline weights of
    order one, not the near-zero initialization."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin, height, width, generator=gen, dtype=F64) * 1.3
    base = torch.randn(cout, cin // groups, kh, kw, generator=gen, dtype=F64)
    spline = torch.randn(cout, cin // groups, kh, kw, grid + order, generator=gen, dtype=F64)
    return x, base, spline


def spec_loop(x, base, spline, conv: Conv2dArgs):
    """The spec read literally: every output, every input channel of its group, every tap; a tap
    outside the image contributes nothing."""
    sh, sw, top, bottom, left, right, dh, dw, groups, order, lo, hi = conv
    batch, cin, height, width = x.shape
    cout, cg, kh, kw = base.shape
    grid = spline.shape[-1] - order
    out_h = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    y = torch.zeros(batch, cout, out_h, out_w, dtype=x.dtype)
    basis = bspline_basis(x, grid, order, (lo, hi))
    silu = F.silu(x)
    for b in range(batch):
        for o in range(cout):
            g = o // (cout // groups)
            for u in range(out_h):
                for v in range(out_w):
                    total = 0.0
                    for c in range(cg):
                        ci = g * cg + c
                        for i in range(kh):
                            for j in range(kw):
                                r, s = u * sh + i * dh - top, v * sw + j * dw - left
                                if not (0 <= r < height and 0 <= s < width):
                                    continue
                                total += base[o, c, i, j] * silu[b, ci, r, s]
                                total += (spline[o, c, i, j] * basis[b, ci, r, s]).sum()
                    y[b, o, u, v] = total
    return y


def reference_and_grads(x, base, spline, conv, seed=1):
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, base, spline)]
    out = kan_conv2d_reference(*leaves, conv)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    grads = torch.autograd.grad(out, leaves, grad_out)
    return out, grad_out, grads


def fused_and_grads(x, base, spline, conv, grad_out, dtype):
    leaves = [t.detach().to(dtype).requires_grad_(True) for t in (x, base, spline)]
    out = torch.ops.mkcc.kan_conv2d_fwd(*leaves, *conv)
    grads = torch.autograd.grad(out, leaves, grad_out.to(dtype))
    return out, grads


# (batch, cin, cout, H, W, kh, kw, stride, (top, bottom, left, right), dilation, groups)
CURATED = [
    (2, 3, 5, 7, 9, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (2, 3, 5, 7, 9, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1 x 1 everything
    (2, 2, 3, 2, 3, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1),  # kernel larger than the image
    (2, 4, 6, 8, 11, 3, 2, (2, 1), (1, 2, 0, 3), (1, 2), 2),  # asymmetric everything, groups
    (3, 8, 8, 9, 10, 3, 3, (2, 3), (1, 1, 1, 1), (1, 1), 8),  # depthwise, strides 2 and 3
    (2, 6, 40, 12, 12, 2, 4, (3, 2), (0, 1, 2, 0), (2, 1), 1),  # even kernels, dilation
    (2, 2, 37, 4, 70, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # wide rows, odd channels
    (2, 2, 130, 4, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # many output channels
    (1, 3, 4, 1, 13, 1, 3, (1, 2), (0, 0, 1, 1), (1, 1), 1),  # a single image row
    (1, 3, 4, 13, 1, 3, 1, (2, 1), (1, 1, 0, 0), (1, 1), 1),  # a single image column
]


def conv_args(case, order=3):
    *_, stride, pads, dilation, groups = case
    return Conv2dArgs(*stride, *pads, *dilation, groups, order, -1.0, 1.0)


@pytest.mark.parametrize("case", CURATED[:7])
def test_reference_and_unfold_follow_the_spec_loop(case):
    batch, cin, cout, h, w, kh, kw, *_ = case
    groups = case[-1]
    for order, grid in ((3, 5), (1, 2)):
        x, base, spline = make_case(batch, cin, cout, h, w, kh, kw, groups, order, grid, seed=3)
        conv = conv_args(case, order)
        expected = spec_loop(x, base, spline, conv)
        assert_close(kan_conv2d_reference(x, base, spline, conv), expected, 1e-12, "reference")
        assert_close(kan_conv2d_unfold(x, base, spline, conv), expected, 1e-12, "unfold")


@pytest.mark.parametrize("case", CURATED)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_cpu_forward_and_every_gradient_match_the_fp64_reference(cpu_isa, case, dtype):
    batch, cin, cout, h, w, kh, kw, *_ = case
    for order, grid in ((3, 5), (1, 3), (2, 1), (4, 8)):
        x, base, spline = make_case(batch, cin, cout, h, w, kh, kw, case[-1], order, grid, seed=7)
        conv = conv_args(case, order)
        out_ref, grad_out, grads_ref = reference_and_grads(x, base, spline, conv)
        out, grads = fused_and_grads(x, base, spline, conv, grad_out, dtype)
        what = f"{cpu_isa} {case} order {order} grid {grid} {dtype}"
        tol = TOLERANCE[dtype]
        assert_close(out, out_ref, tol, f"forward {what}")
        for name, got, want in zip(("grad_x", "grad_base", "grad_spline"), grads, grads_ref):
            assert_close(got, want, tol, f"{name} {what}")


def test_inputs_on_knots_outside_the_grid_and_non_finite():
    x, base, spline = make_case(2, 3, 4, 6, 7, 3, 3, seed=5)
    knots = torch.linspace(-1.0, 1.0, 6, dtype=F64)
    x.view(-1)[: knots.numel()] = knots  # exactly on the knots
    x.view(-1)[10:14] = torch.tensor([-7.0, 9.0, -1.0 - 1e-12, 1.0 + 1e-12], dtype=F64)
    conv = Conv2dArgs(1, 1, 1, 1, 1, 1, 1, 1, 1, 3, -1.0, 1.0)
    out_ref, grad_out, grads_ref = reference_and_grads(x, base, spline, conv)
    out, grads = fused_and_grads(x, base, spline, conv, grad_out, F64)
    assert_close(out, out_ref, TOLERANCE[F64], "forward")
    for got, want in zip(grads, grads_ref):
        assert_close(got, want, TOLERANCE[F64], "gradient")
    x[0, 0, 2, 3] = float("nan")
    y = torch.ops.mkcc.kan_conv2d_fwd(x, base, spline, *conv)
    expected = kan_conv2d_reference(x, base, spline, conv)
    assert torch.equal(torch.isnan(y), torch.isnan(expected))


def test_gradcheck_in_fp64():
    x, base, spline = make_case(1, 2, 3, 4, 5, 2, 3, seed=9)
    conv = Conv2dArgs(1, 2, 1, 0, 1, 1, 1, 2, 1, 3, -1.0, 1.0)
    leaves = [t.requires_grad_(True) for t in (x, base, spline)]
    assert torch.autograd.gradcheck(
        lambda a, b, c: torch.ops.mkcc.kan_conv2d_fwd(a, b, c, *conv), leaves
    )


def test_empty_batch_and_all_padding_inputs():
    conv = Conv2dArgs(1, 1, 2, 2, 2, 1, 1, 1, 1, 3, -1.0, 1.0)
    for shape in ((0, 2, 5, 5), (2, 2, 0, 3), (2, 2, 3, 0)):
        x = torch.randn(shape, dtype=F64, requires_grad=True)
        base = torch.randn(3, 2, 3, 3, dtype=F64, requires_grad=True)
        spline = torch.randn(3, 2, 3, 3, 8, dtype=F64, requires_grad=True)
        out = torch.ops.mkcc.kan_conv2d_fwd(x, base, spline, *conv)
        expected = kan_conv2d_reference(x, base, spline, conv)
        assert out.shape == expected.shape
        assert_close(out, expected, TOLERANCE[F64], f"forward {shape}")
        grads = torch.autograd.grad(out.sum(), (x, base, spline))
        grads_ref = torch.autograd.grad(expected.sum(), (x, base, spline))
        for got, want in zip(grads, grads_ref):
            assert_close(got, want, TOLERANCE[F64], f"gradient {shape}")


def test_strided_and_channels_last_grad_out_and_input():
    x, base, spline = make_case(2, 4, 6, 5, 7, 3, 3, seed=11)
    conv = Conv2dArgs(1, 1, 1, 1, 1, 1, 1, 1, 1, 3, -1.0, 1.0)
    out_ref, grad_out, grads_ref = reference_and_grads(x, base, spline, conv)
    xc = x.to(memory_format=torch.channels_last).requires_grad_(True)
    leaves = [xc, base.clone().requires_grad_(True), spline.clone().requires_grad_(True)]
    out = torch.ops.mkcc.kan_conv2d_fwd(*leaves, *conv)
    grads = torch.autograd.grad(out, leaves, grad_out.to(memory_format=torch.channels_last))
    assert_close(out, out_ref, TOLERANCE[F64], "channels-last forward")
    for got, want in zip(grads, grads_ref):
        assert_close(got, want, TOLERANCE[F64], "channels-last gradient")
    out = torch.ops.mkcc.kan_conv2d_fwd(*leaves, *conv)
    expanded = torch.ones(1, 1, 1, 1, dtype=F64).expand(out.shape)
    grads = torch.autograd.grad(out, leaves, expanded)
    leaves_ref = [t.detach().clone().requires_grad_(True) for t in (x, base, spline)]
    grads_ref = torch.autograd.grad(kan_conv2d_reference(*leaves_ref, conv).sum(), leaves_ref)
    for got, want in zip(grads, grads_ref):
        assert_close(got, want, TOLERANCE[F64], "expanded grad_out gradient")


def test_autograd_saves_only_x_and_the_weights():
    layer = KANConv2d(4, 6, 3, padding=1, backend="cpu")
    x = torch.randn(3, 4, 9, 9, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    mine = {t.untyped_storage().data_ptr() for t in (x, layer.base_weight, layer.spline_weight)}
    assert saved and {t.untyped_storage().data_ptr() for t in saved} <= mine


# ---- hypothesis: the geometry ---------------------------------------------------------------


@st.composite
def cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    height = draw(st.integers(0, 9))
    width = draw(st.integers(0, 9))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    height = max(height, span_h - pads[0] - pads[1])
    width = max(width, span_w - pads[2] - pads[3])
    order = draw(st.integers(1, 4))
    grid = draw(st.integers(1, 7))
    batch = draw(st.integers(1, 3))
    channels_last = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return (batch, cin, cout, height, width, kh, kw, (sh, sw), tuple(pads), (dh, dw), groups,
            order, grid, channels_last, seed)  # fmt: skip


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(case=cases())
def test_hypothesis_cpu_against_the_reference(case):
    batch, cin, cout, h, w, kh, kw, stride, pads, dilation, groups, order, grid, cl, seed = case
    note(repr(case))
    x, base, spline = make_case(batch, cin, cout, h, w, kh, kw, groups, order, grid, seed)
    if cl:
        x = x.to(memory_format=torch.channels_last)
    conv = Conv2dArgs(*stride, *pads, *dilation, groups, order, -1.0, 1.0)
    out_ref, grad_out, grads_ref = reference_and_grads(x, base, spline, conv, seed=seed + 1)
    for dtype in (F64, torch.float32):
        out, grads = fused_and_grads(x, base, spline, conv, grad_out, dtype)
        assert_close(out, out_ref, TOLERANCE[dtype], f"forward {dtype}")
        for got, want in zip(grads, grads_ref):
            assert_close(got, want, TOLERANCE[dtype], f"gradient {dtype}")


# ---- the public API -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpu", "unfold"])
def test_functional_backends_agree_with_the_reference(backend):
    x, base, spline = make_case(2, 4, 6, 9, 8, 3, 2, groups=2, seed=13)
    bias = torch.randn(6, dtype=F64)
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    want = kan_conv2d(x, base, spline, bias, backend="reference", **args)
    got = kan_conv2d(x, base, spline, bias, backend=backend, **args)
    assert_close(got, want, TOLERANCE[F64], backend)
    assert kan_conv2d(x, base, spline, backend="auto", **args).shape == want.shape


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3),
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
        dict(kernel_size=3, padding="same"),
        dict(kernel_size=(4, 2), padding="same", dilation=(1, 3)),
        dict(kernel_size=3, padding="valid", stride=2),
        dict(kernel_size=3, groups=4, padding=1),
        dict(kernel_size=3, padding=1, padding_mode="reflect"),
        dict(kernel_size=(2, 3), padding="same", padding_mode="replicate"),
        dict(kernel_size=3, padding=(2, 1), padding_mode="circular", bias=False),
    ],
)
def test_module_is_a_drop_in_for_conv2d(kwargs):
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 8, **kwargs)
    layer = KANConv2d(4, 8, backend="cpu", **kwargs)
    x = torch.randn(2, 4, 9, 10)
    assert layer(x).shape == plain(x).shape
    assert layer.base_weight.shape == plain.weight.shape
    assert (layer.bias is None) == (plain.bias is None)
    assert layer.kernel_size == plain.kernel_size and layer.stride == plain.stride
    reference = KANConv2d(4, 8, backend="reference", **kwargs)
    reference.load_state_dict(layer.state_dict())
    assert_close(layer(x), reference(x), TOLERANCE[torch.float32], f"module {kwargs}")
    if kwargs.get("padding_mode", "zeros") != "zeros":
        # other modes pad x first, then convolve without padding
        top, bottom = layer._pad[2], layer._pad[3]
        left, right = layer._pad[0], layer._pad[1]
        padded = F.pad(x, (left, right, top, bottom), mode=kwargs["padding_mode"])
        direct = kan_conv2d(padded, layer.base_weight, layer.spline_weight, layer.bias,
                            layer.stride, 0, layer.dilation, layer.groups)  # fmt: skip
        assert_close(layer(x), direct, TOLERANCE[torch.float32], "padding mode")


def test_module_initialization_and_repr():
    layer = KANConv2d(6, 4, (3, 5), groups=2, grid_size=4, spline_order=2)
    fan_in = 3 * 3 * 5
    assert layer.spline_weight.shape == (4, 3, 3, 5, 6)
    assert float(layer.base_weight.detach().abs().max()) <= 1 / math.sqrt(fan_in) + 1e-6
    assert float(layer.bias.detach().abs().max()) <= 1 / math.sqrt(fan_in) + 1e-6
    assert float(layer.spline_weight.detach().abs().max()) <= 0.1 / (2 * 4) + 1e-6
    text = repr(layer)
    assert "KANConv2d(6, 4, kernel_size=(3, 5)" in text and "groups=2" in text


def test_channels_last_in_channels_last_out_as_conv2d():
    layer = KANConv2d(3, 5, 3, padding=1, backend="cpu")
    x = torch.randn(2, 3, 6, 7).to(memory_format=torch.channels_last)
    y = layer(x)
    plain = nn.Conv2d(3, 5, 3, padding=1)(x)
    assert y.is_contiguous(memory_format=torch.channels_last) == plain.is_contiguous(
        memory_format=torch.channels_last
    )
    assert_close(y, layer(x.contiguous()), TOLERANCE[torch.float32], "channels-last input")


def test_available_backends_by_layer():
    on_cpu = mkcc_kernels.available_backends("cpu", "conv2d")
    assert on_cpu[0] == "cpu" and on_cpu[-2:] == ["reference", "unfold"]
    assert "cuda" not in mkcc_kernels.available_backends(layer="conv2d")
    assert "unfold" not in mkcc_kernels.available_backends("cpu", "linear")
    with pytest.raises(ValueError, match=r"^layer: expected one of"):
        mkcc_kernels.available_backends("cpu", "conv3d")


def test_convert_to_kan_keeps_geometry_and_weights():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, (1, 3), groups=4, bias=False)),
        nn.Flatten(1, 2),
        nn.Conv1d(8 * 4, 4, 3, padding="same", padding_mode="reflect"),
        nn.ConvTranspose2d(1, 1, 2),  # not a plain convolution: left alone
    )
    originals = [m for m in model.modules() if type(m) in (nn.Conv1d, nn.Conv2d)]
    converted = convert_to_kan(model, grid_size=4, spline_order=2)
    assert converted is model
    kan_layers = [m for m in model.modules() if isinstance(m, (KANConv1d, KANConv2d))]
    assert [type(m) for m in kan_layers] == [KANConv2d, KANConv2d, KANConv1d]
    assert isinstance(model[5], nn.ConvTranspose2d)
    for plain, kan in zip(originals, kan_layers):
        assert torch.equal(kan.base_weight, plain.weight)
        assert kan.stride == plain.stride and kan.dilation == plain.dilation
        assert kan.padding == plain.padding and kan.groups == plain.groups
        assert kan.padding_mode == plain.padding_mode and kan.grid_size == 4
        assert (kan.bias is None) == (plain.bias is None)
        if plain.bias is not None:
            assert torch.equal(kan.bias, plain.bias)
    x = torch.randn(2, 3, 8, 8)
    assert model[:5](x).shape == (2, 4, 2)
    single = convert_to_kan(nn.Conv2d(2, 2, 1))
    assert isinstance(single, KANConv2d)
    with pytest.raises(TypeError, match=r"^convert_to_kan: unexpected keyword"):
        convert_to_kan(model, kernel_size=3)


# ---- the PyTorch tools ----------------------------------------------------------------------


def test_opcheck():
    x, base, spline = make_case(2, 4, 6, 6, 7, 3, 2, groups=2, seed=17)
    conv = Conv2dArgs(2, 1, 1, 0, 1, 2, 1, 2, 2, 3, -1.0, 1.0)
    args = [t.float().requires_grad_(True) for t in (x, base, spline)]
    torch.library.opcheck(torch.ops.mkcc.kan_conv2d_fwd.default, (*args, *conv))
    out = torch.ops.mkcc.kan_conv2d_fwd(*args, *conv)
    bargs = (torch.randn(out.shape), *[a.detach() for a in args], *conv, True, True)
    torch.library.opcheck(torch.ops.mkcc.kan_conv2d_bwd.default, bargs)


def test_compile_fullgraph_and_export_round_trip(tmp_path):
    torch.manual_seed(4)
    layer = KANConv2d(3, 5, 3, padding=1, stride=(1, 2), backend="cpu")
    x = torch.randn(2, 3, 8, 9)
    compiled = torch.compile(layer, fullgraph=True)
    assert_close(compiled(x), layer(x), TOLERANCE[torch.float32], "compiled output")
    xg = x.clone().requires_grad_(True)
    compiled(xg).sum().backward()
    ref = x.clone().requires_grad_(True)
    layer(ref).sum().backward()
    assert_close(xg.grad, ref.grad, TOLERANCE[torch.float32], "compiled grad_x")
    program = torch.export.export(layer, (x,))
    path = tmp_path / "kan_conv2d.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path)
    assert_close(loaded.module()(x), layer(x), TOLERANCE[torch.float32], "exported output")
    assert "mkcc.kan_conv2d_fwd" in str(program.graph)


def test_double_backward_is_a_clear_error():
    x, base, spline = make_case(1, 2, 2, 4, 4, 3, 3, seed=6)
    x.requires_grad_(True)
    out = kan_conv2d(x, base, spline, padding=1, backend="cpu")
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="kan_conv2d: .*double backward"):
        gx.sum().backward()


# ---- bad input ------------------------------------------------------------------------------


def test_functional_names_the_bad_argument():
    x, base, spline = make_case(2, 4, 6, 5, 5, 3, 3, seed=2)
    with pytest.raises(ValueError, match=r"^x: expected a 4-D tensor"):
        kan_conv2d(x[0], base, spline)
    with pytest.raises(ValueError, match=r"^base_weight: expected shape \[out_channels, 2,"):
        kan_conv2d(x, base, spline, groups=2)
    with pytest.raises(ValueError, match=r"^spline_weight: expected shape \[6, 4, 3, 3,"):
        kan_conv2d(x, base, spline[:, :, :2])
    with pytest.raises(TypeError, match=r"^spline_weight: expected dtype"):
        kan_conv2d(x, base, spline.float())
    with pytest.raises(ValueError, match=r"^stride: expected an int or a pair"):
        kan_conv2d(x, base, spline, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"^padding: 'same' needs stride 1"):
        kan_conv2d(x, base, spline, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"^kernel_size: .* padded input height"):
        kan_conv2d(x[:, :, :2], base, spline)
    with pytest.raises(ValueError, match=r"^backend: 'cuda' \(the CUDA C\+\+ kernels\)"):
        kan_conv2d(x, base, spline, backend="cuda")
    with pytest.raises(TypeError, match=r"^x: backend 'cpu' supports float32 and float64"):
        kan_conv2d(x.half(), base.half(), spline.half(), backend="cpu")
    with pytest.raises(ValueError, match=r"^bias: expected shape \(6,\)"):
        kan_conv2d(x, base, spline, torch.zeros(5, dtype=F64))


def test_ops_name_the_bad_argument():
    x, base, spline = make_case(2, 4, 6, 5, 5, 3, 3, seed=2)
    conv = Conv2dArgs()
    op, bwd = torch.ops.mkcc.kan_conv2d_fwd, torch.ops.mkcc.kan_conv2d_bwd
    with pytest.raises(ValueError, match=r"^x: expected a 4-D tensor"):
        op(x[0], base, spline, *conv)
    with pytest.raises(ValueError, match=r"^base_weight: expected shape \[out_channels, 4,"):
        op(x, base[:, :3], spline[:, :3], *conv)
    with pytest.raises(ValueError, match=r"^spline_weight: expected shape \[6, 4, 3, 3,"):
        op(x, base, spline[:, :, :, :2], *conv)
    with pytest.raises(ValueError, match=r"^stride: expected integers >= 1"):
        op(x, base, spline, *conv._replace(stride_w=0))
    with pytest.raises(ValueError, match=r"^padding: expected non-negative"):
        op(x, base, spline, *conv._replace(pad_bottom=-1))
    with pytest.raises(ValueError, match=r"^spline_order: expected 1, 2, 3 or 4"):
        op(x, base, spline, *conv._replace(spline_order=5))
    with pytest.raises(ValueError, match=r"^kernel_size: .* along the width"):
        op(x[..., :2], base, spline, *conv)
    with pytest.raises(ValueError, match=r"^grad_out: expected shape \[2, 6, 3, 3\]"):
        bwd(torch.randn(2, 6, 3, 4, dtype=F64), x, base, spline, *conv, True, True)


def test_module_names_the_bad_input():
    layer = KANConv2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"^x: expected 4 input channels \(in_channels of "):
        layer(torch.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"^x: expected a 4-D tensor \[batch, in_channels"):
        layer(torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match=r"^kernel_size: expected an int or a pair"):
        KANConv2d(4, 6, (3, 3, 3))
    with pytest.raises(ValueError, match=r"^backend: 'cuda' \(the CUDA C\+\+ kernels\)"):
        KANConv2d(4, 6, 3, backend="cuda")
    with pytest.raises(ValueError, match=r"^groups: in_channels \(4\) and out_channels \(6\)"):
        KANConv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match=r"^padding_mode: expected one of"):
        KANConv2d(4, 6, 3, padding_mode="mirror")
