"""Compile-time GPU resource check: every Triton launch the op planners make for the layer
shapes of the tests, the MKCC model and bench's GPU set, for fp32 (TF32 and IEEE dots), fp16 and
bf16 and spline orders 1-4, compiled for sm_80 and sm_90 without a GPU; the same for the
KANLinear and KANConv2d kernels at their benchmark shapes; plus the CUDA C++ kernels in ``_C``.
Prints the tables (markdown) and exits with status 1 on a compile error, a spill or shared
memory over the arch's per-block limit.

    python -m bench.gpu_resources                 # the tables, markdown
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
    conv2d_triton_resources,
    cuda_problems,
    cuda_resources,
    linear_triton_resources,
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
    """One row per kernel, arch, precision and tiles; registers per spline order 1-4."""
    groups: dict[tuple, list[Build]] = {}
    for b in builds:
        groups.setdefault((b.kernel, b.arch, b.precision, b.tiles), []).append(b)
    lines = [
        "| kernel | arch | precision | tiles (M x N x C, warps, stages) | layer shapes "
        "| registers, K = 1 / 2 / 3 / 4 | stack B | shared KB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (kernel, arch, precision, tiles), rows in groups.items():
        by_order = {b.spline_order: b for b in rows}
        registers = " / ".join(
            ("error" if by_order[k].error else str(by_order[k].registers)) if k in by_order else "-"
            for k in (1, 2, 3, 4)
        )
        stack = max(b.stack for b in rows)
        shared = max(b.shared for b in rows) / 1024
        lines.append(
            f"| {kernel} | sm_{arch} | {precision} | {tiles} | {max(b.layers for b in rows)} "
            f"| {registers} | {stack} | {shared:.1f} |"
        )
    return "\n".join(lines)


def cuda_table(kernels: list[CudaKernel]) -> str:
    """One row per kernel and arch; registers per dtype (float / Half / BFloat16) and order."""
    groups: dict[tuple[str, str], dict[str, CudaKernel]] = {}
    for k in kernels:
        name, _, rest = k.name.partition("<")
        groups.setdefault((name, k.arch), {})[rest.rstrip(">")] = k
    lines = [
        "| kernel | arch | registers, K = 1 / 2 / 3 / 4: float; Half; BFloat16 | stack B |",
        "|---|---|---|---|",
    ]
    for (name, arch), by_instance in groups.items():
        cells = []
        for dtype in ("float", "Half", "BFloat16"):
            registers = [by_instance.get(f"{dtype}, K={order}") for order in (1, 2, 3, 4)]
            cells.append(
                " / ".join(str(k.registers) if k else "-" for k in registers)
                if any(registers)
                else "-"
            )
        stacks = sorted({k.stack for k in by_instance.values()})
        lines.append(
            f"| `{name}` | {arch} | {'; '.join(cells)} | {' or '.join(map(str, stacks))} |"
        )
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
    started = time.perf_counter()
    linear_builds = linear_triton_resources(jobs=args.jobs)
    elapsed = time.perf_counter() - started
    found += problems(linear_builds)
    print(
        f"\nKANLinear Triton: {len(linear_builds)} distinct builds for the KANLinear benchmark "
        f"shapes x the same precisions, orders and archs, compiled in {elapsed:.0f} s"
    )
    print(triton_table(linear_builds))
    builds += linear_builds
    started = time.perf_counter()
    conv2d_builds = conv2d_triton_resources(jobs=args.jobs)
    elapsed = time.perf_counter() - started
    found += problems(conv2d_builds)
    print(
        f"\nKANConv2d Triton: {len(conv2d_builds)} distinct builds for the KANConv2d benchmark "
        f"shapes x the same precisions, orders and archs, compiled in {elapsed:.0f} s"
    )
    print(triton_table(conv2d_builds))
    builds += conv2d_builds
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
