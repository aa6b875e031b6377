"""The paper's studies over the folds: ``mkcc-ablate --data ROOT --out DIR``.

Table 4 (architecture, nine rows): the CNN network; KAN without the cross-modal attention; KAN
at one scale (3, 5 or 7), two scales (3+5, 3+7, 5+7) and all three, each with the attention.
Table 5 (modality weights, eq. 14): the full model with audio x a and video x (1 - a) for
a = 0, 0.25, 0.5, 0.75, 1 (one model trained per weight; 0 and 1 are the single-modality cases).
Every (variant, fold) trains into ``DIR/<variant>/fold<K>/`` (a finished run is reused, an
interrupted one resumed; a configuration listed twice is trained once). ``DIR/ablation.md`` and
``DIR/ablation.csv`` get the mean ± standard deviation over folds of accuracy and macro-F1 with
the paper's number in the next column, ``DIR/ablation.png`` plots both, ``DIR/ablation.json``
holds the per-fold values.
"""

from __future__ import annotations

import argparse
import csv
import io
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
from .model import POOL_PLACEMENTS, ModelConfig
from .options import (
    add_feature_arguments,
    add_recipe_argument,
    feature_config_from_args,
    parse_with_recipe,
)
from .plots import plot_ablation
from .train import LAST_CHECKPOINT, LR_SCHEDULES, TrainConfig, TrainingDiverged, train

# Table 5's audio weights a (video 1 - a).
PAPER_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The paper's results, (accuracy %, F1 %): Table 4 by kernel sizes (None: the CNN; "kan": KAN
# without attention), Table 5 by audio weight. The headline is the full model, 75.62 / 77.23
# (its conclusion says 75.76 % accuracy).
PAPER_TABLE4 = {
    "cnn": (56.53, 58.34),
    "kan": (72.21, 74.24),
    (3,): (72.35, 74.40),
    (5,): (72.40, 74.50),
    (7,): (72.45, 74.60),
    (3, 5): (74.10, 75.80),
    (3, 7): (74.20, 75.90),
    (5, 7): (74.25, 76.00),
    (3, 5, 7): (75.62, 77.23),
}
PAPER_TABLE5 = {
    0.0: (73.50, 75.52),
    0.25: (74.10, 76.01),
    0.5: (75.62, 77.23),
    0.75: (74.80, 76.80),
    1.0: (72.80, 74.85),
}


@dataclass(frozen=True)
class Variant:
    name: str
    study: str
    description: str
    config: ModelConfig
    paper: tuple[float, float] | None = None


def table4_variants(base: ModelConfig) -> list[Variant]:
    """The nine rows of Table 4: layer type, kernel sizes and attention, everything else as
    ``base`` (the CNN row keeps the scales and attention of the full model)."""
    full = replace(base, layer_type="kan", scales=(3, 5, 7), attention=True)
    variants = [
        Variant(
            "cnn",
            "Table 4",
            "CNN layers, scales 3/5/7, attention",
            replace(full, layer_type="cnn"),
            PAPER_TABLE4["cnn"],
        ),
        Variant(
            "kan",
            "Table 4",
            "KAN, scales 3/5/7, no attention",
            replace(full, attention=False),
            PAPER_TABLE4["kan"],
        ),
    ]
    for scales in ((3,), (5,), (7,), (3, 5), (3, 7), (5, 7)):
        label = "/".join(map(str, scales))
        variants.append(
            Variant(
                "kan-" + "".join(map(str, scales)),
                "Table 4",
                f"KAN, scale{'s' if len(scales) > 1 else ''} {label}, attention",
                replace(full, scales=scales),
                PAPER_TABLE4[scales],
            )
        )
    variants.append(
        Variant(
            "mkcc",
            "Table 4",
            "KAN, scales 3/5/7, attention (full model)",
            full,
            PAPER_TABLE4[(3, 5, 7)],
        )
    )
    return variants


def table5_variants(base: ModelConfig, weights: Sequence[float] = PAPER_WEIGHTS) -> list[Variant]:
    """The full model with audio weight ``a`` for each of ``weights`` (the paper's number where
    the weight is one of Table 5's)."""
    full = replace(base, layer_type="kan", scales=(3, 5, 7), attention=True)
    return [
        Variant(
            f"mkcc-a{a:g}",
            "Table 5",
            f"full model, audio x {a:g}, video x {1 - a:g}",
            replace(full, modality_weight=float(a)),
            PAPER_TABLE5.get(float(a)),
        )
        for a in weights
    ]


def head_variants(base: ModelConfig) -> list[Variant]:
    """The full model with a KANLinear classifier instead of the paper's linear one (no paper
    number: the paper has no such row)."""
    full = replace(base, layer_type="kan", scales=(3, 5, 7), attention=True)
    return [
        Variant(
            "mkcc-kanhead",
            "Head",
            "full model, KANLinear classifier",
            replace(full, head="kan"),
        )
    ]


def mean_std(values: Sequence[float]) -> str:
    """``"mean ± std"`` in percent (sample std over folds; one fold has no spread)."""
    mean = 100 * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation in percent (None for one fold)."""
    mean = 100 * statistics.fmean(values)
    return mean, (100 * statistics.stdev(values) if len(values) > 1 else None)


def format_table(rows: list[dict], folds: Sequence[int], epochs: int) -> str:
    lines = [
        f"Accuracy and macro-F1 on the test actors, % (mean ± sample std over folds "
        f"{', '.join(map(str, folds))}; {epochs} epochs each), the paper's beside them.",
        "",
        "| study | variant | setting | accuracy | paper accuracy | macro-F1 | paper F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        paper = row["paper"]
        paper_acc, paper_f1 = (f"{paper[0]:.2f}", f"{paper[1]:.2f}") if paper else ("-", "-")
        lines.append(
            f"| {row['study']} | {row['variant']} | {row['description']} "
            f"| {mean_std(row['accuracy'])} | {paper_acc} | {mean_std(row['macro_f1'])} "
            f"| {paper_f1} |"
        )
    lines += [
        "",
        "Paper columns: Tables 4 and 5 of the paper (RAVDESS, actor-disjoint 16/4/4 split, "
        "results averaged over 5 runs; F1 averaging not stated). Its headline is the full model, "
        "75.62 / 77.23 (the conclusion says 75.76 % accuracy).",
    ]
    return "\n".join(lines) + "\n"


def format_csv(rows: list[dict]) -> str:
    """One line per variant: means and standard deviations in %, the paper's numbers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "study", "variant", "setting", "folds", "accuracy_mean", "accuracy_std",
            "paper_accuracy", "macro_f1_mean", "macro_f1_std", "paper_f1",
        ]
    )  # fmt: skip
    for row in rows:
        cells = [row["study"], row["variant"], row["description"], len(row["folds"])]
        for metric, paper_value in (("accuracy", 0), ("macro_f1", 1)):
            mean, std = _stats(row[metric])
            paper = row["paper"][paper_value] if row["paper"] else ""
            cells += [f"{mean:.2f}", "" if std is None else f"{std:.2f}", paper]
        writer.writerow(cells)
    return buffer.getvalue()


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
    atomic_write_text(format_csv(rows), out / "ablation.csv")
    atomic_write_text(json.dumps(rows, indent=2) + "\n", out / "ablation.json")
    plot_ablation(rows, out / "ablation.png")


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
    parser.add_argument("--data", help="'demo' or a RAVDESS-layout folder (required to run)")
    parser.add_argument("--out", type=Path, help="output folder (required to run)")
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
        default=PAPER_WEIGHTS,
        help="audio weights a of Table 5 (default 0,0.25,0.5,0.75,1: the paper's)",
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
    add_recipe_argument(parser)
    add_feature_arguments(parser)
    model, training = ModelConfig(), TrainConfig()
    group = parser.add_argument_group(
        "the settings every variant shares (defaults: the --recipe's; see mkcc-train --help)"
    )
    group.add_argument(
        "--attention-residual",
        action=argparse.BooleanOptionalAction,
        default=model.attention_residual,
    )
    group.add_argument("--pool-placement", choices=POOL_PLACEMENTS, default=model.pool_placement)
    group.add_argument("--video-pool", type=int, default=model.video_pool)
    group.add_argument("--lr", type=float, default=training.lr)
    group.add_argument("--dampening", type=float, default=training.dampening)
    group.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=training.lr_schedule)
    return parser


def shared_train_config(args: argparse.Namespace) -> TrainConfig:
    """The training settings every variant shares, from parsed ``mkcc-ablate`` arguments."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        dampening=args.dampening,
        lr_schedule=args.lr_schedule,
    )


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_with_recipe(build_parser(), argv)
    base = ModelConfig(
        backend=args.backend,
        attention_residual=args.attention_residual,
        pool_placement=args.pool_placement,
        video_pool=args.video_pool,
    )
    variants = table4_variants(base) + table5_variants(base, args.weights) + head_variants(base)
    if args.list:
        for variant in variants:
            paper = (
                f"paper {variant.paper[0]:.2f} / {variant.paper[1]:.2f}" if variant.paper else ""
            )
            print(f"{variant.name:12s} {variant.study}: {variant.description:45s} {paper}")
        return []
    for name in ("data", "out"):
        if getattr(args, name) is None:
            raise SystemExit(f"mkcc-ablate: --{name} is required (only --list runs without it)")
    if args.variants is not None:
        wanted = [v for v in args.variants.split(",") if v]
        known = {v.name: v for v in variants}
        unknown = [v for v in wanted if v not in known]
        if unknown or not wanted:
            raise SystemExit(f"--variants: unknown {unknown}; expected among {', '.join(known)}")
        variants = [known[name] for name in wanted]
    folds = args.folds if args.folds is not None else tuple(range(args.n_folds))
    train_config = shared_train_config(args)
    features = prepare_features(
        args.data,
        args.cache_dir or default_cache_dir(),
        feature_config_from_args(args),
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
    try:
        main()
    except TrainingDiverged as error:  # the variants finished before it stay in the tables
        raise SystemExit(f"mkcc-ablate: {error}") from None


if __name__ == "__main__":
    cli()
