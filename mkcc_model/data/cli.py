"""``mkcc-data``: summarize a RAVDESS copy, extract its features, or write the stand-in."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .config import FeatureConfig
from .errors import DataFileError
from .index import index_dataset
from .splits import FOLD_COUNTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mkcc-data", description="RAVDESS data pipeline of the MKCC model."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    summarize = commands.add_parser(
        "summarize", help="index a copy and print clip counts, skipped files and fold sizes (JSON)"
    )
    summarize.add_argument("root", help="folder holding the RAVDESS copy")
    summarize.add_argument(
        "--folds", type=int, choices=FOLD_COUNTS, default=5, help="fold rule of the fold sizes"
    )

    features = commands.add_parser(
        "features", help="extract and cache MFCC and AU features, print a JSON summary"
    )
    features.add_argument("root", help="folder holding the RAVDESS copy")
    features.add_argument("--cache", required=True, help="feature cache folder")
    features.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="a file that cannot be read: skip its clip and list it (default), or stop",
    )
    defaults = FeatureConfig()
    features.add_argument(
        "--sample-rate", type=int, default=defaults.sample_rate, help="Hz (default %(default)s)"
    )
    features.add_argument(
        "--n-mels", type=int, default=defaults.n_mels, help="mel bands (default %(default)s)"
    )
    features.add_argument(
        "--au-normalize",
        action=argparse.BooleanOptionalAction,
        default=defaults.au_normalize,
        help="standardize each AU column per video (not in the paper, which keeps OpenFace's "
        "scales; default off)",
    )
    features.add_argument("--workers", type=int, default=None, help="extraction threads")
    features.add_argument("--no-progress", action="store_true", help="no progress bar")

    demo = commands.add_parser("make-demo", help="write the generated stand-in dataset")
    demo.add_argument("out", help="new or empty folder")
    demo.add_argument("--actors", type=int, default=24, help="actors 1..N (default 24)")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 a data or argument error)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "summarize":
            result = index_dataset(args.root).summary(args.folds)
        elif args.command == "features":
            result = _features(args)
        else:
            result = _make_demo(args)
    except (DataFileError, ValueError, TypeError) as error:
        print(f"mkcc-data {args.command}: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _features(args: argparse.Namespace) -> dict:
    from .features import compute_features

    config = FeatureConfig(
        sample_rate=args.sample_rate, n_mels=args.n_mels, au_normalize=args.au_normalize
    )
    index = index_dataset(args.root, exclude=(args.cache,))
    features, stats = compute_features(
        index, args.cache, config, args.on_error, not args.no_progress, args.workers
    )
    return {
        "clips": len(features),
        "computed": stats.computed,
        "cached": stats.cached,
        "failed": stats.failed,
        "skipped": [entry.to_dict() for entry in features.skipped],
        "shapes": {
            "audio": list(features.audio.shape),
            "aus": list(features.aus.shape),
            "aus_mask": list(features.aus_mask.shape),
            "labels": list(features.labels.shape),
        },
        "config": config.to_dict(),
    }


def _make_demo(args: argparse.Namespace) -> dict:
    from .demo import make_demo

    root = make_demo(args.out, actors=args.actors, seed=args.seed)
    index = index_dataset(root)
    return {
        "root": str(root),
        "actors": args.actors,
        "seed": args.seed,
        "clips": len(index.clips),
        "skipped": len(index.skipped),
    }
