"""The layer-independent core of the Triton kernels: the features of a tile of input elements
and their contraction with packed weights. A layer's kernel (``kan_conv1d.py``) says which input
elements a tile reads (its taps: here positions along time) and where the results go; the
feature math lives in ``basis.py``.

The contract: ``_tap_features`` takes x values ``[C, M]`` (fp32, C channels x M elements) with a
mask of the elements that exist (a padded tap is masked: it contributes nothing) and returns the
``FEATURES`` features from feature index ``f0`` of each (feature 0 silu, 1 + i spline function i,
zero past G + K), or their derivatives, as ``[C, FEATURES, M]``: reshaped to
``[C * FEATURES, M]`` it is one operand of a dot. ``_contract`` adds ``a @ b`` to an fp32
accumulator in the precision the call asks for; the other operand is the layer's packed weights
(or, for the weight gradient, its output gradient).
"""

import triton
import triton.language as tl

from .basis import _tap_features

__all__ = ["_contract", "_tap_features"]


@triton.jit
def _contract(a, b, acc, IEEE_FP32: tl.constexpr):
    """``acc + a @ b`` with ``b`` in ``a``'s dtype: IEEE fp32 FMAs when ``IEEE_FP32`` (fp32
    operands, ``cudnn.allow_tf32`` off), otherwise tensor cores (TF32, fp16 or bf16)."""
    if IEEE_FP32:
        return tl.dot(a, b.to(a.dtype), acc, input_precision="ieee")
    return tl.dot(a, b.to(a.dtype), acc)
