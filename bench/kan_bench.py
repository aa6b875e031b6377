"""Time KANConv1d providers side by side in one process and print a table.

    python -m bench.kan_bench                          # canonical CPU shapes, CPU providers
    python -m bench.kan_bench --quick                  # a short run (what `make demo` does)
    python -m bench.kan_bench --shapes 32,192,128,225,5 --providers cpu,unfold --modes fwd
    python -m bench.kan_bench --device cuda --shape-set gpu --dtypes float32,bfloat16

Providers: the fused backends (``cpu``, ``triton``, ``cuda``), ``reference`` eager and under
``torch.compile`` (``reference-compiled``; compiled per shape unless ``--compile-dynamic``),
``unfold`` (the naive baseline), and two floors that compute something else of the same size:
``conv1d`` (``nn.Conv1d`` with the same C_in, C_out, k) and ``dense-gemm`` (the matmul of the
expanded features, ``[B*T_out, C_in*k*(1+G+K)] @ [.., C_out]``). Each case is run ``--warmup``
times, then timed ``--repeats`` times and for at least ``--min-seconds`` (so that millisecond
cases get hundreds of samples; synchronized on CUDA); rows give the median and the
20th/80th percentiles, the dense-equivalent GFLOP/s (``2*B*C_out*T_out*C_in*k*(1+G+K)`` per
forward, three times that for forward+backward) and the speed-up over ``unfold``. Bytes saved for
backward are measured with saved-tensor hooks (forward+backward mode), peak memory with the CUDA
allocator. ``--csv`` appends long-format rows (one per metric).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

import mkcc_kernels

from . import gpu_costs

# (B, C_in, C_out, T, k): the four canonical CPU shapes (grid 5, cubic).
CANONICAL_SHAPES = [
    (32, 10, 64, 450, 5),
    (32, 192, 128, 225, 5),
    (32, 192, 128, 15, 7),
    (16, 256, 256, 512, 5),
]
# The MKCC model's layers (batch 32): audio part 1 (10 MFCCs -> 64 per scale) and part 2
# (192 -> 128 per scale, after pooling), video part 1 (35 AUs -> 64) and part 2, k = 3, 5, 7.
MKCC_SHAPES = [
    (32, c_in, c_out, length, k)
    for c_in, c_out, length in ((10, 64, 450), (192, 128, 225), (35, 64, 15), (192, 128, 15))
    for k in (3, 5, 7)
]
SHAPE_SETS = {
    "canonical": CANONICAL_SHAPES,
    "quick": [(32, 10, 64, 450, 5), (32, 192, 128, 225, 5)],
    "mkcc": MKCC_SHAPES,
    "gpu": MKCC_SHAPES + [(64, 256, 256, 512, 5)],
    # scaling: time length at the MKCC audio part-2 layer, channel count at T = 225
    "sweep-t": [(32, 192, 128, length, 5) for length in (15, 30, 60, 120, 225, 450)],
    "sweep-c": [(32, c, c, 225, 5) for c in (16, 32, 64, 128, 256)],
}
PROVIDERS = (
    "cpu",
    "triton",
    "cuda",
    "reference",
    "reference-compiled",
    "unfold",
    "conv1d",
    "dense-gemm",
)
MODES = ("fwd", "bwd", "fwd+bwd")


@dataclass
class Result:
    shape: tuple[int, ...]
    provider: str
    mode: str
    dtype: str
    times_ms: list[float]
    gflops: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)


def flops(provider: str, shape: tuple[int, ...], num_features: int, mode: str) -> float:
    """Work of one call: the dense-equivalent KANConv1d work (what the expansion form computes,
    every feature of every tap) for the KAN providers and the dense GEMM, plain convolution work
    for ``conv1d``. Backward counts twice the forward, forward+backward three times."""
    batch, c_in, c_out, length, k = shape
    features = 1 if provider == "conv1d" else num_features
    forward = 2.0 * batch * c_out * length * c_in * k * features  # "same": T_out = T
    return forward * {"fwd": 1.0, "bwd": 2.0, "fwd+bwd": 3.0}[mode]


_compiled_reference: dict[bool, Callable] = {}


def _reference_compiled(spline_order: int, dynamic: bool) -> Callable:
    """The compiled reference: with ``dynamic`` one compilation serves every shape (shorter
    runs); without, torch specializes per shape (the code a user gets by default). Each
    specialized case starts from a reset compiler cache: dynamo counts recompilations per code
    object, and past its limit (8) it would silently run the reference eagerly."""

    def layer(x, base, spline, spline_order):
        return mkcc_kernels.kan_conv1d(
            x, base, spline, padding="same", spline_order=spline_order, backend="reference"
        )

    if not dynamic:
        torch._dynamo.reset()
        compiled = torch.compile(layer)
    else:
        if dynamic not in _compiled_reference:
            _compiled_reference[dynamic] = torch.compile(layer, dynamic=True)
        compiled = _compiled_reference[dynamic]
    return lambda x, base, spline: compiled(x, base, spline, spline_order)


def make_layer(
    provider: str,
    shape,
    dtype,
    device,
    grid_size: int,
    spline_order: int,
    compile_dynamic: bool = False,
):
    """(function of the inputs, the inputs) for one provider."""
    batch, c_in, c_out, length, k = shape
    generator = torch.Generator().manual_seed(0)
    num_features = 1 + grid_size + spline_order

    def rand(*size, scale=1.0):
        return (torch.randn(*size, generator=generator) * scale).to(device=device, dtype=dtype)

    x = rand(batch, c_in, length)
    if provider == "conv1d":
        weight = rand(c_out, c_in, k, scale=(c_in * k) ** -0.5)
        return (lambda x, w: F.conv1d(x, w, padding="same")), [x, weight]
    if provider == "dense-gemm":
        features = rand(batch * length, c_in * k * num_features)
        weight = rand(c_in * k * num_features, c_out, scale=(c_in * k * num_features) ** -0.5)
        return torch.matmul, [features, weight]
    base = rand(c_out, c_in, k, scale=(c_in * k) ** -0.5)
    spline = rand(c_out, c_in, k, grid_size + spline_order, scale=0.1)
    if provider == "reference-compiled":
        return _reference_compiled(spline_order, compile_dynamic), [x, base, spline]

    def layer(x, base, spline):
        return mkcc_kernels.kan_conv1d(
            x, base, spline, padding="same", spline_order=spline_order, backend=provider
        )

    return layer, [x, base, spline]


def saved_bytes(layer: Callable, inputs: list[torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves for backward."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return tensor

    leaves = [t.detach().requires_grad_(True) for t in inputs]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(*leaves)
    return sum(seen.values())


def make_step(layer: Callable, inputs: list[torch.Tensor], mode: str) -> Callable[[], None]:
    if mode == "fwd":

        def step():
            with torch.no_grad():
                layer(*inputs)

        return step
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    if mode == "bwd":  # the backward pass alone, through a graph recorded once
        # A compiled backward donates its saved buffers by default, which rules out running
        # it again through the retained graph.
        with torch._functorch.config.patch(donated_buffer=False):
            out = layer(*leaves)
        grad_out = torch.ones_like(out)

        def step():
            torch.autograd.grad(out, leaves, grad_out, retain_graph=True)

        return step

    def step():
        out = layer(*leaves)
        torch.autograd.grad(out, leaves, torch.ones_like(out))

    return step


def time_step(
    step: Callable[[], None],
    device: str,
    warmup: int,
    repeats: int,
    max_seconds: float,
    min_seconds: float = 0.0,
) -> list[float]:
    """Milliseconds of each timed run: at least ``repeats`` runs and ``min_seconds`` (short cases
    get more samples), cut at ``max_seconds`` once 3 runs are in."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        elapsed = time.perf_counter() - started
        if elapsed > max_seconds and len(times) >= 3:
            break
        if len(times) >= repeats and elapsed >= min_seconds:
            break
    return times


def floor_seconds(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    mode: str,
    peaks: gpu_costs.Peaks,
    grid_size: int,
    spline_order: int,
) -> float:
    """The useful-work floor of one call on ``peaks`` (bench/gpu_costs.py): the forward's pass,
    the two gradient passes, or all three; fp32 at the TF32 or fp32 rate as
    ``torch.backends.cudnn.allow_tf32`` says."""
    passes = {"fwd": ("fwd",), "bwd": ("dx", "dw"), "fwd+bwd": ("fwd", "dx", "dw")}[mode]
    costs = gpu_costs.pass_costs(
        shape, dtype, torch.backends.cudnn.allow_tf32, grid_size, spline_order
    )
    return sum(cost.floor_s(peaks) for cost in costs if cost.kernel in passes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_name(device: str, threads: int) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name().replace(" ", "-")
    return f"{platform.machine()}-{threads}threads"


CSV_COLUMNS = (
    "time", "op", "provider", "mode", "shape", "dtype", "device", "metric", "p20", "p50", "p80",
    "commit", "machine",
)  # fmt: skip


def append_csv(
    path: Path, rows: list[tuple[str, str, str, str, str, str, float, float, float]], device: str,
    threads: int,
) -> None:  # fmt: skip
    """Appends long-format rows ``(op, provider, mode, shape, dtype, metric, p20, p50, p80)``
    with the time, device, commit and machine; writes the header into a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    commit, machine = git_commit(), machine_name(device, threads)
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(CSV_COLUMNS)
        for op, provider, mode, shape, dtype, metric, p20, p50, p80 in rows:
            writer.writerow(
                [stamp, op, provider, mode, shape, dtype, device, metric]
                + [f"{v:.4f}" for v in (p20, p50, p80)]
                + [commit, machine]
            )


def write_csv(path: Path, results: list[Result], device: str, threads: int) -> None:
    rows = []
    for r in results:
        shape = "x".join(map(str, r.shape))
        metrics = [
            ("ms", percentile(r.times_ms, 0.2), r.p50, percentile(r.times_ms, 0.8)),
            ("gflops", r.gflops, r.gflops, r.gflops),
        ]
        metrics += [(name, value, value, value) for name, value in r.extra.items()]
        for metric, p20, p50, p80 in metrics:
            rows.append(("kan_conv1d", r.provider, r.mode, shape, r.dtype, metric, p20, p50, p80))
    append_csv(path, rows, device, threads)


def format_table(results: list[Result]) -> str:
    baseline = {(r.shape, r.mode, r.dtype): r.p50 for r in results if r.provider == "unfold"}
    lines = [
        "| shape (B, C_in, C_out, T, k) | dtype | mode | provider | median ms (p20-p80) "
        "| GFLOP/s | vs unfold | saved MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = baseline.get((r.shape, r.mode, r.dtype))
        speedup = f"{base / r.p50:.1f}x" if base else "-"
        saved = r.extra.get("saved_mb")
        lines.append(
            f"| {r.shape} | {r.dtype} | {r.mode} | {r.provider} | {r.p50:.3f} "
            f"({percentile(r.times_ms, 0.2):.3f}-{percentile(r.times_ms, 0.8):.3f}) "
            f"| {r.gflops:.1f} | {speedup} | {'-' if saved is None else f'{saved:.1f}'} |"
        )
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 5 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--shapes: expected B,C_in,C_out,T,k, got {text!r}")
    return values


def split_list(parser, name: str, text: str, allowed) -> list[str]:
    values = [v for v in text.split(",") if v]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        parser.error(f"{name}: unknown {unknown or text!r}; expected among {', '.join(allowed)}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, few repeats")
    parser.add_argument("--shape-set", choices=sorted(SHAPE_SETS), default=None)
    parser.add_argument("--shapes", type=parse_shape, nargs="+", help="B,C_in,C_out,T,k ...")
    parser.add_argument(
        "--providers",
        default=None,
        help=f"comma-separated among {', '.join(PROVIDERS)} "
        "(default: those available on the device)",
    )
    parser.add_argument("--modes", default="fwd,fwd+bwd", help="among fwd, bwd, fwd+bwd")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--dtypes",
        default="float32",
        help="comma-separated among float32, float64, float16, bfloat16",
    )
    parser.add_argument("--grid-size", type=int, default=5)
    parser.add_argument("--spline-order", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop repeating a case after this long (at least 3 runs)",
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="keep repeating a case past --repeats until this long (default 1 s, --quick 0)",
    )
    parser.add_argument(
        "--compile-dynamic",
        action="store_true",
        help="compile the reference once for all shapes (dynamic shapes)",
    )
    parser.add_argument(
        "--csv", type=Path, default=None, help="append each result to this CSV as it is measured"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="start no new case after this many seconds (the cases left are listed as skipped)",
    )
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    available = mkcc_kernels.available_backends(args.device)
    default_providers = [
        p for p in PROVIDERS if p in available or p not in ("cpu", "triton", "cuda", "dense-gemm")
    ]
    if args.device == "cuda":
        default_providers.append("dense-gemm")
    providers = (
        split_list(parser, "--providers", args.providers, PROVIDERS)
        if args.providers
        else default_providers
    )
    missing = [p for p in providers if p in ("cpu", "triton", "cuda") and p not in available]
    if missing:
        parser.error(
            f"--providers: {missing} not available on {args.device}; available: {available}"
        )
    modes = split_list(parser, "--modes", args.modes, MODES)
    dtypes = split_list(
        parser, "--dtypes", args.dtypes, ("float32", "float64", "float16", "bfloat16")
    )
    shapes = args.shapes or SHAPE_SETS[args.shape_set or ("quick" if args.quick else "canonical")]
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 15)
    max_seconds = (
        args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 20.0)
    )
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 1.0)
    for name, value, least in (
        ("--warmup", warmup, 0),
        ("--repeats", repeats, 1),
        ("--max-seconds", max_seconds, 0),
        ("--min-seconds", min_seconds, 0),
    ):
        if value < least:
            parser.error(f"{name}: expected a value >= {least}, got {value}")
    torch.set_num_threads(args.threads)
    num_features = 1 + args.grid_size + args.spline_order

    print(
        f"KANConv1d on {machine_name(args.device, args.threads)}, grid {args.grid_size}, "
        f"order {args.spline_order}, padding 'same'; build {mkcc_kernels.build_info()}"
    )
    peaks = gpu_costs.peaks_for(torch.cuda.get_device_name()) if args.device == "cuda" else None
    results = []
    skipped = 0
    started = time.perf_counter()
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for shape in shapes:
            for mode in modes:
                for provider in providers:
                    if args.time_budget is not None and (
                        time.perf_counter() - started > args.time_budget
                    ):
                        skipped += 1
                        continue
                    layer, inputs = make_layer(
                        provider,
                        shape,
                        dtype,
                        args.device,
                        args.grid_size,
                        args.spline_order,
                        args.compile_dynamic,
                    )
                    if args.device == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    times = time_step(
                        make_step(layer, inputs, mode),
                        args.device,
                        warmup,
                        repeats,
                        max_seconds,
                        min_seconds,
                    )
                    work = flops(provider, shape, num_features, mode)
                    result = Result(
                        shape,
                        provider,
                        mode,
                        dtype_name,
                        times,
                        work / (statistics.median(times) * 1e-3) / 1e9,
                    )
                    if mode != "fwd":
                        result.extra["saved_mb"] = saved_bytes(layer, inputs) / 2**20
                    if args.device == "cuda":
                        result.extra["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
                    floor = ""
                    if peaks is not None and provider not in ("conv1d", "dense-gemm"):
                        floor_ms = 1e3 * floor_seconds(
                            shape, dtype, mode, peaks, args.grid_size, args.spline_order
                        )
                        result.extra["floor_ms"] = floor_ms
                        result.extra["of_floor"] = floor_ms / result.p50
                        floor = f"  floor {floor_ms:.3f} ms ({100 * floor_ms / result.p50:.1f} %)"
                    results.append(result)
                    if args.csv is not None:
                        write_csv(args.csv, [result], args.device, args.threads)
                    print(
                        f"  {dtype_name} {shape} {mode:7s} {provider:18s} {result.p50:10.3f} ms"
                        f"{floor}",
                        flush=True,
                    )
    if skipped:
        print(f"\nskipped {skipped} cases past the time budget of {args.time_budget:.0f} s")
    print()
    print(format_table(results))
    fused = [p for p in ("cpu", "triton", "cuda") if p in providers]
    for peer in ("reference-compiled", "unfold"):
        for provider in fused:
            for mode in modes:
                ratios = [
                    next(
                        o.p50
                        for o in results
                        if (o.provider, o.shape, o.mode, o.dtype)
                        == (peer, r.shape, r.mode, r.dtype)
                    )
                    / r.p50
                    for r in results
                    if r.provider == provider
                    and r.mode == mode
                    and any(o.provider == peer for o in results)
                ]
                if ratios:
                    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
                    print(
                        f"{provider} vs {peer}, {mode}: geometric-mean speed-up {geomean:.2f}x "
                        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
                    )
    if args.csv is not None:
        print(f"\nappended {len(results)} cases to {args.csv}")


if __name__ == "__main__":
    main()
