"""``mkcc::kan_linear_fwd_triton`` / ``mkcc::kan_linear_bwd_triton``: the fused KANLinear kernels
(``mkcc_kernels/triton/kan_linear.py``) as ``torch.library.triton_op``s, with autograd.

Same machinery as the KANConv1d ops (``triton_ops.py``): each pass is planned by a function that
turns the tensors' shapes into ``Launch`` records handed to a launcher (the ops launch them;
``mkcc_kernels.gpu_resources`` compiles the same records for sm_80 and sm_90 ahead of time);
CUDA tensors, or CPU tensors under Triton's interpreter. The ops take the unscaled spline weight
and the scaler: the forward folds the scaler into its packed weights, the backward turns the
gradient of the scaled weight into those of the spline weight (``g * scaler``) and of the scaler
(``sum_j g * spline_weight``) with two torch ops.

fp32 follows ``torch.backends.cuda.matmul.allow_tf32`` as ``nn.Linear`` does: TF32 tensor-core
dots when it is on, IEEE fp32 CUDA-core dots when it is off (torch's default). The flag is read
when the op runs, so under ``torch.compile`` it is read once, at trace time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensor
from torch.library import triton_op
from triton.runtime.interpreter import InterpretedFunction

from ..checks import check_grad_out, check_kan_linear_tensors, spline_order_arg
from ..triton.kan_linear import (
    _kan_linear_bwd_dw_kernel,
    _kan_linear_bwd_dx_kernel,
    _kan_linear_fwd_kernel,
)
from . import triton_ops
from ._autograd import register_linear
from .common import LINEAR_BACKWARD_SCHEMA, LINEAR_FORWARD_SCHEMA, new_output
from .triton_ops import (
    FEATURES,
    Launch,
    Launcher,
    Tiles,
    _blocks,
    _device_guard,
    _grid,
    _launchable,
    _multiprocessors,
    _weight_grad_splits,
    check_dtype,
    runs_on,
)

# Tile table of the KANLinear kernels, by pass and by whether the dots run on tensor cores
# (TF32, fp16, bf16) or as IEEE fp32 FMAs; within a pass the entry is picked from the output
# count (``_tiles``). Fixed tiles, no autotuning, for the reasons of the convolution's table
# (bench/NOTES.md, "Triton launch configuration"). Every entry compiles without spills for sm_80
# and sm_90 at every spline order (``gpu_resources.linear_triton_resources``, the benchmark
# shapes; tests/test_gpu_resources.py). Starting point: the KANConv1d table (one tap is a linear
# layer); the per-feature knots add a knot load per inner knot and 2K gathered knots per [C, M]
# input tile, which the [C, M] layout keeps at one or two inputs per thread.
# - tensor cores: 64-deep dots (4 input features x 16 features), 64 rows x 64 columns, or with
#   more than 64 outputs 32 rows x 128 columns (each feature tile then serves twice the outputs:
#   at 256 and 768 outputs the basis of a row is evaluated 2 and 6 times instead of 4 and 12),
#   on 4 warps: one input per thread for the basis, and ptxas may use up to 255 registers. On 8
#   warps (the convolution's 64 x 128 forward tile) ptxas held the forward to 128 registers and
#   spilled 8-16 bytes (TF32 at K = 2, fp16 / bf16 at K = 4, sm_80). Input gradient 64 x 64 on
#   8 warps, weight gradient as the convolution's.
# - IEEE fp32: tl.dot lowers to FMAs holding both operands in registers, so the dots are 16 deep:
#   one input feature's features (forward, input gradient) or 16 rows (weight gradient).
_TILES = {
    ("fwd", True): (Tiles(64, 64, 4, 4, 3), Tiles(32, 128, 4, 4, 3)),
    ("dx", True): (Tiles(64, 64, 4, 8, 3),),
    ("dw", True): (Tiles(32, 64, 4, 8, 2), Tiles(64, 128, 4, 8, 3)),
    ("fwd", False): (Tiles(64, 64, 1, 4, 2),),
    ("dx", False): (Tiles(64, 64, 1, 4, 2),),
    ("dw", False): (Tiles(16, 64, 1, 4, 2),),
}


def _tiles(kind: str, tensor_cores: bool, out_features: int) -> Tiles:
    """The widest entry whose ``cols`` the outputs fill by more than half."""
    return triton_ops._tiles(kind, tensor_cores, out_features, _TILES)


KERNELS = {
    "linear_fwd": _kan_linear_fwd_kernel,
    "linear_dx": _kan_linear_bwd_dx_kernel,
    "linear_dw": _kan_linear_bwd_dw_kernel,
}
_LAUNCHABLE = {kernel: _launchable(kernel) for kernel in KERNELS.values()}


def _run(launch: Launch) -> None:
    kernel = _LAUNCHABLE[launch.kernel]
    if isinstance(kernel, InterpretedFunction) and any(map(_without_data, launch.args)):
        # An interpreted kernel that torch could not wrap (``_launchable``), called on fake or
        # meta tensors (opcheck, tracing): the outputs' shapes are all there is to compute.
        return
    kernel[launch.grid](*launch.args, **launch.constants)


def _without_data(arg) -> bool:
    return isinstance(arg, Tensor) and (isinstance(arg, FakeTensor) or arg.device.type == "meta")


def ieee_fp32(dtype: torch.dtype) -> bool:
    """Whether fp32 dots run in IEEE fp32 rather than TF32: ``nn.Linear``'s switch,
    ``torch.backends.cuda.matmul.allow_tf32``, turned off."""
    return dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32


def _check(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    grid: Tensor,
    spline_order: int,
) -> None:
    """The op boundary: ``check_kan_linear_tensors`` (``checks.py``) on a 2-D ``x``, then what
    the Triton kernels add (device, dtype). The knots' values are not read (that would
    synchronize with the GPU): ``kan_linear`` and ``KANLinear`` check them."""
    spline_order_arg(spline_order)
    if isinstance(x, Tensor) and x.dim() != 2:
        raise ValueError(f"x: expected a 2-D tensor [N, in_features], got shape {tuple(x.shape)}")
    check_kan_linear_tensors(x, base_weight, spline_weight, grid, spline_order, spline_scaler)
    if not runs_on(x.device):
        raise ValueError(
            f"x: the Triton kernels run on CUDA tensors (CPU tensors only with TRITON_INTERPRET=1 "
            f"set before mkcc_kernels is first imported), got a {x.device.type} tensor"
        )
    check_dtype(x)


def _feature_blocks(num_funcs: int) -> int:
    return _blocks(1 + num_funcs, FEATURES)


def _check_sizes(
    in_features: int, out_features: int, feature_blocks: int, num_knots: int, tiles: Tiles
) -> None:
    """The kernels address a packed weight tile and the knots with 32-bit offsets: the packed
    weights (padded to whole tiles) and the grid must stay under 2^31 values."""
    values = (
        feature_blocks * FEATURES
        * _blocks(in_features, tiles.channels) * tiles.channels
        * _blocks(out_features, tiles.cols) * tiles.cols
    )  # fmt: skip
    if values >= 2**31 or in_features * num_knots >= 2**31:
        raise ValueError(
            f"base_weight, spline_weight: {values} packed weight values, more than the Triton "
            f"kernels address (2^31); use backend='reference'"
        )


def _packed_weights(
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    feature_blocks: int,
    tiles: Tiles,
) -> Tensor:
    """``[O_pad, C_pad, F]``: feature 0 the base weight, 1 + j the scaled spline weight j, zeros
    up to ``F = 16 * feature_blocks``; outputs and inputs zero-padded to whole tiles."""
    out_features, in_features = base_weight.shape
    scaled = spline_weight if spline_scaler is None else spline_weight * spline_scaler[..., None]
    weight = torch.cat([base_weight.unsqueeze(-1), scaled], dim=-1)
    padding = (
        0, feature_blocks * FEATURES - weight.shape[-1],
        0, _blocks(in_features, tiles.channels) * tiles.channels - in_features,
        0, _blocks(out_features, tiles.cols) * tiles.cols - out_features,
    )  # fmt: skip
    return F.pad(weight, padding)


def _constants(spline_order: int, ieee: bool, tiles: Tiles, cols: str) -> dict:
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


def plan_linear_forward(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    grid: Tensor,
    spline_order: int,
    launch: Launcher,
) -> Tensor:
    """The forward ``[N, in] -> [N, out]``: allocates the output, packs the (scaled) weights and
    hands the launch to ``launch``."""
    batch, in_features = x.shape
    out_features = base_weight.shape[0]
    num_funcs = spline_weight.shape[-1]
    num_knots = grid.shape[-1]
    feature_blocks = _feature_blocks(num_funcs)
    out = new_output((batch, out_features), x)
    if batch == 0:
        return out
    ieee = ieee_fp32(x.dtype)
    tiles = _tiles("fwd", not ieee, out_features)
    _check_sizes(in_features, out_features, feature_blocks, num_knots, tiles)
    packed = _packed_weights(base_weight, spline_weight, spline_scaler, feature_blocks, tiles)
    packed = packed.contiguous()
    programs = _blocks(out_features, tiles.cols) * _blocks(batch, tiles.rows)
    args = (
        out, *out.stride(), x, *x.stride(), packed, grid.contiguous(),
        batch, in_features, out_features, num_funcs, num_knots, feature_blocks,
    )  # fmt: skip
    constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
    launch(Launch("linear_fwd", _kan_linear_fwd_kernel, _grid(programs), args, constants))
    return out


def plan_linear_backward(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    grid: Tensor,
    spline_order: int,
    input_grad: bool,
    weight_grad: bool,
    launch: Launcher,
    multiprocessors: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The backward: ``(grad_x, grad_base, grad_spline, grad_scaler)``, each only when asked for
    (an empty ``[0]`` otherwise, and for the scaler when there is none). ``grad_out`` is read
    through its strides; ``multiprocessors`` sizes the weight gradient's row splits."""
    batch, in_features = x.shape
    out_features = base_weight.shape[0]
    num_funcs = spline_weight.shape[-1]
    num_knots = grid.shape[-1]
    feature_blocks = _feature_blocks(num_funcs)
    ieee = ieee_fp32(x.dtype)
    knots = grid.contiguous()

    grad_x = x.new_empty((0,))
    if input_grad and batch == 0:
        grad_x = x.new_empty((0, in_features))
    elif input_grad:
        # Several feature blocks (1 + G + K > 16) each give a partial sum: fp32, added after.
        grad_x = (
            new_output((batch, in_features), x)
            if feature_blocks == 1
            else new_output((feature_blocks, batch, in_features), x, torch.float32)
        )
        tiles = _tiles("dx", not ieee, out_features)
        _check_sizes(in_features, out_features, feature_blocks, num_knots, tiles)
        packed = _packed_weights(base_weight, spline_weight, spline_scaler, feature_blocks, tiles)
        packed = packed.permute(1, 2, 0).contiguous()  # [C_pad, F, O_pad]
        programs = _blocks(in_features, tiles.channels) * feature_blocks
        programs *= _blocks(batch, tiles.rows)
        args = (
            grad_x, x, *x.stride(), grad_out, *grad_out.stride(), packed, knots,
            batch, in_features, out_features, num_funcs, num_knots, feature_blocks,
        )  # fmt: skip
        constants = _constants(spline_order, ieee, tiles, "BLOCK_O")
        launch(Launch("linear_dx", _kan_linear_bwd_dx_kernel, _grid(programs), args, constants))
        if feature_blocks > 1:
            grad_x = grad_x.sum(0).to(x.dtype)

    grad_base, grad_spline, grad_scaler = (x.new_empty((0,)) for _ in range(3))
    if weight_grad:
        if batch == 0:
            g_scaled = torch.zeros(spline_weight.shape, dtype=torch.float32, device=x.device)
            grad_base = torch.zeros_like(base_weight)
        else:
            tiles = _tiles("dw", not ieee, out_features)
            n_blocks = _blocks(out_features, tiles.cols)
            c_blocks = _blocks(in_features, tiles.channels)
            programs = n_blocks * c_blocks * feature_blocks
            splits = _weight_grad_splits(programs, batch, tiles.rows, multiprocessors)
            rows_per_split = triton.cdiv(triton.cdiv(batch, splits), tiles.rows) * tiles.rows
            partial_shape = (
                splits,
                c_blocks * tiles.channels,
                feature_blocks * FEATURES,
                n_blocks * tiles.cols,
            )
            partial = new_output(partial_shape, x, dtype=torch.float32)
            args = (
                partial, x, *x.stride(), grad_out, *grad_out.stride(), knots,
                batch, in_features, out_features, num_funcs, num_knots, feature_blocks,
                rows_per_split,
            )  # fmt: skip
            constants = _constants(spline_order, ieee, tiles, "BLOCK_N")
            launch(
                Launch("linear_dw", _kan_linear_bwd_dw_kernel, _grid(programs * splits), args,
                       constants)
            )  # fmt: skip
            # [in, F, out] without the padding
            total = partial.sum(0)[:in_features, :, :out_features]
            grad_base = base_weight.new_empty(base_weight.shape)
            grad_base.copy_(total[:, 0, :].t())
            g_scaled = total[:, 1 : 1 + num_funcs, :].permute(2, 0, 1)  # [out, in, G + K] fp32
        # New tensors (not views of `total`), so that the gradients do not alias.
        grad_spline = spline_weight.new_empty(spline_weight.shape)
        if spline_scaler is None:
            grad_spline.copy_(g_scaled)
        else:
            grad_spline.copy_(g_scaled * spline_scaler.float()[..., None])
            grad_scaler = spline_scaler.new_empty(spline_scaler.shape)
            grad_scaler.copy_((g_scaled * spline_weight.float()).sum(-1))
    return grad_x, grad_base, grad_spline, grad_scaler


@triton_op("mkcc::kan_linear_fwd_triton", mutates_args={}, schema=LINEAR_FORWARD_SCHEMA)
def kan_linear_fwd_triton(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    grid: Tensor,
    spline_order: int,
) -> Tensor:
    """``common.LINEAR_FORWARD_SCHEMA``: ``x [N, in]`` -> ``[N, out]``."""
    _check(x, base_weight, spline_weight, spline_scaler, grid, spline_order)
    with _device_guard(x):
        return plan_linear_forward(
            x, base_weight, spline_weight, spline_scaler, grid, spline_order, _run
        )


@triton_op("mkcc::kan_linear_bwd_triton", mutates_args={}, schema=LINEAR_BACKWARD_SCHEMA)
def kan_linear_bwd_triton(
    grad_out: Tensor,
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor | None,
    grid: Tensor,
    spline_order: int,
    input_grad: bool,
    weight_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``common.LINEAR_BACKWARD_SCHEMA``: the gradients of x, base_weight, spline_weight and
    spline_scaler (empty ``[0]`` where not asked for)."""
    _check(x, base_weight, spline_weight, spline_scaler, grid, spline_order)
    check_grad_out(grad_out, x, (x.shape[0], base_weight.shape[0]))
    with _device_guard(x):
        return plan_linear_backward(
            grad_out, x, base_weight, spline_weight, spline_scaler, grid, spline_order,
            input_grad, weight_grad, _run, _multiprocessors(x),
        )  # fmt: skip


register_linear("mkcc::kan_linear_fwd_triton", "mkcc::kan_linear_bwd_triton")
