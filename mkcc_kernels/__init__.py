"""Fused KAN layers: ``kan_conv1d``, ``KANConv1d``, ``MultiScaleKANConv1d``; ``kan_conv2d``,
``KANConv2d``; ``kan_linear``, ``KANLinear``, ``KAN`` (efficient-kan compatible);
``convert_to_kan`` (a model's convolutions as KAN layers)."""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import (
    _C,  # noqa: F401  (registers the mkcc ops)
    ops,  # noqa: F401  (fake kernels and autograd)
)
from .backends import available_backends, build_info
from .functional import kan_conv1d, kan_conv2d
from .kan_linear import KAN, KANLinear, kan_linear
from .modules import KANConv1d, KANConv2d, MultiScaleKANConv1d, convert_to_kan
from .workspace import (
    cpu_workspace_bytes,
    cpu_workspace_limit,
    release_cpu_workspace,
    set_cpu_workspace_limit,
)

__all__ = [
    "KAN",
    "KANConv1d",
    "KANConv2d",
    "KANLinear",
    "MultiScaleKANConv1d",
    "available_backends",
    "build_info",
    "convert_to_kan",
    "cpu_workspace_bytes",
    "cpu_workspace_limit",
    "kan_conv1d",
    "kan_conv2d",
    "kan_linear",
    "release_cpu_workspace",
    "set_cpu_workspace_limit",
]
