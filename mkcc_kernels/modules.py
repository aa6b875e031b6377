"""``KANConv1d`` and ``KANConv2d`` (drop-ins for ``nn.Conv1d`` / ``nn.Conv2d``),
``MultiScaleKANConv1d``, and ``convert_to_kan`` (a model's convolutions as KAN layers)."""

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
    pair_arg,
    resolve_padding,
    resolve_padding2d,
    spline_order_arg,
)
from .functional import kan_conv1d, kan_conv2d

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _KANConvNd(nn.Module):
    """What KANConv1d and KANConv2d share: argument checks, parameters, initialization, the
    padding modes. Subclasses set ``_dims``, ``_layer`` (the ``available_backends`` layer) and
    ``_conv`` (the functional form)."""

    _dims = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride,
        padding: Padding,
        dilation,
        groups: int,
        bias: bool,
        padding_mode: str,
        grid_size: int,
        spline_order: int,
        grid_range: tuple[float, float],
        backend: str,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
        scale_noise: float,
    ) -> None:
        super().__init__()
        dims_arg = (lambda name, v, m: (int_arg(name, v, m),)) if self._dims == 1 else pair_arg
        self.in_channels = int_arg("in_channels", in_channels, 1)
        self.out_channels = int_arg("out_channels", out_channels, 1)
        self.kernel_size = dims_arg("kernel_size", kernel_size, 1)
        self.stride = dims_arg("stride", stride, 1)
        self.dilation = dims_arg("dilation", dilation, 1)
        self.groups = int_arg("groups", groups, 1)
        self.grid_size = int_arg("grid_size", grid_size, 1)
        self.spline_order = spline_order_arg(spline_order)
        self.grid_range = grid_range_arg(grid_range)
        check_groups(self.in_channels, self.out_channels, self.groups)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
        backend_arg(backend)
        if self._dims == 2 and backend == "cuda":
            raise ValueError(
                "backend: 'cuda' (the CUDA C++ kernels) has no KANConv2d kernels; use 'triton' "
                "for CUDA tensors"
            )
        self.padding = padding if isinstance(padding, str) else dims_arg("padding", padding, 0)
        # Validates "same" against the stride now rather than at the first call; F.pad's order
        # (last dimension first) for the other padding modes.
        if self._dims == 1:
            self._pad = resolve_padding(
                self._functional_padding(), self.kernel_size[0], self.stride[0], self.dilation[0]
            )
        else:
            top, bottom, left, right = resolve_padding2d(
                self._functional_padding(), self.kernel_size, self.stride, self.dilation
            )
            self._pad = (left, right, top, bottom)
        self.padding_mode = padding_mode
        self.backend = backend
        self.scale_noise = scale_noise

        factory = {"device": device, "dtype": dtype}
        taps = self.kernel_size
        in_per_group = in_channels // groups
        self.base_weight = nn.Parameter(torch.empty(out_channels, in_per_group, *taps, **factory))
        self.spline_weight = nn.Parameter(
            torch.empty(out_channels, in_per_group, *taps, grid_size + spline_order, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def _functional_padding(self) -> Padding:
        if isinstance(self.padding, str):
            return self.padding
        return self.padding[0] if self._dims == 1 else self.padding

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        bound = self.scale_noise / (2 * self.grid_size)
        nn.init.uniform_(self.spline_weight, -bound, bound)
        if self.bias is not None:
            fan_in = self.base_weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def _check_input(self, x: Tensor) -> None:
        """The input's rank and channels, in ``nn.Conv{1,2}d``'s terms (before any padding)."""
        names = "[batch, in_channels, length]" if self._dims == 1 else (
            "[batch, in_channels, height, width]"
        )  # fmt: skip
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != self._dims + 2:
            raise ValueError(
                f"x: expected a {self._dims + 2}-D tensor {names}, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x: expected {self.in_channels} input channels (in_channels of "
                f"{type(self).__name__}), got shape {tuple(x.shape)} with {x.shape[1]}"
            )

    def forward(self, x: Tensor) -> Tensor:
        padding = self._functional_padding()
        if self._dims == 2:
            self._check_input(x)
        if self.padding_mode != "zeros":
            self._check_input(x)
            x = F.pad(x, self._pad, mode=self.padding_mode)
            padding = 0
        stride = self.stride[0] if self._dims == 1 else self.stride
        dilation = self.dilation[0] if self._dims == 1 else self.dilation
        return type(self)._conv(
            x,
            self.base_weight,
            self.spline_weight,
            self.bias,
            stride,
            padding,
            dilation,
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
        if self.padding != (0,) * self._dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
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


class KANConv1d(_KANConvNd):
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

    _dims = 1
    _conv = staticmethod(kan_conv1d)

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
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, grid_size, spline_order, grid_range, backend, device, dtype,
            scale_noise,
        )  # fmt: skip


class KANConv2d(_KANConvNd):
    """2-D convolution whose every tap is a learnable function (a drop-in for ``nn.Conv2d``):
    ``phi(x) = base_weight * silu(x) + sum_i spline_weight[i] * B_i(x)`` per (output channel,
    input channel, kernel row, kernel column).

    Shapes: input ``[B, in_channels, H, W]`` (contiguous or channels-last), output ``[B,
    out_channels, H_out, W_out]`` as ``nn.Conv2d``. Parameters ``base_weight [out, in/groups, kh,
    kw]``, ``spline_weight [out, in/groups, kh, kw, grid_size + spline_order]``, ``bias [out]``.
    ``kernel_size``, ``stride``, ``padding``, ``dilation``: an int or a pair; ``padding`` also
    ``"same"`` (stride 1) or ``"valid"``.

    Padding and initialization as ``KANConv1d``: with ``padding_mode="zeros"`` a padded tap
    contributes nothing; the other modes pad ``x`` first.
    """

    _dims = 2
    _conv = staticmethod(kan_conv2d)

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
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode, grid_size, spline_order, grid_range, backend, device, dtype,
            scale_noise,
        )  # fmt: skip


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


def convert_to_kan(
    module: nn.Module,
    *,
    keep_weights: bool = True,
    **kan_kwargs,
) -> nn.Module:
    """Replaces every ``nn.Conv1d`` / ``nn.Conv2d`` in ``module`` (itself included) by a
    ``KANConv1d`` / ``KANConv2d`` with the same geometry (channels, kernel size, stride, padding,
    dilation, groups, bias, padding mode), device and dtype; returns the converted module (the
    children are replaced in place).

    ``keep_weights``: the plain convolution's weight becomes ``base_weight`` and its bias the
    bias, so that with the initial near-zero splines the KAN layer starts close to
    ``conv(silu(x))``. ``kan_kwargs`` go to every new layer (``grid_size``, ``spline_order``,
    ``grid_range``, ``backend``, ``scale_noise``). Transposed and lazy convolutions are not
    plain ``nn.Conv1d`` / ``nn.Conv2d`` and are left alone.
    """
    allowed = {"grid_size", "spline_order", "grid_range", "backend", "scale_noise"}
    unknown = sorted(set(kan_kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"convert_to_kan: unexpected keyword argument(s) {unknown}; expected some of "
            f"{sorted(allowed)}"
        )
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
    replacement = _kan_layer_for(module, keep_weights, kan_kwargs)
    if replacement is not None:
        return replacement
    for name, child in list(module.named_children()):
        setattr(module, name, convert_to_kan(child, keep_weights=keep_weights, **kan_kwargs))
    return module


def _kan_layer_for(conv: nn.Module, keep_weights: bool, kan_kwargs: dict) -> nn.Module | None:
    """The KAN layer that replaces ``conv`` (None when it is not a plain Conv1d / Conv2d)."""
    if type(conv) is nn.Conv1d:
        cls = KANConv1d
    elif type(conv) is nn.Conv2d:
        cls = KANConv2d
    else:
        return None
    weight = conv.weight
    layer = cls(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=weight.device,
        dtype=weight.dtype,
        **kan_kwargs,
    )
    layer.train(conv.training)
    if keep_weights:
        with torch.no_grad():
            layer.base_weight.copy_(weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
    return layer
