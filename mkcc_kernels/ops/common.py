"""Small pieces shared by the op registrations."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _C


def out_length(length, kernel_size, stride, pad_left, pad_right, dilation):
    """T_out as ``nn.Conv1d`` computes it (works on SymInts)."""
    return (length + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


def new_output(shape, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialized output; NaN-filled while the tests poison outputs, so that an element a
    kernel fails to write shows up."""
    out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device)
    if _C.poison_outputs():
        out.fill_(float("nan"))
    return out
