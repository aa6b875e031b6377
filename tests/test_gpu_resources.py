"""GPU readiness known without a GPU: every Triton launch the op planners make for the tests',
the MKCC model's and bench's GPU layer shapes (fp32 with TF32 and IEEE dots, fp16, bf16, spline
orders 1-4) compiles for sm_80 and sm_90 without spilling registers and within the arch's
shared memory, and the CUDA C++ kernels keep no stack frame beyond the explained exceptions;
the same for every KANLinear and every KANConv2d launch at their benchmark shapes."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mkcc_kernels import build_info
from mkcc_kernels.gpu_resources import (
    CONV2D_BENCH_LAYERS,
    LINEAR_BENCH_LAYERS,
    SHARED_LIMIT,
    Build,
    CudaKernel,
    cuda_problems,
    cuobjdump,
    problems,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or not cuobjdump().is_file(),
    reason="needs the triton package with its NVIDIA backend (cuobjdump)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """The check, run as ``make test`` users would run it by hand: a process without
    TRITON_INTERPRET (the kernels must be compiled functions, not interpreted ones)."""
    out = tmp_path_factory.mktemp("resources") / "resources.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu_resources", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def linear_report(tmp_path_factory) -> dict:
    """``gpu_resources.linear_report()`` (the KANLinear launches at the benchmark shapes), run in
    a process without TRITON_INTERPRET."""
    out = tmp_path_factory.mktemp("resources") / "linear.json"
    script = (
        "import json, sys\n"
        "from mkcc_kernels.gpu_resources import linear_report\n"
        "json.dump(linear_report(), open(sys.argv[1], 'w'), indent=1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def conv2d_report(tmp_path_factory) -> dict:
    """``gpu_resources.conv2d_report()`` (the KANConv2d launches at the benchmark shapes), run in
    a process without TRITON_INTERPRET."""
    out = tmp_path_factory.mktemp("resources") / "conv2d.json"
    script = (
        "import json, sys\n"
        "from mkcc_kernels.gpu_resources import conv2d_report\n"
        "json.dump(conv2d_report(), open(sys.argv[1], 'w'), indent=1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


def test_every_launch_compiles_without_spills(report):
    assert report["problems"] == []
    for build in report["triton"]:
        what = f"{build['kernel']} sm_{build['arch']} {build['dtype']} K={build['spline_order']}"
        assert build["error"] == "", what
        assert build["stack"] == 0, what
        assert 0 < build["registers"] <= 255, what
        assert 0 <= build["shared"] <= SHARED_LIMIT[build["arch"]], what


def test_every_kernel_arch_order_and_precision_is_covered(report):
    seen = {
        (b["kernel"], b["arch"], b["spline_order"], b["dtype"], b["ieee"]) for b in report["triton"]
    }
    precisions = [("fp32", False), ("fp32", True), ("fp16", False), ("bf16", False)]
    for kernel, arch, order, (dtype, ieee) in itertools.product(
        ("fwd", "dx", "dw"), (80, 90), (1, 2, 3, 4), precisions
    ):
        assert (kernel, arch, order, dtype, ieee) in seen


def test_layer_sets_include_the_model_and_bench_shapes(report):
    layers = {(la["in_channels"], la["out_channels"], la["kernel_size"]) for la in report["layers"]}
    # MKCC audio part 1 (10 MFCCs -> 64 per scale) and video part 2 (192 -> 128), k = 3, 5, 7
    assert {(10, 64, 3), (10, 64, 7), (192, 128, 5)} <= layers
    assert (256, 256, 5) in layers  # bench's GPU set


def test_every_kan_linear_launch_compiles_without_spills(linear_report):
    assert linear_report["problems"] == []
    for build in linear_report["triton"]:
        what = f"{build['kernel']} sm_{build['arch']} {build['dtype']} K={build['spline_order']}"
        assert build["error"] == "", what
        assert build["stack"] == 0, what
        assert 0 < build["registers"] <= 255, what
        assert 0 < build["shared"] <= SHARED_LIMIT[build["arch"]], what


def test_kan_linear_benchmark_shapes_kernels_archs_orders_and_precisions_are_covered(
    linear_report,
):
    layers = {
        (la["batch"], la["in_features"], la["out_features"]) for la in linear_report["layers"]
    }
    assert layers == {(4096, 784, 256), (8192, 256, 256), (6304, 768, 768), (65536, 64, 64)}
    assert len(LINEAR_BENCH_LAYERS) == 4
    builds = linear_report["triton"]
    seen = {(b["kernel"], b["arch"], b["spline_order"], b["dtype"], b["ieee"]) for b in builds}
    precisions = [("fp32", False), ("fp32", True), ("fp16", False), ("bf16", False)]
    for kernel, arch, order, (dtype, ieee) in itertools.product(
        ("linear_fwd", "linear_dx", "linear_dw"), (80, 90), (1, 2, 3, 4), precisions
    ):
        assert (kernel, arch, order, dtype, ieee) in seen
    # 64 outputs and 256 / 768 outputs take different tensor-core tiles: both are compiled
    wide = {b["tiles"] for b in builds if b["kernel"] == "linear_fwd" and not b["ieee"]}
    assert len(wide) == 2, wide


def test_every_kan_conv2d_launch_compiles_without_spills(conv2d_report):
    assert conv2d_report["problems"] == []
    for build in conv2d_report["triton"]:
        what = f"{build['kernel']} sm_{build['arch']} {build['dtype']} K={build['spline_order']}"
        assert build["error"] == "", what
        assert build["stack"] == 0, what
        assert 0 < build["registers"] <= 255, what
        assert 0 < build["shared"] <= SHARED_LIMIT[build["arch"]], what


def test_kan_conv2d_benchmark_shapes_kernels_archs_orders_and_precisions_are_covered(
    conv2d_report,
):
    fields = ("batch", "in_channels", "out_channels", "height", "width", "kernel_size", "groups")
    layers = {tuple(la[f] for f in fields) for la in conv2d_report["layers"]}
    assert layers == {
        (64, 3, 32, 32, 32, 3, 1),
        (64, 32, 64, 16, 16, 3, 1),
        (32, 64, 128, 8, 8, 3, 1),
        (16, 64, 64, 56, 56, 3, 1),
        (32, 128, 128, 28, 28, 3, 128),
    }
    assert len(CONV2D_BENCH_LAYERS) == 5
    assert all(la["padding"] == 1 for la in conv2d_report["layers"])
    builds = conv2d_report["triton"]
    seen = {(b["kernel"], b["arch"], b["spline_order"], b["dtype"], b["ieee"]) for b in builds}
    precisions = [("fp32", False), ("fp32", True), ("fp16", False), ("bf16", False)]
    for kernel, arch, order, (dtype, ieee) in itertools.product(
        ("conv2d_fwd", "conv2d_dx", "conv2d_dw"), (80, 90), (1, 2, 3, 4), precisions
    ):
        assert (kernel, arch, order, dtype, ieee) in seen
    # 64 and 128 output columns and the depthwise tiles: every tensor-core forward tile compiled
    wide = {b["tiles"] for b in builds if b["kernel"] == "conv2d_fwd" and not b["ieee"]}
    assert len(wide) == 3, wide


@pytest.mark.skipif(not build_info()["cuda_compiled"], reason="this build has no CUDA kernels")
def test_cuda_kernels_are_read(report):
    names = {k["function"] for k in report["cuda"]}
    assert len(report["cuda"]) >= 40
    for kernel in ("fwd_kernel", "fwd_mma_kernel", "input_grad_kernel", "weight_grad_kernel"):
        assert any(kernel in name for name in names), kernel


def test_problems_flag_spills_shared_memory_and_errors():
    def build(**changes) -> Build:
        fields = dict(
            kernel="fwd", arch=80, dtype="fp32", spline_order=3, ieee=False, tiles="t",
            layers=1, registers=128, stack=0, shared=1024,
        )  # fmt: skip
        return Build(**{**fields, **changes})

    assert problems([build(), build(arch=90, shared=SHARED_LIMIT[90])]) == []
    found = problems(
        [
            build(stack=8),
            build(shared=SHARED_LIMIT[80] + 1),
            build(error="CompilationError: x"),
        ]
    )
    assert len(found) == 3
    assert "spills" in found[0] and "shared memory" in found[1] and "compile error" in found[2]


def test_cuda_stack_exceptions_are_bounded():
    mangled = "_ZN4mkcc4cuda5_21kan_conv1d_fwd_kernelIfLi2EEEvNS0_11ForwardArgsIT_EEll"
    assert cuda_problems([CudaKernel("sm_80", mangled, 64, 8, 0)]) == []
    assert len(cuda_problems([CudaKernel("sm_80", mangled, 64, 16, 0)])) == 1
    assert len(cuda_problems([CudaKernel("sm_90", mangled, 64, 8, 0)])) == 1
    other = mangled.replace("Li2E", "Li3E")
    assert len(cuda_problems([CudaKernel("sm_80", other, 64, 8, 0)])) == 1
