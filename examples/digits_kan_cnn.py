"""Train a small KAN-CNN (``KANConv2d`` layers) on scikit-learn's handwritten digits, beside the
same network built with ``nn.Conv2d``, and print test accuracy and time per epoch.

    python -m examples.digits_kan_cnn                      # fused CPU kernels (--backend auto)
    python -m examples.digits_kan_cnn --backend reference  # the basis expansion + conv2d
    make digits

Data: ``sklearn.datasets.load_digits`` (1797 grey 8x8 images, 10 classes, shipped with
scikit-learn: no download), pixel values 0..16 mapped linearly to the KAN grid range [-1, 1], a
seeded stratified split (80 % train, 20 % test).

Networks (the same but for the convolutions):

    KAN:  KANConv2d(1, 16, 3, padding=1)  -> BatchNorm -> MaxPool 2   8x8 -> 4x4
          KANConv2d(16, 32, 3, padding=1) -> BatchNorm -> MaxPool 2   4x4 -> 2x2 -> Linear(128, 10)
    conv: Conv2d(1, 16, 3, padding=1)  -> BatchNorm -> SiLU -> MaxPool 2
          Conv2d(16, 32, 3, padding=1) -> BatchNorm -> SiLU -> MaxPool 2 -> Linear(128, 10)

A KAN layer carries its nonlinearity on its inputs (every tap is ``w * silu(x) + spline(x)``),
so it has no activation after it; the plain network gets SiLU in that place. The BatchNorm keeps
the next KAN layer's inputs around the grid range. Both train with Adam and cross-entropy on the
same batches (same seed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

import mkcc_kernels

FUSED_OP = "kan_conv2d_fwd"


@dataclass
class Digits:
    x_train: Tensor  # [N, 1, 8, 8] in [-1, 1]
    y_train: Tensor  # [N] int64
    x_test: Tensor
    y_test: Tensor


def load_digits_split(seed: int = 0, test_fraction: float = 0.2, limit: int | None = None):
    """The digits as ``Digits``: pixels ``0..16 -> [-1, 1]``, a stratified split seeded by
    ``seed``; ``limit``: keep a stratified subset of that many images first (quick runs)."""
    from sklearn.datasets import load_digits  # scikit-learn: imported only where needed
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 8.0 - 1.0  # 0..16 -> [-1, 1]
    labels = digits.target.astype(np.int64)
    if limit is not None and limit < len(labels):
        images, _, labels, _ = train_test_split(
            images, labels, train_size=limit, stratify=labels, random_state=seed
        )
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )

    def tensors(x, y):
        return torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y)

    return Digits(*tensors(x_train, y_train), *tensors(x_test, y_test))


def build_model(kind: str, backend: str = "auto", channels: tuple[int, int] = (16, 32)):
    """The KAN-CNN (``kind="kan"``, ``KANConv2d`` layers on ``backend``) or the same network
    with ``nn.Conv2d`` and SiLU (``kind="conv"``); see the module docstring."""
    if kind not in ("kan", "conv"):
        raise ValueError(f"kind: expected 'kan' or 'conv', got {kind!r}")
    layers: list[nn.Module] = []
    in_channels = 1
    for out_channels in channels:
        if kind == "kan":
            layers.append(
                mkcc_kernels.KANConv2d(in_channels, out_channels, 3, padding=1, backend=backend)
            )
            layers.append(nn.BatchNorm2d(out_channels))
        else:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.SiLU(),
            ]
        layers.append(nn.MaxPool2d(2))
        in_channels = out_channels
    side = 8 // 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(in_channels * side * side, 10))


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    was_training = model.training
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(y), batch_size)
    )
    model.train(was_training)
    return correct / len(y)


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    test_accuracy: list[float] = field(default_factory=list)  # after each epoch
    epoch_seconds: list[float] = field(default_factory=list)  # training time of each epoch

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]


def train(
    model: nn.Module,
    data: Digits,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    desc: str = "",
) -> TrainResult:
    """Adam + cross-entropy, a learning rate decaying by cosine to zero, batches shuffled by a
    generator seeded with ``seed`` (the same batches for every model). Test accuracy after every
    epoch; the epoch times count training only."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(data.y_train) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    result = TrainResult()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch", leave=True)
    for _ in bar:
        model.train()
        order = torch.randperm(len(data.y_train), generator=generator)
        total, count = 0.0, 0
        started = time.perf_counter()
        for i in range(0, len(order), batch_size):
            index = order[i : i + batch_size]
            loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            count += len(index)
        result.epoch_seconds.append(time.perf_counter() - started)
        result.losses.append(total / count)
        result.test_accuracy.append(accuracy(model, data.x_test, data.y_test))
        bar.set_postfix(loss=f"{result.losses[-1]:.3f}", test_acc=f"{result.final_accuracy:.3f}")
    return result


def fused_op_available() -> bool:
    """Whether this build of the extension has the fused KANConv2d CPU op."""
    return hasattr(torch.ops.mkcc, FUSED_OP)


def main(argv: list[str] | None = None) -> dict[str, TrainResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "cpu", "reference", "unfold"],
        help="KANConv2d backend (default auto: the fused CPU kernels)",
    )
    parser.add_argument("--seed", type=int, default=0, help="split, initialization, batches")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam's initial learning rate")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    for name in ("epochs", "threads", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(args, name)}")
    if args.backend in ("auto", "cpu") and not fused_op_available():
        parser.error(
            f"--backend {args.backend}: this build of mkcc_kernels has no fused KANConv2d CPU op "
            f"(torch.ops.mkcc.{FUSED_OP}); rebuild the extension or pass --backend reference"
        )
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    data = load_digits_split(args.seed)
    print(
        f"digits: {len(data.y_train)} train / {len(data.y_test)} test images (8x8, stratified, "
        f"seed {args.seed}); {args.epochs} epochs, batch {args.batch_size}, {args.threads} "
        f"threads, KANConv2d backend {args.backend!r}"
    )
    results: dict[str, TrainResult] = {}
    rows = []
    for kind, name in (("kan", "KAN-CNN (KANConv2d)"), ("conv", "CNN (nn.Conv2d)")):
        torch.manual_seed(args.seed)
        model = build_model(kind, args.backend)
        params = sum(p.numel() for p in model.parameters())
        result = train(
            model,
            data,
            args.epochs,
            args.batch_size,
            args.lr,
            args.seed,
            progress=not args.no_progress,
            desc=name,
        )
        results[kind] = result
        rows.append((name, params, result))
    print()
    print("| network | parameters | test accuracy | s / epoch (median) | train s |")
    print("|---|---|---|---|---|")
    for name, params, result in rows:
        print(
            f"| {name} | {params} | {100 * result.final_accuracy:.2f} % "
            f"| {statistics.median(result.epoch_seconds):.3f} "
            f"| {sum(result.epoch_seconds):.1f} |"
        )
    print(f"\ntotal {time.perf_counter() - started:.1f} s (data, both networks, evaluation)")
    return results


if __name__ == "__main__":
    main()
