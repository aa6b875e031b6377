"""Custom-op registrations (fake kernels, autograd) of each backend."""

from . import cpp  # noqa: F401
