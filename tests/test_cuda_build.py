"""The CUDA kernels are compiled and linked whenever torch is a CUDA build and nvcc exists (no
GPU needed): device code for every arch in build_info(), and CUDA kernels behind both ops."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import mkcc_kernels
from mkcc_kernels import _C

INFO = mkcc_kernels.build_info()


def _nvcc_available() -> bool:
    homes = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    return any(home and Path(home, "bin", "nvcc").is_file() for home in homes) or bool(
        shutil.which("nvcc")
    )


def _cuobjdump() -> str | None:
    """cuobjdump from the toolkit, or the copy Triton ships."""
    found = shutil.which("cuobjdump") or shutil.which("/usr/local/cuda/bin/cuobjdump")
    if found:
        return found
    try:
        import triton
    except ImportError:
        return None
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    return str(path) if path.is_file() else None


def _dump(option: str) -> str:
    """cuobjdump's output for the built extension."""
    tool = _cuobjdump()
    assert tool is not None, "cuobjdump not found (toolkit or triton)"
    return subprocess.run(
        [tool, option, _C.__file__], capture_output=True, text=True, check=True
    ).stdout


def test_cuda_kernels_built_when_possible():
    expected = (
        torch.version.cuda is not None
        and _nvcc_available()
        and os.environ.get("MKCC_SKIP_CUDA_BUILD", "") not in ("1", "true", "yes", "on")
    )
    assert INFO["cuda_compiled"] == expected, INFO


@pytest.mark.skipif(not INFO["cuda_compiled"], reason="this build has no CUDA kernels")
def test_device_code_for_every_arch():
    listing = _dump("--list-elf")
    assert INFO["cuda_archs"], INFO
    for arch in INFO["cuda_archs"]:
        for unit in ("kan_conv1d_fwd", "kan_conv1d_bwd"):
            assert f"{unit}.{arch}.cubin" in listing, listing


@pytest.mark.skipif(not INFO["cuda_compiled"], reason="this build has no CUDA kernels")
def test_cuda_kernels_registered_for_both_ops():
    for name in ("kan_conv1d_fwd", "kan_conv1d_bwd"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"mkcc::{name}", "CUDA")


@pytest.mark.skipif(not INFO["cuda_compiled"], reason="this build has no CUDA kernels")
def test_tensor_core_forward_for_every_arch():
    """The fp16 and bf16 tensor-core forward kernels are in the device code of every arch."""
    usage = _dump("--dump-resource-usage")
    found: dict[str, set[str]] = {}
    for section in usage.split("Fatbin elf code")[1:]:
        arch = section.split("arch = ", 1)[1].split()[0]
        for line in section.splitlines():
            if "kan_conv1d_fwd_mma_kernel" in line:
                found.setdefault(arch, set()).add("Half" if "4Half" in line else "BFloat16")
    for arch in INFO["cuda_archs"]:
        assert found.get(arch) == {"Half", "BFloat16"}, (arch, found)
