"""GPU resources known without a GPU: every Triton launch the planners make, compiled ahead of
time for sm_80 and sm_90, and the CUDA C++ kernels inside ``_C``, read with the ``cuobjdump``
that ships with Triton (registers per thread, stack bytes per thread — spills —, shared memory
per block).

    rows = triton_resources(layers)        # one row per distinct kernel build (KANConv1d)
    rows = linear_triton_resources(LINEAR_BENCH_LAYERS)   # the same for KANLinear
    rows = conv2d_triton_resources(CONV2D_BENCH_LAYERS)   # the same for KANConv2d
    problems(rows)                         # compile errors, spills, shared memory over the limit

The launches come from the op planners themselves (``plan_forward`` / ``plan_backward`` of
``mkcc_kernels.ops.triton_ops``, ``plan_linear_forward`` / ``plan_linear_backward`` of
``mkcc_kernels.ops.triton_linear``, ``plan_conv2d_forward`` / ``plan_conv2d_backward`` of
``mkcc_kernels.ops.triton_conv2d``, run on meta tensors with a launcher that records instead of
launching), so the check follows every change of tile table, packing or arguments. Needs the
Triton kernels as compiled functions: run it in a process without ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

# Per-block shared memory limits (the opt-in maximum): A100 (sm_80) 163 KB, H100 (sm_90) 227 KB
# (CUDA C++ Programming Guide, "Technical Specifications per Compute Capability").
SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
ARCHS = (80, 90)
# The SM count the weight gradient's row splits are sized for (H100 SXM: 132); splits are a
# runtime argument, so this changes no build.
_MULTIPROCESSORS = 132
_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class Layer:
    """A KANConv1d call: input ``[batch, in_channels, length]``, the layer's geometry."""

    batch: int
    in_channels: int
    out_channels: int
    length: int
    kernel_size: int
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    grid_size: int = 5


@dataclass(frozen=True)
class LinearLayer:
    """A KANLinear call: input ``[batch, in_features]``, ``out_features`` outputs."""

    batch: int
    in_features: int
    out_features: int
    grid_size: int = 5


# The KANLinear benchmark shapes: MNIST-sized input (784 -> 256), a square hidden layer
# (256 -> 256), ViT-Base tokens (6304 = 32 images x 197 tokens, 768 -> 768), a long thin batch
# (64 -> 64).
LINEAR_BENCH_LAYERS = (
    LinearLayer(4096, 784, 256),
    LinearLayer(8192, 256, 256),
    LinearLayer(6304, 768, 768),
    LinearLayer(65536, 64, 64),
)


@dataclass(frozen=True)
class Conv2dLayer:
    """A KANConv2d call: input ``[batch, in_channels, height, width]``, a square kernel."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel_size: int
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    groups: int = 1
    grid_size: int = 5


# The KANConv2d benchmark shapes, padding 1: a CIFAR-sized first layer (3 -> 32 at 32 x 32), a
# small CNN's middle and late layers (32 -> 64 at 16 x 16, 64 -> 128 at 8 x 8), a ResNet stage
# at 56 x 56 (64 -> 64), a MobileNet-style depthwise layer (128 channels at 28 x 28).
CONV2D_BENCH_LAYERS = (
    Conv2dLayer(64, 3, 32, 32, 32, 3),
    Conv2dLayer(64, 32, 64, 16, 16, 3),
    Conv2dLayer(32, 64, 128, 8, 8, 3),
    Conv2dLayer(16, 64, 64, 56, 56, 3),
    Conv2dLayer(32, 128, 128, 28, 28, 3, groups=128),
)


@dataclass
class Build:
    """One distinct kernel build (what Triton would compile and cache once) and what reading
    its cubin gave; ``layers`` counts the calls that launch it."""

    kernel: str
    arch: int
    dtype: str
    spline_order: int
    ieee: bool
    tiles: str
    layers: int
    registers: int = -1
    stack: int = -1
    shared: int = -1
    error: str = ""

    @property
    def precision(self) -> str:
        return "ieee" if self.ieee else ("tf32" if self.dtype == "fp32" else self.dtype)


def cuobjdump() -> Path:
    """The ``cuobjdump`` inside the triton package."""
    import triton

    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


def _read_usage(path: str) -> list[tuple[str, str, int, int, int]]:
    """(arch, function, registers, stack, static shared bytes) of every kernel in a cubin or a
    host binary with embedded cubins."""
    text = subprocess.run(
        [str(cuobjdump()), "--dump-resource-usage", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows, arch, function = [], "", ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("arch = "):
            arch = line.split("=")[1].strip()
        elif line.startswith("Function "):
            function = line[len("Function ") :].rstrip(":")
        elif match := _USAGE.search(line):
            rows.append((arch, function, int(match[1]), int(match[2]), int(match[3])))
    return rows


def _recorded_launches(layer: Layer, dtype: torch.dtype, spline_order: int, ieee: bool):
    """The launches the op planners make for one forward and one full backward of ``layer``
    (meta tensors: nothing is allocated or run)."""
    from .checks import resolve_padding
    from .ops import triton_ops
    from .ops.common import Conv1dArgs, out_length

    launches = []
    pad_left, pad_right = resolve_padding(
        layer.padding, layer.kernel_size, layer.stride, layer.dilation
    )
    meta = dict(device="meta", dtype=dtype)
    x = torch.empty(layer.batch, layer.in_channels, layer.length, **meta)
    shape = (layer.out_channels, layer.in_channels // layer.groups, layer.kernel_size)
    base = torch.empty(shape, **meta)
    spline = torch.empty(*shape, layer.grid_size + spline_order, **meta)
    conv = Conv1dArgs(
        layer.stride, pad_left, pad_right, layer.dilation, layer.groups, spline_order, -1.0, 1.0
    )
    length_out = out_length(layer.length, layer.kernel_size, layer.stride, pad_left, pad_right,
                            layer.dilation)  # fmt: skip
    grad_out = torch.empty(layer.batch, layer.out_channels, length_out, **meta)
    with _tf32(not ieee):
        triton_ops.check_dtype(x)
        triton_ops.plan_forward(x, base, spline, conv, launches.append)
        triton_ops.plan_backward(
            grad_out, x, base, spline, conv, True, True, launches.append, _MULTIPROCESSORS
        )
    return launches


def _recorded_linear_launches(layer: LinearLayer, dtype: torch.dtype, spline_order: int,
                              ieee: bool):  # fmt: skip
    """The launches the KANLinear planners make for one forward and one full backward of
    ``layer`` (with a scaler; meta tensors)."""
    from .ops import triton_linear

    launches = []
    meta = dict(device="meta", dtype=dtype)
    x = torch.empty(layer.batch, layer.in_features, **meta)
    base = torch.empty(layer.out_features, layer.in_features, **meta)
    spline = torch.empty(*base.shape, layer.grid_size + spline_order, **meta)
    scaler = torch.empty(base.shape, **meta)
    grid = torch.empty(layer.in_features, layer.grid_size + 2 * spline_order + 1, **meta)
    grad_out = torch.empty(layer.batch, layer.out_features, **meta)
    with _tf32(not ieee):
        triton_linear.check_dtype(x)
        triton_linear.plan_linear_forward(
            x, base, spline, scaler, grid, spline_order, launches.append
        )
        triton_linear.plan_linear_backward(
            grad_out, x, base, spline, scaler, grid, spline_order, True, True, launches.append,
            _MULTIPROCESSORS,
        )  # fmt: skip
    return launches


def _recorded_conv2d_launches(layer: Conv2dLayer, dtype: torch.dtype, spline_order: int,
                              ieee: bool):  # fmt: skip
    """The launches the KANConv2d planners make for one forward and one full backward of
    ``layer`` (meta tensors)."""
    from .conv_args import Conv2dArgs
    from .ops import triton_conv2d
    from .ops.common import conv2d_forward_shape

    launches = []
    meta = dict(device="meta", dtype=dtype)
    x = torch.empty(layer.batch, layer.in_channels, layer.height, layer.width, **meta)
    k = layer.kernel_size
    base = torch.empty(layer.out_channels, layer.in_channels // layer.groups, k, k, **meta)
    spline = torch.empty(*base.shape, layer.grid_size + spline_order, **meta)
    conv = Conv2dArgs(
        layer.stride, layer.stride, *(layer.padding,) * 4, layer.dilation, layer.dilation,
        layer.groups, spline_order, -1.0, 1.0,
    )  # fmt: skip
    grad_out = torch.empty(conv2d_forward_shape(x, base, *conv), **meta)
    with _tf32(not ieee):
        triton_conv2d.check_dtype(x)
        triton_conv2d.plan_conv2d_forward(x, base, spline, conv, launches.append)
        triton_conv2d.plan_conv2d_backward(
            grad_out, x, base, spline, conv, True, True, launches.append, _MULTIPROCESSORS
        )
    return launches


@contextlib.contextmanager
def _tf32(allow: bool) -> Iterator[None]:
    """TF32 allowed or not for both layers' switches (``nn.Conv1d``'s cudnn flag, ``nn.Linear``'s
    matmul flag)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _compile_inputs(launch, arch: int):
    """What ``triton.compile`` takes for this launch on ``arch``: the signature, constants and
    attributes Triton's own launcher would derive from the arguments, and the options."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = launch.kernel
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.constants)
    options, signature, constants, attrs = kernel._pack_args(
        backend, dict(launch.constants), bound, specialization, options
    )
    return signature, constants, attrs, options.__dict__


def _compile(job) -> tuple[int, int, int, str]:
    """(registers, stack, shared bytes, error) of one build; runs in a worker process."""
    name, arch, signature, constants, attrs, options = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        compiled = triton.compile(
            ASTSource(_kernels()[name], signature, constants, attrs),
            target=GPUTarget("cuda", arch, 32),
            options=options,
        )
    except Exception as error:  # noqa: BLE001 - a compile error is a result here
        return -1, -1, -1, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = _read_usage(cubin.name)
    if len(usage) != 1:
        return -1, -1, -1, f"expected one function in the cubin, found {len(usage)}"
    _, _, registers, stack, static_shared = usage[0]
    return registers, stack, max(static_shared, int(compiled.metadata.shared)), ""


def _kernels() -> dict:
    """Every Triton kernel by launch name."""
    from .ops import triton_conv2d, triton_linear, triton_ops

    return {**triton_ops.KERNELS, **triton_linear.KERNELS, **triton_conv2d.KERNELS}


def triton_resources(
    layers: Iterable[Layer],
    dtypes: Iterable[torch.dtype] = (torch.float32, torch.float16, torch.bfloat16),
    spline_orders: Iterable[int] = (1, 2, 3, 4),
    archs: Iterable[int] = ARCHS,
    jobs: int | None = None,
) -> list[Build]:
    """Every distinct build the planners launch for ``layers`` x dtypes x spline orders (fp32
    both with TF32 and with IEEE dots) x archs, compiled and read; ``jobs`` worker processes
    (default: every core)."""

    def recorded():
        for layer in layers:
            for dtype, ieee, order in _variants(dtypes, spline_orders):
                yield dtype, ieee, order, _recorded_launches(layer, dtype, order, ieee)

    return _compile_builds(recorded(), archs, jobs)


def linear_triton_resources(
    layers: Iterable[LinearLayer] = LINEAR_BENCH_LAYERS,
    dtypes: Iterable[torch.dtype] = (torch.float32, torch.float16, torch.bfloat16),
    spline_orders: Iterable[int] = (1, 2, 3, 4),
    archs: Iterable[int] = ARCHS,
    jobs: int | None = None,
) -> list[Build]:
    """``triton_resources`` for KANLinear calls: every distinct build the KANLinear planners
    launch for ``layers`` (default: the benchmark shapes) x dtypes x spline orders (fp32 with
    TF32 and with IEEE dots) x archs, compiled and read."""

    def recorded():
        for layer in layers:
            for dtype, ieee, order in _variants(dtypes, spline_orders):
                yield dtype, ieee, order, _recorded_linear_launches(layer, dtype, order, ieee)

    return _compile_builds(recorded(), archs, jobs)


def conv2d_triton_resources(
    layers: Iterable[Conv2dLayer] = CONV2D_BENCH_LAYERS,
    dtypes: Iterable[torch.dtype] = (torch.float32, torch.float16, torch.bfloat16),
    spline_orders: Iterable[int] = (1, 2, 3, 4),
    archs: Iterable[int] = ARCHS,
    jobs: int | None = None,
) -> list[Build]:
    """``triton_resources`` for KANConv2d calls: every distinct build the KANConv2d planners
    launch for ``layers`` (default: the benchmark shapes) x dtypes x spline orders (fp32 with
    TF32 and with IEEE dots) x archs, compiled and read."""

    def recorded():
        for layer in layers:
            for dtype, ieee, order in _variants(dtypes, spline_orders):
                yield dtype, ieee, order, _recorded_conv2d_launches(layer, dtype, order, ieee)

    return _compile_builds(recorded(), archs, jobs)


def _variants(dtypes: Iterable[torch.dtype], spline_orders: Iterable[int]):
    """(dtype, ieee, spline order): fp32 both with TF32 and with IEEE dots."""
    orders = list(spline_orders)
    for dtype in dtypes:
        for ieee in (False, True) if dtype == torch.float32 else (False,):
            for order in orders:
                yield dtype, ieee, order


_KERNEL_ORDER = (
    "fwd", "dx", "dw", "linear_fwd", "linear_dx", "linear_dw", "conv2d_fwd", "conv2d_dx",
    "conv2d_dw",
)  # fmt: skip


def _compile_builds(recorded, archs: Iterable[int], jobs: int | None) -> list[Build]:
    """The distinct builds among ``recorded`` ((dtype, ieee, order, launches) tuples) x archs,
    compiled in ``jobs`` worker processes (default: every core) and read."""
    from .ops import triton_ops

    if triton_ops.interpreter_enabled():
        raise RuntimeError(
            "the Triton kernels were defined for the interpreter (TRITON_INTERPRET=1): "
            "compile-time resources need a process without it"
        )
    archs = list(archs)
    builds: dict[str, Build] = {}
    compile_jobs: dict[str, tuple] = {}
    for dtype, ieee, order, launches in recorded:
        for launch in launches:
            for arch in archs:
                signature, constants, attrs, options = _compile_inputs(launch, arch)
                key = repr((launch.name, arch, signature, constants, attrs, options))
                if key not in builds:
                    c = launch.constants
                    tiles = "x".join(
                        str(c[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_O", "BLOCK_C") if k in c
                    ) + f" w{c['num_warps']} s{c['num_stages']}"  # fmt: skip
                    builds[key] = Build(
                        launch.name, arch, _DTYPE_NAMES[dtype], order, ieee, tiles, 0
                    )
                    compile_jobs[key] = (launch.name, arch, signature, constants, attrs, options)
                builds[key].layers += 1
    keys = list(compile_jobs)
    with ProcessPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        for key, (registers, stack, shared, error) in zip(
            keys, pool.map(_compile, [compile_jobs[k] for k in keys])
        ):
            build = builds[key]
            build.registers, build.stack, build.shared, build.error = (
                registers, stack, shared, error
            )  # fmt: skip
    return sorted(
        builds.values(),
        key=lambda b: (_KERNEL_ORDER.index(b.kernel), b.arch, b.precision, b.spline_order, b.tiles),
    )


def linear_report(layers: Iterable[LinearLayer] = LINEAR_BENCH_LAYERS, jobs: int | None = None):
    """``linear_triton_resources`` as a JSON-ready dict: the layers, one row per build, and the
    ``problems`` found."""
    layers = list(layers)
    builds = linear_triton_resources(layers, jobs=jobs)
    return {
        "layers": [dataclasses.asdict(layer) for layer in layers],
        "triton": [dataclasses.asdict(b) for b in builds],
        "problems": problems(builds),
    }


def conv2d_report(layers: Iterable[Conv2dLayer] = CONV2D_BENCH_LAYERS, jobs: int | None = None):
    """``conv2d_triton_resources`` as a JSON-ready dict: the layers, one row per build, and the
    ``problems`` found."""
    layers = list(layers)
    builds = conv2d_triton_resources(layers, jobs=jobs)
    return {
        "layers": [dataclasses.asdict(layer) for layer in layers],
        "triton": [dataclasses.asdict(b) for b in builds],
        "problems": problems(builds),
    }


_KERNEL_NAME = re.compile(r"(kan_conv1d_[a-z_]*kernel)I(f|d|N3c104HalfE|N3c108BFloat16E)Li(\d)E")
_TYPE_NAMES = {"f": "float", "d": "double", "N3c104HalfE": "Half", "N3c108BFloat16E": "BFloat16"}

# CUDA C++ kernels that keep a stack frame, with the reason it costs nothing that matters:
# (kernel, arch, spline order) -> (bytes allowed, why).
CUDA_STACK_EXCEPTIONS = {
    ("kan_conv1d_fwd_kernel", "sm_80", 2): (
        8,
        "ptxas keeps one 8-byte value of the CUDA-core forward in local memory (64 registers): "
        "stored once at entry, loaded once before the channel loop and once in the epilogue "
        "(SASS: one STL, two LDL, none inside the loops), every input dtype",
    ),
}


@dataclass
class CudaKernel:
    arch: str
    function: str
    registers: int
    stack: int
    shared: int

    @property
    def name(self) -> str:
        """``kernel<dtype, K=order>`` from the mangled template instance."""
        match = _KERNEL_NAME.search(self.function)
        if not match:
            return self.function[:80]
        name, dtype, order = match.groups()
        return f"{name}<{_TYPE_NAMES.get(dtype, dtype)}, K={order}>"

    @property
    def stack_exception(self) -> tuple[int, str] | None:
        match = _KERNEL_NAME.search(self.function)
        if not match:
            return None
        return CUDA_STACK_EXCEPTIONS.get((match[1], self.arch, int(match[3])))


def cuda_resources(library: str | None = None) -> list[CudaKernel]:
    """Every kernel of the CUDA C++ cubins in ``_C`` (empty when the build has no CUDA code)."""
    if library is None:
        from . import _C

        library = _C.__file__
    return [CudaKernel(*row) for row in _read_usage(library)]


def cuda_problems(kernels: Iterable[CudaKernel]) -> list[str]:
    """A line per CUDA C++ kernel with a stack frame that is not an explained exception."""
    found = []
    for k in kernels:
        allowed = k.stack_exception
        if k.stack > (allowed[0] if allowed else 0):
            found.append(f"CUDA {k.arch} {k.name}: {k.stack} stack bytes per thread")
    return found


def problems(builds: Iterable[Build]) -> list[str]:
    """A line per build that fails to compile, spills (stack > 0) or needs more shared memory
    than its arch gives one block."""
    found = []
    for b in builds:
        what = f"{b.kernel} sm_{b.arch} {b.precision} K={b.spline_order} {b.tiles}"
        if b.error:
            found.append(f"{what}: compile error: {b.error}")
        elif b.stack > 0:
            found.append(f"{what}: spills ({b.stack} stack bytes per thread, {b.registers} regs)")
        elif b.shared > SHARED_LIMIT[b.arch]:
            found.append(
                f"{what}: {b.shared} bytes of shared memory, over sm_{b.arch}'s "
                f"{SHARED_LIMIT[b.arch]}"
            )
    return found
