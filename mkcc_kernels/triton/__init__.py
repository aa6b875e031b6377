"""Triton kernels of KANConv1d (``@triton.jit`` code only; registration lives in ``ops``)."""
