"""Build of the mkcc_kernels._C extension: fused C++ CPU kernels, plus CUDA kernels when possible.

Environment switches:
  MKCC_SKIP_CUDA_BUILD=1  build the CPU kernels only.
  MKCC_FORCE_CUDA=1       fail instead of skipping when the CUDA kernels cannot be built.
  TORCH_CUDA_ARCH_LIST    CUDA archs to build (default "8.0;9.0").
  MAX_JOBS                parallel compile jobs (ninja).
  CUDA_HOME               CUDA toolkit folder (the one holding bin/nvcc).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import torch
from setuptools import setup

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
DEFAULT_CUDA_ARCHS = "8.0;9.0"


def say(message: str) -> None:
    print(f"mkcc setup: {message}", file=sys.stderr)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def find_cuda_home() -> Path | None:
    """CUDA_HOME, else the folder holding the real nvcc (following launcher scripts), else the
    standard toolkit location torch itself uses."""
    candidates = []
    if os.environ.get("CUDA_HOME"):
        candidates.append(Path(os.environ["CUDA_HOME"]))
    candidates.append(Path("/usr/local/cuda"))
    nvcc_on_path = shutil.which("nvcc")
    if nvcc_on_path:
        candidates.append(Path(nvcc_on_path).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "nvcc").is_file() and (home / "include" / "cuda_runtime.h").is_file():
            return home.resolve()
    return None


def nvidia_wheel_include_dirs() -> list[str]:
    """Headers that torch's CUDA headers include but a bare toolkit may lack (cusparse.h, ...)
    ship in the nvidia wheels installed with torch."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    found = sorted(glob.glob(str(purelib / "nvidia" / "*" / "include")))
    found += sorted(glob.glob(str(purelib / "nvidia" / "*" / "*" / "include")))
    return [str(Path(p).resolve()) for p in found]


def arch_identifier(archs: str) -> str:
    """TORCH_CUDA_ARCH_LIST ("8.0;9.0+PTX", "9.0a", ...) as one C identifier ("sm80_sm90",
    "sm90a"): a macro value that survives every shell and build tool unquoted; build_info()
    turns it back into names ("sm_80", "sm_90")."""
    names = []
    for arch in archs.replace(" ", ";").split(";"):
        arch = arch.split("+")[0].strip()
        if arch:
            names.append("sm" + "".join(ch for ch in arch if ch.isalnum()))
    return "_".join(names)


def cuda_build_plan(cuda_sources: list[str]) -> tuple[Path, str] | None:
    """(CUDA_HOME, arch list) when the CUDA kernels are to be built, else None (said once)."""
    force = env_flag("MKCC_FORCE_CUDA")

    def skip(reason: str) -> None:
        if force:
            raise RuntimeError(f"MKCC_FORCE_CUDA=1 but the CUDA kernels cannot be built: {reason}")
        say(f"building the CPU kernels only: {reason}")

    if env_flag("MKCC_SKIP_CUDA_BUILD"):
        return skip("MKCC_SKIP_CUDA_BUILD is set")
    if not cuda_sources:
        return skip("no CUDA sources in csrc/cuda")
    if torch.version.cuda is None:
        return skip(f"torch {torch.__version__} is a CPU-only build")
    cuda_home = find_cuda_home()
    if cuda_home is None:
        return skip("no nvcc found (set CUDA_HOME to the toolkit folder holding bin/nvcc)")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
    return cuda_home, archs


def extensions() -> list:
    cpp_sources = [str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.cpp"))]
    cpp_sources += [str(p.relative_to(ROOT)) for p in sorted((CSRC / "cpu").glob("*.cpp"))]
    # The CUDA kernels (.cu) and their host entry (.cpp, compiled only with them).
    cuda_sources = [str(p.relative_to(ROOT)) for p in sorted((CSRC / "cuda").glob("*.cu"))]
    cuda_host_sources = [str(p.relative_to(ROOT)) for p in sorted((CSRC / "cuda").glob("*.cpp"))]
    include_dirs = [str(CSRC / "include"), str(CSRC)]
    # -fopenmp: at::parallel_for is a header template that runs serially without it.
    # -fno-trapping-math: floating-point exception flags are never read, and without it GCC
    # keeps the branch-free selects of the CPU kernels' basis loop from becoming vector code.
    cxx_flags = [
        "-O3",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-fopenmp",
        "-Wall",
        "-Wno-unknown-pragmas",
    ]
    link_flags = ["-fopenmp"]
    plan = cuda_build_plan(cuda_sources)
    if plan is not None:
        # torch.utils.cpp_extension reads these when it is imported.
        os.environ["CUDA_HOME"] = str(plan[0])
        os.environ["TORCH_CUDA_ARCH_LIST"] = plan[1]
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    if plan is None:
        return [
            CppExtension(
                "mkcc_kernels._C",
                cpp_sources,
                include_dirs=include_dirs,
                extra_compile_args={"cxx": cxx_flags},
                extra_link_args=link_flags,
            )
        ]

    cuda_home, archs = plan
    say(f"building CUDA kernels with {cuda_home / 'bin' / 'nvcc'} for archs {archs}")
    define = ["-DMKCC_WITH_CUDA", f"-DMKCC_CUDA_ARCHS={arch_identifier(archs)}"]
    return [
        CUDAExtension(
            "mkcc_kernels._C",
            cpp_sources + cuda_host_sources + cuda_sources,
            include_dirs=include_dirs + nvidia_wheel_include_dirs(),
            extra_compile_args={
                "cxx": cxx_flags + define,
                "nvcc": ["-O3", "-lineinfo", *define],
            },
            extra_link_args=link_flags,
        )
    ]


ext_modules = extensions()
from torch.utils.cpp_extension import BuildExtension  # noqa: E402  (after CUDA_HOME is set)

setup(
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
