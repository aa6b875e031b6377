"""Fused KAN convolution kernels: ``kan_conv1d``, ``KANConv1d``, ``MultiScaleKANConv1d``."""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import (
    _C,  # noqa: F401  (registers the mkcc ops)
    ops,  # noqa: F401  (fake kernels and autograd)
)
from .backends import available_backends, build_info
from .functional import kan_conv1d
from .modules import KANConv1d, MultiScaleKANConv1d
from .workspace import (
    cpu_workspace_bytes,
    cpu_workspace_limit,
    release_cpu_workspace,
    set_cpu_workspace_limit,
)

__all__ = [
    "KANConv1d",
    "MultiScaleKANConv1d",
    "available_backends",
    "build_info",
    "cpu_workspace_bytes",
    "cpu_workspace_limit",
    "kan_conv1d",
    "release_cpu_workspace",
    "set_cpu_workspace_limit",
]
