"""Smoke tests of ``bench.conv2d_bench`` (not part of `make test`; no timing assertions):

    pytest bench/test_conv2d_benchmark.py

A tiny shape through the benchmark's functions and its command line (rows for every provider
that can run, the table, the CSV columns and metrics, the plots), and one pytest-benchmark case
per provider.
"""

from __future__ import annotations

import csv

import pytest
import torch

from .conv2d_bench import (
    PROVIDERS,
    format_table,
    fused_op_available,
    long_rows,
    main,
    make_providers,
    max_rel_errors,
    peak_bytes,
    run_shape,
    shape_label,
)
from .kan_bench import CSV_COLUMNS
from .linear_bench import make_step

SHAPE = (2, 4, 6, 7, 6, 3, 1)
GROUPED = (2, 4, 4, 6, 6, 3, 4)
FAST = dict(warmup=1, repeats=2, min_seconds=0.0, max_seconds=1.0, round_seconds=0.001)


def has_convkan() -> bool:
    try:
        import convkan  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("shape", [SHAPE, GROUPED], ids=shape_label)
def test_providers_share_weights_and_skip_with_a_note(shape):
    notes: list[str] = []
    names = [p for p in PROVIDERS if p != "reference-compiled"]
    providers, base, spline = make_providers(names, shape, 5, 3, None, notes)
    assert {"reference", "unfold", "conv2d"} <= set(providers)
    # a provider that cannot run is left out with a note, never replaced
    for name in ("cpu", "convkan"):
        assert (name in providers) != any(note.startswith(name) for note in notes)
    assert ("cpu" in providers) == fused_op_available()
    assert ("convkan" in providers) == has_convkan()
    x = torch.randn(shape[0], shape[1], shape[3], shape[4])
    errors = max_rel_errors(providers, x, base, spline, shape[6], 3)
    assert set(errors) == set(providers) - {"reference", "conv2d"}
    assert all(error < 1e-5 for error in errors.values()), errors
    # the memory guard
    notes.clear()
    guarded, _, _ = make_providers(["unfold", "convkan"], shape, 5, 3, 1.0, notes)
    assert not guarded and len(notes) == 2


def test_peak_bytes_counts_what_a_call_allocates():
    def step():
        a = torch.empty(1 << 20)  # 4 MiB, alive with b
        b = torch.empty(1 << 19)
        del a, b

    assert peak_bytes(step) == (1 << 22) + (1 << 21)


def test_run_shape_rows_and_table():
    names = ["reference", "unfold", "conv2d"] + (["convkan"] if has_convkan() else [])
    results = run_shape(SHAPE, names, ["fwd", "fwd+bwd"], log=lambda line: None, **FAST)
    assert [(r.provider, r.mode) for r in results] == [
        (name, mode) for mode in ("fwd", "fwd+bwd") for name in names
    ]
    for r in results:
        assert len(r.times_ms) >= 2 and r.p50 > 0 and r.gflops > 0
        assert ("saved_mb" in r.extra) == (r.mode == "fwd+bwd")
        assert r.extra["peak_mb"] > 0
        assert "speedup_vs_compiled" not in r.extra  # no baseline measured
        assert ("speedup_vs_convkan" in r.extra) == has_convkan()
    conv = next(r for r in results if r.provider == "conv2d" and r.mode == "fwd+bwd")
    assert conv.extra["saved_mb"] <= conv.extra["bound_mb"]
    table = format_table(results, ["fwd", "fwd+bwd"])
    assert table.count(f"\n| {SHAPE} |") == len(results)
    assert "`cpu` vs `reference-compiled`, fwd: not measured" in table
    assert "Goals: `cpu` not measured." in table
    metrics = {row[5] for row in long_rows(results)}
    assert {"ms", "gflops", "saved_mb", "bound_mb", "saved_over_bound", "peak_mb"} <= metrics


def test_command_line_csv_and_plots(tmp_path, capsys):
    path = tmp_path / "conv2d.csv"
    main(
        ["--shapes", ",".join(map(str, SHAPE[:6])), "--providers",
         "cpu,reference-compiled,convkan,conv2d", "--warmup", "1", "--repeats", "2",
         "--min-seconds", "0", "--max-seconds", "1", "--round-ms", "1", "--gemm-size", "64",
         "--csv", str(path), "--plot", str(tmp_path / "conv2d")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "GEMM rate" in printed and "geometric-mean speed-up" in printed
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert {r["op"] for r in rows} == {"mm", "kan_conv2d"}
    providers = {r["provider"] for r in rows if r["op"] == "kan_conv2d"}
    assert {"reference-compiled", "conv2d"} <= providers
    assert ("cpu" in providers) != ("cpu: skipped" in printed)
    assert {r["shape"] for r in rows if r["op"] == "kan_conv2d"} == {shape_label(SHAPE)}
    speedups = [r for r in rows if r["metric"] == "speedup_vs_compiled"]
    assert {r["mode"] for r in speedups} == {"fwd", "fwd+bwd"}
    if "cpu" in providers:
        assert "`cpu` vs `reference-compiled` fwd+bwd: geometric mean" in printed
    for name in ("conv2d_speedup.png", "conv2d_memory.png"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "reference-compiled"])
def test_kan_conv2d_benchmark(benchmark, provider, mode):
    """pytest-benchmark: each provider (those that can run here) at the tiny shape."""
    torch.set_num_threads(2)
    notes: list[str] = []
    providers, _, _ = make_providers([provider], SHAPE, 5, 3, None, notes)
    if provider not in providers:
        pytest.skip(notes[0])
    benchmark.group = f"{shape_label(SHAPE)} {mode}"
    x = torch.randn(SHAPE[0], SHAPE[1], SHAPE[3], SHAPE[4])
    grad_out = torch.randn(SHAPE[0], SHAPE[2], SHAPE[3], SHAPE[4])
    step = make_step(providers[provider], x, mode, grad_out)
    step()
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
