"""Fixtures: poisoned kernel outputs, one run per CPU kernel build; Triton's interpreter when
there is no GPU."""

from __future__ import annotations

import os

import pytest
import torch

# Without a GPU the Triton kernels run under Triton's interpreter on CPU tensors; the switch must
# be set before the kernels are defined (first import of mkcc_kernels).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from mkcc_kernels import _C  # noqa: E402


@pytest.fixture(autouse=True)
def poison_outputs():
    """Every output the C++ kernels allocate starts as NaN: an unwritten element fails loudly."""
    _C.set_poison_outputs(True)
    yield
    _C.set_poison_outputs(False)


@pytest.fixture(params=_C.build_info()["cpu_isas"])
def cpu_isa(request):
    """Runs a test once per CPU kernel build this processor supports, then restores the default."""
    default = _C.build_info()["cpu_isa"]
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(default)
