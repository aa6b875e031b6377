"""What training, evaluation and the ablations share: where the data comes from, the actor
split, the process group, and evaluation of a model on a feature set (across processes)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .data import (
    EMOTIONS,
    FeatureConfig,
    FeatureSet,
    Split,
    explicit_split,
    fold_split,
    load_features,
    make_demo,
)
from .metrics import classification_metrics


def default_cache_dir() -> Path:
    """``$MKCC_CACHE`` when set, else ``~/.cache/mkcc``."""
    return Path(os.environ.get("MKCC_CACHE", Path.home() / ".cache" / "mkcc"))


def ensure_demo(cache_dir: Path, actors: int = 24, seed: int = 0) -> Path:
    """The stand-in dataset under ``cache_dir``, generated on first use and reused afterwards.
    It is written into a temporary sibling folder and renamed into place when complete, so an
    interrupted generation never leaves a half-written dataset behind."""
    cache_dir = Path(cache_dir)
    root = cache_dir / f"demo-actors{actors}-seed{seed}"
    if root.is_dir():
        return make_demo(root, actors=actors, seed=seed)  # checks that it is the same stand-in
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=cache_dir))
    try:
        make_demo(staging, actors=actors, seed=seed)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        os.replace(staging, root)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
        if not root.is_dir():
            raise
    return root


def data_root(data: str, cache_dir: Path, demo_actors: int = 24) -> Path:
    """The dataset folder for ``--data``: ``"demo"`` (generated) or a RAVDESS-layout folder."""
    if data == "demo":
        return ensure_demo(cache_dir, demo_actors)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"data: {root} is not a folder (expected 'demo' or a dataset root)")
    return root


def prepare_features(
    data: str,
    cache_dir: Path,
    feature_config: FeatureConfig | None = None,
    demo_actors: int = 24,
    progress: bool = True,
    on_error: str = "skip",
) -> FeatureSet:
    """Features of every usable clip. Under ``torch.distributed`` rank 0 generates and extracts
    first (filling the cache) while the others wait, then they read the cache. With
    ``on_error="skip"`` the files that give no clip are counted on stderr (rank 0); with
    ``"fail"`` the first broken file is an error naming it."""
    feature_config = feature_config or FeatureConfig()
    cache_dir = Path(cache_dir)

    def load(show: bool, report: bool = True) -> FeatureSet:
        root = data_root(data, cache_dir, demo_actors)
        features = load_features(root, cache_dir / "features", feature_config, on_error, show)
        if report and features.skipped:
            first = features.skipped[0]
            print(
                f"data: {len(features.skipped)} files under {root} give no clip (first: "
                f"{first.path}: {first.reason}); `mkcc-data summarize {root}` lists them all",
                file=sys.stderr,
            )
        return features

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        features = load(progress) if dist.get_rank() == 0 else None
        dist.barrier()
        return features if features is not None else load(False, report=False)
    return load(progress)


def parse_actors(text: str, name: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``; ``name`` is the option named in the error."""
    try:
        actors = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated actor ids, got {text!r}") from None
    if not actors:
        raise ValueError(f"{name}: expected at least one actor id")
    return actors


def make_split(
    fold: int,
    n_folds: int = 5,
    train_actors: Sequence[int] | None = None,
    val_actors: Sequence[int] | None = None,
    test_actors: Sequence[int] | None = None,
) -> Split:
    """The actor split: ``fold_split(fold, n_folds)``, or the explicit actors when all three
    lists are given."""
    given = [a is not None for a in (train_actors, val_actors, test_actors)]
    if any(given):
        if not all(given):
            raise ValueError(
                "train_actors: give the train, validation and test actors together (or none)"
            )
        return explicit_split(tuple(train_actors), tuple(val_actors), tuple(test_actors))
    return fold_split(fold, n_folds)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Joins the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``): NCCL for CUDA,
    gloo for CPU. A single process gets ``DistInfo()`` and no process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def current_dist() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
        )
    return DistInfo()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' asked for but CUDA is not available")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")


@torch.no_grad()
def evaluate_model(
    model: nn.Module, features: FeatureSet, batch_size: int, device: torch.device
) -> dict:
    """Loss and metrics of ``model`` on ``features`` (eval mode). Under ``torch.distributed``
    each rank scores every ``world_size``-th clip and the results are gathered, so every rank
    returns the metrics of the whole set. Adds ``"loss"`` (mean cross-entropy) to the metrics of
    ``classification_metrics``."""
    info = current_dist()
    was_training = model.training
    model.eval()
    indices = torch.arange(info.rank, len(features), info.world_size)
    predictions, losses = [], []
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        audio = features.audio[batch].to(device)
        aus = features.aus[batch].to(device)
        labels = features.labels[batch].to(device)
        logits = model(audio, aus)
        losses.append(F.cross_entropy(logits, labels, reduction="none").cpu())
        predictions.append(logits.argmax(dim=1).cpu())
    model.train(was_training)
    local = (
        indices,
        torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.int64),
        torch.cat(losses) if losses else torch.empty(0),
    )
    if info.active:
        gathered: list = [None] * info.world_size
        dist.all_gather_object(gathered, local)
        order = torch.cat([g[0] for g in gathered])
        predictions_all = torch.empty(len(features), dtype=torch.int64)
        losses_all = torch.empty(len(features))
        predictions_all[order] = torch.cat([g[1] for g in gathered])
        losses_all[order] = torch.cat([g[2] for g in gathered])
    else:
        predictions_all, losses_all = local[1], local[2]
    metrics = classification_metrics(predictions_all, features.labels, EMOTIONS)
    metrics["loss"] = float(losses_all.mean()) if len(losses_all) else 0.0
    return metrics
