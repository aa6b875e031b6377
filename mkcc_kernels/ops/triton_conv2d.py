"""``mkcc::kan_conv2d_fwd_triton`` / ``mkcc::kan_conv2d_bwd_triton``: the fused KANConv2d kernels
(``mkcc_kernels/triton/kan_conv2d.py``) as ``torch.library.triton_op``s, with autograd.

Same machinery as the KANConv1d ops (``triton_ops.py``), which this module reuses: a 2-D
convolution's weights are a 1-D convolution's with ``kernel_h * kernel_w`` taps, so they are
packed by ``triton_ops.pack_forward_weights`` / ``pack_input_grad_weights`` on the flattened
taps and the weight gradient comes back in the 1-D layout. Each pass is planned by a function
that turns the tensors' shapes into ``Launch`` records handed to a launcher: the ops launch them,
``mkcc_kernels.gpu_resources`` compiles the very same records for sm_80 and sm_90 ahead of time.
CUDA tensors, or CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1`` before the first
import of this package).

fp32 follows ``torch.backends.cudnn.allow_tf32`` as ``nn.Conv2d`` does: TF32 tensor-core dots
when it is on (the default), IEEE fp32 CUDA-core dots when it is off. The flag is read when the
op runs, so under ``torch.compile`` it is read once, at trace time.
"""

from __future__ import annotations

import os

import torch
import triton
from torch import Tensor
from torch.library import triton_op
from triton.runtime.interpreter import InterpretedFunction

from ..checks import check_conv2d_call, check_grad_out
from ..conv_args import Conv2dArgs
from ..triton.kan_conv2d import (
    _kan_conv2d_bwd_dw_kernel,
    _kan_conv2d_bwd_dx_kernel,
    _kan_conv2d_fwd_kernel,
)
from . import triton_ops
from ._autograd import register
from .common import (
    CONV2D_BACKWARD_SCHEMA,
    CONV2D_FORWARD_SCHEMA,
    conv2d_forward_shape,
    new_output,
)
from .triton_linear import _without_data
from .triton_ops import (
    FEATURES,
    Launch,
    Launcher,
    Tiles,
    _basis,
    _blocks,
    _constants,
    _device_guard,
    _grid,
    _launchable,
    _multiprocessors,
    _weight_grad_splits,
    check_dtype,
    ieee_fp32,
    pack_forward_weights,
    pack_input_grad_weights,
    runs_on,
)

# Tile table of the KANConv2d kernels, by pass and by whether the dots run on tensor cores (TF32,
# fp16, bf16) or as IEEE fp32 FMAs; within a pass the entry is picked from the group's output
# channels (``triton_ops._tiles``). Fixed tiles, no autotuning (bench/NOTES.md, "Triton launch
# configuration"). Every entry compiles without spills for sm_80 and sm_90 at every spline order
# (``gpu_resources.conv2d_triton_resources``, the benchmark shapes; tests/test_gpu_resources.py).
# The KANConv1d table, with one change: the weight gradient's 32 x 64 tile takes 3 stages, not 2
# (at 2, ptxas held the 2-D kernel to 80 registers on sm_80 and spilled 16 bytes at TF32, K = 4;
# at 3 it takes 111-128 registers on sm_80, 136-149 on sm_90, no stack). The 2-D taps cost a
# second position and mask per row, nothing per feature, so the other entries fit as they are.
_TILES = {
    ("fwd", True): (Tiles(64, 64, 4, 4, 3), Tiles(64, 128, 4, 8, 3)),
    ("dx", True): (Tiles(64, 64, 4, 8, 3),),
    ("dw", True): (Tiles(32, 64, 4, 8, 3), Tiles(64, 128, 4, 8, 3)),
    ("fwd", False): (Tiles(64, 64, 1, 4, 2),),
    ("dx", False): (Tiles(64, 64, 1, 4, 2),),
    ("dw", False): (Tiles(16, 64, 1, 4, 2),),
}
# Depthwise groups (one input channel, at most 16 outputs): the tiles above would evaluate the
# features of 4 channels of which 3 do not exist and fill 1 of 64 MMA rows (1 of 64 FMA rows in
# IEEE fp32). Here one channel's 16 features per dot (the smallest depth) and 16 output columns
# (the smallest width), with more rows per program.
_DEPTHWISE_TILES = {
    ("fwd", True): (Tiles(128, 16, 1, 4, 3),),
    ("dx", True): (Tiles(128, 16, 1, 4, 3),),
    ("dw", True): (Tiles(64, 16, 1, 4, 2),),
    ("fwd", False): (Tiles(128, 16, 1, 4, 2),),
    ("dx", False): (Tiles(128, 16, 1, 4, 2),),
    ("dw", False): (Tiles(32, 16, 1, 4, 2),),
}


def _tiles(kind: str, tensor_cores: bool, in_per_group: int, out_per_group: int) -> Tiles:
    """The depthwise tiles for groups of one input channel and at most 16 outputs, otherwise
    the widest entry of ``_TILES`` whose ``cols`` the group's outputs fill by more than half."""
    depthwise = in_per_group == 1 and out_per_group <= 16
    table = _DEPTHWISE_TILES if depthwise else _TILES
    return triton_ops._tiles(kind, tensor_cores, out_per_group, table)


KERNELS = {
    "conv2d_fwd": _kan_conv2d_fwd_kernel,
    "conv2d_dx": _kan_conv2d_bwd_dx_kernel,
    "conv2d_dw": _kan_conv2d_bwd_dw_kernel,
}
_LAUNCHABLE = {kernel: _launchable(kernel) for kernel in KERNELS.values()}


def _run(launch: Launch) -> None:
    kernel = _LAUNCHABLE[launch.kernel]
    if isinstance(kernel, InterpretedFunction) and any(map(_without_data, launch.args)):
        # An interpreted kernel called on fake or meta tensors (opcheck, tracing): the outputs'
        # shapes are all there is to compute.
        return
    kernel[launch.grid](*launch.args, **launch.constants)


def _check(x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv2dArgs) -> None:
    """The op boundary: the checks of ``kan_conv2d`` (``checks.py``), then what the Triton
    kernels add (device, dtype)."""
    check_conv2d_call(x, base_weight, spline_weight, conv)
    if not runs_on(x.device):
        late = x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
        raise ValueError(
            f"x: the Triton kernels run on CUDA tensors (CPU tensors only with TRITON_INTERPRET=1 "
            f"set before mkcc_kernels is first imported"
            f"{'; it was set after' if late else ''}), got a {x.device.type} tensor"
        )
    check_dtype(x)


def _check_sizes(
    x: Tensor, out_pixels: int, taps: int, in_per_group: int, out_per_group: int, groups: int,
    feature_blocks: int, tiles: Tiles,
) -> None:  # fmt: skip
    """The kernels address a pixel within an image and a packed weight tile with 32-bit offsets:
    ``H * W`` and ``H_out * W_out`` under 2^30 (a row block's pixels stay under 2^31), the
    packed weights (padded to whole tiles) under 2^31 values."""
    pixels = max(x.shape[2] * x.shape[3], out_pixels)
    if pixels >= 2**30:
        raise ValueError(
            f"x: {pixels} pixels per image, more than the Triton kernels address (2^30); use "
            f"backend='reference'"
        )
    values = (
        groups * taps * feature_blocks * FEATURES
        * _blocks(in_per_group, tiles.channels) * tiles.channels
        * _blocks(out_per_group, tiles.cols) * tiles.cols
    )  # fmt: skip
    if values >= 2**31:
        raise ValueError(
            f"base_weight, spline_weight: {values} packed weight values, more than the Triton "
            f"kernels address (2^31); use backend='reference'"
        )


def _geometry(conv: Conv2dArgs) -> tuple[int, ...]:
    """The kernels' geometry arguments: strides, top and left padding, dilations."""
    c = conv
    return c.stride_h, c.stride_w, c.pad_top, c.pad_left, c.dilation_h, c.dilation_w


def _taps_1d(base_weight: Tensor, spline_weight: Tensor) -> tuple[Tensor, Tensor]:
    """The weights with their kernel elements as the taps of a 1-D convolution:
    ``[C_out, C_in / groups, kh * kw]`` and ``[C_out, C_in / groups, kh * kw, G + K]``."""
    return base_weight.flatten(2), spline_weight.flatten(2, 3)


def plan_conv2d_forward(
    x: Tensor, base_weight: Tensor, spline_weight: Tensor, conv: Conv2dArgs, launch: Launcher
) -> Tensor:
    """The forward ``[B, C_in, H, W] -> [B, C_out, H_out, W_out]``: allocates the output, packs
    the weights and hands the launch to ``launch``."""
    groups, spline_order = conv.groups, conv.spline_order
    batch, _, height, width = x.shape
    out_channels, in_per_group, kernel_h, kernel_w = base_weight.shape
    out_per_group = out_channels // groups
    out_shape = conv2d_forward_shape(x, base_weight, *conv)
    out = new_output(out_shape, x)
    if out.numel() == 0:
        return out
    out_height, out_width = out_shape[2:]
    basis = _basis(spline_weight, spline_order, conv.grid_lo, conv.grid_hi)
    ieee = ieee_fp32(x.dtype)
    tiles = _tiles("fwd", not ieee, in_per_group, out_per_group)
    taps = kernel_h * kernel_w
    _check_sizes(
        x, out_height * out_width, taps, in_per_group, out_per_group, groups,
        basis.feature_blocks, tiles,
    )  # fmt: skip
    packed = pack_forward_weights(
        *_taps_1d(base_weight, spline_weight), groups, basis.feature_blocks, tiles
    )
    programs = _blocks(out_per_group, tiles.cols) * groups
    programs *= _blocks(batch * out_height * out_width, tiles.rows)
    args = (
        out, *out.stride(), x, *x.stride(), packed,
        batch, height, width, out_height, out_width, in_per_group, out_per_group,
        *_geometry(conv), kernel_h, kernel_w, *basis.spline, *basis.knots,
    )  # fmt: skip
    constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
    launch(Launch("conv2d_fwd", _kan_conv2d_fwd_kernel, _grid(programs), args, constants))
    return out


def plan_conv2d_backward(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    conv: Conv2dArgs,
    input_grad: bool,
    weight_grad: bool,
    launch: Launcher,
    multiprocessors: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """The backward: the input gradient and the weight gradients (each only when asked for; an
    empty ``[0]`` otherwise). ``grad_out`` is read through its strides; ``multiprocessors``
    sizes the weight gradient's row splits."""
    groups, spline_order = conv.groups, conv.spline_order
    batch, in_channels, height, width = x.shape
    out_channels, in_per_group, kernel_h, kernel_w = base_weight.shape
    out_per_group = out_channels // groups
    out_height, out_width = grad_out.shape[2:]
    taps = kernel_h * kernel_w
    basis = _basis(spline_weight, spline_order, conv.grid_lo, conv.grid_hi)
    feature_blocks = basis.feature_blocks
    ieee = ieee_fp32(x.dtype)
    geometry = (*_geometry(conv), kernel_h, kernel_w)

    grad_x = x.new_empty((0,))
    if input_grad and x.numel() == 0:
        grad_x = x.new_empty(x.shape)
    elif input_grad:
        # Several feature blocks (1 + G + K > 16) each give a partial sum: fp32, added after.
        grad_x = (
            new_output(x.shape, x)
            if feature_blocks == 1
            else new_output((feature_blocks, *x.shape), x, torch.float32)
        )
        tiles = _tiles("dx", not ieee, in_per_group, out_per_group)
        _check_sizes(
            x, out_height * out_width, taps, in_per_group, out_per_group, groups,
            feature_blocks, tiles,
        )  # fmt: skip
        packed = pack_input_grad_weights(
            *_taps_1d(base_weight, spline_weight), groups, feature_blocks, tiles
        )
        programs = _blocks(in_per_group, tiles.channels) * feature_blocks * groups
        programs *= _blocks(batch * height * width, tiles.rows)
        args = (
            grad_x, x, *x.stride(), grad_out, *grad_out.stride(), packed,
            batch, height, width, out_height, out_width, in_channels, in_per_group, out_per_group,
            *geometry, *basis.spline, *basis.knots,
        )  # fmt: skip
        constants = _constants(spline_order, ieee, tiles, "BLOCK_O")
        launch(Launch("conv2d_dx", _kan_conv2d_bwd_dx_kernel, _grid(programs), args, constants))
        if feature_blocks > 1:
            grad_x = grad_x.sum(0).to(x.dtype)

    grad_base, grad_spline = x.new_empty((0,)), x.new_empty((0,))
    if weight_grad and grad_out.numel() == 0:
        grad_base, grad_spline = torch.zeros_like(base_weight), torch.zeros_like(spline_weight)
    elif weight_grad:
        tiles = _tiles("dw", not ieee, in_per_group, out_per_group)
        rows = batch * out_height * out_width
        n_blocks = _blocks(out_per_group, tiles.cols)
        c_blocks = _blocks(in_per_group, tiles.channels)
        programs = n_blocks * c_blocks * feature_blocks * taps * groups
        splits = _weight_grad_splits(programs, rows, tiles.rows, multiprocessors)
        # The kernel numbers row blocks in 32 bits.
        _grid(_blocks(rows, tiles.rows))
        blocks_per_split = triton.cdiv(_blocks(rows, tiles.rows), splits)
        partial_shape = (
            splits, groups, taps, c_blocks * tiles.channels, feature_blocks * FEATURES,
            n_blocks * tiles.cols,
        )  # fmt: skip
        partial = new_output(partial_shape, x, dtype=torch.float32)
        args = (
            partial, x, *x.stride(), grad_out, *grad_out.stride(),
            batch, height, width, out_height, out_width, in_per_group, out_per_group, groups,
            *geometry, *basis.spline, blocks_per_split, *basis.knots,
        )  # fmt: skip
        constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
        launch(
            Launch("conv2d_dw", _kan_conv2d_bwd_dw_kernel, _grid(programs * splits), args,
                   constants)
        )  # fmt: skip
        # [groups, taps, C, F, O] without the padding
        total = partial.sum(0)[:, :, :in_per_group, :, :out_per_group]
        # Copies (not views of `total`), so that the two gradients do not alias.
        grad_base = base_weight.new_empty(base_weight.shape)
        grad_base.view(groups, out_per_group, in_per_group, taps).copy_(
            total[:, :, :, 0, :].permute(0, 3, 2, 1)
        )
        grad_spline = spline_weight.new_empty(spline_weight.shape)
        grad_spline.view(groups, out_per_group, in_per_group, taps, -1).copy_(
            total[:, :, :, 1 : 1 + basis.grid_size + spline_order, :].permute(0, 4, 2, 1, 3)
        )
    return grad_x, grad_base, grad_spline


@triton_op("mkcc::kan_conv2d_fwd_triton", mutates_args={}, schema=CONV2D_FORWARD_SCHEMA)
def kan_conv2d_fwd_triton(x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv) -> Tensor:
    """``common.CONV2D_FORWARD_SCHEMA``: ``x [B, C_in, H, W]`` -> ``[B, C_out, H_out, W_out]``."""
    conv = Conv2dArgs(*conv)
    _check(x, base_weight, spline_weight, conv)
    with _device_guard(x):
        return plan_conv2d_forward(x, base_weight, spline_weight, conv, _run)


@triton_op("mkcc::kan_conv2d_bwd_triton", mutates_args={}, schema=CONV2D_BACKWARD_SCHEMA)
def kan_conv2d_bwd_triton(
    grad_out: Tensor, x: Tensor, base_weight: Tensor, spline_weight: Tensor, *conv_and_flags
) -> tuple[Tensor, Tensor, Tensor]:
    """``common.CONV2D_BACKWARD_SCHEMA``: the gradients of x, base_weight and spline_weight
    (empty ``[0]`` where not asked for)."""
    conv = Conv2dArgs(*conv_and_flags[:-2])
    input_grad, weight_grad = conv_and_flags[-2:]
    _check(x, base_weight, spline_weight, conv)
    check_grad_out(grad_out, x, conv2d_forward_shape(x, base_weight, *conv))
    with _device_guard(x):
        return plan_conv2d_backward(
            grad_out, x, base_weight, spline_weight, conv, input_grad, weight_grad, _run,
            _multiprocessors(x),
        )  # fmt: skip


register("mkcc::kan_conv2d_fwd_triton", "mkcc::kan_conv2d_bwd_triton", layer="kan_conv2d")
