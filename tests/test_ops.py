"""The custom ops as torch sees them: opcheck, fake kernels, torch.compile, saved tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mkcc_kernels
from mkcc_kernels import KANConv1d, MultiScaleKANConv1d

from .helpers import TOLERANCE, assert_close

OP_CASES = {
    # id: (x shape, C_out, k, stride, pad_left, pad_right, dilation, groups, G, K)
    "plain": ((2, 4, 11), 6, 3, 1, 1, 1, 1, 1, 5, 3),
    "strided-grouped": ((3, 6, 20), 4, 3, 2, 2, 0, 2, 2, 4, 2),
    "asymmetric-pad": ((2, 3, 8), 5, 4, 1, 1, 2, 1, 1, 5, 4),
}


def op_args(case, dtype=torch.float64, requires_grad=True):
    shape, cout, k, stride, pl, pr, dil, groups, grid, order = case
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype, requires_grad=requires_grad)
    cg = shape[1] // groups
    base = torch.randn(cout, cg, k, dtype=dtype, requires_grad=requires_grad)
    spline = torch.randn(cout, cg, k, grid + order, dtype=dtype, requires_grad=requires_grad)
    return x, base, spline, stride, pl, pr, dil, groups, order, -1.0, 1.0


@pytest.mark.parametrize("case", OP_CASES.values(), ids=OP_CASES.keys())
def test_opcheck_forward(case):
    torch.library.opcheck(torch.ops.mkcc.kan_conv1d_fwd.default, op_args(case))


@pytest.mark.parametrize("masks", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("case", OP_CASES.values(), ids=OP_CASES.keys())
def test_opcheck_backward(case, masks):
    args = op_args(case, requires_grad=False)
    out = torch.ops.mkcc.kan_conv1d_fwd(*args)
    grad_out = torch.randn_like(out)
    torch.library.opcheck(torch.ops.mkcc.kan_conv1d_bwd.default, (grad_out, *args, *masks))


def test_fake_kernel_shapes_match():
    args = op_args(OP_CASES["asymmetric-pad"], requires_grad=False)
    real = torch.ops.mkcc.kan_conv1d_fwd(*args)
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        fake = torch.ops.mkcc.kan_conv1d_fwd(*fake_args)
    assert fake.shape == real.shape and fake.dtype == real.dtype


class SmallKanModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.multi = MultiScaleKANConv1d(3, 4, kernel_sizes=(3, 5), backend="auto")
        self.norm = nn.BatchNorm1d(8)
        self.down = KANConv1d(8, 6, 3, stride=2, padding=1, grid_size=4, spline_order=2)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        x = self.norm(self.multi(x))
        return self.head(self.down(x).mean(-1))


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = SmallKanModel().double()
    x = torch.randn(4, 3, 21, dtype=torch.float64)
    eager_out = model(x)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True)
    compiled_out = compiled(x)
    compiled_grads = torch.autograd.grad(compiled_out.square().sum(), list(model.parameters()))
    assert_close(compiled_out, eager_out, TOLERANCE[torch.float64], "compiled output")
    for grad, ref in zip(compiled_grads, eager_grads):
        assert_close(grad, ref, TOLERANCE[torch.float64], "compiled gradient")


def test_saves_only_x_and_weights():
    layer = KANConv1d(16, 32, 5, padding=2, backend="cpu", bias=False)
    x = torch.randn(4, 16, 100, requires_grad=True)
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = layer(x)
    saved_bytes = sum(t.numel() * t.element_size() for t in saved)
    limit = sum(t.numel() * t.element_size() for t in (x, layer.base_weight, layer.spline_weight))
    assert saved_bytes <= 1.1 * limit, f"saved {saved_bytes} bytes > 1.1 x {limit}"
    out.sum().backward()
    assert x.grad is not None and layer.spline_weight.grad is not None


def test_reference_saves_the_expanded_basis():
    """The contrast the fused op exists for: the reference keeps O(G+K) times x for backward."""
    layer = KANConv1d(16, 32, 5, padding=2, backend="reference", bias=False)
    x = torch.randn(4, 16, 100, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    assert sum(t.numel() * t.element_size() for t in saved) > 5 * x.numel() * x.element_size()


def test_auto_backend_is_static():
    assert mkcc_kernels.functional.resolve_backend("auto", torch.zeros(1, 1, 1)) == "cpu"
    assert (
        mkcc_kernels.functional.resolve_backend("auto", torch.zeros(1, 1, 1, dtype=torch.float16))
        == "reference"
    )


def test_double_backward_is_an_error_not_a_silent_zero():
    x = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    layer = KANConv1d(3, 4, 3, padding=1, dtype=torch.float64, backend="cpu")
    (grad_x,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad_x.sum().backward()


def test_compile_dynamic_shapes():
    torch.manual_seed(0)
    layer = KANConv1d(3, 4, 3, stride=2, padding=1, dtype=torch.float64)
    compiled = torch.compile(layer, fullgraph=True, dynamic=True)
    for length in (9, 14, 23):
        x = torch.randn(2, 3, length, dtype=torch.float64)
        assert_close(compiled(x), layer(x), TOLERANCE[torch.float64], f"dynamic length {length}")
