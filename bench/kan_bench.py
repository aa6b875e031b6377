"""Time KANConv1d providers side by side in one process and print a table.

    python -m bench.kan_bench                       # the canonical CPU shapes, all providers
    python -m bench.kan_bench --quick               # a short run (what `make demo` does)
    python -m bench.kan_bench --shapes 32,192,128,225,5 --providers cpu,unfold --modes fwd

Each (shape, provider, mode) is run ``--warmup`` times, then timed ``--repeats`` times; the
table gives the median and the 20th/80th percentiles in milliseconds, the dense-equivalent
GFLOP/s (2 * B * C_out * T_out * (C_in / groups) * k * (1 + G + K) per forward; backward counted
as twice that) and the median speed-up of each provider over ``unfold``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import mkcc_kernels

# (B, C_in, C_out, T, k): the four canonical CPU shapes (grid 5, cubic, fp32).
CANONICAL_SHAPES = [
    (32, 10, 64, 450, 5),
    (32, 192, 128, 225, 5),
    (32, 192, 128, 15, 7),
    (16, 256, 256, 512, 5),
]
QUICK_SHAPES = [(32, 10, 64, 450, 5), (32, 192, 128, 225, 5)]
PROVIDERS = ("cpu", "reference", "reference-compiled", "unfold")
MODES = ("fwd", "fwd+bwd")


@dataclass
class Result:
    shape: tuple[int, ...]
    provider: str
    mode: str
    p20: float
    p50: float
    p80: float
    gflops: float


def dense_flops(shape: tuple[int, ...], grid_size: int, spline_order: int, mode: str) -> float:
    batch, cin, cout, length, k = shape
    out_length = length  # "same" padding
    forward = 2.0 * batch * cout * out_length * cin * k * (1 + grid_size + spline_order)
    return forward if mode == "fwd" else 3.0 * forward


def make_step(
    provider: str, shape, mode: str, dtype, grid_size: int, spline_order: int
) -> Callable[[], None]:
    batch, cin, cout, length, k = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, length, generator=generator, dtype=dtype)
    base = torch.randn(cout, cin, k, generator=generator, dtype=dtype) / (cin * k) ** 0.5
    spline = (
        torch.randn(cout, cin, k, grid_size + spline_order, generator=generator, dtype=dtype) * 0.1
    )
    backend = "reference" if provider == "reference-compiled" else provider

    def layer(x, base, spline):
        return mkcc_kernels.kan_conv1d(
            x, base, spline, padding="same", spline_order=spline_order, backend=backend
        )

    if provider == "reference-compiled":
        layer = torch.compile(layer, fullgraph=True)
    if mode == "fwd":

        def step():
            with torch.no_grad():
                layer(x, base, spline)

        return step

    leaves = [t.requires_grad_(True) for t in (x, base, spline)]

    def step():
        out = layer(*leaves)
        torch.autograd.grad(out, leaves, torch.ones_like(out))

    return step


def time_step(
    step: Callable[[], None], warmup: int, repeats: int, max_seconds: float
) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    started = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - started > max_seconds and len(times) >= 3:
            break
    return times


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


def write_csv(path: Path, results: list[Result], dtype: torch.dtype, threads: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    machine = f"{platform.machine()}-{threads}threads"
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(
                [
                    "time",
                    "op",
                    "provider",
                    "mode",
                    "shape",
                    "dtype",
                    "device",
                    "metric",
                    "p20",
                    "p50",
                    "p80",
                    "commit",
                    "machine",
                ]
            )
        for r in results:
            shape = "x".join(map(str, r.shape))
            writer.writerow(
                [
                    stamp,
                    "kan_conv1d",
                    r.provider,
                    r.mode,
                    shape,
                    str(dtype)[6:],
                    "cpu",
                    "ms",
                    f"{r.p20:.4f}",
                    f"{r.p50:.4f}",
                    f"{r.p80:.4f}",
                    git_commit(),
                    machine,
                ]
            )


def format_table(results: list[Result]) -> str:
    baseline = {(r.shape, r.mode): r.p50 for r in results if r.provider == "unfold"}
    lines = [
        "| shape (B, C_in, C_out, T, k) | mode | provider | median ms (p20-p80) "
        "| GFLOP/s | vs unfold |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        base = baseline.get((r.shape, r.mode))
        speedup = f"{base / r.p50:.1f}x" if base else "-"
        lines.append(
            f"| {r.shape} | {r.mode} | {r.provider} | {r.p50:.2f} "
            f"({r.p20:.2f}-{r.p80:.2f}) | {r.gflops:.1f} | {speedup} |"
        )
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 5 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--shapes: expected B,C_in,C_out,T,k, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes, few repeats")
    parser.add_argument("--shapes", type=parse_shape, nargs="+", help="B,C_in,C_out,T,k ...")
    parser.add_argument(
        "--providers",
        default=",".join(PROVIDERS),
        help=f"comma-separated among {', '.join(PROVIDERS)}",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="fwd and/or fwd+bwd")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--grid-size", type=int, default=5)
    parser.add_argument("--spline-order", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop repeating a case after this long (at least 3 runs)",
    )
    parser.add_argument("--csv", type=Path, default=None, help="append results to this CSV")
    args = parser.parse_args(argv)

    providers = args.providers.split(",")
    modes = args.modes.split(",")
    for name, values, allowed in (("--providers", providers, PROVIDERS), ("--modes", modes, MODES)):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            parser.error(f"{name}: unknown {unknown}; expected among {allowed}")
    shapes = args.shapes or (QUICK_SHAPES if args.quick else CANONICAL_SHAPES)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 15)
    max_seconds = (
        args.max_seconds if args.max_seconds is not None else (3.0 if args.quick else 20.0)
    )
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)

    print(
        f"KANConv1d, {args.dtype}, grid {args.grid_size}, order {args.spline_order}, "
        f"{args.threads} threads, padding 'same'; CPU kernels: "
        f"{mkcc_kernels.build_info()['cpu_isa']}"
    )
    results = []
    for shape in shapes:
        for mode in modes:
            for provider in providers:
                step = make_step(provider, shape, mode, dtype, args.grid_size, args.spline_order)
                times = [t * 1e3 for t in time_step(step, warmup, repeats, max_seconds)]
                p50 = statistics.median(times)
                flops = dense_flops(shape, args.grid_size, args.spline_order, mode)
                results.append(
                    Result(
                        shape,
                        provider,
                        mode,
                        percentile(times, 0.2),
                        p50,
                        percentile(times, 0.8),
                        flops / (p50 * 1e-3) / 1e9,
                    )
                )
                print(f"  {shape} {mode:7s} {provider:18s} {p50:9.2f} ms", flush=True)
    print()
    print(format_table(results))
    if args.csv is not None:
        write_csv(args.csv, results, dtype, args.threads)
        print(f"\nappended {len(results)} rows to {args.csv}")


if __name__ == "__main__":
    main()
