"""The paper's studies over the folds: ``mkcc-ablate --data ROOT --out DIR``.

Table 4 (architecture): CNN layers, KAN at one, two and three scales, KAN without the
cross-modal attention. Table 5 (modality weights): the full model with audio x a and video
x (1 - a) for several ``a``. Every (variant, fold) trains into ``DIR/<variant>/fold<K>/`` (a
finished run is reused, an interrupted one resumed); ``DIR/ablation.md`` gets the table of mean
± standard deviation over folds of accuracy and macro-F1 with the paper's numbers beside them,
``DIR/ablation.json`` the per-fold values.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .checkpoint import atomic_write_text
from .data import Split
from .experiment import default_cache_dir, make_split, prepare_features, resolve_device
from .model import ModelConfig
from .train import LAST_CHECKPOINT, TrainConfig, train

DEFAULT_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
# The paper's headline result for the full model (accuracy, F1, in %); the other rows of its
# Tables 4 and 5 are not available here.
PAPER_FULL_MODEL = (75.62, 77.23)


@dataclass(frozen=True)
class Variant:
    name: str
    study: str
    description: str
    config: ModelConfig
    paper: tuple[float, float] | None = None


def table4_variants(base: ModelConfig) -> list[Variant]:
    """Layer type, number of scales and attention, everything else as ``base``."""
    return [
        Variant(
            "cnn",
            "Table 4",
            "CNN layers, scales 3/5/7, attention",
            replace(base, layer_type="cnn", scales=(3, 5, 7), attention=True),
        ),
        Variant(
            "kan-single",
            "Table 4",
            "KAN, scale 3, attention",
            replace(base, layer_type="kan", scales=(3,), attention=True),
        ),
        Variant(
            "kan-dual",
            "Table 4",
            "KAN, scales 3/5, attention",
            replace(base, layer_type="kan", scales=(3, 5), attention=True),
        ),
        Variant(
            "kan-no-attention",
            "Table 4",
            "KAN, scales 3/5/7, no attention",
            replace(base, layer_type="kan", scales=(3, 5, 7), attention=False),
        ),
        Variant(
            "mkcc",
            "Table 4",
            "KAN, scales 3/5/7, attention (full model)",
            replace(base, layer_type="kan", scales=(3, 5, 7), attention=True),
            PAPER_FULL_MODEL,
        ),
    ]


def table5_variants(base: ModelConfig, weights: Sequence[float]) -> list[Variant]:
    """The full model with modality weight ``a`` for each of ``weights``."""
    return [
        Variant(
            f"mkcc-a{a:g}",
            "Table 5",
            f"full model, audio x {a:g}, video x {1 - a:g}",
            replace(
                base, layer_type="kan", scales=(3, 5, 7), attention=True, modality_weight=float(a)
            ),
        )
        for a in weights
    ]


def mean_std(values: Sequence[float]) -> str:
    """``"mean ± std"`` in percent (sample std over folds; one fold has no spread)."""
    mean = 100 * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def format_table(rows: list[dict], folds: Sequence[int], epochs: int) -> str:
    lines = [
        f"Accuracy and macro-F1 on the test actors, % (mean ± sample std over folds "
        f"{', '.join(map(str, folds))}; {epochs} epochs each).",
        "",
        "| study | variant | setting | accuracy | macro-F1 | paper accuracy | paper F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        paper = row["paper"]
        paper_acc, paper_f1 = (f"{paper[0]:.2f}", f"{paper[1]:.2f}") if paper else ("n/a", "n/a")
        lines.append(
            f"| {row['study']} | {row['variant']} | {row['description']} "
            f"| {mean_std(row['accuracy'])} | {mean_std(row['macro_f1'])} "
            f"| {paper_acc} | {paper_f1} |"
        )
    lines += [
        "",
        "Paper column: the paper's headline result for the full model (accuracy 75.62, F1 77.23, "
        "actor-disjoint 16/4/4 split averaged over 5 runs). Its per-variant numbers of Tables 4 "
        "and 5 are not available here (n/a); nothing is filled in for them.",
    ]
    return "\n".join(lines) + "\n"


def run_ablation(
    features,
    out: Path,
    variants: Sequence[Variant],
    splits: Mapping[int, Split],
    train_config: TrainConfig,
    device: torch.device,
    progress: bool = True,
    data_name: str = "",
) -> list[dict]:
    """Trains (or reuses) every (variant, fold) on ``splits[fold]`` and writes ``ablation.md``
    and ``ablation.json``; returns the rows of the table."""
    folds = list(splits)
    rows = []
    done: dict[tuple[ModelConfig, int], dict] = {}  # a configuration listed twice runs once
    for variant in variants:
        row = {
            "study": variant.study,
            "variant": variant.name,
            "description": variant.description,
            "paper": variant.paper,
            "accuracy": [],
            "macro_f1": [],
            "folds": list(folds),
        }
        for fold in folds:
            run_dir = out / variant.name / f"fold{fold}"
            metrics = done.get((variant.config, fold))
            if metrics is None:
                metrics = _finished_metrics(run_dir, variant.config, train_config)
            if metrics is None:
                print(f"== {variant.name}, fold {fold} -> {run_dir}", flush=True)
                metrics = train(
                    features,
                    splits[fold],
                    run_dir,
                    variant.config,
                    train_config,
                    resume=(run_dir / LAST_CHECKPOINT).exists(),
                    device=device,
                    progress=progress,
                    run_info={"data": data_name, "fold": fold},
                )
            done[(variant.config, fold)] = metrics
            row["accuracy"].append(metrics["test"]["accuracy"])
            row["macro_f1"].append(metrics["test"]["macro_f1"])
        rows.append(row)
        _write_outputs(out, rows, folds, train_config.epochs)
    return rows


def _finished_metrics(run_dir: Path, config: ModelConfig, train_config: TrainConfig) -> dict | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    saved = metrics["config"]
    same_train = {k: v for k, v in saved["train"].items() if k != "resolved_milestones"}
    if saved["model"] != config.to_dict() or same_train != train_config.to_dict():
        raise ValueError(
            f"out: {run_dir} holds a finished run with other settings; use another --out"
        )
    return metrics


def _write_outputs(out: Path, rows: list[dict], folds: Sequence[int], epochs: int) -> None:
    atomic_write_text(format_table(rows, folds, epochs), out / "ablation.md")
    atomic_write_text(json.dumps(rows, indent=2) + "\n", out / "ablation.json")


def _floats(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if not values or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"--weights: expected values in [0, 1], got {text!r}")
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mkcc-ablate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="'demo' or a RAVDESS-layout folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--folds",
        type=_ints,
        default=None,
        help="comma-separated folds (default: all of --n-folds)",
    )
    parser.add_argument("--n-folds", type=int, default=5, choices=(5, 6))
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated subset of the variant names (default: all; see --list)",
    )
    parser.add_argument(
        "--weights",
        type=_floats,
        default=DEFAULT_WEIGHTS,
        help="modality weights a of Table 5 (default 0.3,0.4,0.5,0.6,0.7)",
    )
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--demo-actors", type=int, default=24)
    parser.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="a broken data file: skip it (counted) or stop",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    base = ModelConfig(backend=args.backend)
    variants = table4_variants(base) + table5_variants(base, args.weights)
    if args.list:
        for variant in variants:
            print(f"{variant.name:18s} {variant.study}: {variant.description}")
        return []
    if args.variants is not None:
        wanted = [v for v in args.variants.split(",") if v]
        known = {v.name: v for v in variants}
        unknown = [v for v in wanted if v not in known]
        if unknown or not wanted:
            raise SystemExit(f"--variants: unknown {unknown}; expected among {', '.join(known)}")
        variants = [known[name] for name in wanted]
    folds = args.folds if args.folds is not None else tuple(range(args.n_folds))
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    features = prepare_features(
        args.data,
        args.cache_dir or default_cache_dir(),
        demo_actors=args.demo_actors,
        progress=not args.no_progress,
        on_error=args.on_error,
    )
    rows = run_ablation(
        features,
        args.out,
        variants,
        {fold: make_split(fold, args.n_folds) for fold in folds},
        train_config,
        resolve_device(args.device),
        progress=not args.no_progress,
        data_name=args.data,
    )
    print((args.out / "ablation.md").read_text(), end="")
    return rows


def cli() -> None:
    main()


if __name__ == "__main__":
    cli()
