"""Train MKCC on one actor split: ``mkcc-train --data demo|ROOT --fold K --out DIR``.

Also runs under ``torchrun --nproc-per-node N -m mkcc_model.train ...`` (DDP: gloo on CPU,
NCCL on GPU). ``--help`` lists every option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .checkpoint import atomic_save, atomic_write_text, load_checkpoint, rng_state, set_rng_state
from .data import EMOTIONS, ClipDataset, FeatureSet, Split, collate_clips
from .experiment import (
    current_dist,
    default_cache_dir,
    evaluate_model,
    init_distributed,
    prepare_features,
    resolve_device,
)
from .model import MKCC, ModelConfig
from .options import (
    add_data_arguments,
    add_feature_arguments,
    add_model_arguments,
    add_recipe_argument,
    feature_config_from_args,
    model_config_from_args,
    number_list,
    parse_with_recipe,
    split_from_args,
)
from .plots import plot_confusion, plot_curves
from .recipes import V01_TRAIN

# The step schedule (mkcc 0.1's, from the public audio-visual code it followed) divides the
# learning rate by 10 at these epochs of a 100-epoch run.
REFERENCE_EPOCHS = 100
REFERENCE_MILESTONES = (40, 55, 65, 70)
LR_SCHEDULES = ("constant", "step")
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass(frozen=True)
class TrainConfig:
    """The optimization recipe. Defaults: the paper's (§3.1: SGD, lr 0.04, momentum 0.9, weight
    decay 1e-3, 100 epochs; plain momentum, i.e. dampening 0; a constant learning rate, as the
    paper states no schedule; batch 8, which it does not state). ``lr_schedule="step"``
    multiplies the lr by ``lr_factor`` at ``milestones`` (``None``: 40, 55, 65, 70 of 100 epochs,
    scaled to ``epochs``)."""

    epochs: int = 100
    batch_size: int = 8
    lr: float = 0.04
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 1e-3
    lr_schedule: str = "constant"
    milestones: tuple[int, ...] | None = None
    lr_factor: float = 0.1
    seed: int = 0
    spline_reg: float = 0.0
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        for name in ("lr", "momentum", "dampening", "weight_decay", "lr_factor", "spline_reg"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule: expected one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        if self.milestones is not None and self.lr_schedule != "step":
            raise ValueError(
                f"milestones: used only with lr_schedule='step', got lr_schedule="
                f"{self.lr_schedule!r}"
            )
        if self.milestones is not None:
            milestones = tuple(self.milestones)
            if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones):
                raise ValueError(f"milestones: expected positive epoch numbers, got {milestones}")
            object.__setattr__(self, "milestones", tuple(sorted(milestones)))

    def resolved_milestones(self) -> tuple[int, ...]:
        """Epochs (0-based, counted from the start) at whose start the lr is multiplied by
        ``lr_factor``; a repeated epoch applies the factor once per repeat. None for a constant
        learning rate."""
        if self.lr_schedule == "constant":
            return ()
        if self.milestones is not None:
            return self.milestones
        scale = self.epochs / REFERENCE_EPOCHS
        return tuple(max(1, round(m * scale)) for m in REFERENCE_MILESTONES)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["milestones"] = None if self.milestones is None else list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The configuration of ``to_dict``; settings it lacks take mkcc 0.1's values."""
        values = {**{k: v for k, v in V01_TRAIN.items() if k not in data}, **data}
        if values.get("milestones") is not None:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)


EpochCallback = Callable[[int, dict], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(config: ModelConfig, train_set: FeatureSet, device: torch.device) -> MKCC:
    """A fresh model whose input statistics are those of ``train_set``."""
    model = MKCC(config)
    model.set_input_statistics(train_set.audio, train_set.aus, train_set.aus_mask)
    return model.to(device)


def train(
    features: FeatureSet,
    split: Split,
    out: str | Path,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = True,
    run_info: dict | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> dict:
    """Trains on ``split.train`` actors, selects the epoch with the best validation accuracy
    (macro-F1 breaks ties), evaluates that model on the validation and test actors and returns
    the metrics written to ``out/metrics.json``.

    Writes ``out/last.pt`` after every epoch and ``out/best.pt`` when validation improves (both
    atomically), ``out/metrics.json``, ``out/confusion.png``, ``out/curves.png``; under
    ``torch.distributed`` only rank 0 writes. ``resume=True`` continues from ``out/last.pt``
    exactly (model, optimizer, scheduler, random state, history, best epoch) with the
    configuration stored there; the configurations given must match it. ``on_epoch_end(epoch,
    record)`` is called after each epoch's checkpoint is written (epochs count from 1; a
    checkpoint's ``epoch`` is the number of epochs completed).
    """
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    device = torch.device(device)
    out = Path(out)
    info = current_dist()
    last_path, best_path = out / LAST_CHECKPOINT, out / BEST_CHECKPOINT
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(last_path)
        _check_same_config(checkpoint, model_config, train_config)
    elif last_path.exists() and not overwrite:
        raise FileExistsError(
            f"out: {out} already holds a run ({LAST_CHECKPOINT}); resume it or allow overwriting"
        )

    train_set, val_set, test_set = features.split(split)
    for name, subset in (("train", train_set), ("val", val_set), ("test", test_set)):
        if len(subset) == 0:
            raise ValueError(f"split: no clips for the {name} actors {getattr(split, name)}")

    seed_everything(train_config.seed)
    model = build_model(model_config, train_set, device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=train_config.lr,
        momentum=train_config.momentum,
        dampening=train_config.dampening,
        weight_decay=train_config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(train_config.resolved_milestones()), gamma=train_config.lr_factor
    )
    history: list[dict] = []
    best = {"epoch": 0, "accuracy": -1.0, "macro_f1": -1.0}
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        history = list(checkpoint["history"])
        best = dict(checkpoint["best"])
        start_epoch = checkpoint["epoch"]
        set_rng_state(checkpoint["rng"])

    net: nn.Module = model
    if info.active:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    sampler = DistributedSampler(
        ClipDataset(train_set),
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=train_config.seed,
    )
    loader = DataLoader(
        sampler.dataset,
        batch_size=train_config.batch_size,
        sampler=sampler,
        collate_fn=collate_clips,
    )
    run = {
        **(run_info or {}),
        "split": {"train": list(split.train), "val": list(split.val), "test": list(split.test)},
        "world_size": info.world_size,
        "device": str(device),
    }

    for epoch in range(start_epoch, train_config.epochs):
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        train_loss, train_accuracy = _train_epoch(
            net, model, loader, optimizer, train_config, device, epoch, progress and info.is_main
        )
        seconds = time.perf_counter() - started
        val = evaluate_model(model, val_set, train_config.eval_batch_size, device)
        scheduler.step()
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "seconds": seconds,
        }
        history.append(record)
        improved = (val["accuracy"], val["macro_f1"]) > (best["accuracy"], best["macro_f1"])
        if improved:
            best = {"epoch": epoch + 1, "accuracy": val["accuracy"], "macro_f1": val["macro_f1"]}
        if info.is_main:
            state = {
                "format": 1,
                "model": model.state_dict(),
                "model_config": model_config.to_dict(),
                "train_config": train_config.to_dict(),
                "feature_config": features.config.to_dict(),
                "run": run,
                "epoch": epoch + 1,
                "best": best,
                "history": history,
            }
            if improved:
                atomic_save(state, best_path)
            atomic_save(
                {
                    **state,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_state(),
                },
                last_path,
            )
            tqdm.write(
                f"epoch {epoch + 1}/{train_config.epochs}: train loss {train_loss:.4f} "
                f"acc {train_accuracy:.3f} | val loss {val['loss']:.4f} "
                f"acc {val['accuracy']:.3f} macro-F1 {val['macro_f1']:.3f} | "
                f"lr {lr:.2g} | {seconds:.1f} s",
                file=sys.stderr,
            )
        if info.active:
            dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    best_state = load_checkpoint(best_path)
    model.load_state_dict(best_state["model"])
    metrics = {
        "test": evaluate_model(model, test_set, train_config.eval_batch_size, device),
        "val": evaluate_model(model, val_set, train_config.eval_batch_size, device),
        "epochs": train_config.epochs,
        "config": {
            "model": model_config.to_dict(),
            "train": {
                **train_config.to_dict(),
                "resolved_milestones": list(train_config.resolved_milestones()),
            },
            "features": features.config.to_dict(),
            **run,
        },
    }
    metrics["val"]["best_epoch"] = best["epoch"]
    if info.is_main:
        write_reports(metrics, history, out)
    if info.active:
        dist.barrier()
    return metrics


def write_reports(metrics: dict, history: Sequence[dict] | None, out: Path) -> dict[str, Path]:
    """``metrics.json``, ``confusion.png`` (test set) and, given a history, ``curves.png``."""
    paths = {
        "metrics": atomic_write_text(json.dumps(metrics, indent=2) + "\n", out / "metrics.json"),
        "confusion": plot_confusion(
            metrics["test"]["confusion"],
            EMOTIONS,
            out / "confusion.png",
            f"test: accuracy {metrics['test']['accuracy']:.3f}, "
            f"macro-F1 {metrics['test']['macro_f1']:.3f}",
        ),
    }
    if history:
        paths["curves"] = plot_curves(history, out / "curves.png")
    return paths


def _train_epoch(
    net: nn.Module,
    model: MKCC,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    epoch: int,
    progress: bool,
) -> tuple[float, float]:
    """One pass over the training loader; returns (mean loss, accuracy) over all ranks."""
    net.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    bar = tqdm(
        loader,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    for batch in bar:
        audio = batch["audio"].to(device)
        aus = batch["aus"].to(device)
        labels = batch["label"].to(device)
        logits = net(audio, aus)
        loss = F.cross_entropy(logits, labels)
        if config.spline_reg > 0:
            loss = loss + config.spline_reg * model.spline_regularization()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count = labels.shape[0]
        value = loss.item()
        # Checked after the step, so that under DistributedDataParallel every rank has finished
        # this step's gradient all-reduce (the non-finite gradients reach every rank's weights,
        # and the others stop at their next step).
        if not math.isfinite(value):
            raise TrainingDiverged(_divergence_message(value, epoch, totals, config))
        totals += torch.tensor(
            [value * count, (logits.argmax(dim=1) == labels).sum().item(), count],
            dtype=torch.float64,
        )
        bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.3f}")
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    return float(totals[0] / totals[2]), float(totals[1] / totals[2])


class TrainingDiverged(RuntimeError):
    """The training loss became infinite or NaN; the checkpoints of earlier epochs are kept."""


def _divergence_message(value: float, epoch: int, totals: torch.Tensor, config: TrainConfig) -> str:
    step = int(totals[2].item()) // config.batch_size + 1
    return (
        f"training diverged: loss {value} at step {step} of epoch {epoch + 1} (lr "
        f"{config.lr:g}, momentum {config.momentum:g}, dampening {config.dampening:g}, batch "
        f"{config.batch_size}). A smaller step trains: --lr {config.lr / 10:g}, or --dampening "
        f"0.9, or --recipe v0.1. The checkpoints of the epochs before it are kept."
    )


def _check_same_config(
    checkpoint: dict, model_config: ModelConfig, train_config: TrainConfig
) -> None:
    differences = []
    saved_model = ModelConfig.from_dict(checkpoint["model_config"])
    saved_train = TrainConfig.from_dict(checkpoint["train_config"])
    for saved, given in ((saved_model, model_config), (saved_train, train_config)):
        for field in dataclasses.fields(saved):
            if getattr(saved, field.name) != getattr(given, field.name):
                differences.append(
                    f"{field.name} (run: {getattr(saved, field.name)!r}, "
                    f"given: {getattr(given, field.name)!r})"
                )
    if differences:
        raise ValueError(
            "resume: the options differ from those of the run being resumed: "
            + "; ".join(differences)
        )


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="mkcc-train",
        description="Train MKCC on one actor split; writes checkpoints, metrics.json, "
        "confusion.png and curves.png to --out.",
    )
    add_recipe_argument(parser)
    add_data_arguments(parser)
    add_feature_arguments(parser)
    group = parser.add_argument_group("training (defaults: the paper's)")
    group.add_argument("--epochs", type=int, default=defaults.epochs)
    group.add_argument("--batch-size", type=int, default=defaults.batch_size)
    group.add_argument("--lr", type=float, default=defaults.lr)
    group.add_argument("--momentum", type=float, default=defaults.momentum)
    group.add_argument(
        "--dampening",
        type=float,
        default=defaults.dampening,
        help="SGD dampening (default %(default)s: plain momentum, as the paper)",
    )
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="constant (the paper states no schedule) or step: the lr divided by 10 at "
        "--milestones (default %(default)s)",
    )
    group.add_argument(
        "--milestones",
        type=lambda t: number_list(t, int, "--milestones"),
        default=None,
        help="with --lr-schedule step: epochs where the lr is divided by 10 (default "
        "40,55,65,70 scaled to --epochs/100)",
    )
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument(
        "--spline-reg",
        type=float,
        default=defaults.spline_reg,
        help="weight of the spline L1 + entropy regularizer (default 0: off)",
    )
    group.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    add_model_arguments(parser)
    group = parser.add_argument_group("run")
    group.add_argument("--out", type=Path, required=True, help="output folder")
    group.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    group.add_argument("--overwrite", action="store_true", help="replace a run already in OUT")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per process (default: all cores divided among the local processes)",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        dampening=args.dampening,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        milestones=args.milestones,
        seed=args.seed,
        spline_reg=args.spline_reg,
        eval_batch_size=args.eval_batch_size,
    )


def set_threads(threads: int | None, local_world_size: int) -> None:
    if threads is None:
        if local_world_size <= 1:
            return
        threads = max(1, torch.get_num_threads() // local_world_size)
    if threads < 1:
        raise ValueError(f"--threads: expected a positive int, got {threads}")
    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parse_with_recipe(parser, argv)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    set_threads(args.threads, local_world)
    device = resolve_device(args.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = init_distributed(device)
    try:
        model_config = model_config_from_args(args)
        train_config = train_config_from_args(args)
        split = split_from_args(args)
        cache_dir = args.cache_dir or default_cache_dir()
        features = prepare_features(
            args.data,
            cache_dir,
            feature_config_from_args(args),
            demo_actors=args.demo_actors,
            progress=not args.no_progress,
            on_error=args.on_error,
        )
        metrics = train(
            features,
            split,
            args.out,
            model_config,
            train_config,
            resume=args.resume,
            overwrite=args.overwrite,
            device=device,
            progress=not args.no_progress,
            run_info={
                "data": args.data,
                "fold": args.fold,
                "n_folds": args.n_folds,
                "recipe": args.recipe,
            },
        )
        if info.is_main:
            print_summary(metrics, args.out, with_curves=True)
        return metrics
    finally:
        if info.active:
            dist.destroy_process_group()


def print_summary(metrics: dict, out: Path, with_curves: bool) -> None:
    test, val = metrics["test"], metrics["val"]
    print(
        f"test: accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
        f"({sum(row['support'] for row in test['per_class'].values())} clips)"
    )
    print(f"val:  accuracy {val['accuracy']:.4f}  macro-F1 {val['macro_f1']:.4f}")
    print(f"metrics:   {out / 'metrics.json'}")
    print(f"confusion: {out / 'confusion.png'}")
    if with_curves:
        print(f"curves:    {out / 'curves.png'}")


def cli() -> None:
    try:
        main()
    except TrainingDiverged as error:
        raise SystemExit(f"mkcc-train: {error}") from None


if __name__ == "__main__":
    cli()
