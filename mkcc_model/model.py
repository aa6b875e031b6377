"""The MKCC model: two multi-scale KAN-convolution branches (audio MFCCs, video action units)
with cross-modal attention between them and an attention fusion before the classifier.

Shapes (defaults): audio ``[B, 10, T]`` and action units ``[B, 35, F]`` -> logits ``[B, 8]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mkcc_kernels import KANConv1d, KANLinear, MultiScaleKANConv1d
from mkcc_kernels.backends import BACKENDS

from .recipes import V01_MODEL

LAYER_TYPES = ("kan", "cnn")
ALLOWED_SCALES = (3, 5, 7)
# Kernel order of each branch (Table 2 of the paper): the order fixes where each scale's channels
# sit in the concatenation.
VIDEO_KERNELS = (3, 5, 7)
AUDIO_KERNELS = (5, 3, 7)


POOL_PLACEMENTS = ("after_attention", "before_attention")
# The classifier on the fused features: the paper's linear layer, or a KANLinear (efficient-kan's
# layer on the model's grid settings).
HEADS = ("linear", "kan")


@dataclass(frozen=True)
class ModelConfig:
    """Every switch of the model; the defaults follow the paper (README, "Model").
    ``scales`` is a subset of (3, 5, 7); ``modality_weight`` ``a`` multiplies the standardized
    audio by ``a`` and the video by ``1 - a`` (eq. 14). ``attention_residual`` adds the input to
    the cross-modal attention's output (eq. 11 has none). ``pool_placement``: max-pool both
    branches (``audio_pool``, ``video_pool``) after the first cross-modal block, as the paper's
    pipeline does, or before it (mkcc 0.1). ``head``: the classifier, ``"linear"`` (the paper) or
    ``"kan"`` (a ``KANLinear`` with the model's grid size, spline order and grid range)."""

    audio_channels: int = 10
    video_channels: int = 35
    num_classes: int = 8
    layer_type: str = "kan"
    scales: tuple[int, ...] = (3, 5, 7)
    channels_part1: int = 64
    channels_part2: int = 128
    attention: bool = True
    attention_residual: bool = False
    heads: int = 1
    modality_weight: float = 0.5
    pool_placement: str = "after_attention"
    audio_pool: int = 2
    video_pool: int = 2
    backend: str = "auto"
    grid_size: int = 5
    spline_order: int = 3
    grid_range: tuple[float, float] = (-2.0, 2.0)
    head: str = "linear"

    def __post_init__(self) -> None:
        for name in (
            "audio_channels",
            "video_channels",
            "num_classes",
            "channels_part1",
            "channels_part2",
            "heads",
            "audio_pool",
            "video_pool",
            "grid_size",
            "spline_order",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.layer_type not in LAYER_TYPES:
            raise ValueError(f"layer_type: expected one of {LAYER_TYPES}, got {self.layer_type!r}")
        scales = tuple(self.scales)
        if not scales or len(set(scales)) != len(scales) or not set(scales) <= set(ALLOWED_SCALES):
            raise ValueError(
                f"scales: expected a non-empty subset of {ALLOWED_SCALES} without repeats, "
                f"got {self.scales!r}"
            )
        object.__setattr__(self, "scales", tuple(sorted(scales)))
        for name in ("attention", "attention_residual"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"{name}: expected a bool, got {type(getattr(self, name)).__name__}"
                )
        if self.head not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {self.head!r}")
        if self.pool_placement not in POOL_PLACEMENTS:
            raise ValueError(
                f"pool_placement: expected one of {POOL_PLACEMENTS}, got {self.pool_placement!r}"
            )
        if not 0.0 <= float(self.modality_weight) <= 1.0:
            raise ValueError(
                f"modality_weight: expected a value in [0, 1], got {self.modality_weight}"
            )
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {self.backend!r}")
        if self.spline_order > 4:
            raise ValueError(f"spline_order: expected 1, 2, 3 or 4, got {self.spline_order}")
        lo, hi = (float(v) for v in self.grid_range)
        if not lo < hi:
            raise ValueError(f"grid_range: expected (lo, hi) with lo < hi, got {self.grid_range}")
        object.__setattr__(self, "grid_range", (lo, hi))
        for part in (self.channels_part1, self.channels_part2):
            if (part * len(scales)) % self.heads:
                raise ValueError(
                    f"heads: {self.heads} must divide the attention width "
                    f"{part * len(scales)} (channels per scale x number of scales)"
                )

    @property
    def video_kernels(self) -> tuple[int, ...]:
        return tuple(k for k in VIDEO_KERNELS if k in self.scales)

    @property
    def audio_kernels(self) -> tuple[int, ...]:
        return tuple(k for k in AUDIO_KERNELS if k in self.scales)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["scales"] = list(self.scales)
        data["grid_range"] = list(self.grid_range)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """The configuration of ``to_dict``; settings it lacks take mkcc 0.1's values, so that
        a 0.1 checkpoint rebuilds the model it was trained as."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"data: unknown model settings {unknown}")
        values = {**{k: v for k, v in V01_MODEL.items() if k not in data}, **data}
        for name in ("scales", "grid_range"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


class MultiScaleConvBlock(nn.Module):
    """One multi-scale stage: a convolution per kernel size (``"same"`` padding), each followed
    by BatchNorm1d, concatenated: ``[B, C_in, T]`` -> ``[B, len(kernels) * C_scale, T]``.

    ``kan``: ``KANConv1d`` + BatchNorm (the layer is itself nonlinear). ``cnn``: ``nn.Conv1d`` +
    BatchNorm + ReLU, the same topology with a fixed activation. BatchNorm over the concatenation
    is the same as one BatchNorm per scale (it normalizes every channel on its own). The
    convolutions have no bias: BatchNorm subtracts every channel's mean, so a bias would get a
    zero gradient (round-off only) and change nothing.
    """

    def __init__(
        self, in_channels: int, channels_per_scale: int, kernels: Sequence[int], config: ModelConfig
    ) -> None:
        super().__init__()
        out_channels = channels_per_scale * len(kernels)
        if config.layer_type == "kan":
            self.conv: nn.Module = MultiScaleKANConv1d(
                in_channels,
                channels_per_scale,
                kernel_sizes=tuple(kernels),
                grid_size=config.grid_size,
                spline_order=config.spline_order,
                grid_range=config.grid_range,
                bias=False,
                backend=config.backend,
            )
            self.activation: nn.Module = nn.Identity()
        else:
            self.conv = _MultiScaleConv1d(in_channels, channels_per_scale, kernels)
            self.activation = nn.ReLU()
        self.norm = nn.BatchNorm1d(out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.norm(self.conv(x)))


class _MultiScaleConv1d(nn.Module):
    """``nn.Conv1d`` per kernel size with ``"same"`` padding, concatenated on channels."""

    def __init__(self, in_channels: int, channels_per_scale: int, kernels: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv1d(in_channels, channels_per_scale, k, padding="same", bias=False)
            for k in kernels
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class CrossModalAttention(nn.Module):
    """``softmax(Q K^T / sqrt(d)) V`` (eq. 11) with ``Q = W_Q x``, ``K = W_K y``, ``V = W_V y``:
    the time steps of ``x [B, C, T_x]`` attend to those of ``y [B, C_y, T_y]``; output
    ``[B, C, T_x]``. With ``residual`` the output is ``x + ...`` (mkcc 0.1; not in the paper).

    With ``heads > 1`` the ``C`` query/key/value channels are split into ``heads`` groups of
    ``d = C / heads``, each attends on its own and the results are concatenated (no output
    projection, as in the single-head equation).
    """

    def __init__(
        self, channels: int, context_channels: int, heads: int = 1, residual: bool = False
    ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads: {heads} must divide channels ({channels})")
        self.heads = heads
        self.residual = residual
        self.query = nn.Linear(channels, channels, bias=False)
        self.key = nn.Linear(context_channels, channels, bias=False)
        self.value = nn.Linear(context_channels, channels, bias=False)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        batch, channels, _ = x.shape
        head_dim = channels // self.heads

        def split(t: Tensor) -> Tensor:  # [B, T, C] -> [B, heads, T, d]
            return t.reshape(batch, t.shape[1], self.heads, head_dim).transpose(1, 2)

        tokens, context_tokens = x.transpose(1, 2), context.transpose(1, 2)
        q = split(self.query(tokens))
        k = split(self.key(context_tokens))
        v = split(self.value(context_tokens))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, -1, channels).transpose(1, 2)
        return x + attended if self.residual else attended


class BidirectionalAttention(nn.Module):
    """Audio attends to video and video to audio, both from the same inputs:
    ``(a [B, C, T_a], v [B, C, T_v]) -> (a', v')`` of the same shapes."""

    def __init__(self, channels: int, heads: int, residual: bool = False) -> None:
        super().__init__()
        self.audio_from_video = CrossModalAttention(channels, channels, heads, residual)
        self.video_from_audio = CrossModalAttention(channels, channels, heads, residual)

    def forward(self, audio: Tensor, video: Tensor) -> tuple[Tensor, Tensor]:
        return self.audio_from_video(audio, video), self.video_from_audio(video, audio)


class MKCC(nn.Module):
    """Multi-scale KAN convolutions with cross-modal attention.

    ``forward(audio [B, audio_channels, T_a], aus [B, video_channels, T_v]) -> logits
    [B, num_classes]``:

    1. standardize each input channel with the training statistics held in buffers, then weight
       audio by ``a`` and video by ``1 - a`` (eq. 14);
    2. part 1 per branch: multi-scale block (``channels_part1`` per scale);
    3. cross-modal attention in both directions (eq. 11; residual only with
       ``attention_residual``), then max pooling of each branch (``audio_pool``, ``video_pool``;
       before the attention with ``pool_placement="before_attention"``);
    4. part 2 per branch: multi-scale block (``channels_part2`` per scale);
    5. fusion: cross-modal attention in both directions on the part-2 sequences, global average
       pooling of each branch, concatenation, classifier (linear, or KANLinear with
       ``head="kan"``).

    With ``attention=False`` steps 3 and 5 skip the attention (pooling and concatenation stay).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.config = config
        width1 = config.channels_part1 * len(config.scales)
        width2 = config.channels_part2 * len(config.scales)
        self.register_buffer("audio_mean", torch.zeros(config.audio_channels))
        self.register_buffer("audio_std", torch.ones(config.audio_channels))
        self.register_buffer("video_mean", torch.zeros(config.video_channels))
        self.register_buffer("video_std", torch.ones(config.video_channels))
        self.register_buffer("modality_weight", torch.tensor(float(config.modality_weight)))
        self.audio_part1 = MultiScaleConvBlock(
            config.audio_channels, config.channels_part1, config.audio_kernels, config
        )
        self.video_part1 = MultiScaleConvBlock(
            config.video_channels, config.channels_part1, config.video_kernels, config
        )
        self.audio_pool = nn.MaxPool1d(config.audio_pool) if config.audio_pool > 1 else None
        self.video_pool = nn.MaxPool1d(config.video_pool) if config.video_pool > 1 else None
        self.audio_part2 = MultiScaleConvBlock(
            width1, config.channels_part2, config.audio_kernels, config
        )
        self.video_part2 = MultiScaleConvBlock(
            width1, config.channels_part2, config.video_kernels, config
        )
        if config.attention:
            self.attention1: BidirectionalAttention | None = BidirectionalAttention(
                width1, config.heads, config.attention_residual
            )
            self.fusion: BidirectionalAttention | None = BidirectionalAttention(
                width2, config.heads, config.attention_residual
            )
        else:
            self.attention1 = None
            self.fusion = None
        if config.head == "kan":
            self.classifier: nn.Module = KANLinear(
                2 * width2, config.num_classes, grid_size=config.grid_size,
                spline_order=config.spline_order, grid_range=config.grid_range,
            )  # fmt: skip
        else:
            self.classifier = nn.Linear(2 * width2, config.num_classes)

    @torch.no_grad()
    def set_input_statistics(
        self, audio: Tensor, aus: Tensor, aus_mask: Tensor | None = None
    ) -> None:
        """Per-channel mean and std of the training inputs ``audio [N, C_a, T]``, ``aus
        [N, C_v, F]`` (frames where ``aus_mask [N, F]`` is False left out) into the buffers."""
        self._check_inputs(audio, aus)
        audio_mean, audio_std = _channel_statistics(audio, None)
        video_mean, video_std = _channel_statistics(aus, aus_mask)
        self.audio_mean.copy_(audio_mean)
        self.audio_std.copy_(audio_std)
        self.video_mean.copy_(video_mean)
        self.video_std.copy_(video_std)

    @torch.no_grad()
    def set_modality_weight(self, weight: float) -> None:
        """Changes ``a`` (audio x a, video x (1 - a)), e.g. to test a trained model's robustness
        to a weakened or missing modality."""
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight: expected a number in [0, 1], got {type(weight).__name__}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight: expected a value in [0, 1], got {weight}")
        self.modality_weight.fill_(float(weight))

    def standardize(self, audio: Tensor, aus: Tensor) -> tuple[Tensor, Tensor]:
        """Standardized and modality-weighted inputs, shapes unchanged."""
        audio = (audio - self.audio_mean[:, None]) / self.audio_std[:, None]
        aus = (aus - self.video_mean[:, None]) / self.video_std[:, None]
        return audio * self.modality_weight, aus * (1.0 - self.modality_weight)

    def forward(self, audio: Tensor, aus: Tensor) -> Tensor:
        self._check_inputs(audio, aus)
        audio, video = self.standardize(audio, aus)
        audio = self.audio_part1(audio)
        video = self.video_part1(video)
        before = self.config.pool_placement == "before_attention"
        if before:
            audio, video = self._pool(audio, video)
        if self.attention1 is not None:
            audio, video = self.attention1(audio, video)
        if not before:
            audio, video = self._pool(audio, video)
        audio = self.audio_part2(audio)
        video = self.video_part2(video)
        if self.fusion is not None:
            audio, video = self.fusion(audio, video)
        features = torch.cat([audio.mean(dim=-1), video.mean(dim=-1)], dim=1)
        return self.classifier(features)

    def _pool(self, audio: Tensor, video: Tensor) -> tuple[Tensor, Tensor]:
        if self.audio_pool is not None:
            audio = self.audio_pool(audio)
        if self.video_pool is not None:
            video = self.video_pool(video)
        return audio, video

    def spline_regularization(self, l1_weight: float = 1.0, entropy_weight: float = 1.0) -> Tensor:
        """efficient-kan's regularizer summed over the KAN layers: for each layer the mean
        absolute spline coefficient of every (output, input, tap) function, ``l1 = sum`` of those,
        and the entropy of their distribution ``p = m / l1``; returns
        ``l1_weight * l1 + entropy_weight * entropy`` (a scalar; 0 for the ``cnn`` layers). A
        KANLinear head counts as one more KAN layer."""
        total = self.audio_mean.new_zeros(())
        for module in self.modules():
            if isinstance(module, (KANConv1d, KANLinear)):
                magnitude = module.spline_weight.abs().mean(dim=-1)
                l1 = magnitude.sum()
                p = magnitude / l1
                entropy = -(p * torch.log(p + 1e-12)).sum()
                total = total + l1_weight * l1 + entropy_weight * entropy
        return total

    def _check_inputs(self, audio: Tensor, aus: Tensor) -> None:
        for name, value, channels in (
            ("audio", audio, self.config.audio_channels),
            ("aus", aus, self.config.video_channels),
        ):
            if not isinstance(value, Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
            if value.dim() != 3 or value.shape[1] != channels:
                raise ValueError(
                    f"{name}: expected a tensor [batch, {channels}, length], "
                    f"got shape {tuple(value.shape)}"
                )
            if not value.dtype.is_floating_point:
                raise TypeError(f"{name}: expected a floating-point tensor, got {value.dtype}")
        if audio.shape[0] != aus.shape[0]:
            raise ValueError(
                f"aus: batch size {aus.shape[0]} differs from the audio's {audio.shape[0]}"
            )


def _channel_statistics(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean and std per channel of ``x [N, C, L]`` over N and L (positions where ``mask [N, L]``
    is False excluded); a zero std becomes 1 so that constant channels pass through centred."""
    values = x.detach().to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
    if mask is not None:
        if mask.shape != (x.shape[0], x.shape[2]):
            raise ValueError(
                f"aus_mask: expected shape {(x.shape[0], x.shape[2])}, got {tuple(mask.shape)}"
            )
        keep = mask.to(torch.bool).reshape(-1)
        if not keep.any():
            raise ValueError("aus_mask: every frame is masked out")
        values = values[:, keep]
    mean = values.mean(dim=1)
    std = values.std(dim=1, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.to(x.dtype), std.to(x.dtype)
