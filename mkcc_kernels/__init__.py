"""Fused KAN convolution kernels: ``kan_conv1d``, ``KANConv1d``, ``MultiScaleKANConv1d``."""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import (
    _C,  # noqa: F401  (registers the mkcc ops)
    ops,  # noqa: F401  (fake kernels and autograd)
)
from .backends import available_backends, build_info
from .functional import kan_conv1d
from .modules import KANConv1d, MultiScaleKANConv1d

__all__ = [
    "KANConv1d",
    "MultiScaleKANConv1d",
    "available_backends",
    "build_info",
    "kan_conv1d",
]
