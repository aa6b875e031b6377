"""Classification metrics: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``[num_classes, num_classes]`` int64 counts, rows = true class, columns = predicted."""
    predictions, labels = _check(predictions, labels, num_classes)
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def metrics_from_confusion(confusion: Tensor, class_names: Sequence[str]) -> dict:
    """``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1",
    "support"}}, "confusion": rows}`` from a confusion matrix; fractions in 0..1.

    A class never predicted has precision 0, one never present recall 0, and F1 is 0 when
    precision + recall is 0 (the convention of scikit-learn's ``zero_division=0``). Macro-F1 is
    the unweighted mean of the per-class F1 over every class, present or not.
    """
    if not isinstance(confusion, Tensor) or confusion.dim() != 2:
        raise TypeError("confusion: expected a 2-D tensor")
    num_classes = confusion.shape[0]
    if confusion.shape[1] != num_classes or len(class_names) != num_classes:
        raise ValueError(
            f"class_names: expected {num_classes} names for a {tuple(confusion.shape)} confusion "
            f"matrix, got {len(class_names)}"
        )
    counts = confusion.to(torch.float64)
    true_positive = counts.diagonal()
    predicted = counts.sum(dim=0)
    actual = counts.sum(dim=1)
    total = counts.sum()
    per_class = {}
    f1_values = []
    for index, name in enumerate(class_names):
        tp = float(true_positive[index])
        precision = tp / float(predicted[index]) if predicted[index] > 0 else 0.0
        recall = tp / float(actual[index]) if actual[index] > 0 else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        f1_values.append(f1)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(actual[index]),
        }
    return {
        "accuracy": float(true_positive.sum() / total) if total > 0 else 0.0,
        "macro_f1": sum(f1_values) / num_classes,
        "per_class": per_class,
        "confusion": confusion.to(torch.int64).tolist(),
    }


def classification_metrics(predictions: Tensor, labels: Tensor, class_names: Sequence[str]) -> dict:
    """Metrics of integer ``predictions [N]`` against ``labels [N]`` (see
    ``metrics_from_confusion``)."""
    return metrics_from_confusion(
        confusion_matrix(predictions, labels, len(class_names)), class_names
    )


def _check(predictions: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    for name, value in (("predictions", predictions), ("labels", labels)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(
                f"{name}: expected a 1-D integer tensor, got {value.dtype} "
                f"of shape {tuple(value.shape)}"
            )
    if predictions.shape != labels.shape:
        raise ValueError(
            f"labels: shape {tuple(labels.shape)} differs from predictions' "
            f"{tuple(predictions.shape)}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    for name, value in (("predictions", predictions), ("labels", labels)):
        if value.numel() and (value.min() < 0 or value.max() >= num_classes):
            raise ValueError(f"{name}: expected values in 0..{num_classes - 1}")
    return predictions.to(torch.int64).cpu(), labels.to(torch.int64).cpu()
