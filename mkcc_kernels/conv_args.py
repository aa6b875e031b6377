"""The non-tensor arguments of a KANConv1d call once its padding is resolved, as one value: what
the ops take after the tensors (``ops.common.CONV1D_ARGUMENTS``, in this order), what the
references and the Triton planners take."""

from __future__ import annotations

from typing import NamedTuple


class Conv1dArgs(NamedTuple):
    stride: int = 1
    pad_left: int = 0
    pad_right: int = 0
    dilation: int = 1
    groups: int = 1
    spline_order: int = 3
    grid_lo: float = -1.0
    grid_hi: float = 1.0


# No padding, stride and dilation 1, one group, cubic splines on (-1, 1).
DEFAULT_CONV1D = Conv1dArgs()


class Conv2dArgs(NamedTuple):
    """The non-tensor arguments of a KANConv2d call once its padding is resolved (what the 2-D
    ops take after the tensors, ``ops.common.CONV2D_ARGUMENTS``, in this order)."""

    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    spline_order: int = 3
    grid_lo: float = -1.0
    grid_hi: float = 1.0


DEFAULT_CONV2D = Conv2dArgs()
