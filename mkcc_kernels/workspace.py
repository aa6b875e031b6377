"""Buffers the ``cpu`` backend keeps between calls.

Inside a call the fused CPU kernels need packed weights, a transposed ``grad_out`` and per-chunk
weight-gradient sums. Each calling thread keeps these buffers and reuses them on its next call,
so large layers do not fault in fresh pages every step. ``set_cpu_workspace_limit`` bounds what
one thread keeps (256 MiB by default); past it a call allocates and frees its own buffers.
"""

from __future__ import annotations

import operator

from . import _C


def cpu_workspace_bytes() -> int:
    """Bytes of reused buffers the calling thread holds."""
    return int(_C.cpu_workspace_bytes())


def release_cpu_workspace() -> None:
    """Frees the calling thread's reused buffers (later calls allocate them again)."""
    _C.release_cpu_workspace()


def cpu_workspace_limit() -> int:
    """The most bytes of reused buffers one thread may hold."""
    return int(_C.cpu_workspace_limit())


def set_cpu_workspace_limit(nbytes: int) -> None:
    """Sets the most bytes of reused buffers one thread may hold, for every thread (0 keeps
    none). Buffers already held stay until ``release_cpu_workspace`` or the thread's exit."""
    if isinstance(nbytes, bool):
        raise TypeError(f"nbytes: expected an int >= 0, got {nbytes!r}")
    try:
        value = operator.index(nbytes)
    except TypeError:
        raise TypeError(
            f"nbytes: expected an int >= 0, got {type(nbytes).__name__} {nbytes!r}"
        ) from None
    if value < 0:
        raise ValueError(f"nbytes: expected an int >= 0, got {value}")
    _C.set_cpu_workspace_limit(value)
