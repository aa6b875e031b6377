"""Smoke tests of ``bench.linear_bench`` (not part of `make test`; no timing assertions):

    pytest bench/test_linear_benchmark.py

A tiny shape through the benchmark's functions and its command line: rows for every provider
that can run, the table, the CSV columns and metrics, the plots.
"""

from __future__ import annotations

import csv

import torch

import mkcc_kernels

from .kan_bench import CSV_COLUMNS
from .linear_bench import (
    PROVIDERS,
    efficient_kan_forward,
    format_table,
    long_rows,
    main,
    make_providers,
    max_rel_errors,
    run_shape,
)

SHAPE = (64, 8, 4)
FAST = dict(warmup=1, repeats=2, min_seconds=0.0, max_seconds=1.0, round_seconds=0.001)


def test_efficient_kan_forward_matches_kan_linear():
    torch.manual_seed(0)
    layer = mkcc_kernels.KANLinear(8, 4, backend="reference")
    x = torch.randn(32, 8)
    expected = layer(x)
    out = efficient_kan_forward(
        x, layer.base_weight, layer.spline_weight, layer.spline_scaler, layer.grid, 3
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_providers_share_state_and_skip_with_a_note():
    notes: list[str] = []
    providers = make_providers(list(PROVIDERS), SHAPE, 5, 3, None, notes)
    assert {"mkcc-reference", "efficient-kan", "efficient-kan-compiled", "linear"} <= set(providers)
    # a provider that cannot run is left out with a note, never replaced
    for name in ("mkcc-cpu", "pykan"):
        assert (name in providers) != any(note.startswith(name) for note in notes)
    eager = {k: v for k, v in providers.items() if k != "efficient-kan-compiled"}
    errors = max_rel_errors(eager, torch.randn(SHAPE[0], SHAPE[1]))
    assert errors and all(error < 1e-5 for error in errors.values())
    # pykan's memory guard
    notes.clear()
    assert "pykan" not in make_providers(["pykan"], SHAPE, 5, 3, 1.0, notes)
    assert len(notes) == 1 and notes[0].startswith("pykan")


def test_run_shape_rows_and_table():
    names = ["mkcc-reference", "efficient-kan", "linear"]
    results = run_shape(SHAPE, names, ["fwd", "fwd+bwd"], log=lambda line: None, **FAST)
    assert [(r.provider, r.mode) for r in results] == [
        (name, mode) for mode in ("fwd", "fwd+bwd") for name in names
    ]
    for r in results:
        assert len(r.times_ms) >= 2 and r.p50 > 0 and r.gflops > 0
        assert ("saved_mb" in r.extra) == (r.mode == "fwd+bwd")
        assert "speedup_vs_compiled" not in r.extra  # no baseline measured
    linear = next(r for r in results if r.provider == "linear" and r.mode == "fwd+bwd")
    assert linear.extra["saved_mb"] <= linear.extra["bound_mb"]
    table = format_table(results, ["fwd", "fwd+bwd"], None)
    assert table.count("\n| (64, 8, 4) |") == len(results)
    assert "`mkcc-cpu` vs `efficient-kan-compiled`, fwd" in table
    metrics = {row[5] for row in long_rows(results)}
    assert {"ms", "gflops", "saved_mb", "bound_mb", "saved_over_bound", "max_rel_err"} <= metrics


def test_command_line_csv_and_plots(tmp_path, capsys):
    path = tmp_path / "linear.csv"
    main(
        ["--shapes", ",".join(map(str, SHAPE)), "--providers",
         "mkcc-cpu,mkcc-reference,efficient-kan-compiled,linear", "--warmup", "1", "--repeats",
         "2", "--min-seconds", "0", "--max-seconds", "1", "--round-ms", "1", "--gemm-size", "64",
         "--csv", str(path), "--plot", str(tmp_path / "linear")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "GEMM rate" in printed and "geometric-mean speed-up" in printed
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert {r["op"] for r in rows} == {"mm", "kan_linear"}
    providers = {r["provider"] for r in rows if r["op"] == "kan_linear"}
    assert {"mkcc-reference", "efficient-kan-compiled", "linear"} <= providers
    assert ("mkcc-cpu" in providers) != ("mkcc-cpu: skipped" in printed)
    speedups = [r for r in rows if r["metric"] == "speedup_vs_compiled"]
    assert {r["mode"] for r in speedups} == {"fwd", "fwd+bwd"}
    for name in ("linear_speedup.png", "linear_memory.png"):
        assert (tmp_path / name).stat().st_size > 0
