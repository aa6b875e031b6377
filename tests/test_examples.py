"""The digits example (examples/digits_kan_cnn.py): one short epoch on a subset trains."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import mkcc_kernels

pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (load_digits)")

from examples import digits_kan_cnn  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return digits_kan_cnn.load_digits_split(seed=0, limit=600)


def test_split_is_stratified_and_scaled(digits):
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.x_test.shape[1:] == (1, 8, 8)
    assert len(digits.y_train) == 480 and len(digits.y_test) == 120
    for x in (digits.x_train, digits.x_test):
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # every class in both parts, in about the same proportion
    train_counts = torch.bincount(digits.y_train, minlength=10)
    test_counts = torch.bincount(digits.y_test, minlength=10)
    assert bool((test_counts >= 10).all())
    assert bool(((train_counts - 4 * test_counts).abs() <= 4).all())


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_one_epoch_trains(digits, backend):
    if backend == "cpu" and not digits_kan_cnn.fused_op_available():
        pytest.skip(
            f"this build of mkcc_kernels has no fused KANConv2d CPU op "
            f"(torch.ops.mkcc.{digits_kan_cnn.FUSED_OP}); rebuild the extension"
        )
    torch.manual_seed(0)
    model = digits_kan_cnn.build_model("kan", backend)
    result = digits_kan_cnn.train(model, digits, epochs=1, batch_size=32, progress=False)
    assert len(result.losses) == len(result.test_accuracy) == len(result.epoch_seconds) == 1
    assert math.isfinite(result.losses[0])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.final_accuracy > 0.3  # chance: 0.1


def test_conv_network_has_the_same_geometry():
    kan = digits_kan_cnn.build_model("kan", "reference")
    conv = digits_kan_cnn.build_model("conv")
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert kan(x).shape == conv(x).shape == (4, 10)
    kan_layers = [m for m in kan.modules() if isinstance(m, mkcc_kernels.KANConv2d)]
    conv_layers = [m for m in conv.modules() if isinstance(m, nn.Conv2d)]
    geometry = ("in_channels", "out_channels", "kernel_size", "padding")
    assert [[getattr(m, a) for a in geometry] for m in kan_layers] == [
        [getattr(m, a) for a in geometry] for m in conv_layers
    ]
