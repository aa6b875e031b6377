"""Figures of a run: the confusion matrix and the training curves (matplotlib, Agg)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_confusion(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Row-normalized confusion matrix (colour = recall share, text = counts) as a PNG."""
    counts = np.asarray(confusion, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Loss, accuracy and learning rate per epoch from the training history (one dict per
    epoch with ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``,
    ``val_macro_f1``, ``lr``)."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    loss_ax.set_title("cross-entropy loss")
    acc_ax.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train accuracy")
    acc_ax.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val accuracy")
    acc_ax.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", label="val macro-F1")
    acc_ax.set_ylim(0.0, 1.0)
    acc_ax.set_title("accuracy and macro-F1")
    lr_ax.plot(epochs, [h["lr"] for h in history], marker="o")
    lr_ax.set_yscale("log")
    lr_ax.set_title("learning rate")
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Writes the PNG next to its target and renames it into place (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        fig.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def plot_ablation(rows: Sequence[dict], path: str | Path) -> Path:
    """Accuracy and macro-F1 per variant: ours (mean, with the standard deviation over folds as
    an error bar when there are several) beside the paper's, as a PNG."""
    names = [row["variant"] for row in rows]
    positions = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(6.4, 0.7 * len(rows) + 2), 6.4), sharex=True)
    for ax, metric, paper_index, label in (
        (axes[0], "accuracy", 0, "accuracy %"),
        (axes[1], "macro_f1", 1, "macro-F1 % (paper: F1)"),
    ):
        ours = [100 * float(np.mean(row[metric])) for row in rows]
        spread = [
            100 * float(np.std(row[metric], ddof=1)) if len(row[metric]) > 1 else 0.0
            for row in rows
        ]
        paper = [row["paper"][paper_index] if row["paper"] else np.nan for row in rows]
        ax.bar(positions - 0.2, ours, 0.4, yerr=spread, capsize=2, label="this run")
        ax.bar(positions + 0.2, paper, 0.4, label="paper")
        ax.set_ylabel(label)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower right")
    axes[1].set_xticks(positions, names, rotation=45, ha="right")
    fig.tight_layout()
    return _save(fig, path)
