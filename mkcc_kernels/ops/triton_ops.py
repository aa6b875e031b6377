"""``mkcc::kan_conv1d_fwd_triton`` / ``mkcc::kan_conv1d_bwd_triton``: the Triton kernels as
``torch.library.triton_op``s (Inductor sees the kernels), with autograd.

They run on CUDA tensors, and on CPU tensors when Triton's interpreter is on
(``TRITON_INTERPRET=1`` before the first import of this package), which is how they are tested
without a GPU. Launch sizes come from fixed heuristics of the shapes (see ``bench/NOTES.md``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
from torch import Tensor
from torch.library import triton_op, wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from ..triton.kan_conv1d import (
    _kan_conv1d_bwd_dw_kernel,
    _kan_conv1d_bwd_dx_kernel,
    _kan_conv1d_fwd_kernel,
)
from ._autograd import register
from .common import new_output, out_length

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreter_enabled() -> bool:
    """Whether the kernels were defined for Triton's interpreter (TRITON_INTERPRET=1 was set when
    this module was imported: Triton decides when it defines a kernel, not when it launches)."""
    return isinstance(_kan_conv1d_fwd_kernel, InterpretedFunction)


def runs_on(device: torch.device | str) -> bool:
    """Whether the Triton kernels can run on tensors of this device."""
    device_type = torch.device(device).type
    if device_type == "cuda":
        return torch.cuda.is_available()
    return device_type == "cpu" and interpreter_enabled()


def _check(x: Tensor, base_weight: Tensor, spline_weight: Tensor) -> None:
    if not runs_on(x.device):
        late = x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
        raise ValueError(
            f"x: the Triton kernels run on CUDA tensors (CPU tensors only with TRITON_INTERPRET=1 "
            f"set before mkcc_kernels is first imported"
            f"{'; it was set after' if late else ''}), got a {x.device.type} tensor"
        )
    if x.dim() != 3 or x.shape[1] == 0:
        raise ValueError(
            f"x: expected a 3-D tensor [batch, in_channels >= 1, length], got shape "
            f"{tuple(x.shape)}"
        )
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x: backend 'triton' supports float32, float16, bfloat16, got {x.dtype}")
    if base_weight.dtype != x.dtype or spline_weight.dtype != x.dtype:
        raise TypeError(f"base_weight, spline_weight: expected dtype {x.dtype} (that of x)")


def _num_features(grid_size: int, spline_order: int) -> int:
    """1 + G + K padded to a power of two of at least 16 (the smallest tl.dot depth)."""
    return max(16, triton.next_power_of_2(1 + grid_size + spline_order))


def _block(size: int, low: int, high: int) -> int:
    return min(high, max(low, triton.next_power_of_2(size)))


def _pack_weights(
    base_weight: Tensor, spline_weight: Tensor, groups: int, num_features: int
) -> Tensor:
    """``[groups, k, C_in/groups, F, C_out/groups]``: feature 0 base, 1 + i spline i, zeros."""
    out_channels, in_per_group, kernel_size = base_weight.shape
    weight = torch.cat([base_weight.unsqueeze(-1), spline_weight], dim=-1)
    weight = F.pad(weight, (0, num_features - weight.shape[-1]))
    weight = weight.view(groups, out_channels // groups, in_per_group, kernel_size, num_features)
    return weight.permute(0, 3, 2, 4, 1).contiguous()


def _grid_args(spline_weight: Tensor, spline_order: int, grid_lo: float, grid_hi: float):
    grid_size = spline_weight.shape[-1] - spline_order
    h = (grid_hi - grid_lo) / grid_size
    return grid_size, (grid_lo, h, 1.0 / h)


@triton_op("mkcc::kan_conv1d_fwd_triton", mutates_args={})
def kan_conv1d_fwd_triton(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    stride: int,
    pad_left: int,
    pad_right: int,
    dilation: int,
    groups: int,
    spline_order: int,
    grid_lo: float,
    grid_hi: float,
) -> Tensor:
    """Same contract as ``mkcc::kan_conv1d_fwd``."""
    _check(x, base_weight, spline_weight)
    batch, in_channels, length = x.shape
    out_channels, in_per_group, kernel_size = base_weight.shape
    grid_size, (lo, h, inv_h) = _grid_args(spline_weight, spline_order, grid_lo, grid_hi)
    num_features = _num_features(grid_size, spline_order)
    length_out = out_length(length, kernel_size, stride, pad_left, pad_right, dilation)
    out = new_output((batch, out_channels, length_out), x)
    if out.numel() == 0:
        return out
    packed = _pack_weights(base_weight, spline_weight, groups, num_features)
    out_per_group = out_channels // groups
    block_m = _block(batch * length_out, 16, 64)
    block_n = _block(out_per_group, 16, 64)
    block_c = _block(in_per_group, 1, max(1, 64 // num_features))
    grid = (triton.cdiv(batch * length_out, block_m), triton.cdiv(out_per_group, block_n), groups)
    wrap_triton(_kan_conv1d_fwd_kernel)[grid](
        out, *out.stride(), x, *x.stride(), packed,
        batch, length, length_out, in_per_group, out_per_group,
        stride, pad_left, dilation, kernel_size, lo, h, inv_h,
        SPLINE_ORDER=spline_order, NUM_FUNCS=grid_size + spline_order,
        NUM_INTERVALS=grid_size + 2 * spline_order, NUM_FEATURES=num_features,
        IEEE_FP32=x.dtype in (torch.float32, torch.float64),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_C=block_c,
    )  # fmt: skip
    return out


def _weight_grad_splits(x: Tensor, programs: int, rows: int, block_m: int) -> int:
    """Row splits of the weight-gradient reduction: enough programs to fill the GPU, each split
    at least four row blocks long; summed in a fixed order afterwards (deterministic)."""
    if x.device.type != "cuda":
        return 1
    target = 2 * torch.cuda.get_device_properties(x.device).multi_processor_count
    return max(1, min(triton.cdiv(target, programs), triton.cdiv(rows, 4 * block_m)))


@triton_op("mkcc::kan_conv1d_bwd_triton", mutates_args={})
def kan_conv1d_bwd_triton(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    stride: int,
    pad_left: int,
    pad_right: int,
    dilation: int,
    groups: int,
    spline_order: int,
    grid_lo: float,
    grid_hi: float,
    input_grad: bool,
    weight_grad: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Same contract as ``mkcc::kan_conv1d_bwd``."""
    _check(x, base_weight, spline_weight)
    grad_out = grad_out.contiguous()
    batch, in_channels, length = x.shape
    out_channels, in_per_group, kernel_size = base_weight.shape
    out_per_group = out_channels // groups
    length_out = grad_out.shape[2]
    grid_size, (lo, h, inv_h) = _grid_args(spline_weight, spline_order, grid_lo, grid_hi)
    num_features = _num_features(grid_size, spline_order)
    constants = dict(
        SPLINE_ORDER=spline_order, NUM_FUNCS=grid_size + spline_order,
        NUM_INTERVALS=grid_size + 2 * spline_order, NUM_FEATURES=num_features,
        IEEE_FP32=x.dtype in (torch.float32, torch.float64),
    )  # fmt: skip
    block_c = _block(in_per_group, 1, max(1, 64 // num_features))

    grad_x = x.new_empty((0,))
    if input_grad and batch == 0:
        grad_x = x.new_empty((0, in_channels, length))
    elif input_grad:
        grad_x = new_output((batch, in_channels, length), x)
        packed = _pack_weights(base_weight, spline_weight, groups, num_features)
        block_m = _block(batch * length, 16, 64)
        grid = (triton.cdiv(batch * length, block_m), triton.cdiv(in_per_group, block_c), groups)
        wrap_triton(_kan_conv1d_bwd_dx_kernel)[grid](
            grad_x, x, *x.stride(), grad_out, packed,
            batch, length, length_out, in_channels, in_per_group, out_per_group, out_channels,
            stride, pad_left, dilation, kernel_size, lo, h, inv_h, **constants,
            BLOCK_M=block_m, BLOCK_C=block_c, BLOCK_O=_block(out_per_group, 16, 64),
        )  # fmt: skip

    grad_base, grad_spline = x.new_empty((0,)), x.new_empty((0,))
    if weight_grad and batch == 0:
        grad_base, grad_spline = torch.zeros_like(base_weight), torch.zeros_like(spline_weight)
    elif weight_grad:
        rows = batch * length_out
        block_m = _block(rows, 16, 64)
        block_n = _block(out_per_group, 16, 64)
        programs = (
            triton.cdiv(out_per_group, block_n)
            * triton.cdiv(in_per_group, block_c)
            * kernel_size
            * groups
        )
        splits = _weight_grad_splits(x, programs, rows, block_m)
        rows_per_split = triton.cdiv(triton.cdiv(rows, splits), block_m) * block_m
        partial = new_output(
            (splits, groups, kernel_size, in_per_group, num_features, out_per_group),
            x,
            dtype=torch.float32,
        )
        grid = (
            triton.cdiv(out_per_group, block_n),
            triton.cdiv(in_per_group, block_c),
            splits * groups * kernel_size,
        )
        wrap_triton(_kan_conv1d_bwd_dw_kernel)[grid](
            partial, x, *x.stride(), grad_out,
            batch, length, length_out, in_per_group, out_per_group, out_channels, groups,
            stride, pad_left, dilation, kernel_size, rows_per_split, lo, h, inv_h, **constants,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_C=block_c,
        )  # fmt: skip
        total = partial.sum(0)  # [groups, k, Cg, F, Cog]
        # Copies (not views of `total`), so that the two gradients do not alias.
        grad_base = base_weight.new_empty(base_weight.shape)
        grad_base.view(groups, out_per_group, in_per_group, kernel_size).copy_(
            total[:, :, :, 0, :].permute(0, 3, 2, 1)
        )
        grad_spline = spline_weight.new_empty(spline_weight.shape)
        grad_spline.view(groups, out_per_group, in_per_group, kernel_size, -1).copy_(
            total[:, :, :, 1 : 1 + grid_size + spline_order, :].permute(0, 4, 2, 1, 3)
        )
    return grad_x, grad_base, grad_spline


register("mkcc::kan_conv1d_fwd_triton", "mkcc::kan_conv1d_bwd_triton")
