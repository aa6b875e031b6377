"""KANConv1d as a drop-in for nn.Conv1d, and MultiScaleKANConv1d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mkcc_kernels import KANConv1d, MultiScaleKANConv1d, kan_conv1d

from .helpers import TOLERANCE, assert_close

CONV_ARGS = {
    "plain": dict(kernel_size=3),
    "padding": dict(kernel_size=5, padding=2),
    "same-even": dict(kernel_size=4, padding="same"),
    "same-dilated": dict(kernel_size=3, padding="same", dilation=3),
    "valid-strided": dict(kernel_size=3, padding="valid", stride=2),
    "tuple-args": dict(kernel_size=(3,), stride=(2,), padding=(1,), dilation=(2,)),
    "groups": dict(kernel_size=3, groups=2, padding=1),
    "reflect": dict(kernel_size=5, padding=2, padding_mode="reflect"),
    "replicate-same": dict(kernel_size=4, padding="same", padding_mode="replicate"),
    "circular": dict(kernel_size=3, padding=1, padding_mode="circular"),
}


@pytest.mark.parametrize("kwargs", CONV_ARGS.values(), ids=CONV_ARGS.keys())
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_output_shape_matches_conv1d(kwargs):
    x = torch.randn(3, 4, 17)
    assert KANConv1d(4, 6, **kwargs)(x).shape == nn.Conv1d(4, 6, **kwargs)(x).shape


@pytest.mark.parametrize("kwargs", CONV_ARGS.values(), ids=CONV_ARGS.keys())
@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_geometry_matches_conv1d(kwargs, backend):
    """With the spline weights zero the layer is nn.Conv1d on silu(x) (silu(0) = 0 and silu
    commutes with padding by copies): the same taps read the same positions, including where
    padding='same' puts the extra position of an even kernel (on the right)."""
    torch.manual_seed(0)
    layer = KANConv1d(4, 6, **kwargs, backend=backend, dtype=torch.float64)
    conv = nn.Conv1d(4, 6, **kwargs, dtype=torch.float64)
    with torch.no_grad():
        layer.spline_weight.zero_()
        conv.weight.copy_(layer.base_weight)
        conv.bias.copy_(layer.bias)
    x = torch.randn(3, 4, 17, dtype=torch.float64)
    assert_close(layer(x), conv(F.silu(x)), TOLERANCE[torch.float64], f"geometry {kwargs}")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_pad_x_first(mode):
    torch.manual_seed(0)
    layer = KANConv1d(3, 5, 5, padding=2, padding_mode=mode, dtype=torch.float64)
    x = torch.randn(2, 3, 12, dtype=torch.float64)
    expected = kan_conv1d(
        F.pad(x, (2, 2), mode=mode),
        layer.base_weight,
        layer.spline_weight,
        layer.bias,
        backend="reference",
    )
    assert_close(layer(x), expected, TOLERANCE[torch.float64], f"padding_mode {mode}")


def test_parameters_and_state_dict():
    layer = KANConv1d(4, 6, 3, groups=2, grid_size=7, spline_order=2)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {"base_weight": (6, 2, 3), "spline_weight": (6, 2, 3, 9), "bias": (6,)}
    other = KANConv1d(4, 6, 3, groups=2, grid_size=7, spline_order=2)
    other.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 9)
    assert torch.equal(layer(x), other(x))
    assert KANConv1d(4, 6, 3, bias=False).bias is None
    assert "grid_size=7" in repr(layer) and "groups=2" in repr(layer)


def test_initialization():
    torch.manual_seed(0)
    layer = KANConv1d(32, 64, 5, grid_size=5).requires_grad_(False)
    bound = 1 / (32 * 5) ** 0.5
    assert float(layer.base_weight.abs().max()) <= bound
    assert float(layer.base_weight.std()) > 0.5 * bound / 3**0.5
    assert float(layer.spline_weight.abs().max()) <= 0.1 / (2 * 5)
    assert float(layer.spline_weight.std()) > 0
    assert float(layer.bias.abs().max()) <= bound


def test_dtype_and_backends_agree():
    torch.manual_seed(0)
    layer = KANConv1d(3, 4, 3, padding=1, dtype=torch.float64)
    x = torch.randn(2, 3, 11, dtype=torch.float64)
    outputs = {}
    for backend in ("cpu", "reference", "unfold"):
        layer.backend = backend
        outputs[backend] = layer(x)
    assert outputs["cpu"].dtype == torch.float64
    assert_close(outputs["cpu"], outputs["reference"], TOLERANCE[torch.float64], "cpu vs ref")
    assert_close(outputs["unfold"], outputs["reference"], TOLERANCE[torch.float64], "unfold vs ref")


def test_multiscale_concatenates_aligned_branches():
    torch.manual_seed(0)
    block = MultiScaleKANConv1d(4, 8, kernel_sizes=(5, 3, 7), dtype=torch.float64)
    x = torch.randn(2, 4, 15, dtype=torch.float64)
    out = block(x)
    assert out.shape == (2, 24, 15) and block.out_channels == 24
    for i, branch in enumerate(block.branches):
        assert_close(out[:, 8 * i : 8 * (i + 1)], branch(x), 0.0, f"branch {i}")
    assert [b.kernel_size[0] for b in block.branches] == [5, 3, 7]


def test_multiscale_strided_needs_odd_kernels():
    block = MultiScaleKANConv1d(4, 2, kernel_sizes=(3, 5), stride=2)
    assert block(torch.randn(1, 4, 16)).shape == (1, 4, 8)
    with pytest.raises(ValueError, match="^kernel_sizes"):
        MultiScaleKANConv1d(4, 2, kernel_sizes=(3, 4), stride=2)
    with pytest.raises(TypeError, match="^padding"):
        MultiScaleKANConv1d(4, 2, padding=1)


def test_trains_a_step():
    torch.manual_seed(0)
    model = nn.Sequential(KANConv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), KANConv1d(4, 1, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, target = torch.randn(8, 2, 10), torch.randn(8, 1, 8)
    losses = []
    for _ in range(5):
        loss = F.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
