"""Evaluate a trained MKCC checkpoint: ``mkcc-eval CHECKPOINT --data ROOT --fold K
[--modality-weight a]``.

The model is rebuilt from the configuration stored in the checkpoint (its input statistics are
those of its training actors), the features are extracted with the checkpoint's feature
settings, and the validation and test actors of the fold are scored. ``--modality-weight``
replaces the trained ``a`` (audio x a, video x (1 - a)) to measure how the model copes with a
weakened or silenced modality. Writes ``metrics.json`` and ``confusion.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .data import FeatureConfig
from .experiment import default_cache_dir, evaluate_model, prepare_features, resolve_device
from .model import MKCC, ModelConfig
from .options import add_data_arguments, split_from_args
from .train import print_summary, write_reports


def load_model(checkpoint: dict, device: torch.device) -> MKCC:
    """The model of a training checkpoint, in eval mode on ``device``."""
    model = MKCC(ModelConfig.from_dict(checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data: str,
    split,
    out: str | Path,
    cache_dir: Path | None = None,
    modality_weight: float | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    demo_actors: int = 24,
    progress: bool = True,
    run_info: dict | None = None,
    on_error: str = "skip",
) -> dict:
    """Metrics of the checkpoint's model on ``split.val`` and ``split.test``, written to
    ``out/metrics.json`` and ``out/confusion.png`` and returned."""
    device = torch.device(device)
    checkpoint = load_checkpoint(checkpoint_path)
    model = load_model(checkpoint, device)
    if modality_weight is not None:
        model.set_modality_weight(modality_weight)
    features = prepare_features(
        data,
        cache_dir or default_cache_dir(),
        FeatureConfig(**checkpoint["feature_config"]),
        demo_actors=demo_actors,
        progress=progress,
        on_error=on_error,
    )
    _, val_set, test_set = features.split(split)
    for name, subset in (("val", val_set), ("test", test_set)):
        if len(subset) == 0:
            raise ValueError(f"split: no clips for the {name} actors {getattr(split, name)}")
    trained = checkpoint.get("run", {}).get("split", {})
    overlap = sorted(set(trained.get("train", ())) & (set(split.val) | set(split.test)))
    model_config = model.config.to_dict()
    model_config["modality_weight"] = float(model.modality_weight)
    metrics = {
        "test": evaluate_model(model, test_set, batch_size, device),
        "val": evaluate_model(model, val_set, batch_size, device),
        "epochs": checkpoint["epoch"],
        "config": {
            "model": model_config,
            "train": checkpoint["train_config"],
            "features": checkpoint["feature_config"],
            "checkpoint": str(checkpoint_path),
            "trained_on": trained,
            "evaluated_actors_seen_in_training": overlap,
            **(run_info or {}),
            "split": {"train": list(split.train), "val": list(split.val), "test": list(split.test)},
        },
    }
    write_reports(metrics, None, Path(out))
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mkcc-eval",
        description="Evaluate an MKCC checkpoint on the validation and test actors of a fold.",
    )
    parser.add_argument("checkpoint", type=Path, help="best.pt or last.pt of a training run")
    add_data_arguments(parser)
    parser.add_argument(
        "--modality-weight",
        type=float,
        default=None,
        help="a: audio x a, video x (1 - a) (default: the trained value)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: eval-foldK[-aA] next to the checkpoint)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.modality_weight is not None and not 0.0 <= args.modality_weight <= 1.0:
        raise SystemExit(
            f"--modality-weight: expected a value in [0, 1], got {args.modality_weight}"
        )
    split = split_from_args(args)
    out = args.out
    if out is None:
        suffix = "" if args.modality_weight is None else f"-a{args.modality_weight:g}"
        out = args.checkpoint.parent / f"eval-fold{args.fold}{suffix}"
    metrics = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        split,
        out,
        cache_dir=args.cache_dir,
        modality_weight=args.modality_weight,
        batch_size=args.batch_size,
        device=resolve_device(args.device),
        demo_actors=args.demo_actors,
        progress=not args.no_progress,
        run_info={"data": args.data, "fold": args.fold, "n_folds": args.n_folds},
        on_error=args.on_error,
    )
    print_summary(metrics, out, with_curves=False)
    seen = metrics["config"]["evaluated_actors_seen_in_training"]
    if seen:
        print(f"warning: actors {seen} were among the checkpoint's training actors")
    return metrics


def cli() -> None:
    main()


if __name__ == "__main__":
    cli()
