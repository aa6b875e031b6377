"""Time KANConv2d providers side by side in one process (CPU) and print a markdown table.

    python -m bench.conv2d_bench                       # the five shapes, every provider available
    python -m bench.conv2d_bench --quick               # one tiny shape, a few seconds per mode
    python -m bench.conv2d_bench --csv bench/results/cpu_conv2d.csv --plot bench/results/cpu_conv2d
    python -m bench.conv2d_bench --shapes 64,32,64,16,16,3 32,128,128,28,28,3,128 \\
        --providers cpu,reference-compiled,convkan

Shapes ``B,C_in,C_out,H,W,k[,groups]``: square kernels, stride 1, padding 1, dilation 1, no bias
(``convkan`` has none), grid 5, cubic splines, fp32, 2 threads unless told.

Providers: ``cpu`` (``kan_conv2d(backend="cpu")``, the fused kernels; skipped with a note when
this build of the extension lacks ``torch.ops.mkcc.kan_conv2d_fwd``); ``reference`` (the basis
expansion then ``conv2d``, ``kan_conv2d(backend="reference")``) eager and under
``torch.compile`` (``reference-compiled``: default mode, compiled per shape from a reset
compiler cache; the baseline of the first speed-up column); ``unfold`` (the naive baseline:
``F.unfold`` and one matmul over every basis function of every tap); ``convkan`` (the ``convkan``
package's ``ConvKAN``: efficient-kan's ``KANLinear`` on every ``F.unfold`` patch; an optional
benchmark dependency, the baseline of the second speed-up column); ``conv2d`` (``nn.Conv2d``
with the same geometry, the floor; its own work). One random KANConv2d state is shared by every
KAN provider (``convkan``: ``base_weight`` and ``spline_weight`` reshaped to its
``[groups, C_out/groups, C_in/groups * k * k(, G + K)]`` and ``spline_scaler = 1``; the same
uniform knots), and each provider's output is checked against the eager reference once per
shape. ``convkan`` pads ``x`` with zeros, so a padded tap adds ``phi(0)``, where ours adds
nothing (the features are zero-padded): its output is compared on the interior positions only,
whose taps are all inside the image.

Timing (as ``bench.linear_bench``): the providers are warmed up (compiled), then take turns,
each round running every provider for about ``--round-ms`` (at least one call; the starting
provider rotates); a case ends once every provider has ``--repeats`` samples and
``--min-seconds`` have passed (cut at ``--max-seconds`` once each has 3). Rows: the median and
20th/80th percentiles; useful GFLOP/s, counting ``2 * B * C_out * H_out * W_out * (C_in/groups)
* k^2 * (K + 2)`` per forward (silu and the ``K + 1`` non-zero basis functions of every tap,
padded taps included), three times that for forward+backward (``conv2d``: its own
``2 * B * C_out * H_out * W_out * (C_in/groups) * k^2``), and its fraction of the ``torch.mm``
rate measured in the same process just before the shape's timing (fp32, ``--gemm-size``
cubed; shown in each row, since the load of a shared machine drifts); the speed-ups over
``reference-compiled`` and over ``convkan`` (``t_peer / t_provider``); in forward+backward mode
the bytes autograd keeps for backward (distinct storages, via saved-tensor hooks) beside the
bound ``x + weights`` (the input and the provider's parameters and buffers: ``convkan``'s
include its spline scaler and knot grid); the peak of the memory the call allocates through
PyTorch's CPU allocator (``torch.profiler`` memory events of one call, above what was allocated
before it), plus for ``cpu`` the buffers its kernels keep between calls (packed weights,
transposed ``grad_out``, weight-gradient partial sums: ``mkcc_kernels.cpu_workspace_bytes()``
after one call from released buffers; also its own metric ``workspace_mb``); other buffers a
kernel takes from ``malloc`` itself are not seen.

``--csv`` appends long-format rows as ``bench.linear_bench`` does (op ``kan_conv2d``; metrics
``ms``, ``gflops``, ``gemm_gflops``, ``of_gemm``, ``speedup_vs_compiled``,
``speedup_vs_convkan``, ``saved_mb``, ``bound_mb``, ``saved_over_bound``, ``peak_mb``,
``workspace_mb``, ``max_rel_err``; each GEMM rate also as op ``mm``); ``--plot PREFIX`` writes
``PREFIX_speedup.png`` and ``PREFIX_memory.png`` (``bench.plots.plot_conv2d``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

import mkcc_kernels

from .kan_bench import machine_name, percentile, saved_bytes, split_list
from .linear_bench import (
    Provider,
    append_csv,
    available_memory_bytes,
    gemm_rate,
    make_step,
    time_round_robin,
)

Shape = tuple[int, int, int, int, int, int, int]  # B, C_in, C_out, H, W, k, groups

# A CIFAR-sized first layer, two deeper layers of a small CNN, a ResNet stage-1-sized layer
# (56 x 56, 64 channels), and a MobileNet-style depthwise layer.
SHAPES: list[Shape] = [
    (64, 3, 32, 32, 32, 3, 1),
    (64, 32, 64, 16, 16, 3, 1),
    (32, 64, 128, 8, 8, 3, 1),
    (16, 64, 64, 56, 56, 3, 1),
    (32, 128, 128, 28, 28, 3, 128),
]
QUICK_SHAPES: list[Shape] = [(8, 8, 16, 12, 12, 3, 1)]
PROVIDERS = ("cpu", "reference", "reference-compiled", "unfold", "convkan", "conv2d")
KAN_LIKE = ("cpu", "reference", "reference-compiled", "unfold", "convkan")
COMPILED, CONVKAN = "reference-compiled", "convkan"
BASELINES = ((COMPILED, "speedup_vs_compiled"), (CONVKAN, "speedup_vs_convkan"))
MODES = ("fwd", "fwd+bwd")
PADDING = 1
FUSED_OP = "kan_conv2d_fwd"
# Peak bytes of a forward+backward call over the size of the patch features
# ``B * H_out * W_out * C_in * k^2 * (1 + G + K) * 4`` (what both materialize): 10.3 for both,
# measured with ``peak_bytes`` at three shapes (dense and depthwise); with headroom.
PEAK_FACTOR = {"unfold": 11.0, "convkan": 11.0}
# The share of the available memory these two may take (--max-gb overrides it).
MEMORY_SHARE = 0.6


def fused_op_available() -> bool:
    """Whether this build of the extension has the fused KANConv2d CPU op."""
    return hasattr(torch.ops.mkcc, FUSED_OP)


def shape_label(shape: Shape) -> str:
    return "x".join(map(str, shape))


def output_size(shape: Shape) -> tuple[int, int]:
    _, _, _, height, width, k, _ = shape
    return height + 2 * PADDING - k + 1, width + 2 * PADDING - k + 1


def patch_feature_bytes(shape: Shape, grid_size: int, spline_order: int) -> int:
    batch, c_in, _, _, _, k, _ = shape
    out_h, out_w = output_size(shape)
    return batch * out_h * out_w * c_in * k * k * (1 + grid_size + spline_order) * 4


_convkan_class: list = []


def convkan_class():
    """``convkan.ConvKAN``, or the reason it cannot be had (a string)."""
    if not _convkan_class:
        try:
            from convkan import ConvKAN  # optional: `pip install convkan` (the bench extra)

            _convkan_class.append(ConvKAN)
        except Exception as error:  # ImportError, or a broken dependency of the package
            _convkan_class.append(f"{type(error).__name__}: {error}")
    return _convkan_class[0]


def make_convkan(
    base_weight: Tensor,
    spline_weight: Tensor,
    groups: int,
    padding: int,
    grid_size: int,
    spline_order: int,
    grid_range: tuple[float, float] = (-1.0, 1.0),
    stride: int = 1,
    dilation: int = 1,
):
    """A ``convkan.ConvKAN`` computing our layer (``base_weight [O, C_in/groups, k, k]``,
    ``spline_weight [O, C_in/groups, k, k, G + K]``), away from the border when ``padding`` > 0:
    its ``KANLinear`` sees each ``F.unfold`` patch of a group as ``C_in/groups * k * k`` input
    features in the order (channel, row, column), so the weights are views of ours per group;
    its standalone spline scaler is set to 1 and its knots to ours (in the weights' dtype; it
    builds them in the default dtype). Raises ``TypeError`` with the reason when convkan is
    not installed."""
    cls = convkan_class()
    if isinstance(cls, str):
        raise TypeError(f"convkan is not available ({cls})")
    out_channels, in_per_group, kh, kw = base_weight.shape
    layer = cls(
        in_per_group * groups,
        out_channels,
        (kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        grid_size=grid_size,
        spline_order=spline_order,
        grid_range=grid_range,
    ).to(base_weight.dtype)
    kan = layer.kan_layer
    per_group = (groups, out_channels // groups, in_per_group * kh * kw)
    knots = mkcc_kernels.reference.knots(grid_size, spline_order, grid_range, base_weight.dtype)
    with torch.no_grad():
        kan.base_weight.copy_(base_weight.reshape(per_group))
        kan.spline_weight.copy_(spline_weight.reshape(*per_group, grid_size + spline_order))
        kan.spline_scaler.fill_(1.0)
        kan.grid.copy_(knots.expand_as(kan.grid))
    return layer


def make_providers(
    names: list[str],
    shape: Shape,
    grid_size: int,
    spline_order: int,
    max_bytes: float | None,
    notes: list[str],
    seed: int = 0,
) -> tuple[dict[str, Provider], Tensor, Tensor]:
    """The providers of ``names`` that can run at ``shape`` (a note in ``notes`` for each that
    cannot), and the shared weights ``(base_weight, spline_weight)``."""
    batch, c_in, c_out, height, width, k, groups = shape
    torch.manual_seed(seed)
    layer = mkcc_kernels.KANConv2d(
        c_in, c_out, k, padding=PADDING, groups=groups, bias=False, grid_size=grid_size,
        spline_order=spline_order, backend="reference",
    )  # fmt: skip
    base0, spline0 = layer.base_weight.detach(), layer.spline_weight.detach()
    need = {
        name: factor * patch_feature_bytes(shape, grid_size, spline_order)
        for name, factor in PEAK_FACTOR.items()
    }
    providers: dict[str, Provider] = {}
    for name in names:
        if name in need and max_bytes is not None and need[name] > max_bytes:
            notes.append(
                f"{name}: skipped at {shape_label(shape)}: about {need[name] / 2**30:.1f} GiB "
                f"for forward+backward (> --max-gb {max_bytes / 2**30:.1f})"
            )
            continue
        if name in ("cpu", "reference", "reference-compiled", "unfold"):
            if name == "cpu" and not fused_op_available():
                notes.append(
                    f"cpu: skipped, this build of the extension has no torch.ops.mkcc.{FUSED_OP} "
                    "(rebuild it)"
                )
                continue
            backend = "reference" if name == "reference-compiled" else name
            base = base0.clone().requires_grad_(True)
            spline = spline0.clone().requires_grad_(True)

            def forward(x, base, spline, backend=backend):
                return mkcc_kernels.kan_conv2d(
                    x, base, spline, padding=PADDING, groups=groups, spline_order=spline_order,
                    backend=backend,
                )  # fmt: skip

            if name == "reference-compiled":
                # specialized to this shape (what a user gets by default), from a reset cache
                # so that dynamo neither turns to dynamic shapes nor hits its recompile limit
                torch._dynamo.reset()
                forward = torch.compile(forward)

            def fn(x, forward=forward, base=base, spline=spline):
                return forward(x, base, spline)

            providers[name] = Provider(name, fn, [base, spline], [base, spline])
        elif name == "convkan":
            try:
                module = make_convkan(base0, spline0, groups, PADDING, grid_size, spline_order)
            except TypeError as error:
                notes.append(f"convkan: skipped ({error})")
                continue
            except Exception as error:  # a geometry it does not support
                notes.append(f"convkan: skipped at {shape_label(shape)} ({error})")
                continue
            params = list(module.parameters())
            providers[name] = Provider(name, module, params, params + list(module.buffers()))
        elif name == "conv2d":
            torch.manual_seed(seed)
            module = nn.Conv2d(c_in, c_out, k, padding=PADDING, groups=groups, bias=False)
            params = list(module.parameters())
            providers[name] = Provider(name, module, params, params)
        else:
            raise ValueError(f"unknown provider {name!r}")
    return providers, base0, spline0


# --- measurement


def useful_flops(provider: str, shape: Shape, spline_order: int, mode: str) -> float:
    """Useful work of one call: ``2 * B * C_out * H_out * W_out * (C_in/groups) * k^2 * (K + 2)``
    per forward (``conv2d``: without the ``K + 2``); forward+backward 3x."""
    batch, c_in, c_out, _, _, k, groups = shape
    out_h, out_w = output_size(shape)
    features = 1 if provider == "conv2d" else spline_order + 2
    forward = 2.0 * batch * c_out * out_h * out_w * (c_in // groups) * k * k * features
    return forward * {"fwd": 1.0, "fwd+bwd": 3.0}[mode]


def peak_bytes(step: Callable[[], None]) -> int:
    """The peak of the bytes one ``step()`` holds through PyTorch's CPU allocator above what
    was allocated before it (``torch.profiler``'s memory events in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def max_rel_errors(
    providers: dict[str, Provider],
    x: Tensor,
    base: Tensor,
    spline: Tensor,
    groups: int,
    spline_order: int,
) -> dict[str, float]:
    """``max |y - y_ref| / max |y_ref|`` of each KAN provider against the eager reference on the
    same weights (``convkan``: interior positions only, see the module docstring)."""
    names = [name for name in providers if name in KAN_LIKE and name != "reference"]
    if not names:
        return {}
    with torch.no_grad():
        expected = mkcc_kernels.kan_conv2d(
            x, base, spline, padding=PADDING, groups=groups,
            spline_order=spline_order, backend="reference",
        )  # fmt: skip
        errors = {}
        for name in names:
            out, ref = providers[name].fn(x), expected
            if name == CONVKAN and PADDING:
                out = out[..., PADDING:-PADDING, PADDING:-PADDING]
                ref = ref[..., PADDING:-PADDING, PADDING:-PADDING]
            scale = ref.abs().max().clamp_min(torch.finfo(ref.dtype).tiny)
            errors[name] = float((out - ref).abs().max() / scale)
    return errors


@dataclass
class Result:
    shape: Shape
    provider: str
    mode: str
    times_ms: list[float]
    gflops: float
    of_gemm: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)


def run_shape(
    shape: Shape,
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
    max_bytes: float | None = None,
    measure_peak: bool = True,
    notes: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Every mode of one shape: the providers built once and checked against the reference,
    then per mode the saved bytes (forward+backward), the timing in turns, the peak memory."""
    notes = [] if notes is None else notes
    started = time.perf_counter()
    providers, base, spline = make_providers(
        names, shape, grid_size, spline_order, max_bytes, notes
    )
    if not providers:
        return []
    batch, c_in, c_out, height, width, _, groups = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, height, width, generator=generator)
    grad_out = torch.randn(batch, c_out, *output_size(shape), generator=generator)
    # the check also compiles the compiled forward
    errors = max_rel_errors(providers, x, base, spline, groups, spline_order)
    label = shape_label(shape)
    for name, error in errors.items():
        flag = "" if error < 1e-4 else "  <-- MISMATCH"
        log(f"  {label} {name:20s} max rel error vs reference {error:.2e}{flag}")
        if flag:
            notes.append(f"{name} at {label}: max rel error {error:.2e} vs the reference")
    log(f"  {label} providers built and checked in {time.perf_counter() - started:.1f} s")
    results = []
    for mode in modes:
        saved: dict[str, tuple[int, int]] = {}
        if mode == "fwd+bwd":  # before timing: this also compiles the compiled training graph
            started = time.perf_counter()
            for name, provider in providers.items():
                bound = x.numel() * x.element_size() + provider.state_bytes()
                saved[name] = (saved_bytes(provider.fn, [x]), bound)
            log(f"  {label} saved-for-backward bytes in {time.perf_counter() - started:.1f} s")
        steps = {name: make_step(p, x, mode, grad_out) for name, p in providers.items()}
        times = time_round_robin(steps, warmup, repeats, min_seconds, max_seconds, round_seconds)
        peaks: dict[str, int] = {}
        workspace: dict[str, int] = {}
        for name, step in steps.items() if measure_peak else ():
            if name == "cpu":  # its reused buffers, sized afresh by this call
                mkcc_kernels.release_cpu_workspace()
            peaks[name] = peak_bytes(step)
            if name == "cpu":
                workspace[name] = mkcc_kernels.cpu_workspace_bytes()
                peaks[name] += workspace[name]
        del steps
        for name, samples in times.items():
            work = useful_flops(name, shape, spline_order, mode)
            gflops = work / (statistics.median(samples) * 1e-3) / 1e9
            result = Result(
                shape, name, mode, samples, gflops, gflops / gemm_gflops if gemm_gflops else 0.0
            )
            if gemm_gflops:
                result.extra["gemm_gflops"] = gemm_gflops
            if name in errors:
                result.extra["max_rel_err"] = errors[name]
            if name in saved:
                saved_b, bound_b = saved[name]
                result.extra["saved_mb"] = saved_b / 2**20
                result.extra["bound_mb"] = bound_b / 2**20
                result.extra["saved_over_bound"] = saved_b / bound_b
            if name in peaks:
                result.extra["peak_mb"] = peaks[name] / 2**20
            if name in workspace:
                result.extra["workspace_mb"] = workspace[name] / 2**20
            results.append(result)
        rows = [r for r in results if r.mode == mode]
        for baseline, metric in BASELINES:
            base_row = next((r for r in rows if r.provider == baseline), None)
            if base_row is not None:
                for r in rows:
                    r.extra[metric] = base_row.p50 / r.p50
        for r in rows:
            ratios = "".join(
                f"  {r.extra[metric]:7.2f}x vs {peer}"
                for peer, metric in BASELINES
                if metric in r.extra
            )
            log(
                f"  {label} {mode:7s} {r.provider:20s} {r.p50:10.3f} ms  "
                f"{len(r.times_ms):4d} samples{ratios}"
            )
    return results


# --- output


def format_table(results: list[Result], modes: list[str]) -> str:
    lines = [
        "| shape (B, C_in, C_out, H, W, k, groups) | mode | provider | median ms (p20-p80) "
        "| useful GFLOP/s | GEMM GFLOP/s | of GEMM | vs compiled | vs convkan | saved MB "
        "| bound MB | saved / bound | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def number(r: Result, key: str, fmt: str) -> str:
        return "-" if key not in r.extra else format(r.extra[key], fmt)

    for r in results:
        lines.append(
            f"| {r.shape} | {r.mode} | {r.provider} | {r.p50:.3f} "
            f"({percentile(r.times_ms, 0.2):.3f}-{percentile(r.times_ms, 0.8):.3f}) "
            f"| {r.gflops:.1f} | {number(r, 'gemm_gflops', '.1f')} "
            f"| {f'{100 * r.of_gemm:.1f} %' if r.of_gemm else '-'} "
            f"| {number(r, 'speedup_vs_compiled', '.2f')}"
            f"{'' if 'speedup_vs_compiled' not in r.extra else 'x'} "
            f"| {number(r, 'speedup_vs_convkan', '.2f')}"
            f"{'' if 'speedup_vs_convkan' not in r.extra else 'x'} "
            f"| {number(r, 'saved_mb', '.2f')} | {number(r, 'bound_mb', '.2f')} "
            f"| {number(r, 'saved_over_bound', '.2f')} | {number(r, 'peak_mb', '.1f')} |"
        )
    lines.append("")
    lines += summary_lines(results, modes)
    return "\n".join(lines)


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values))


def summary_lines(results: list[Result], modes: list[str]) -> list[str]:
    """Geometric-mean speed-ups per mode over ``reference-compiled`` (``cpu`` always, said when
    it has no rows; then every other provider measured) and over ``convkan`` (``cpu`` and
    ``reference-compiled``), then the fused provider's goals per shape."""
    measured = list(dict.fromkeys(r.provider for r in results))
    names = ["cpu"] + [p for p in measured if p != "cpu"]
    lines = []
    for baseline, metric in BASELINES:
        for name in names:
            if name == baseline or (baseline == CONVKAN and name not in ("cpu", COMPILED)):
                continue
            for mode in modes:
                ratios = [
                    r.extra[metric]
                    for r in results
                    if r.provider == name and r.mode == mode and metric in r.extra
                ]
                if not ratios:
                    if name == "cpu":
                        lines.append(f"- `cpu` vs `{baseline}`, {mode}: not measured")
                    continue
                lines.append(
                    f"- `{name}` vs `{baseline}`, {mode}: geometric-mean speed-up "
                    f"{geomean(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x) "
                    f"over {len(ratios)} shapes"
                )
    lines.append("")
    lines += goal_lines(results)
    return lines


def goal_lines(results: list[Result]) -> list[str]:
    """The fused provider against its goals: >= 1.5x ``reference-compiled`` as a geometric mean
    over the shapes with no shape slower, >= 10x ``convkan`` forward+backward at every shape,
    saved <= 1.1 x (x + weights); per shape, "n/a" where a peer was not measured."""
    fused = {(r.shape, r.mode): r for r in results if r.provider == "cpu"}
    if not fused:
        return ["Goals: `cpu` not measured."]
    shapes = list(dict.fromkeys(shape for shape, _ in fused))
    lines = [
        "| shape | fwd vs compiled | fwd+bwd vs compiled (>= 1, geomean >= 1.5) "
        "| fwd+bwd vs convkan (>= 10) | saved / (x + weights) (<= 1.1) |",
        "|---|---|---|---|---|",
    ]

    def cell(mode, shape, metric, ok) -> str:
        r = fused.get((shape, mode))
        if r is None or metric not in r.extra:
            return "n/a"
        value = r.extra[metric]
        return f"{value:.2f} {'met' if ok(value) else 'MISSED'}"

    for shape in shapes:
        lines.append(
            f"| {shape} | {cell('fwd', shape, 'speedup_vs_compiled', lambda v: v >= 1)} "
            f"| {cell('fwd+bwd', shape, 'speedup_vs_compiled', lambda v: v >= 1)} "
            f"| {cell('fwd+bwd', shape, 'speedup_vs_convkan', lambda v: v >= 10)} "
            f"| {cell('fwd+bwd', shape, 'saved_over_bound', lambda v: v <= 1.1)} |"
        )
    for mode in ("fwd", "fwd+bwd"):
        ratios = [
            r.extra["speedup_vs_compiled"]
            for (_, m), r in fused.items()
            if m == mode and "speedup_vs_compiled" in r.extra
        ]
        if ratios:
            g = geomean(ratios)
            verdict = "met" if g >= 1.5 and min(ratios) >= 1 else "MISSED"
            lines.append(
                f"- `cpu` vs `{COMPILED}` {mode}: geometric mean {g:.2f}x, slowest shape "
                f"{min(ratios):.2f}x (goal >= 1.5x, none below 1x): {verdict}"
            )
    return lines


def long_rows(results: list[Result]) -> list[tuple]:
    """``(op, provider, mode, shape, dtype, metric, p20, p50, p80)`` rows (``append_csv``)."""
    rows = []
    for r in results:
        metrics = [
            ("ms", percentile(r.times_ms, 0.2), r.p50, percentile(r.times_ms, 0.8)),
            ("gflops", r.gflops, r.gflops, r.gflops),
        ]
        if r.of_gemm:
            metrics.append(("of_gemm", r.of_gemm, r.of_gemm, r.of_gemm))
        metrics += [(name, value, value, value) for name, value in r.extra.items()]
        label = shape_label(r.shape)
        for metric, p20, p50, p80 in metrics:
            rows.append(("kan_conv2d", r.provider, r.mode, label, "float32", metric, p20, p50, p80))
    return rows


def parse_shape(text: str) -> Shape:
    values = tuple(int(v) for v in text.split(","))
    if len(values) == 6:
        values += (1,)
    if len(values) != 7 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--shapes: expected B,C_in,C_out,H,W,k[,groups], got {text!r}"
        )
    batch, c_in, c_out, height, width, k, groups = values
    if c_in % groups or c_out % groups:
        raise argparse.ArgumentTypeError(f"--shapes: groups must divide C_in and C_out: {text!r}")
    if min(height, width) + 2 * PADDING < k:
        raise argparse.ArgumentTypeError(f"--shapes: the kernel is larger than the image: {text!r}")
    return values


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few repeats")
    parser.add_argument(
        "--shapes", type=parse_shape, nargs="+", help="B,C_in,C_out,H,W,k[,groups] ..."
    )
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
        "--max-gb",
        type=float,
        default=None,
        help="skip unfold / convkan where their forward+backward would need more (default: "
        f"{100 * MEMORY_SHARE:.0f}%% of the available memory)",
    )
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory calls")
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
        ("--threads", args.threads, 1),
    ):
        if value < least:
            parser.error(f"{name}: expected a value >= {least}, got {value}")
    if args.max_gb is not None:
        max_bytes = args.max_gb * 2**30
    else:
        available = available_memory_bytes()
        max_bytes = None if available is None else MEMORY_SHARE * available
    torch.set_num_threads(args.threads)

    print(
        f"KANConv2d on {machine_name('cpu', args.threads)}, fp32, grid {args.grid_size}, order "
        f"{args.spline_order}, padding {PADDING}; torch {torch.__version__}; build "
        f"{mkcc_kernels.build_info()}; fused op: {fused_op_available()}"
    )
    notes: list[str] = []
    results: list[Result] = []
    gemms: list[float] = []
    for shape in shapes:
        gemm = gemm_rate(args.gemm_size, min_seconds=0.3 if args.quick else 1.0)
        gemms.append(gemm)
        print(
            f"  {shape_label(shape)}: GEMM rate (torch.mm fp32 {args.gemm_size}^3, "
            f"{args.threads} threads) {gemm:.1f} GFLOP/s"
        )
        if args.csv is not None:
            size = f"{args.gemm_size}x{args.gemm_size}x{args.gemm_size}"
            append_csv(
                args.csv,
                [("mm", "torch.mm", "fwd", size, "float32", "gflops", gemm, gemm, gemm)],
                args.threads,
            )
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
            max_bytes=max_bytes,
            measure_peak=not args.no_peak,
            notes=notes,
        )
        print(f"  {shape_label(shape)}: {time.perf_counter() - started:.1f} s", flush=True)
        results += shape_results
        if args.csv is not None and shape_results:
            append_csv(args.csv, long_rows(shape_results), args.threads)
    print()
    print(format_table(results, modes))
    print()
    print(
        f"GEMM rate {min(gemms):.1f}-{max(gemms):.1f} GFLOP/s (torch.mm fp32, {args.gemm_size}^3, "
        f"{args.threads} threads, measured before each shape). Useful GFLOP/s: "
        "2*B*C_out*H_out*W_out*(C_in/groups)*k^2*(K+2) per forward, 3x for fwd+bwd; conv2d: "
        "its own work. Bound: x + the provider's parameters and "
        "buffers. Peak: bytes allocated by one call through PyTorch's CPU allocator (cpu: plus the "
        "workspace it keeps between calls)."
    )
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    if args.csv is not None:
        print(f"\nappended {len(results)} cases to {args.csv}")
    if args.plot is not None and results:
        try:
            from .plots import plot_conv2d  # matplotlib is imported only when plotting
        except ImportError as error:
            print(f"note: no plots ({error})")
        else:
            rows = [
                {"provider": p, "mode": m, "shape": s, "metric": metric, "p50": p50}
                for _, p, m, s, _, metric, _, p50, _ in long_rows(results)
            ]
            written = plot_conv2d(rows, args.plot)
            print(f"wrote {', '.join(map(str, written))}")
    return results


if __name__ == "__main__":
    main()
