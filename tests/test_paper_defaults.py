"""The defaults follow the paper (shared MKCC notes): the optimizer of §3.1, attention as eq. 11,
no extra AU normalization, pooling after the first cross-modal block, the nine Table 4 variants
and the five Table 5 weights; every departure is an option that does what it says, and the
``v0.1`` recipe brings back mkcc 0.1's settings as one switch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mkcc_model import ablate, train
from mkcc_model.data import FeatureConfig
from mkcc_model.data.aus import OpenFaceTrack, sample_aus
from mkcc_model.model import MKCC, ModelConfig
from mkcc_model.options import (
    feature_config_from_args,
    model_config_from_args,
    parse_with_recipe,
)
from mkcc_model.recipes import V01_FEATURES, V01_MODEL, V01_TRAIN
from mkcc_model.train import TrainConfig


def test_training_defaults_are_the_papers():
    config = TrainConfig()
    # §3.1: SGD, 100 epochs, learning rate 0.04, momentum 0.9, weight decay 1e-3; plain momentum
    assert (config.epochs, config.lr, config.momentum, config.weight_decay) == (
        100,
        0.04,
        0.9,
        1e-3,
    )
    assert config.dampening == 0.0
    # no schedule is stated: constant
    assert config.lr_schedule == "constant" and config.resolved_milestones() == ()


def test_model_and_feature_defaults_are_the_papers():
    config = ModelConfig()
    assert config.attention_residual is False  # eq. 11
    assert config.pool_placement == "after_attention"  # §2: pooling after the first block
    assert (config.audio_pool, config.video_pool) == (2, 2)
    assert (config.grid_size, config.spline_order, config.scales) == (5, 3, (3, 5, 7))
    assert (config.channels_part1, config.channels_part2) == (64, 128)
    assert config.audio_kernels == (5, 3, 7) and config.video_kernels == (3, 5, 7)  # Tables 1-2
    assert FeatureConfig().au_normalize is False  # OpenFace's own normalization only


def _sequence_lengths(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """Time steps of (audio, video) entering the first attention and part 2."""
    model = MKCC(config).eval()
    seen: dict[str, tuple[int, int]] = {}
    model.attention1.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("attention1", (args[0].shape[2], args[1].shape[2]))
    )
    model.audio_part2.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("audio_part2", args[0].shape[2])
    )
    model.video_part2.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("video_part2", args[0].shape[2])
    )
    with torch.no_grad():
        model(torch.randn(2, 10, 40), torch.rand(2, 35, 15))
    return seen


SMALL = {"channels_part1": 4, "channels_part2": 6, "backend": "cpu"}


def test_pooling_placement():
    paper = _sequence_lengths(ModelConfig(**SMALL))
    # the attention sees part 1's full sequences; both branches are pooled by 2 after it
    assert paper == {"attention1": (40, 15), "audio_part2": 20, "video_part2": 7}
    before = _sequence_lengths(ModelConfig(**SMALL, **V01_MODEL))
    # mkcc 0.1: the audio pooled before the attention, the video not at all
    assert before == {"attention1": (20, 15), "audio_part2": 20, "video_part2": 15}


def test_attention_residual_switch_adds_the_input():
    torch.manual_seed(0)
    plain = MKCC(ModelConfig(**SMALL)).eval()
    residual = MKCC(ModelConfig(**SMALL, attention_residual=True)).eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 12, 9)  # part 1: 4 channels x 3 scales
    context = torch.randn(2, 12, 5)
    block_plain = plain.attention1.audio_from_video
    block_residual = residual.attention1.audio_from_video
    torch.testing.assert_close(block_residual(x, context), block_plain(x, context) + x)


def test_au_normalization_switch():
    rng = np.random.default_rng(0)
    track = OpenFaceTrack(
        timestamps=np.arange(120) / 30.0,
        success=np.ones(120, dtype=bool),
        aus=rng.uniform(0, 5, size=(120, 35)).astype(np.float32),
    )
    raw, mask = sample_aus(track, 3.6, 15, normalize=False)
    normalized, _ = sample_aus(track, 3.6, 15, normalize=True)
    assert mask.all()
    assert raw.min() >= 0 and raw.max() <= 5  # OpenFace's scale kept
    mean, std = track.aus.mean(axis=0), track.aus.std(axis=0)
    np.testing.assert_allclose(normalized, (raw - mean[:, None]) / std[:, None], atol=1e-5)


def test_dampening_and_schedule_options_reach_the_optimizer_state():
    config = TrainConfig(epochs=10, dampening=0.9, lr_schedule="step")
    assert config.resolved_milestones() == (4, 6, 6, 7)  # 40, 55, 65, 70 scaled to 10 epochs
    with pytest.raises(ValueError, match=r"^milestones: used only with lr_schedule='step'"):
        TrainConfig(milestones=(3,))
    with pytest.raises(ValueError, match=r"^lr_schedule: expected one of"):
        TrainConfig(lr_schedule="cosine")


def _cli_configs(argv: list[str]):
    args = parse_with_recipe(train.build_parser(), ["--data", "demo", "--out", "x", *argv])
    return (
        model_config_from_args(args),
        train.train_config_from_args(args),
        feature_config_from_args(args),
    )


def test_cli_defaults_and_the_v01_recipe():
    model, training, features = _cli_configs([])
    assert model == ModelConfig() and training == TrainConfig() and features == FeatureConfig()
    model, training, features = _cli_configs(["--recipe", "v0.1"])
    for name, value in V01_MODEL.items():
        assert getattr(model, name) == value, name
    for name, value in V01_TRAIN.items():
        assert getattr(training, name) == value, name
    for name, value in V01_FEATURES.items():
        assert getattr(features, name) == value, name
    # an option given explicitly wins over the recipe
    model, training, features = _cli_configs(
        ["--recipe", "v0.1", "--no-attention-residual", "--dampening", "0", "--no-au-normalize"]
    )
    assert (model.attention_residual, training.dampening, features.au_normalize) == (
        False,
        0.0,
        False,
    )
    assert model.pool_placement == "before_attention"  # the rest of the recipe stays
    model, training, _ = _cli_configs(
        ["--attention-residual", "--pool-placement", "before_attention", "--video-pool", "1"]
    )
    assert (model.attention_residual, model.pool_placement, model.video_pool) == (
        True,
        "before_attention",
        1,
    )


def test_stored_configurations_without_the_new_settings_read_as_v01():
    """A checkpoint of mkcc 0.1 lacks the settings added since: it rebuilds the 0.1 model."""
    old_model = {k: v for k, v in ModelConfig().to_dict().items() if k not in V01_MODEL}
    old_model["video_pool"] = 1
    rebuilt = ModelConfig.from_dict(old_model)
    assert rebuilt.attention_residual is True and rebuilt.pool_placement == "before_attention"
    old_train = {k: v for k, v in TrainConfig().to_dict().items() if k != "lr_schedule"}
    old_train["dampening"] = 0.9
    assert TrainConfig.from_dict(old_train).lr_schedule == "step"
    # and what a new run stores reads back unchanged
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_ablation_lists_tables_4_and_5_with_the_papers_numbers(capsys):
    base = ModelConfig()
    table4 = ablate.table4_variants(base)
    assert [v.name for v in table4] == [
        "cnn", "kan", "kan-3", "kan-5", "kan-7", "kan-35", "kan-37", "kan-57", "mkcc",
    ]  # fmt: skip
    assert [v.paper for v in table4] == [
        (56.53, 58.34), (72.21, 74.24), (72.35, 74.40), (72.40, 74.50), (72.45, 74.60),
        (74.10, 75.80), (74.20, 75.90), (74.25, 76.00), (75.62, 77.23),
    ]  # fmt: skip
    by_name = {v.name: v.config for v in table4}
    assert by_name["cnn"].layer_type == "cnn" and by_name["cnn"].attention
    assert not by_name["kan"].attention and by_name["kan"].scales == (3, 5, 7)
    assert by_name["kan-57"].scales == (5, 7) and by_name["kan-57"].attention
    table5 = ablate.table5_variants(base)
    assert [v.config.modality_weight for v in table5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [v.paper for v in table5] == [
        (73.50, 75.52), (74.10, 76.01), (75.62, 77.23), (74.80, 76.80), (72.80, 74.85),
    ]  # fmt: skip
    ablate.main(["--list"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 15 and lines[0].startswith("cnn") and lines[-2].startswith("mkcc-a1 ")
    assert lines[-1].startswith("mkcc-kanhead") and "KANLinear classifier" in lines[-1]
    (head,) = ablate.head_variants(base)
    assert head.config.head == "kan" and head.config.attention and head.paper is None
    with pytest.raises(SystemExit, match="--data is required"):
        ablate.main([])
    shared = ablate.shared_train_config(parse_with_recipe(ablate.build_parser(), []))
    assert (shared.lr, shared.dampening, shared.lr_schedule) == (0.04, 0.0, "constant")
    shared = ablate.shared_train_config(
        parse_with_recipe(ablate.build_parser(), ["--recipe", "v0.1", "--lr", "0.004"])
    )
    assert (shared.lr, shared.dampening, shared.lr_schedule) == (0.004, 0.9, "step")
