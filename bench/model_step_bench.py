"""Time one MKCC training step (forward, cross-entropy, backward, SGD step) per layer provider,
side by side in one process, and append the results to a long-format CSV.

    python -m bench.model_step_bench                       # paper shapes, batch 8, CPU
    python -m bench.model_step_bench --providers cpu,reference-compiled --repeats 20

Providers: ``cpu`` (the fused C++ layers), ``reference`` eager, ``reference-compiled`` (the
whole model under ``torch.compile``), ``unfold`` (the naive baseline), ``cpu-compiled`` (the
fused layers under ``torch.compile``) and ``cnn`` (the same topology with ``nn.Conv1d``, a floor
that computes something else). Every provider starts from the same weights and inputs; each is
run ``--warmup`` times (compilation included there), then timed ``--repeats`` times; rows give
the median and 20th/80th percentiles in milliseconds (``bench/results/model_step.csv`` by
default; columns as ``bench/kan_bench.py``'s CSV).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.kan_bench import append_csv, percentile, time_step
from mkcc_model.model import MKCC, ModelConfig
from mkcc_model.train import TrainConfig

FUSED = ("cpu", "triton", "cuda")
PROVIDERS = (*FUSED, "reference", "reference-compiled", "unfold", "cpu-compiled", "cnn")
DEFAULT_PROVIDERS = ("cpu", "reference-compiled", "unfold")
DEFAULT_CSV = Path("bench/results/model_step.csv")


def make_step(
    provider: str, batch: int, audio_length: int, frames: int, device: str
) -> Callable[[], None]:
    """One training step of a fresh model (seed 0) for ``provider`` on fixed random inputs."""
    backend = provider.removesuffix("-compiled")
    config = ModelConfig(layer_type="cnn") if provider == "cnn" else ModelConfig(backend=backend)
    torch.manual_seed(0)
    model = MKCC(config).to(device)
    generator = torch.Generator().manual_seed(1)
    audio = torch.randn(batch, 10, audio_length, generator=generator).to(device)
    aus = torch.randn(batch, 35, frames, generator=generator).to(device)
    labels = torch.randint(0, 8, (batch,), generator=generator).to(device)
    model.set_input_statistics(audio, aus)
    forward = torch.compile(model) if provider.endswith("-compiled") else model
    recipe = TrainConfig()  # the training defaults (the paper's optimizer)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        dampening=recipe.dampening,
        weight_decay=recipe.weight_decay,
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(forward(audio, aus), labels).backward()
        optimizer.step()

    return step


def write_rows(path: Path, rows: list[tuple[str, str, list[float]]], device: str) -> None:
    """Long-format rows (one per provider, metric ``ms``) in ``bench/kan_bench.py``'s columns."""
    append_csv(
        path,
        [
            ("mkcc_train_step", provider, "train-step", shape, "float32", "ms",
             percentile(times, 0.2), percentile(times, 0.5), percentile(times, 0.8))
            for provider, shape, times in rows
        ],
        device,
        torch.get_num_threads(),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> list[tuple[str, str, list[float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--providers",
        default=",".join(DEFAULT_PROVIDERS),
        help=f"comma-separated among {', '.join(PROVIDERS)}",
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--audio-length", type=int, default=621)
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="stop timing a provider after this long (at least 3 repeats)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--no-csv", action="store_true")
    args = parser.parse_args(argv)
    providers = [p for p in args.providers.split(",") if p]
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown or not providers:
        parser.error(f"--providers: unknown {unknown}; expected among {', '.join(PROVIDERS)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shape = f"{args.batch}x10x{args.audio_length}+{args.batch}x35x{args.frames}"
    rows = []
    for provider in providers:
        step = make_step(provider, args.batch, args.audio_length, args.frames, args.device)
        times = time_step(step, args.device, args.warmup, args.repeats, args.max_seconds)
        rows.append((provider, shape, times))
        print(
            f"{provider:20s} median {percentile(times, 0.5):9.1f} ms  "
            f"(p20 {percentile(times, 0.2):.1f}, p80 {percentile(times, 0.8):.1f}, "
            f"n={len(times)})",
            flush=True,
        )
    medians = {provider: percentile(times, 0.5) for provider, _, times in rows}
    for fused in (p for p in FUSED if p in medians):
        for base in ("reference-compiled", "unfold"):
            if base in medians:
                print(f"{fused} vs {base}: {medians[base] / medians[fused]:.2f}x")
    if not args.no_csv:
        write_rows(args.csv, rows, args.device)
        print(f"appended to {args.csv}")
    return rows


if __name__ == "__main__":
    main()
