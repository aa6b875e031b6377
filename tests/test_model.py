"""MKCC model: shapes per configuration, gradients, attention math, standardization, modality
weights, backends, spline regularization, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mkcc_kernels import KANConv1d, KANLinear, available_backends
from mkcc_model.model import MKCC, CrossModalAttention, ModelConfig

SMALL = {"channels_part1": 4, "channels_part2": 6}


def small_config(**overrides) -> ModelConfig:
    return ModelConfig(**{**SMALL, "backend": "cpu", **overrides})


def inputs(batch: int = 3, audio_length: int = 24, frames: int = 15, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 10, audio_length, generator=generator) * 3 + 1
    aus = torch.rand(batch, 35, frames, generator=generator) * 2
    return audio, aus


@pytest.mark.parametrize("layer_type", ["kan", "cnn"])
@pytest.mark.parametrize("scales", [(3,), (7,), (3, 5), (5, 7), (3, 5, 7)], ids=str)
@pytest.mark.parametrize("attention", [True, False], ids=["attn", "no-attn"])
def test_output_shape_every_switch(layer_type, scales, attention):
    config = small_config(layer_type=layer_type, scales=scales, attention=attention)
    model = MKCC(config)
    audio, aus = inputs()
    logits = model(audio, aus)
    assert logits.shape == (3, 8)
    assert torch.isfinite(logits).all()
    width1 = 4 * len(scales)
    assert model.audio_part1.out_channels == width1
    assert model.video_part2.out_channels == 6 * len(scales)
    assert model.classifier.in_features == 2 * 6 * len(scales)


@pytest.mark.parametrize(
    "overrides",
    [
        {"heads": 2},
        {"audio_pool": 3, "video_pool": 2},
        {"grid_size": 3, "spline_order": 2, "grid_range": (-1.0, 1.0)},
        {"num_classes": 5},
        {"backend": "reference"},
        {"backend": "unfold"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_output_shape_other_settings(overrides):
    model = MKCC(small_config(**overrides))
    logits = model(*inputs(audio_length=31, frames=9))
    assert logits.shape == (3, overrides.get("num_classes", 8))


def test_paper_shapes_default_config():
    """The paper's input shapes through the full-size model: audio [B, 10, 621], AUs [B, 35, 15]."""
    model = MKCC(ModelConfig(backend="cpu"))
    audio, aus = inputs(batch=2, audio_length=621, frames=15)
    assert model(audio, aus).shape == (2, 8)
    assert model.audio_part1.out_channels == 192
    assert model.audio_part2.out_channels == 384
    assert model.audio_part1.conv.kernel_sizes == (5, 3, 7)
    assert model.video_part1.conv.kernel_sizes == (3, 5, 7)


def test_kan_and_cnn_layers():
    kan = MKCC(small_config(layer_type="kan"))
    cnn = MKCC(small_config(layer_type="cnn"))
    kan_layers = [m for m in kan.modules() if isinstance(m, KANConv1d)]
    assert len(kan_layers) == 12  # 2 branches x 2 parts x 3 scales
    assert not any(isinstance(m, nn.Conv1d) for m in kan.modules())
    assert not any(isinstance(m, KANConv1d) for m in cnn.modules())
    conv_kernels = sorted(m.kernel_size[0] for m in cnn.modules() if isinstance(m, nn.Conv1d))
    assert conv_kernels == [3] * 4 + [5] * 4 + [7] * 4
    assert any(isinstance(m, nn.ReLU) for m in cnn.modules())


@pytest.mark.parametrize("layer_type", ["kan", "cnn"])
@pytest.mark.parametrize("attention", [True, False], ids=["attn", "no-attn"])
def test_gradients_reach_every_parameter(layer_type, attention):
    model = MKCC(small_config(layer_type=layer_type, attention=attention))
    audio, aus = inputs()
    nn.functional.cross_entropy(model(audio, aus), torch.tensor([0, 3, 7])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_attention_switch_removes_attention_parameters():
    names = {n for n, _ in MKCC(small_config(attention=False)).named_parameters()}
    assert not any("attention" in n or "fusion" in n for n in names)
    names = {n for n, _ in MKCC(small_config(attention=True)).named_parameters()}
    assert {
        "attention1.audio_from_video.query.weight",
        "fusion.video_from_audio.value.weight",
    } <= names


def hand_attention(x, context, w_q, w_k, w_v, heads, residual=False):
    """Loop over batch and heads: softmax(Q K^T / sqrt(d)) V (eq. 11), plus x with
    ``residual``; tokens = time steps."""
    batch, channels, _ = x.shape
    d = channels // heads
    out = x.clone() if residual else torch.zeros_like(x)
    for b in range(batch):
        q = x[b].T @ w_q.T  # [T_x, C]
        k = context[b].T @ w_k.T  # [T_y, C]
        v = context[b].T @ w_v.T
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(d)
            weights = torch.exp(scores - scores.max(dim=1, keepdim=True).values)
            weights = weights / weights.sum(dim=1, keepdim=True)
            out[b, cols, :] += (weights @ v[:, cols]).T
    return out


@pytest.mark.parametrize("residual", [False, True], ids=["eq11", "residual"])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_cross_modal_attention_matches_hand_written(heads, residual):
    torch.manual_seed(0)
    attention = CrossModalAttention(8, 6, heads, residual=residual).double()
    x = torch.randn(2, 8, 5, dtype=torch.float64)
    context = torch.randn(2, 6, 7, dtype=torch.float64)
    w = (attention.query.weight, attention.key.weight, attention.value.weight)
    expected = hand_attention(x, context, *w, heads, residual)
    torch.testing.assert_close(attention(x, context), expected, rtol=1e-12, atol=1e-12)
    # the residual is exactly the input added
    other = CrossModalAttention(8, 6, heads, residual=not residual).double()
    other.load_state_dict(attention.state_dict())
    sign = 1 if residual else -1
    torch.testing.assert_close(attention(x, context) - other(x, context), sign * x)


def test_cross_modal_attention_depends_on_context():
    torch.manual_seed(0)
    attention = CrossModalAttention(4, 4)
    x, context = torch.randn(1, 4, 3), torch.randn(1, 4, 5)
    assert not torch.allclose(attention(x, context), attention(x, context * 2))
    assert attention(x, context).shape == x.shape


def test_standardization_uses_training_statistics():
    model = MKCC(small_config(modality_weight=0.5))
    audio, aus = inputs(batch=16, audio_length=40)
    mask = torch.ones(16, 15, dtype=torch.bool)
    mask[:, -3:] = False
    poisoned = aus.clone()
    poisoned[:, :, -3:] = 1e6  # masked frames must not enter the statistics
    model.set_input_statistics(audio, poisoned, mask)
    valid = aus[:, :, :-3]
    torch.testing.assert_close(model.video_mean, valid.mean(dim=(0, 2)))
    torch.testing.assert_close(model.video_std, valid.std(dim=(0, 2), unbiased=False))
    standardized_audio, standardized_video = model.standardize(audio, aus)
    torch.testing.assert_close(
        standardized_audio.mean(dim=(0, 2)), torch.zeros(10), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        standardized_audio.std(dim=(0, 2), unbiased=False),
        torch.full((10,), 0.5),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(
        standardized_video[:, :, :-3].mean(dim=(0, 2)), torch.zeros(35), atol=1e-5, rtol=0
    )
    # the statistics travel in the state dict, so an evaluating model uses the training ones
    restored = MKCC(small_config(modality_weight=0.5))
    restored.load_state_dict(model.state_dict())
    torch.testing.assert_close(restored.audio_mean, model.audio_mean)
    torch.testing.assert_close(restored.video_std, model.video_std)


def test_constant_channel_gets_unit_std():
    model = MKCC(small_config())
    audio, aus = inputs(batch=4)
    aus[:, 7, :] = 2.5
    model.set_input_statistics(audio, aus)
    assert model.video_std[7] == 1.0 and model.video_mean[7] == 2.5


@pytest.mark.parametrize("weight, silent", [(1.0, "aus"), (0.0, "audio")])
def test_modality_weight_silences_a_modality(weight, silent):
    model = MKCC(small_config(modality_weight=weight)).eval()
    audio, aus = inputs()
    other_audio, other_aus = inputs(seed=1)
    changed = (audio, other_aus) if silent == "aus" else (other_audio, aus)
    torch.testing.assert_close(model(*changed), model(audio, aus))
    model.set_modality_weight(0.5)
    assert not torch.allclose(model(*changed), model(audio, aus))


def test_one_step_same_parameters_with_every_backend():
    audio, aus = inputs(batch=4, audio_length=20, frames=9)
    labels = torch.tensor([1, 2, 5, 7])
    results = {}
    for backend in available_backends("cpu"):
        torch.manual_seed(0)
        model = MKCC(small_config(backend=backend))
        model.set_input_statistics(audio, aus)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.04, momentum=0.9, dampening=0.9, weight_decay=1e-3
        )
        nn.functional.cross_entropy(model(audio, aus), labels).backward()
        optimizer.step()
        results[backend] = model.state_dict()
    assert {"cpu", "reference", "unfold"} <= set(results)
    base = results["reference"]
    for backend, state in results.items():
        for name, value in state.items():
            torch.testing.assert_close(
                value,
                base[name],
                rtol=1e-4,
                atol=1e-5,
                msg=lambda m, b=backend, n=name: f"{b} {n}: {m}",
            )


def test_forward_backward_deterministic_on_cpu():
    audio, aus = inputs()
    grads = []
    for _ in range(2):
        torch.manual_seed(3)
        model = MKCC(small_config())
        model(audio, aus).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for first, second in zip(*grads):
        assert torch.equal(first, second)


def test_spline_regularization_matches_definition():
    model = MKCC(small_config())
    layers = [m for m in model.modules() if isinstance(m, KANConv1d)]
    expected = 0.0
    for layer in layers:
        magnitude = layer.spline_weight.detach().abs().mean(dim=-1)
        total = magnitude.sum()
        p = magnitude / total
        expected += 2.0 * total - 0.5 * (p * p.log()).sum()
    value = model.spline_regularization(l1_weight=2.0, entropy_weight=0.5)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert all(layer.spline_weight.grad is not None for layer in layers)
    assert MKCC(small_config(layer_type="cnn")).spline_regularization() == 0


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"layer_type": "mlp"}, "layer_type"),
        ({"scales": (3, 9)}, "scales"),
        ({"scales": ()}, "scales"),
        ({"scales": (3, 3)}, "scales"),
        ({"modality_weight": 1.5}, "modality_weight"),
        ({"heads": 5}, "heads"),
        ({"backend": "gpu"}, "backend"),
        ({"audio_pool": 0}, "audio_pool"),
        ({"grid_range": (1.0, -1.0)}, "grid_range"),
        ({"spline_order": 5}, "spline_order"),
    ],
)
def test_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**overrides)


def test_forward_rejects_bad_inputs():
    model = MKCC(small_config())
    audio, aus = inputs()
    with pytest.raises(ValueError, match="audio"):
        model(audio[:, :5], aus)
    with pytest.raises(ValueError, match="aus"):
        model(audio, aus[:2])
    with pytest.raises(TypeError, match="aus"):
        model(audio, aus.numpy())
    with pytest.raises(TypeError, match="audio"):
        model(audio.long(), aus)
    with pytest.raises(ValueError, match="weight"):
        model.set_modality_weight(-0.1)
    with pytest.raises(TypeError, match="config"):
        MKCC({"layer_type": "kan"})


def test_config_round_trip():
    config = small_config(scales=(7, 3), attention=False, grid_range=(-1, 3))
    assert config.scales == (3, 7)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({"depth": 3})


def test_kan_head_is_a_kan_linear_on_the_models_grid():
    config = small_config(head="kan", grid_size=4, spline_order=2, grid_range=(-1.5, 1.5))
    model = MKCC(config)
    head = model.classifier
    assert isinstance(head, KANLinear)
    assert (head.in_features, head.out_features) == (2 * 6 * len(config.scales), 8)
    assert head.grid.shape == (head.in_features, 4 + 2 * 2 + 1)
    assert float(head.grid[0, 2]) == -1.5 and float(head.grid[0, -3]) == 1.5
    logits = model(*inputs())
    assert logits.shape == (3, 8)
    logits.square().sum().backward()
    assert float(head.spline_weight.grad.abs().sum()) > 0
    # the head's spline coefficients count in the regularizer: the same model with a linear head
    # (same seed, same conv layers) has a smaller one
    torch.manual_seed(0)
    with_kan = MKCC(config).spline_regularization()
    torch.manual_seed(0)
    with_linear = MKCC(small_config(grid_size=4, spline_order=2, grid_range=(-1.5, 1.5)))
    assert float(with_kan.detach()) > float(with_linear.spline_regularization().detach())
    # recorded and rebuilt; a checkpoint without the setting gets the paper's linear head
    assert ModelConfig.from_dict(config.to_dict()).head == "kan"
    without = {k: v for k, v in config.to_dict().items() if k != "head"}
    assert ModelConfig.from_dict(without).head == "linear"
    with pytest.raises(ValueError, match=r"^head: expected one of \('linear', 'kan'\)"):
        small_config(head="mlp")
