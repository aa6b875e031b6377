"""Time KANLinear providers side by side in one process (CPU) and print a markdown table.

    python -m bench.linear_bench                       # the four shapes, every provider available
    python -m bench.linear_bench --quick               # one tiny shape, a few seconds per mode
    python -m bench.linear_bench --csv bench/results/cpu_linear.csv --plot bench/results/cpu_linear
    python -m bench.linear_bench --shapes 4096,784,256 --providers mkcc-cpu,efficient-kan-compiled

Providers (grid 5, cubic, fp32, 2 threads unless told): ``mkcc-cpu`` and ``mkcc-reference``
(``mkcc_kernels.KANLinear`` with ``backend="cpu"`` / ``"reference"``); ``efficient-kan`` (its
published forward, ``F.linear(silu(x), base_weight) + F.linear(b_splines(x).view(N, -1),
scaled_spline_weight.view(out, -1))``, written out below on the same parameter tensors) eager
and under ``torch.compile`` (``efficient-kan-compiled``: default mode, compiled per shape; the
baseline of the speed-up column); ``pykan`` (pykan's ``KANLayer``, another parametrization of
the same function class: a timing peer only, skipped when it is not installed or when its
``[N, out, in]`` intermediates would not fit in memory); ``linear`` (``nn.Linear``, the floor).
The mkcc layer's state dict is copied into every KANLinear-like provider and their outputs are
checked against ``mkcc-reference`` once per shape.

Timing: each provider is warmed up, then the providers take turns, each round running every
provider for about ``--round-ms`` (at least one call; the starting provider rotates), so that
drift of this shared machine hits all of them alike; a case ends once every provider has
``--repeats`` samples and ``--min-seconds`` have passed (cut at ``--max-seconds`` once each has
3). Rows give the median and the 20th/80th percentiles, the useful GFLOP/s
(``2*N*out*in*(K+2)`` per forward: silu and the K + 1 non-zero basis functions of each element;
three times that for forward+backward; ``linear``: its own ``2*N*out*in``) and its fraction of
the machine's ``torch.mm`` rate (measured in the same process), the speed-up over
``efficient-kan-compiled`` (``t_compiled / t_provider``), and in forward+backward mode the bytes
autograd keeps for backward (distinct storages, via saved-tensor hooks) beside the bound
``x + weights + grid`` (the provider's input and its own parameters and buffers).

``--csv`` appends long-format rows as ``bench.kan_bench`` does (op ``kan_linear``; metrics
``ms``, ``gflops``, ``of_gemm``, ``speedup_vs_compiled``, ``saved_mb``, ``bound_mb``,
``saved_over_bound``, ``max_rel_err``; the GEMM rate as op ``mm``); ``--plot PREFIX`` writes
``PREFIX_speedup.png`` and ``PREFIX_memory.png`` (``bench.plots.plot_linear``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import mkcc_kernels

from .kan_bench import (
    CSV_COLUMNS,
    git_commit,
    machine_name,
    percentile,
    saved_bytes,
    split_list,
)

# (N, in, out): an MNIST-sized first layer, a square hidden layer, a ViT-base-sized token MLP
# (6304 = 32 images x 197 tokens), and a long batch of narrow features.
SHAPES = [(4096, 784, 256), (8192, 256, 256), (6304, 768, 768), (65536, 64, 64)]
QUICK_SHAPES = [(1024, 64, 32)]
PROVIDERS = (
    "mkcc-cpu",
    "mkcc-reference",
    "efficient-kan",
    "efficient-kan-compiled",
    "pykan",
    "linear",
)
KAN_LIKE = ("mkcc-cpu", "mkcc-reference", "efficient-kan", "efficient-kan-compiled")
BASELINE = "efficient-kan-compiled"
MODES = ("fwd", "fwd+bwd")
# pykan's KANLayer keeps several [N, out, in] tensors alive: peak ~5x N*out*in*4 bytes forward,
# ~6.5x forward+backward (measured with ru_maxrss on this machine); 8 leaves headroom.
PYKAN_PEAK_FACTOR = 8


# --- efficient-kan's forward, written out from its published layer (shared/KAN_LINEAR_SPEC.md)


def efficient_kan_b_splines(x: Tensor, grid: Tensor, spline_order: int) -> Tensor:
    """efficient-kan's ``KANLinear.b_splines``: Cox-de Boor on the per-feature knots
    ``grid [in, G + 2K + 1]``, ``x [N, in]`` -> ``[N, in, G + K]``."""
    x = x.unsqueeze(-1)
    bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)
    for k in range(1, spline_order + 1):
        bases = (
            (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[:, :, :-1]
        ) + ((grid[:, k + 1 :] - x) / (grid[:, k + 1 :] - grid[:, 1:(-k)]) * bases[:, :, 1:])
    return bases.contiguous()


def efficient_kan_forward(
    x: Tensor,
    base_weight: Tensor,
    spline_weight: Tensor,
    spline_scaler: Tensor,
    grid: Tensor,
    spline_order: int,
) -> Tensor:
    """efficient-kan's ``KANLinear.forward`` for ``x [N, in]`` (SiLU base activation, standalone
    spline scaler)."""
    out_features = base_weight.shape[0]
    base_output = F.linear(F.silu(x), base_weight)
    scaled = spline_weight * spline_scaler.unsqueeze(-1)
    spline_output = F.linear(
        efficient_kan_b_splines(x, grid, spline_order).view(x.size(0), -1),
        scaled.view(out_features, -1),
    )
    return base_output + spline_output


# --- providers


@dataclass
class Provider:
    name: str
    fn: Callable[[Tensor], Tensor]  # x [N, in] -> y [N, out]
    params: list[Tensor]  # what backward differentiates (besides x)
    state: list[Tensor]  # parameters and buffers: the bound counts them

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state)


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


_pykan_layer_class: list = []


def pykan_layer_class():
    """pykan's ``KANLayer`` class, or the reason it cannot be had (a string)."""
    if not _pykan_layer_class:
        try:
            from kan.KANLayer import KANLayer  # optional; a slow import (sympy, pandas, ...)

            _pykan_layer_class.append(KANLayer)
        except Exception as error:  # ImportError, or a missing dependency of pykan's package
            _pykan_layer_class.append(f"{type(error).__name__}: {error}")
    return _pykan_layer_class[0]


def make_providers(
    names: list[str],
    shape: tuple[int, int, int],
    grid_size: int,
    spline_order: int,
    pykan_max_bytes: float | None,
    notes: list[str],
    seed: int = 0,
) -> dict[str, Provider]:
    """The providers of ``names`` that can run at ``shape`` (a note in ``notes`` for each that
    cannot). Every KANLinear-like provider gets its own copy of one mkcc layer's state."""
    n, d_in, d_out = shape
    torch.manual_seed(seed)
    reference = mkcc_kernels.KANLinear(
        d_in, d_out, grid_size=grid_size, spline_order=spline_order, backend="reference"
    )
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    providers: dict[str, Provider] = {}
    for name in names:
        if name in ("mkcc-cpu", "mkcc-reference"):
            backend = name.removeprefix("mkcc-")
            try:
                layer = mkcc_kernels.KANLinear(
                    d_in, d_out, grid_size=grid_size, spline_order=spline_order, backend=backend
                )
            except (ValueError, NotImplementedError) as error:
                notes.append(f"{name}: skipped, KANLinear(backend={backend!r}) raised: {error}")
                continue
            layer.load_state_dict(state)
            params = list(layer.parameters())
            providers[name] = Provider(name, layer, params, params + [layer.grid])
        elif name in ("efficient-kan", "efficient-kan-compiled"):
            base, spline, scaler = (
                state[k].clone().requires_grad_(True)
                for k in ("base_weight", "spline_weight", "spline_scaler")
            )
            grid = state["grid"].clone()
            forward = efficient_kan_forward
            if name == "efficient-kan-compiled":
                # specialized to this shape (what a user gets by default): a fresh compiler
                # cache per shape, so dynamo neither turns to dynamic shapes nor hits its
                # recompilation limit
                torch._dynamo.reset()
                forward = torch.compile(efficient_kan_forward)

            def fn(x, forward=forward, base=base, spline=spline, scaler=scaler, grid=grid):
                return forward(x, base, spline, scaler, grid, spline_order)

            params = [base, spline, scaler]
            providers[name] = Provider(name, fn, params, params + [grid])
        elif name == "pykan":
            layer_class = pykan_layer_class()
            if isinstance(layer_class, str):
                notes.append(f"pykan: skipped, cannot import kan.KANLayer ({layer_class})")
                continue
            need = PYKAN_PEAK_FACTOR * n * d_in * d_out * 4
            if pykan_max_bytes is not None and need > pykan_max_bytes:
                notes.append(
                    f"pykan: skipped at {shape}: its [N, out, in] intermediates need about "
                    f"{need / 2**30:.1f} GiB (> --pykan-max-gb {pykan_max_bytes / 2**30:.1f})"
                )
                continue
            torch.manual_seed(seed)
            layer = layer_class(in_dim=d_in, out_dim=d_out, num=grid_size, k=spline_order)

            def fn(x, layer=layer):
                return layer(x)[0]  # the full forward (it also builds pre/post activations)

            trainable = [p for p in layer.parameters() if p.requires_grad]
            providers[name] = Provider(name, fn, trainable, list(layer.parameters()))
        elif name == "linear":
            torch.manual_seed(seed)
            layer = nn.Linear(d_in, d_out)
            params = list(layer.parameters())
            providers[name] = Provider(name, layer, params, params)
        else:
            raise ValueError(f"unknown provider {name!r}")
    return providers


# --- measurement


def useful_flops(provider: str, shape: tuple[int, int, int], spline_order: int, mode: str):
    """Useful work of one call: ``2*N*out*in*(K+2)`` per forward (silu plus the K + 1 non-zero
    basis functions of each element), ``2*N*out*in`` for ``linear``; forward+backward 3x."""
    n, d_in, d_out = shape
    features = 1 if provider == "linear" else spline_order + 2
    return 2.0 * n * d_out * d_in * features * {"fwd": 1.0, "fwd+bwd": 3.0}[mode]


def gemm_rate(size: int, min_seconds: float = 1.0, repeats: int = 3) -> float:
    """fp32 ``torch.mm`` GFLOP/s at ``size x size x size`` (median of the timed calls)."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    torch.mm(a, b)
    times = []
    started = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def make_step(provider: Provider, x: Tensor, mode: str, grad_out: Tensor) -> Callable[[], None]:
    if mode == "fwd":

        def step():
            with torch.no_grad():
                provider.fn(x)

        return step
    leaf = x.detach().requires_grad_(True)
    wrt = [leaf, *provider.params]

    def step():  # backward to x and every parameter
        torch.autograd.grad(provider.fn(leaf), wrt, grad_out)

    return step


def time_round_robin(
    steps: dict[str, Callable[[], None]],
    warmup: int,
    repeats: int,
    min_seconds: float,
    max_seconds: float,
    round_seconds: float,
) -> dict[str, list[float]]:
    """Milliseconds of each timed call per provider, the providers taking turns (see the module
    docstring). Warm-up: ``warmup`` calls (at least one; the compiled graphs are already built
    by then), stopping after a call over a second; the last one's time sets how many calls a
    provider makes per round."""
    per_call: dict[str, float] = {}
    for name, step in steps.items():
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            step()
            per_call[name] = time.perf_counter() - t0
            if per_call[name] > 1.0:
                break
    calls = {
        name: max(1, min(1000, int(round_seconds / max(seconds, 1e-9))))
        for name, seconds in per_call.items()
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    started = time.perf_counter()
    rounds = 0
    while True:
        start = rounds % len(order)
        for name in order[start:] + order[:start]:
            step = steps[name]
            for _ in range(calls[name]):
                t0 = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        elapsed = time.perf_counter() - started
        fewest = min(len(v) for v in times.values())
        if elapsed > max_seconds and fewest >= 3:
            break
        if fewest >= repeats and elapsed >= min_seconds:
            break
    return times


@dataclass
class Result:
    shape: tuple[int, int, int]
    provider: str
    mode: str
    times_ms: list[float]
    gflops: float
    of_gemm: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)


def max_rel_errors(
    providers: dict[str, Provider], x: Tensor, reference: str = "mkcc-reference"
) -> dict[str, float]:
    """``max |y - y_ref| / max |y_ref|`` of each KANLinear-like provider against
    ``reference`` (the same parameters); empty without the reference."""
    if reference not in providers:
        return {}
    with torch.no_grad():
        expected = providers[reference].fn(x)
        scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
        return {
            name: float((provider.fn(x) - expected).abs().max() / scale)
            for name, provider in providers.items()
            if name in KAN_LIKE and name != reference
        }


def run_shape(
    shape: tuple[int, int, int],
    names: list[str],
    modes: list[str],
    *,
    grid_size: int = 5,
    spline_order: int = 3,
    gemm_gflops: float | None = None,
    warmup: int = 2,
    repeats: int = 15,
    min_seconds: float = 1.0,
    max_seconds: float = 60.0,
    round_seconds: float = 0.05,
    pykan_max_bytes: float | None = None,
    notes: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Every mode of one shape: the providers built once, checked against the reference, then
    timed in turns per mode."""
    notes = [] if notes is None else notes
    started = time.perf_counter()
    providers = make_providers(names, shape, grid_size, spline_order, pykan_max_bytes, notes)
    if not providers:
        return []
    n, d_in, d_out = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=generator)
    grad_out = torch.randn(n, d_out, generator=generator)
    errors = max_rel_errors(providers, x)
    if "fwd" in modes and not errors:  # without the check, compile the forward graph here
        with torch.no_grad():
            for provider in providers.values():
                provider.fn(x)
    for name, error in errors.items():
        flag = "" if error < 1e-4 else "  <-- MISMATCH"
        log(f"  {shape} {name:24s} max rel error vs mkcc-reference {error:.2e}{flag}")
        if flag:
            notes.append(f"{name} at {shape}: max rel error {error:.2e} vs mkcc-reference")
    log(f"  {shape} providers built and checked in {time.perf_counter() - started:.1f} s")
    results = []
    for mode in modes:
        saved: dict[str, tuple[int, int]] = {}
        if mode == "fwd+bwd":  # before timing: this also compiles the compiled training graph
            started = time.perf_counter()
            for name, provider in providers.items():
                bound = x.numel() * x.element_size() + provider.state_bytes()
                saved[name] = (saved_bytes(provider.fn, [x]), bound)
            log(f"  {shape} saved-for-backward bytes in {time.perf_counter() - started:.1f} s")
        steps = {name: make_step(p, x, mode, grad_out) for name, p in providers.items()}
        times = time_round_robin(steps, warmup, repeats, min_seconds, max_seconds, round_seconds)
        del steps
        for name, samples in times.items():
            work = useful_flops(name, shape, spline_order, mode)
            gflops = work / (statistics.median(samples) * 1e-3) / 1e9
            result = Result(
                shape, name, mode, samples, gflops, gflops / gemm_gflops if gemm_gflops else 0.0
            )
            if name in errors:
                result.extra["max_rel_err"] = errors[name]
            if name in saved:
                saved_b, bound_b = saved[name]
                result.extra["saved_mb"] = saved_b / 2**20
                result.extra["bound_mb"] = bound_b / 2**20
                result.extra["saved_over_bound"] = saved_b / bound_b
            results.append(result)
        baseline = next((r for r in results if r.mode == mode and r.provider == BASELINE), None)
        for r in results:
            if r.mode == mode and baseline is not None:
                r.extra["speedup_vs_compiled"] = baseline.p50 / r.p50
        for r in (r for r in results if r.mode == mode):
            speedup = r.extra.get("speedup_vs_compiled")
            log(
                f"  {shape} {mode:7s} {r.provider:24s} {r.p50:10.3f} ms  "
                f"{len(r.times_ms):4d} samples"
                + ("" if speedup is None else f"  {speedup:6.2f}x vs compiled")
            )
    return results


# --- output


def format_table(results: list[Result], modes: list[str], gemm_gflops: float | None) -> str:
    lines = [
        "| shape (N, in, out) | mode | provider | median ms (p20-p80) | useful GFLOP/s "
        "| of GEMM | vs compiled | saved MB | bound MB | saved / bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speedup = r.extra.get("speedup_vs_compiled")
        saved, bound = r.extra.get("saved_mb"), r.extra.get("bound_mb")
        ratio = r.extra.get("saved_over_bound")
        lines.append(
            f"| {r.shape} | {r.mode} | {r.provider} | {r.p50:.3f} "
            f"({percentile(r.times_ms, 0.2):.3f}-{percentile(r.times_ms, 0.8):.3f}) "
            f"| {r.gflops:.1f} | {f'{100 * r.of_gemm:.1f} %' if gemm_gflops else '-'} "
            f"| {'-' if speedup is None else f'{speedup:.2f}x'} "
            f"| {'-' if saved is None else f'{saved:.2f}'} "
            f"| {'-' if bound is None else f'{bound:.2f}'} "
            f"| {'-' if ratio is None else f'{ratio:.2f}'} |"
        )
    lines.append("")
    lines += geomean_lines(results, modes)
    return "\n".join(lines)


def geomean_lines(results: list[Result], modes: list[str]) -> list[str]:
    """The geometric-mean speed-up over ``efficient-kan-compiled`` per mode: ``mkcc-cpu``
    always (said when it has no rows), then every other provider measured."""
    measured = list(dict.fromkeys(r.provider for r in results))
    names = ["mkcc-cpu"] + [p for p in measured if p not in ("mkcc-cpu", BASELINE)]
    lines = []
    for name in names:
        for mode in modes:
            ratios = [
                r.extra["speedup_vs_compiled"]
                for r in results
                if r.provider == name and r.mode == mode and "speedup_vs_compiled" in r.extra
            ]
            if not ratios:
                if name == "mkcc-cpu":
                    lines.append(f"- `mkcc-cpu` vs `{BASELINE}`, {mode}: not measured")
                continue
            geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            lines.append(
                f"- `{name}` vs `{BASELINE}`, {mode}: geometric-mean speed-up {geomean:.2f}x "
                f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x) over {len(ratios)} shapes"
            )
    return lines


def long_rows(results: list[Result]) -> list[tuple]:
    """``(op, provider, mode, shape, dtype, metric, p20, p50, p80)`` rows (``append_csv``)."""
    rows = []
    for r in results:
        shape = "x".join(map(str, r.shape))
        metrics = [
            ("ms", percentile(r.times_ms, 0.2), r.p50, percentile(r.times_ms, 0.8)),
            ("gflops", r.gflops, r.gflops, r.gflops),
        ]
        if r.of_gemm:
            metrics.append(("of_gemm", r.of_gemm, r.of_gemm, r.of_gemm))
        metrics += [(name, value, value, value) for name, value in r.extra.items()]
        for metric, p20, p50, p80 in metrics:
            rows.append(("kan_linear", r.provider, r.mode, shape, "float32", metric, p20, p50, p80))
    return rows


def append_csv(path: Path, rows: list[tuple], threads: int) -> None:
    """``bench.kan_bench.append_csv``'s format (same columns; the rows of ``long_rows``), with
    values to 6 significant digits (relative errors are ~1e-7)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    commit, machine = git_commit(), machine_name("cpu", threads)
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(CSV_COLUMNS)
        for op, provider, mode, shape, dtype, metric, p20, p50, p80 in rows:
            writer.writerow(
                [stamp, op, provider, mode, shape, dtype, "cpu", metric]
                + [f"{v:.6g}" for v in (p20, p50, p80)]
                + [commit, machine]
            )


def parse_shape(text: str) -> tuple[int, int, int]:
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--shapes: expected N,in,out, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few repeats")
    parser.add_argument("--shapes", type=parse_shape, nargs="+", help="N,in,out ...")
    parser.add_argument(
        "--providers",
        default=",".join(PROVIDERS),
        help=f"comma-separated among {', '.join(PROVIDERS)} (default: all; those that cannot "
        "run are skipped with a note)",
    )
    parser.add_argument("--modes", default="fwd,fwd+bwd", help="among fwd, fwd+bwd")
    parser.add_argument("--grid-size", type=int, default=5)
    parser.add_argument("--spline-order", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="samples per provider")
    parser.add_argument("--min-seconds", type=float, default=None, help="per shape and mode")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="per shape and mode (at least 3 samples)"
    )
    parser.add_argument(
        "--round-ms", type=float, default=50.0, help="time of each provider's turn in a round"
    )
    parser.add_argument("--gemm-size", type=int, default=2048, help="torch.mm rate at this size")
    parser.add_argument(
        "--pykan-max-gb",
        type=float,
        default=None,
        help="skip pykan where its intermediates would need more (default: 40%% of the "
        "available memory)",
    )
    parser.add_argument("--csv", type=Path, default=None, help="append long-format rows")
    parser.add_argument(
        "--plot", type=Path, default=None, help="write PREFIX_speedup.png and PREFIX_memory.png"
    )
    args = parser.parse_args(argv)

    providers = split_list(parser, "--providers", args.providers, PROVIDERS)
    modes = split_list(parser, "--modes", args.modes, MODES)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else SHAPES)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 15)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 1.0)
    max_seconds = (
        args.max_seconds if args.max_seconds is not None else (5.0 if args.quick else 60.0)
    )
    for name, value, least in (
        ("--warmup", args.warmup, 0),
        ("--repeats", repeats, 1),
        ("--min-seconds", min_seconds, 0),
        ("--max-seconds", max_seconds, 0),
        ("--round-ms", args.round_ms, 0),
        ("--gemm-size", args.gemm_size, 1),
    ):
        if value < least:
            parser.error(f"{name}: expected a value >= {least}, got {value}")
    if args.pykan_max_gb is not None:
        pykan_max_bytes = args.pykan_max_gb * 2**30
    else:
        available = available_memory_bytes()
        pykan_max_bytes = None if available is None else 0.4 * available
    torch.set_num_threads(args.threads)

    print(
        f"KANLinear on {machine_name('cpu', args.threads)}, fp32, grid {args.grid_size}, order "
        f"{args.spline_order}; torch {torch.__version__}; build {mkcc_kernels.build_info()}"
    )
    gemm = gemm_rate(args.gemm_size, min_seconds=0.3 if args.quick else 1.0)
    print(
        f"GEMM rate: torch.mm fp32 {args.gemm_size}^3, {args.threads} threads: {gemm:.1f} GFLOP/s"
    )
    if args.csv is not None:
        size = f"{args.gemm_size}x{args.gemm_size}x{args.gemm_size}"
        append_csv(
            args.csv,
            [("mm", "torch.mm", "fwd", size, "float32", "gflops", gemm, gemm, gemm)],
            args.threads,
        )
    notes: list[str] = []
    results: list[Result] = []
    for shape in shapes:
        started = time.perf_counter()
        shape_results = run_shape(
            shape,
            providers,
            modes,
            grid_size=args.grid_size,
            spline_order=args.spline_order,
            gemm_gflops=gemm,
            warmup=args.warmup,
            repeats=repeats,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            round_seconds=args.round_ms / 1e3,
            pykan_max_bytes=pykan_max_bytes,
            notes=notes,
        )
        print(f"  {shape}: {time.perf_counter() - started:.1f} s", flush=True)
        results += shape_results
        if args.csv is not None and shape_results:
            append_csv(args.csv, long_rows(shape_results), args.threads)
    print()
    print(format_table(results, modes, gemm))
    print()
    print(
        f"GEMM rate {gemm:.1f} GFLOP/s (torch.mm fp32, {args.gemm_size}^3, {args.threads} "
        "threads). Useful GFLOP/s: 2*N*out*in*(K+2) per forward, 3x for fwd+bwd; linear: its "
        "own 2*N*out*in. Bound: x + the provider's parameters and buffers."
    )
    if any(r.provider == "pykan" for r in results):
        print(
            "pykan: KANLayer(in_dim, out_dim, num=G, k=K), its own parametrization (per-edge "
            "scale_base/scale_sp, mask) and initialization: a timing peer, not the same function."
        )
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    if args.csv is not None:
        print(f"\nappended {len(results)} cases to {args.csv}")
    if args.plot is not None and results:
        try:
            from .plots import plot_linear  # matplotlib is imported only when plotting
        except ImportError as error:
            print(f"note: no plots ({error})")
        else:
            rows = [
                {"provider": p, "mode": m, "shape": s, "metric": metric, "p50": p50}
                for _, p, m, s, _, metric, _, p50, _ in long_rows(results)
            ]
            written = plot_linear(rows, args.plot)
            print(f"wrote {', '.join(map(str, written))}")
    return results


if __name__ == "__main__":
    main()
