"""Which backends this build and machine can run, and the static choice behind ``"auto"``."""

from __future__ import annotations

from typing import Any

import torch

from . import _C
from .ops import triton_ops

BACKENDS = ("auto", "cpu", "cuda", "triton", "reference", "unfold")
_FUSED_CPU_DTYPES = (torch.float32, torch.float64)
_FUSED_GPU_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def build_info() -> dict[str, Any]:
    """What the compiled extension holds: torch version it was built against, whether CUDA
    kernels were compiled and for which archs, and the CPU instruction-set builds."""
    return dict(_C.build_info())


_CUDA_KERNELS_BUILT = bool(_C.build_info()["cuda_compiled"])


# The backends each layer has; "cuda" (the CUDA C++ kernels) is KANConv1d's only.
LAYER_BACKENDS = {
    "conv1d": ("cpu", "triton", "cuda", "reference", "unfold"),
    "conv2d": ("cpu", "triton", "reference", "unfold"),
    "linear": ("cpu", "triton", "reference"),
}


def available_backends(
    device: torch.device | str | None = None, layer: str = "conv1d"
) -> list[str]:
    """Backends usable for tensors on ``device`` (``None``: on any device of this machine) by
    ``layer``: ``"conv1d"`` (``kan_conv1d``), ``"conv2d"`` (``kan_conv2d``) or ``"linear"``
    (``kan_linear``)."""
    if layer not in LAYER_BACKENDS:
        raise ValueError(
            f"layer: expected one of {', '.join(map(repr, LAYER_BACKENDS))}, got {layer!r}"
        )
    if device is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        found: list[str] = []
        for dev in devices:
            found += [b for b in available_backends(dev, layer) if b not in found]
        return found
    if layer != "conv1d":
        return [b for b in available_backends(device) if b in LAYER_BACKENDS[layer]]
    device_type = torch.device(device).type
    backends = []
    if device_type == "cpu":
        backends.append("cpu")
    if triton_ops is not None and triton_ops.runs_on(device):
        backends.append("triton")
    if device_type == "cuda" and _CUDA_KERNELS_BUILT and torch.cuda.is_available():
        backends.append("cuda")
    return backends + ["reference", "unfold"]


def backend_arg(backend: str) -> str:
    """``backend`` if it names a backend (available here or not)."""
    if backend not in BACKENDS:
        raise ValueError(
            f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {backend!r}"
        )
    return backend


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The concrete backend for ``x``; depends only on device, dtype and the build, so the choice
    is made at trace time under ``torch.compile``."""
    backend_arg(backend)
    device_type = x.device.type
    if backend == "auto":
        if device_type == "cpu" and x.dtype in _FUSED_CPU_DTYPES:
            return "cpu"
        if device_type == "cuda" and x.dtype in _FUSED_GPU_DTYPES:
            if triton_ops is not None and triton_ops.runs_on(x.device):
                return "triton"
            if _CUDA_KERNELS_BUILT:
                return "cuda"
        return "reference"
    if backend not in available_backends(x.device):
        hint = ""
        if backend == "triton" and device_type == "cpu" and triton_ops is not None:
            hint = (
                " (Triton runs on CPU tensors only with TRITON_INTERPRET=1 set before "
                "mkcc_kernels is first imported)"
            )
        raise ValueError(
            f"backend: {backend!r} is not available for {device_type} tensors here{hint}; "
            f"available: {', '.join(map(repr, available_backends(x.device)))}"
        )
    if backend == "cpu" and x.dtype not in _FUSED_CPU_DTYPES:
        raise TypeError(
            f"x: backend 'cpu' supports float32 and float64, got {x.dtype} "
            "(use backend='reference' for other dtypes)"
        )
    if backend in ("triton", "cuda") and x.dtype not in _FUSED_GPU_DTYPES:
        raise TypeError(
            f"x: backend {backend!r} supports float32, float16 and bfloat16, got {x.dtype} "
            "(use backend='reference' for other dtypes)"
        )
    return backend


def resolve_conv2d_backend(backend: str, x: torch.Tensor) -> str:
    """``resolve_backend`` for ``kan_conv2d``, which has no CUDA C++ kernels: ``"auto"`` takes
    Triton on CUDA tensors (the reference where Triton is missing), ``"cuda"`` is an error."""
    backend_arg(backend)
    if backend == "cuda":
        raise ValueError(
            "backend: 'cuda' (the CUDA C++ kernels) has no KANConv2d kernels; use 'triton' for "
            "CUDA tensors"
        )
    resolved = resolve_backend(backend, x)
    return "reference" if resolved == "cuda" else resolved
