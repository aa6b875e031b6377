"""``KANConv1d`` (a drop-in for ``nn.Conv1d``) and ``MultiScaleKANConv1d``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backends import backend_arg
from .checks import (
    Padding,
    check_groups,
    grid_range_arg,
    int_arg,
    resolve_padding,
    spline_order_arg,
)
from .functional import kan_conv1d

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class KANConv1d(nn.Module):
    """1-D convolution whose every tap is a learnable function
    ``phi(x) = base_weight * silu(x) + sum_i spline_weight[i] * B_i(x)``.

    Shapes: input ``[B, in_channels, T]``, output ``[B, out_channels, T_out]`` with ``T_out`` as
    ``nn.Conv1d``. Parameters ``base_weight [out, in/groups, k]``, ``spline_weight
    [out, in/groups, k, grid_size + spline_order]``, ``bias [out]``.

    ``padding="zeros"`` mode: taps outside the input contribute nothing. Other modes pad ``x``
    itself first (as ``nn.Conv1d``) and then convolve without padding.

    Initialization (efficient-kan style): ``base_weight`` and ``bias`` as ``nn.Conv1d``
    (Kaiming-uniform with ``a = sqrt(5)``, i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``);
    ``spline_weight`` small noise ``U(-s, s)``, ``s = scale_noise / (2 * grid_size)``, the amplitude
    efficient-kan gives its initial spline curves (``scale_noise = 0.1``), so each tap starts close
    to ``base_weight * silu(x)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        scale_noise: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_channels = int_arg("in_channels", in_channels, 1)
        self.out_channels = int_arg("out_channels", out_channels, 1)
        self.kernel_size = (int_arg("kernel_size", kernel_size, 1),)
        self.stride = (int_arg("stride", stride, 1),)
        self.dilation = (int_arg("dilation", dilation, 1),)
        self.groups = int_arg("groups", groups, 1)
        self.grid_size = int_arg("grid_size", grid_size, 1)
        self.spline_order = spline_order_arg(spline_order)
        self.grid_range = grid_range_arg(grid_range)
        check_groups(self.in_channels, self.out_channels, self.groups)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
        backend_arg(backend)
        self.padding = padding if isinstance(padding, str) else (int_arg("padding", padding, 0),)
        # Validates "same" against the stride now rather than at the first call.
        self._pad = resolve_padding(
            self.padding if isinstance(self.padding, str) else self.padding[0],
            self.kernel_size[0],
            self.stride[0],
            self.dilation[0],
        )
        self.padding_mode = padding_mode
        self.backend = backend
        self.scale_noise = scale_noise

        factory = {"device": device, "dtype": dtype}
        k = self.kernel_size[0]
        in_per_group = in_channels // groups
        self.base_weight = nn.Parameter(torch.empty(out_channels, in_per_group, k, **factory))
        self.spline_weight = nn.Parameter(
            torch.empty(out_channels, in_per_group, k, grid_size + spline_order, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        bound = self.scale_noise / (2 * self.grid_size)
        nn.init.uniform_(self.spline_weight, -bound, bound)
        if self.bias is not None:
            fan_in = self.base_weight.shape[1] * self.base_weight.shape[2]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        if self.padding_mode != "zeros":
            if not isinstance(x, Tensor) or x.dim() != 3:
                raise ValueError("x: expected a 3-D tensor [batch, in_channels, length]")
            x = F.pad(x, self._pad, mode=self.padding_mode)
            padding = 0
        return kan_conv1d(
            x,
            self.base_weight,
            self.spline_weight,
            self.bias,
            self.stride[0],
            padding,
            self.dilation[0],
            self.groups,
            self.spline_order,
            self.grid_range,
            self.backend,
        )

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,):
            text += f", padding={self.padding}"
        if self.dilation != (1,):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return (
            text + f", grid_size={self.grid_size}, spline_order={self.spline_order}, "
            f"grid_range={self.grid_range}, backend={self.backend!r}"
        )


class MultiScaleKANConv1d(nn.Module):
    """Parallel ``KANConv1d`` branches with different kernel sizes, outputs concatenated on the
    channel axis: ``[B, in_channels, T]`` -> ``[B, len(kernel_sizes) * out_channels_per_scale,
    T_out]``.

    Every branch is padded so that all keep the same length: ``"same"`` at stride 1; at a larger
    stride ``dilation * (k - 1) / 2`` on each side, which needs odd kernel sizes. Other keyword
    arguments go to each ``KANConv1d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels_per_scale: int,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        stride: int = 1,
        dilation: int = 1,
        **kwargs,
    ) -> None:
        super().__init__()
        if not kernel_sizes:
            raise ValueError("kernel_sizes: expected at least one kernel size")
        if "padding" in kwargs:
            raise TypeError("padding: set by MultiScaleKANConv1d so that all scales align")
        self.kernel_sizes = tuple(int_arg("kernel_sizes", k, 1) for k in kernel_sizes)
        self.out_channels_per_scale = out_channels_per_scale
        branches = []
        for k in self.kernel_sizes:
            if stride == 1:
                padding: Padding = "same"
            elif k % 2 == 1:
                padding = dilation * (k - 1) // 2
            else:
                raise ValueError(
                    f"kernel_sizes: with stride {stride} every kernel size must be odd so that "
                    f"the scales align, got {self.kernel_sizes}"
                )
            branches.append(
                KANConv1d(
                    in_channels,
                    out_channels_per_scale,
                    k,
                    stride=stride,
                    padding=padding,
                    dilation=dilation,
                    **kwargs,
                )
            )
        self.branches = nn.ModuleList(branches)

    @property
    def out_channels(self) -> int:
        return len(self.branches) * self.out_channels_per_scale

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)
