"""The README benchmark table, generated from a results CSV of ``bench.kan_bench``.

    python -m bench.report bench/results/cpu_bench.csv                  # print the table
    python -m bench.report bench/results/cpu_bench.csv --update-readme  # rewrite it in README.md

For every (shape, dtype, mode) the latest row of each provider is used; the table gives the fused
backend's median time, its speed-up over ``torch.compile(reference)`` and over ``unfold``, and
the bytes each saves for backward.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from pathlib import Path

FUSED = ("cpu", "triton", "cuda")
README = Path(__file__).resolve().parent.parent / "README.md"


def load(path: Path) -> dict[tuple[str, ...], dict[str, str]]:
    """(provider, mode, shape, dtype, device, metric) -> the latest row."""
    latest: dict[tuple[str, ...], dict[str, str]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            key = tuple(row[k] for k in ("provider", "mode", "shape", "dtype", "device", "metric"))
            if key not in latest or row["time"] >= latest[key]["time"]:
                latest[key] = row
    return latest


def table(path: Path) -> str:
    rows = load(path)
    cases = list(dict.fromkeys((k[2], k[3], k[4], k[1]) for k in rows))  # in measured order
    out = [
        "| shape (B, C_in, C_out, T, k) | dtype | mode | fused | median ms | vs compiled reference "
        "| vs unfold | saved MB: fused / compiled ref. / unfold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    speedups: dict[tuple[str, str, str], list[float]] = {}

    def value(provider, case, metric):
        shape, dtype, device, mode = case
        row = rows.get((provider, mode, shape, dtype, device, metric))
        return None if row is None else float(row["p50"])

    for case in cases:
        shape, dtype, device, mode = case
        for fused in FUSED:
            ms = value(fused, case, "ms")
            if ms is None:
                continue
            ratios = []
            for peer in ("reference-compiled", "unfold"):
                peer_ms = value(peer, case, "ms")
                ratios.append("-" if peer_ms is None else f"{peer_ms / ms:.2f}x")
                if peer_ms is not None:
                    speedups.setdefault((fused, peer, mode), []).append(peer_ms / ms)
            saved = [value(p, case, "saved_mb") for p in (fused, "reference-compiled", "unfold")]
            saved_text = " / ".join("-" if v is None else f"{v:.1f}" for v in saved)
            dims = ", ".join(shape.split("x"))
            out.append(
                f"| ({dims}) | {dtype} | {mode} | {fused} | {ms:.2f} | {ratios[0]} "
                f"| {ratios[1]} | {saved_text if mode != 'fwd' else '-'} |"
            )
    out.append("")
    for (fused, peer, mode), values in sorted(speedups.items()):
        geomean = math.exp(sum(map(math.log, values)) / len(values))
        out.append(
            f"- `{fused}` vs `{peer}`, {mode}: geometric mean {geomean:.2f}x "
            f"(min {min(values):.2f}x, max {max(values):.2f}x) over {len(values)} shapes"
        )
    machines = sorted({r["machine"] for r in rows.values()})
    commits = sorted({r["commit"] for r in rows.values()})
    out.append("")
    out.append(
        f"Source: `{path.as_posix()}` (machine {', '.join(machines)}; commit {', '.join(commits)})."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="replace the table between the BENCHMARK markers of README.md",
    )
    args = parser.parse_args(argv)
    text = table(args.csv)
    if not args.update_readme:
        print(text)
        return
    readme = README.read_text()
    start, end = "<!-- BENCHMARK:START -->", "<!-- BENCHMARK:END -->"
    if start not in readme or end not in readme:
        raise SystemExit(f"README.md: markers {start} / {end} not found")
    readme = re.sub(
        re.escape(start) + r".*?" + re.escape(end),
        lambda _: f"{start}\n{text}\n{end}",
        readme,
        flags=re.S,
    )
    README.write_text(readme)
    print(f"README.md: table updated from {args.csv}")


if __name__ == "__main__":
    main()
