"""Plots from a results CSV of ``bench.kan_bench``: the fused backend's speed-up over ``unfold``
and over ``torch.compile(reference)`` per shape and mode, the bytes each provider saves for
backward per shape, and every provider's dense-equivalent GFLOP/s per shape (the scaling plot of
a sweep).

    python -m bench.plots bench/results/cpu_bench.csv
    # writes <csv stem>_speedup.png, <csv stem>_memory.png, <csv stem>_throughput.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .kan_bench import flops  # noqa: E402
from .report import FUSED, load  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument(
        "--num-features",
        type=int,
        default=9,
        help="1 + grid size + spline order of the run (default 9: G=5, K=3)",
    )
    args = parser.parse_args(argv)
    rows = load(args.csv)
    cases = list(dict.fromkeys((k[2], k[3], k[4]) for k in rows))  # shape, dtype, device
    modes = list(dict.fromkeys(k[1] for k in rows))

    def p50(provider, shape, dtype, device, mode, metric):
        row = rows.get((provider, mode, shape, dtype, device, metric))
        return None if row is None else float(row["p50"])

    fused = [f for f in FUSED if any(k[0] == f for k in rows)]
    peers = ("unfold", "reference-compiled")
    fig, axes = plt.subplots(1, len(peers), figsize=(6 * len(peers), 4.5), squeeze=False)
    labels = [f"{shape.replace('x', ',')}\n{dtype}" for shape, dtype, _ in cases]
    bars = [(f, m) for f in fused for m in modes]
    width = 0.8 / max(1, len(bars))
    for ax, peer in zip(axes[0], peers):
        for n, (provider, mode) in enumerate(bars):
            values = []
            for shape, dtype, device in cases:
                ours, theirs = (p50(p, shape, dtype, device, mode, "ms") for p in (provider, peer))
                values.append(theirs / ours if ours and theirs else 0.0)
            positions = [i + (n - (len(bars) - 1) / 2) * width for i in range(len(cases))]
            ax.bar(positions, values, width, label=f"{provider} {mode}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cases)), labels, fontsize=6, rotation=30)
        ax.set_ylabel(f"speed-up over {peer} (x)")
        ax.set_title(f"fused vs {peer} (median time ratio)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    speedup_path = args.csv.with_name(args.csv.stem + "_speedup.png")
    fig.savefig(speedup_path, dpi=120)

    providers = list(dict.fromkeys(k[0] for k in rows if k[5] == "saved_mb"))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(providers))
    mode = "fwd+bwd" if "fwd+bwd" in modes else modes[-1]
    for n, provider in enumerate(providers):
        values = [
            p50(provider, shape, dtype, device, mode, "saved_mb") or 0.0
            for shape, dtype, device in cases
        ]
        positions = [i + (n - (len(providers) - 1) / 2) * width for i in range(len(cases))]
        ax.bar(positions, values, width, label=provider)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)), labels, fontsize=6, rotation=30)
    ax.set_ylabel("MB saved for backward (log)")
    ax.set_title("memory autograd keeps for backward, per provider")
    ax.legend(fontsize=7)
    fig.tight_layout()
    memory_path = args.csv.with_name(args.csv.stem + "_memory.png")
    fig.savefig(memory_path, dpi=120)
    throughput_path = args.csv.with_name(args.csv.stem + "_throughput.png")
    all_providers = list(dict.fromkeys(k[0] for k in rows if k[5] == "ms"))
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for provider in all_providers:
            points = []
            for i, (shape, dtype, device) in enumerate(cases):
                ms = p50(provider, shape, dtype, device, mode, "ms")
                if ms:
                    dims = tuple(int(v) for v in shape.split("x"))
                    points.append((i, flops(provider, dims, args.num_features, mode) / ms / 1e6))
            if points:
                ax.plot(*zip(*points), marker="o", label=provider)
        ax.set_xticks(range(len(cases)), labels, fontsize=6, rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("GFLOP/s (dense-equivalent; conv1d: its own work)")
        ax.set_title(f"throughput, {mode}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(throughput_path, dpi=120)
    print(f"wrote {speedup_path}, {memory_path} and {throughput_path}")


def plot_linear(rows, prefix: Path) -> list[Path]:
    """Plots of a ``bench.linear_bench`` run: ``PREFIX_speedup.png`` (each provider's speed-up
    over ``efficient-kan-compiled`` per shape, one panel per mode, log scale) and
    ``PREFIX_memory.png`` (MB saved for backward per provider and shape in forward+backward
    mode, with each shape's ``x + weights + grid`` bound of ``mkcc-reference`` as a line).
    ``rows``: dicts with ``provider``, ``mode``, ``shape``, ``metric`` and ``p50`` (as
    ``report.load(csv).values()`` gives, or the benchmark's own rows)."""
    values = {(r["provider"], r["mode"], r["shape"], r["metric"]): float(r["p50"]) for r in rows}
    shapes = list(dict.fromkeys(k[2] for k in values))
    modes = list(dict.fromkeys(k[1] for k in values))
    labels = [shape.replace("x", ",") for shape in shapes]
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)

    def bars(ax, metric, mode, providers):
        width = 0.8 / max(1, len(providers))
        for n, provider in enumerate(providers):
            heights = [values.get((provider, mode, shape, metric), 0.0) for shape in shapes]
            positions = [i + (n - (len(providers) - 1) / 2) * width for i in range(len(shapes))]
            ax.bar(positions, heights, width, label=provider)
        ax.set_xticks(range(len(shapes)), labels, fontsize=7, rotation=20)
        ax.set_xlabel("shape (N, in, out)")
        ax.legend(fontsize=7)

    written = []
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        providers = [
            p
            for p in dict.fromkeys(k[0] for k in values if k[3] == "speedup_vs_compiled")
            if p != "efficient-kan-compiled"
        ]
        bars(ax, "speedup_vs_compiled", mode, providers)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("speed-up over efficient-kan-compiled (x, log)")
        ax.set_title(f"KANLinear, {mode} (median time ratio)")
    fig.tight_layout()
    written.append(prefix.with_name(prefix.name + "_speedup.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    mode = "fwd+bwd"
    providers = list(dict.fromkeys(k[0] for k in values if k[3] == "saved_mb" and k[1] == mode))
    if providers:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        bars(ax, "saved_mb", mode, providers)
        label = "bound x + weights + grid"
        for i, shape in enumerate(shapes):
            bound = values.get(("mkcc-reference", mode, shape, "bound_mb"))
            if bound:
                ax.hlines(bound, i - 0.45, i + 0.45, colors="black", linestyles="--", label=label)
                label = None
        ax.set_yscale("log")
        ax.set_ylabel("MB saved for backward (log)")
        ax.set_title("KANLinear: memory autograd keeps for backward, per provider")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(prefix.with_name(prefix.name + "_memory.png"))
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


if __name__ == "__main__":
    main()


def plot_conv2d(rows, prefix: Path) -> list[Path]:
    """Plots of a ``bench.conv2d_bench`` run: ``PREFIX_speedup.png`` (each provider's speed-up
    over ``reference-compiled`` (top) and over ``convkan`` (bottom) per shape, one column per
    mode, log scale, the fused provider's goals as dotted lines: 1.5x (geometric mean) and 10x
    (forward+backward)) and ``PREFIX_memory.png`` (MB saved for backward per provider and shape
    in forward+backward mode, with the ``x + weights`` bound of the fused provider as a line,
    and the peak MB one forward+backward call allocates).
    ``rows``: dicts with ``provider``, ``mode``, ``shape``, ``metric`` and ``p50`` (as
    ``report.load(csv).values()`` gives, or the benchmark's own rows); rows of another ``op``
    (the GEMM rate's ``mm``) are left out."""
    values = {
        (r["provider"], r["mode"], r["shape"], r["metric"]): float(r["p50"])
        for r in rows
        if r.get("op", "kan_conv2d") == "kan_conv2d"
    }
    shapes = list(dict.fromkeys(k[2] for k in values))
    modes = list(dict.fromkeys(k[1] for k in values))
    labels = [_conv2d_label(shape) for shape in shapes]
    # one colour per provider in every panel
    colors = {p: f"C{n % 10}" for n, p in enumerate(dict.fromkeys(k[0] for k in values))}
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)

    def bars(ax, metric, mode, providers):
        width = 0.8 / max(1, len(providers))
        for n, provider in enumerate(providers):
            heights = [values.get((provider, mode, shape, metric), 0.0) for shape in shapes]
            positions = [i + (n - (len(providers) - 1) / 2) * width for i in range(len(shapes))]
            ax.bar(positions, heights, width, label=provider, color=colors[provider])
        ax.set_xticks(range(len(shapes)), labels, fontsize=7, rotation=20)
        ax.set_xlabel("shape (B, C_in, C_out, H, W, k[, groups])")
        ax.legend(fontsize=7)

    written = []
    peers = [
        (metric, peer, goal)
        for metric, peer, goal in (
            ("speedup_vs_compiled", "reference-compiled", 1.5),
            ("speedup_vs_convkan", "convkan", 10.0),
        )
        if any(k[3] == metric for k in values)
    ]
    if peers:
        fig, axes = plt.subplots(
            len(peers), len(modes), figsize=(6 * len(modes), 4.5 * len(peers)), squeeze=False
        )
        for row, (metric, peer, goal) in enumerate(peers):
            for ax, mode in zip(axes[row], modes):
                providers = [
                    p for p in dict.fromkeys(k[0] for k in values if k[3] == metric) if p != peer
                ]
                bars(ax, metric, mode, providers)
                ax.axhline(1.0, color="black", linewidth=0.8)
                if mode == "fwd+bwd" or peer != "convkan":
                    ax.axhline(goal, color="grey", linewidth=0.8, linestyle=":")
                ax.set_yscale("log")
                ax.set_ylabel(f"speed-up over {peer} (x, log)")
                ax.set_title(f"KANConv2d {mode} vs {peer} (dotted: cpu goal)", fontsize=10)
        fig.tight_layout()
        written.append(prefix.with_name(prefix.name + "_speedup.png"))
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    mode = "fwd+bwd"
    saved = list(dict.fromkeys(k[0] for k in values if k[3] == "saved_mb" and k[1] == mode))
    peak = list(dict.fromkeys(k[0] for k in values if k[3] == "peak_mb" and k[1] == mode))
    panels = [(m, p) for m, p in (("saved_mb", saved), ("peak_mb", peak)) if p]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(9 * len(panels), 4.5), squeeze=False)
        for ax, (metric, providers) in zip(axes[0], panels):
            bars(ax, metric, mode, providers)
            label = "bound x + weights (cpu)"
            for i, shape in enumerate(shapes if metric == "saved_mb" else []):
                bound = values.get(("cpu", mode, shape, "bound_mb")) or values.get(
                    ("reference", mode, shape, "bound_mb")
                )
                if bound:
                    ax.hlines(
                        bound, i - 0.45, i + 0.45, colors="black", linestyles="--", label=label
                    )
                    label = None
            ax.set_yscale("log")
            if metric == "saved_mb":
                ax.set_ylabel("MB saved for backward (log)")
                ax.set_title("KANConv2d: memory autograd keeps for backward")
            else:
                ax.set_ylabel("peak MB allocated by one forward+backward (log)")
                ax.set_title("KANConv2d: peak memory of one forward+backward call")
            ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(prefix.with_name(prefix.name + "_memory.png"))
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _conv2d_label(shape: str) -> str:
    """``64x3x32x32x32x3x1`` -> ``64,3,32,32,32,3``; a grouped shape keeps its ``groups``."""
    values = shape.split("x")
    if len(values) == 7 and values[-1] == "1":
        values = values[:-1]
    return ",".join(values)
