"""``mkcc::kan_conv1d_fwd_triton`` / ``mkcc::kan_conv1d_bwd_triton``: the Triton kernels as
``torch.library.triton_op``s (Inductor sees the kernels), with autograd.

They run on CUDA tensors, and on CPU tensors when Triton's interpreter is on
(``TRITON_INTERPRET=1`` before the first import of this package), which is how they are tested
without a GPU. Each pass is planned by a function that turns the tensors' shapes into
``Launch`` records (kernel, grid, arguments, compile-time constants) and hands them to a
launcher: the ops launch them, and ``mkcc_kernels.gpu_resources`` compiles the very same records
ahead of time for sm_80 and sm_90 to read their registers, spills and shared memory. The tile
table (``_TILES``) says why each size was chosen; ``bench/NOTES.md`` has the measurements.

fp32 follows ``torch.backends.cudnn.allow_tf32`` as ``nn.Conv1d`` does: TF32 tensor-core dots
when it is on (the default), IEEE fp32 CUDA-core dots when it is off. The flag is read when the
op runs, so under ``torch.compile`` it is read once, at trace time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import triton
from torch import Tensor
from torch.library import triton_op, wrap_triton
from triton.runtime.interpreter import InterpretedFunction

from ..checks import check_conv1d_call, check_grad_out
from ..triton.kan_conv1d import (
    _kan_conv1d_bwd_dw_kernel,
    _kan_conv1d_bwd_dx_kernel,
    _kan_conv1d_fwd_kernel,
)
from ._autograd import register
from .common import (
    BACKWARD_SCHEMA,
    FORWARD_SCHEMA,
    Conv1dArgs,
    forward_shape,
    new_output,
    out_length,
)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The kernels' feature block: features are contracted 16 at a time (the smallest tl.dot depth
# for 16-bit inputs), so 1 + G + K is padded to a multiple of 16 and the tiles, hence the
# registers, do not grow with the grid size.
FEATURES = 16
# Programs one launch may have (the one grid axis is at most 2^31 - 1).
_MAX_PROGRAMS = 2**31 - 1


@dataclass(frozen=True)
class Tiles:
    """One pass's tile sizes and launch options. ``rows`` (BLOCK_M) counts output positions
    (forward, weight gradient) or input positions (input gradient), ``cols`` output channels
    (BLOCK_N / BLOCK_O), ``channels`` input channels per step (BLOCK_C: a dot is
    ``channels * 16`` deep)."""

    rows: int
    cols: int
    channels: int
    num_warps: int
    num_stages: int


# Tile table, by pass and by whether the dots run on tensor cores (TF32, fp16, bf16) or as IEEE
# fp32 FMAs. Every entry compiles without spills for sm_80 and sm_90 at every spline order
# (``make test`` compiles every launch the planners make; bench/NOTES.md has the registers):
# - tensor cores: 64-deep dots (4 channels x 16 features) over 64 rows; 64 or, when the group
#   has more than 64 output channels, 128 columns (each feature tile, the forward's CUDA-core
#   cost, then serves twice the output channels); 3 stages hide the weight and grad_out loads.
#   The input gradient takes 8 warps (4 spill on sm_80), the weight gradient 2 stages at 64
#   columns (3 spill on sm_80).
# - IEEE fp32: tl.dot lowers to FMAs that hold both operands in registers, so the dots are 16
#   deep: one channel's features (forward, input gradient) or 16 rows (weight gradient).
_TILES = {
    ("fwd", True): (Tiles(64, 64, 4, 4, 3), Tiles(64, 128, 4, 8, 3)),
    ("dx", True): (Tiles(64, 64, 4, 8, 3),),
    ("dw", True): (Tiles(32, 64, 4, 8, 2), Tiles(64, 128, 4, 8, 3)),
    ("fwd", False): (Tiles(64, 64, 1, 4, 2),),
    ("dx", False): (Tiles(64, 64, 1, 4, 2),),
    ("dw", False): (Tiles(16, 64, 1, 4, 2),),
}


def _tiles(kind: str, tensor_cores: bool, out_per_group: int, table=None) -> Tiles:
    """The widest entry of ``table`` (default ``_TILES``) whose ``cols`` the group's output
    channels fill by more than half."""
    choices = (_TILES if table is None else table)[(kind, tensor_cores)]
    fitting = [t for t in choices if t.cols == choices[0].cols or out_per_group > t.cols // 2]
    return fitting[-1]


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``kernel[grid](*args, **constants)``; ``constants`` holds the
    ``tl.constexpr`` arguments and ``num_warps`` / ``num_stages``."""

    name: str
    kernel: Any
    grid: tuple[int]
    args: tuple
    constants: dict[str, Any] = field(default_factory=dict)


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


def _launchable(kernel):
    """``wrap_triton(kernel)``, so that torch.compile and fake tensors see the launch. torch
    releases before 2.13 refuse interpreted kernels there; they are then launched directly
    (eager only, which is all the interpreter is for)."""
    try:
        return wrap_triton(kernel)
    except RuntimeError:
        if isinstance(kernel, InterpretedFunction):
            return kernel
        raise


KERNELS = {
    "fwd": _kan_conv1d_fwd_kernel,
    "dx": _kan_conv1d_bwd_dx_kernel,
    "dw": _kan_conv1d_bwd_dw_kernel,
}
_LAUNCHABLE = {kernel: _launchable(kernel) for kernel in KERNELS.values()}


def _run(launch: Launch) -> None:
    _LAUNCHABLE[launch.kernel][launch.grid](*launch.args, **launch.constants)


def _check(x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv1dArgs) -> None:
    """The op boundary: the checks of ``kan_conv1d`` (``checks.py``), then what the Triton
    kernels add (device, dtype)."""
    check_conv1d_call(x, base_weight, spline_weight, conv)
    if not runs_on(x.device):
        late = x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
        raise ValueError(
            f"x: the Triton kernels run on CUDA tensors (CPU tensors only with TRITON_INTERPRET=1 "
            f"set before mkcc_kernels is first imported"
            f"{'; it was set after' if late else ''}), got a {x.device.type} tensor"
        )
    check_dtype(x)


def check_dtype(x: Tensor) -> None:
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x: backend 'triton' supports float32, float16, bfloat16, got {x.dtype}")


def ieee_fp32(dtype: torch.dtype) -> bool:
    """Whether fp32 dots run in IEEE fp32 rather than TF32: ``nn.Conv1d``'s switch,
    ``torch.backends.cudnn.allow_tf32``, turned off."""
    return dtype == torch.float32 and not torch.backends.cudnn.allow_tf32


def _device_guard(x: Tensor):
    """Launch on x's GPU, not on whichever is current."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


def _blocks(size: int, block: int) -> int:
    return triton.cdiv(size, block)


def _feature_blocks(grid_size: int, spline_order: int) -> int:
    return _blocks(1 + grid_size + spline_order, FEATURES)


def _check_weight_size(
    groups: int, kernel_size: int, in_per_group: int, out_per_group: int, feature_blocks: int,
    tiles: Tiles,
) -> None:  # fmt: skip
    """The kernels address a weight tile with 32-bit offsets from its row block: the packed
    weights (padded to whole tiles) must stay under 2^31 values."""
    values = (
        groups * kernel_size * feature_blocks * FEATURES
        * _blocks(in_per_group, tiles.channels) * tiles.channels
        * _blocks(out_per_group, tiles.cols) * tiles.cols
    )  # fmt: skip
    if values >= 2**31:
        raise ValueError(
            f"base_weight, spline_weight: {values} packed weight values, more than the Triton "
            f"kernels address (2^31); use backend='cuda' or 'reference'"
        )


def _grid(programs: int) -> tuple[int]:
    if programs > _MAX_PROGRAMS:
        raise ValueError(
            f"x: the Triton kernels need {programs} programs for this shape, more than one "
            f"launch takes ({_MAX_PROGRAMS}); split the batch"
        )
    return (programs,)


def _padded_weights(
    base_weight: Tensor, spline_weight: Tensor, groups: int, feature_blocks: int, tiles: Tiles
) -> Tensor:
    """``[groups, O_pad, C_pad, k, F]``: feature 0 base, 1 + i spline i, zeros up to
    ``F = 16 * feature_blocks``; output and input channels zero-padded to whole tiles."""
    out_channels, in_per_group, kernel_size = base_weight.shape
    out_per_group = out_channels // groups
    weight = torch.cat([base_weight.unsqueeze(-1), spline_weight], dim=-1)
    weight = weight.view(groups, out_per_group, in_per_group, kernel_size, -1)
    padding = (
        0, feature_blocks * FEATURES - weight.shape[-1],
        0, 0,
        0, _blocks(in_per_group, tiles.channels) * tiles.channels - in_per_group,
        0, _blocks(out_per_group, tiles.cols) * tiles.cols - out_per_group,
    )  # fmt: skip
    return F.pad(weight, padding)


def pack_forward_weights(
    base_weight: Tensor, spline_weight: Tensor, groups: int, feature_blocks: int, tiles: Tiles
) -> Tensor:
    """The forward's layout ``[groups, N_pad, k, C_pad, F]``: one output channel's row is
    contiguous over (tap, channel, feature), the K-contiguous operand of ``W^T @ features``."""
    weight = _padded_weights(base_weight, spline_weight, groups, feature_blocks, tiles)
    return weight.permute(0, 1, 3, 2, 4).contiguous()


def pack_input_grad_weights(
    base_weight: Tensor, spline_weight: Tensor, groups: int, feature_blocks: int, tiles: Tiles
) -> Tensor:
    """The input gradient's layout ``[groups, k, C_pad, F, O_pad]``: a (channel, feature) row
    holds the output channels contiguously, the operand of ``W @ grad_out``."""
    weight = _padded_weights(base_weight, spline_weight, groups, feature_blocks, tiles)
    return weight.permute(0, 3, 2, 4, 1).contiguous()


@dataclass(frozen=True)
class _Basis:
    """The basis arguments every kernel takes: ``spline`` = (num_funcs, num_intervals,
    feature_blocks), ``knots`` = (grid_lo, h, 1 / h)."""

    grid_size: int
    feature_blocks: int
    spline: tuple[int, int, int]
    knots: tuple[float, float, float]


def _basis(spline_weight: Tensor, spline_order: int, grid_lo: float, grid_hi: float) -> _Basis:
    grid_size = spline_weight.shape[-1] - spline_order
    h = (grid_hi - grid_lo) / grid_size
    feature_blocks = _feature_blocks(grid_size, spline_order)
    return _Basis(
        grid_size,
        feature_blocks,
        (grid_size + spline_order, grid_size + 2 * spline_order, feature_blocks),
        (grid_lo, h, 1.0 / h),
    )


def _constants(spline_order: int, ieee: bool, tiles: Tiles, cols: str) -> dict[str, Any]:
    """The compile-time arguments of a launch; ``cols`` names the kernel's column block."""
    return {
        "SPLINE_ORDER": spline_order,
        "IEEE_FP32": ieee,
        "BLOCK_M": tiles.rows,
        cols: tiles.cols,
        "BLOCK_C": tiles.channels,
        "FEATURES": FEATURES,
        "num_warps": tiles.num_warps,
        "num_stages": tiles.num_stages,
    }


Launcher = Callable[[Launch], None]


def plan_forward(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv1dArgs, launch: Launcher
) -> Tensor:
    """The forward: allocates the output, packs the weights and hands the launch to
    ``launch``."""
    stride, pad_left, pad_right, dilation, groups, spline_order, grid_lo, grid_hi = conv
    batch, in_channels, length = x.shape
    out_channels, in_per_group, kernel_size = base_weight.shape
    basis = _basis(spline_weight, spline_order, grid_lo, grid_hi)
    length_out = out_length(length, kernel_size, stride, pad_left, pad_right, dilation)
    out = new_output((batch, out_channels, length_out), x)
    if out.numel() == 0:
        return out
    ieee = ieee_fp32(x.dtype)
    out_per_group = out_channels // groups
    tiles = _tiles("fwd", not ieee, out_per_group)
    _check_weight_size(
        groups, kernel_size, in_per_group, out_per_group, basis.feature_blocks, tiles
    )
    packed = pack_forward_weights(base_weight, spline_weight, groups, basis.feature_blocks, tiles)
    programs = _blocks(out_per_group, tiles.cols) * _blocks(batch * length_out, tiles.rows) * groups
    args = (
        out, *out.stride(), x, *x.stride(), packed,
        batch, length, length_out, in_per_group, out_per_group, groups,
        stride, pad_left, dilation, kernel_size, *basis.spline, *basis.knots,
    )  # fmt: skip
    constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
    launch(Launch("fwd", _kan_conv1d_fwd_kernel, _grid(programs), args, constants))
    return out


def _weight_grad_splits(programs: int, rows: int, block_m: int, multiprocessors: int) -> int:
    """Row splits of the weight-gradient reduction: enough programs to fill the GPU twice over,
    each split at least four row blocks long; summed in a fixed order afterwards
    (deterministic)."""
    return max(1, min(triton.cdiv(2 * multiprocessors, programs), triton.cdiv(rows, 4 * block_m)))


def plan_backward(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    conv: Conv1dArgs,
    input_grad: bool,
    weight_grad: bool,
    launch: Launcher,
    multiprocessors: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward: the input gradient and the weight gradients (each only when asked for),
    ``grad_out`` contiguous. ``multiprocessors`` sizes the weight gradient's row splits."""
    stride, pad_left, _, dilation, groups, spline_order, grid_lo, grid_hi = conv
    batch, in_channels, length = x.shape
    out_channels, in_per_group, kernel_size = base_weight.shape
    out_per_group = out_channels // groups
    length_out = grad_out.shape[2]
    basis = _basis(spline_weight, spline_order, grid_lo, grid_hi)
    feature_blocks = basis.feature_blocks
    ieee = ieee_fp32(x.dtype)

    grad_x = x.new_empty((0,))
    if input_grad and x.numel() == 0:
        grad_x = x.new_empty((batch, in_channels, length))
    elif input_grad:
        # Several feature blocks (1 + G + K > 16) each give a partial sum: fp32, added after.
        grad_x = (
            new_output((batch, in_channels, length), x)
            if feature_blocks == 1
            else new_output((feature_blocks, batch, in_channels, length), x, torch.float32)
        )
        tiles = _tiles("dx", not ieee, out_per_group)
        _check_weight_size(groups, kernel_size, in_per_group, out_per_group, feature_blocks, tiles)
        packed = pack_input_grad_weights(base_weight, spline_weight, groups, feature_blocks, tiles)
        programs = _blocks(in_per_group, tiles.channels) * feature_blocks
        programs *= _blocks(batch * length, tiles.rows) * groups
        args = (
            grad_x, x, *x.stride(), grad_out, packed,
            batch, length, length_out, in_channels, in_per_group, out_per_group, out_channels,
            groups, stride, pad_left, dilation, kernel_size, *basis.spline, *basis.knots,
        )  # fmt: skip
        constants = _constants(spline_order, ieee, tiles, "BLOCK_O")
        launch(Launch("dx", _kan_conv1d_bwd_dx_kernel, _grid(programs), args, constants))
        if feature_blocks > 1:
            grad_x = grad_x.sum(0).to(x.dtype)

    grad_base, grad_spline = x.new_empty((0,)), x.new_empty((0,))
    if weight_grad and batch == 0:
        grad_base, grad_spline = torch.zeros_like(base_weight), torch.zeros_like(spline_weight)
    elif weight_grad:
        tiles = _tiles("dw", not ieee, out_per_group)
        rows = batch * length_out
        n_blocks = _blocks(out_per_group, tiles.cols)
        c_blocks = _blocks(in_per_group, tiles.channels)
        programs = n_blocks * c_blocks * feature_blocks * kernel_size * groups
        splits = _weight_grad_splits(programs, rows, tiles.rows, multiprocessors)
        rows_per_split = triton.cdiv(triton.cdiv(rows, splits), tiles.rows) * tiles.rows
        partial_shape = (
            splits, groups, kernel_size, c_blocks * tiles.channels, feature_blocks * FEATURES,
            n_blocks * tiles.cols,
        )  # fmt: skip
        partial = new_output(partial_shape, x, dtype=torch.float32)
        args = (
            partial, x, *x.stride(), grad_out,
            batch, length, length_out, in_per_group, out_per_group, out_channels, groups,
            stride, pad_left, dilation, kernel_size, *basis.spline, rows_per_split, *basis.knots,
        )  # fmt: skip
        constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
        launch(Launch("dw", _kan_conv1d_bwd_dw_kernel, _grid(programs * splits), args, constants))
        # [groups, k, C, F, O] without the padding
        total = partial.sum(0)[:, :, :in_per_group, :, :out_per_group]
        # Copies (not views of `total`), so that the two gradients do not alias.
        grad_base = base_weight.new_empty(base_weight.shape)
        grad_base.view(groups, out_per_group, in_per_group, kernel_size).copy_(
            total[:, :, :, 0, :].permute(0, 3, 2, 1)
        )
        grad_spline = spline_weight.new_empty(spline_weight.shape)
        grad_spline.view(groups, out_per_group, in_per_group, kernel_size, -1).copy_(
            total[:, :, :, 1 : 1 + basis.grid_size + spline_order, :].permute(0, 4, 2, 1, 3)
        )
    return grad_x, grad_base, grad_spline


def _multiprocessors(x: Tensor) -> int:
    """Streaming multiprocessors of x's GPU; on CPU (the interpreter) a few, so that the tests
    also cover the weight gradient's split reduction."""
    if x.device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(x.device).multi_processor_count


@triton_op("mkcc::kan_conv1d_fwd_triton", mutates_args={}, schema=FORWARD_SCHEMA)
def kan_conv1d_fwd_triton(x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv) -> Tensor:
    """Same contract as ``mkcc::kan_conv1d_fwd`` (``common.FORWARD_SCHEMA``)."""
    conv = Conv1dArgs(*conv)
    _check(x, base_weight, spline_weight, conv)
    with _device_guard(x):
        return plan_forward(x, base_weight, spline_weight, conv, _run)


@triton_op("mkcc::kan_conv1d_bwd_triton", mutates_args={}, schema=BACKWARD_SCHEMA)
def kan_conv1d_bwd_triton(
    grad_out: Tensor, x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv_and_flags
) -> tuple[Tensor, Tensor, Tensor]:
    """Same contract as ``mkcc::kan_conv1d_bwd`` (``common.BACKWARD_SCHEMA``)."""
    conv = Conv1dArgs(*conv_and_flags[:-2])
    input_grad, weight_grad = conv_and_flags[-2:]
    _check(x, base_weight, spline_weight, conv)
    check_grad_out(grad_out, x, forward_shape(x, base_weight, *conv))
    with _device_guard(x):
        return plan_backward(
            grad_out.contiguous(), x, base_weight, spline_weight, conv, input_grad, weight_grad,
            _run, _multiprocessors(x),
        )  # fmt: skip


register("mkcc::kan_conv1d_fwd_triton", "mkcc::kan_conv1d_bwd_triton")
