"""Compile-time GPU resource check: every Triton launch the op planners make for the layer
shapes of the tests, the MKCC model and bench's GPU set, for fp32 (TF32 and IEEE dots), fp16 and
bf16 and spline orders 1-4, compiled for sm_80 and sm_90 without a GPU; plus the CUDA C++
kernels in ``_C``. Prints the tables (markdown) and exits with status 1 on a compile error, a
spill or shared memory over the arch's per-block limit.

    python -m bench.gpu_resources                 # both tables, markdown
    python -m bench.gpu_resources --json out.json # also the rows as JSON

Run it without ``TRITON_INTERPRET=1`` (the kernels must be compiled functions); no GPU needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from mkcc_kernels.gpu_resources import (
    SHARED_LIMIT,
    Build,
    CudaKernel,
    Layer,
    cuda_problems,
    cuda_resources,
    problems,
    triton_resources,
)

# Input lengths the MKCC model's layers are recorded at: the bench's MKCC shapes (audio 450
# MFCC frames, video 15 AU frames). Lengths change no build, only grids.
MODEL_AUDIO_LENGTH = 450
MODEL_VIDEO_FRAMES = 15


def test_layers() -> Iterator[Layer]:
    """The curated configurations every backend's tests run."""
    from tests.helpers import CONFIGS

    for b, c_in, c_out, t, k, conv, grid_size in CONFIGS.values():
        yield Layer(
            b, c_in, c_out, t, k, stride=conv.get("stride", 1), padding=conv.get("padding", 0),
            dilation=conv.get("dilation", 1), groups=conv.get("groups", 1), grid_size=grid_size,
        )  # fmt: skip


def bench_layers() -> Iterator[Layer]:
    """bench's GPU shape set (padding "same", grid 5)."""
    from bench.kan_bench import SHAPE_SETS

    for b, c_in, c_out, t, k in SHAPE_SETS["gpu"]:
        yield Layer(b, c_in, c_out, t, k, padding="same")


def model_layers(batch: int = 32) -> Iterator[Layer]:
    """The KAN layers of the default MKCC model as it calls them (recorded with hooks during one
    forward on the reference backend)."""
    from mkcc_kernels import KANConv1d
    from mkcc_model.model import MKCC, ModelConfig

    config = ModelConfig(backend="reference")
    model = MKCC(config)
    calls: list[Layer] = []

    def record(module, inputs):
        x = inputs[0]
        calls.append(
            Layer(
                x.shape[0],
                module.in_channels,
                module.out_channels,
                x.shape[2],
                module.kernel_size[0],
                module.stride[0],
                module.padding if isinstance(module.padding, str) else module.padding[0],
                module.dilation[0],
                module.groups,
                module.grid_size,
            )  # fmt: skip
        )

    for module in model.modules():
        if isinstance(module, KANConv1d):
            module.register_forward_pre_hook(record)
    with torch.no_grad():
        model(
            torch.randn(batch, config.audio_channels, MODEL_AUDIO_LENGTH),
            torch.rand(batch, config.video_channels, MODEL_VIDEO_FRAMES),
        )
    return iter(calls)


def all_layers() -> list[Layer]:
    layers: list[Layer] = []
    for source in (test_layers(), model_layers(), bench_layers()):
        layers += [layer for layer in source if layer not in layers]
    return layers


def triton_table(builds: list[Build]) -> str:
    lines = [
        "| kernel | arch | precision | K | tiles (M x N x C, warps, stages) | layers | registers "
        "| stack B | shared KB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in builds:
        usage = (
            f"{b.registers} | {b.stack} | {b.shared / 1024:.1f}"
            if not b.error
            else f"error: {b.error} | | "
        )
        lines.append(
            f"| {b.kernel} | sm_{b.arch} | {b.precision} | {b.spline_order} | {b.tiles} "
            f"| {b.layers} | {usage} |"
        )
    return "\n".join(lines)


def cuda_table(kernels: list[CudaKernel]) -> str:
    lines = ["| arch | kernel | registers | stack B | static shared B |", "|---|---|---|---|---|"]
    for k in kernels:
        lines.append(f"| {k.arch} | `{k.name}` | {k.registers} | {k.stack} | {k.shared} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--jobs", type=int, default=None, help="compile processes (every core)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA C++ table")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        parser.error("TRITON_INTERPRET=1 is set: the check compiles the kernels, unset it")

    started = time.perf_counter()
    layers = all_layers()
    builds = triton_resources(layers, jobs=args.jobs)
    elapsed = time.perf_counter() - started
    found = problems(builds)
    print(
        f"Triton: {len(builds)} distinct builds for {len(layers)} layer shapes x fp32 (TF32, "
        f"IEEE) / fp16 / bf16 x spline orders 1-4 x sm_80, sm_90, compiled in {elapsed:.0f} s; "
        + "shared-memory limits "
        + ", ".join(f"sm_{arch} {limit // 1024} KB" for arch, limit in SHARED_LIMIT.items())
    )
    print(triton_table(builds))
    kernels: list[CudaKernel] = []
    if not args.no_cuda:
        from mkcc_kernels import build_info

        if build_info()["cuda_compiled"]:
            kernels = cuda_resources()
            print(f"\nCUDA C++ (_C): {len(kernels)} kernels")
            print(cuda_table(kernels))
            found += cuda_problems(kernels)
        else:
            print("\nCUDA C++: this build has no CUDA kernels")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "layers": [dataclasses.asdict(layer) for layer in layers],
                    "triton": [dataclasses.asdict(b) for b in builds],
                    "cuda": [dataclasses.asdict(k) for k in kernels],
                    "problems": found,
                },
                indent=1,
            )
        )
    if found:
        print("\nProblems:\n" + "\n".join(found), file=sys.stderr)
        return 1
    print("\nno compile errors, no spills, shared memory within every limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
