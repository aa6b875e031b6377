"""pytest-benchmark suite over the KANConv1d providers on the CPU (not part of `make test`):

    pytest bench --benchmark-only

Same providers, shapes and inputs as ``python -m bench.kan_bench`` (fp32, 2 threads, grid 5,
cubic, ``padding="same"``).
"""

from __future__ import annotations

import pytest
import torch

import mkcc_kernels

from .kan_bench import CANONICAL_SHAPES, make_layer, make_step

PROVIDERS = [
    provider
    for provider in ("cpu", "reference", "reference-compiled", "unfold", "conv1d")
    if provider != "cpu" or "cpu" in mkcc_kernels.available_backends("cpu")
]


@pytest.mark.parametrize("mode", ["fwd", "bwd", "fwd+bwd"])
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("shape", CANONICAL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_kan_conv1d(benchmark, shape, provider, mode):
    torch.set_num_threads(2)
    benchmark.group = f"{'x'.join(map(str, shape))} {mode}"
    layer, inputs = make_layer(provider, shape, torch.float32, "cpu", 5, 3)
    step = make_step(layer, inputs, mode)
    step()  # compiles, allocates
    rounds = 3 if provider == "unfold" else 10
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1)
