"""Command-line options shared by ``mkcc-train``, ``mkcc-eval`` and ``mkcc-ablate``: the data and
split, the model switches, the feature switches and the named recipes (``--recipe``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .data import FeatureConfig, Split
from .experiment import make_split, parse_actors
from .model import HEADS, POOL_PLACEMENTS, ModelConfig
from .recipes import RECIPES


def number_list(text: str, kind: type, name: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: expected comma-separated numbers, got {text!r}"
        ) from None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ModelConfig()
    group = parser.add_argument_group("model")
    group.add_argument("--layer-type", choices=("kan", "cnn"), default=defaults.layer_type)
    group.add_argument(
        "--scales",
        type=lambda t: number_list(t, int, "--scales"),
        default=defaults.scales,
        help="kernel sizes used, a subset of 3,5,7 (default 3,5,7)",
    )
    group.add_argument(
        "--channels-part1",
        type=int,
        default=defaults.channels_part1,
        help="channels per scale in part 1 (default %(default)s)",
    )
    group.add_argument(
        "--channels-part2",
        type=int,
        default=defaults.channels_part2,
        help="channels per scale in part 2 (default %(default)s)",
    )
    group.add_argument("--no-attention", action="store_true", help="no cross-modal attention")
    group.add_argument(
        "--attention-residual",
        action=argparse.BooleanOptionalAction,
        default=defaults.attention_residual,
        help="add each branch's input to its cross-modal attention output (eq. 11 has no "
        "residual; default off)",
    )
    group.add_argument("--heads", type=int, default=defaults.heads)
    group.add_argument(
        "--modality-weight",
        type=float,
        default=defaults.modality_weight,
        help="a: audio x a, video x (1 - a) (default %(default)s)",
    )
    group.add_argument(
        "--pool-placement",
        choices=POOL_PLACEMENTS,
        default=defaults.pool_placement,
        help="max-pool both branches after the first cross-modal block (the paper) or before it "
        "(default %(default)s)",
    )
    group.add_argument(
        "--audio-pool", type=int, default=defaults.audio_pool, help="(default %(default)s)"
    )
    group.add_argument(
        "--video-pool",
        type=int,
        default=defaults.video_pool,
        help="(default %(default)s; 1: no pooling)",
    )
    group.add_argument(
        "--backend",
        default=defaults.backend,
        help="KANConv1d backend: auto, cpu, cuda, triton, reference, unfold (default auto)",
    )
    group.add_argument(
        "--head",
        choices=HEADS,
        default=defaults.head,
        help="classifier: linear (the paper) or kan (a KANLinear on the model's grid settings; "
        "default %(default)s)",
    )
    group.add_argument("--grid-size", type=int, default=defaults.grid_size)
    group.add_argument("--spline-order", type=int, default=defaults.spline_order)
    group.add_argument(
        "--grid-range",
        type=lambda t: number_list(t, float, "--grid-range"),
        default=defaults.grid_range,
        help="LO,HI of the spline grid (default -2,2)",
    )


def model_config_from_args(args: argparse.Namespace) -> ModelConfig:
    return ModelConfig(
        layer_type=args.layer_type,
        scales=tuple(args.scales),
        channels_part1=args.channels_part1,
        channels_part2=args.channels_part2,
        attention=not args.no_attention,
        attention_residual=args.attention_residual,
        heads=args.heads,
        modality_weight=args.modality_weight,
        pool_placement=args.pool_placement,
        audio_pool=args.audio_pool,
        video_pool=args.video_pool,
        backend=args.backend,
        grid_size=args.grid_size,
        spline_order=args.spline_order,
        grid_range=tuple(args.grid_range),
        head=args.head,
    )


def add_data_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        required=data_required,
        help="'demo' (the generated stand-in, made on first use) or a RAVDESS-layout folder",
    )
    group.add_argument("--fold", type=int, default=0, help="fold index (default 0)")
    group.add_argument("--n-folds", type=int, default=5, choices=(5, 6))
    group.add_argument("--train-actors", help="explicit split: comma-separated actor ids")
    group.add_argument("--val-actors", help="explicit split: comma-separated actor ids")
    group.add_argument("--test-actors", help="explicit split: comma-separated actor ids")
    group.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="demo data and feature cache (default $MKCC_CACHE or ~/.cache/mkcc)",
    )
    group.add_argument(
        "--demo-actors", type=int, default=24, help="actors in the generated demo set"
    )
    group.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="a broken data file: skip it (counted, listed by mkcc-data summarize) or stop",
    )


def split_from_args(args: argparse.Namespace) -> Split:
    def actors(value: str | None, name: str) -> tuple[int, ...] | None:
        return None if value is None else parse_actors(value, name)

    return make_split(
        args.fold,
        args.n_folds,
        actors(args.train_actors, "--train-actors"),
        actors(args.val_actors, "--val-actors"),
        actors(args.test_actors, "--test-actors"),
    )


def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FeatureConfig()
    group = parser.add_argument_group("features")
    group.add_argument(
        "--au-normalize",
        action=argparse.BooleanOptionalAction,
        default=defaults.au_normalize,
        help="standardize every AU column per video (not in the paper, which keeps OpenFace's own "
        "normalization; default off)",
    )


def feature_config_from_args(args: argparse.Namespace) -> FeatureConfig:
    return FeatureConfig(au_normalize=args.au_normalize)


def add_recipe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="paper",
        help="a named set of defaults: 'paper' (the paper's settings) or 'v0.1' (mkcc 0.1: "
        "residual attention, audio-only pooling before the attention, AU z-score, SGD dampening "
        "0.9, step lr schedule); options given explicitly override it",
    )


def parse_with_recipe(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parses ``argv`` with the defaults of the ``--recipe`` it names; explicit options win."""
    known, _ = parser.parse_known_args(argv)
    parser.set_defaults(**RECIPES[known.recipe])
    return parser.parse_args(argv)
