"""Metrics against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from mkcc_model.metrics import classification_metrics, confusion_matrix, metrics_from_confusion

NAMES = ("a", "b", "c")


def test_confusion_matrix_rows_true_columns_predicted():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 2, 0])
    expected = torch.tensor([[1, 1, 0], [0, 2, 1], [1, 0, 0]])
    assert torch.equal(confusion_matrix(predictions, labels, 3), expected)


def test_metrics_hand_computed():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    predictions = torch.tensor([0, 1, 1, 1, 2, 0])
    m = classification_metrics(predictions, labels, NAMES)
    # class a: tp 1, predicted 2, actual 2 -> p 1/2, r 1/2, f1 1/2
    # class b: tp 2, predicted 3, actual 3 -> p 2/3, r 2/3, f1 2/3
    # class c: tp 0, predicted 1, actual 1 -> 0, 0, 0
    assert m["accuracy"] == pytest.approx(3 / 6)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 1], [1, 0, 0]]


def test_precision_and_recall_differ():
    # a: tp 2, predicted 2, actual 3 -> p 1, r 2/3, f1 0.8
    labels = torch.tensor([0, 0, 0, 1])
    predictions = torch.tensor([0, 0, 1, 1])
    m = classification_metrics(predictions, labels, NAMES)
    assert m["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert m["per_class"]["a"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["f1"] == pytest.approx(0.8)
    # b: tp 1, predicted 2, actual 1 -> p 1/2, r 1, f1 2/3; c absent -> 0
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["support"] == 0
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(0.75)


def test_perfect_predictions():
    labels = torch.tensor([2, 0, 1, 2])
    m = classification_metrics(labels.clone(), labels, NAMES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert all(v["f1"] == 1.0 for v in m["per_class"].values())


def test_metrics_from_confusion_same_as_from_predictions():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (50,), generator=generator)
    predictions = torch.randint(0, 3, (50,), generator=generator)
    direct = classification_metrics(predictions, labels, NAMES)
    via = metrics_from_confusion(confusion_matrix(predictions, labels, 3), NAMES)
    assert direct == via
    assert direct["accuracy"] == pytest.approx(float((labels == predictions).float().mean()))


@pytest.mark.parametrize(
    "predictions, labels, error, match",
    [
        (torch.tensor([0, 1]), torch.tensor([0]), ValueError, "labels"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), TypeError, "predictions"),
        (torch.tensor([0, 3]), torch.tensor([0, 1]), ValueError, "predictions"),
        (torch.tensor([0, 1]), torch.tensor([-1, 1]), ValueError, "labels"),
        ([0, 1], torch.tensor([0, 1]), TypeError, "predictions"),
    ],
)
def test_bad_arguments(predictions, labels, error, match):
    with pytest.raises(error, match=match):
        classification_metrics(predictions, labels, NAMES)


def test_class_names_must_match():
    with pytest.raises(ValueError, match="class_names"):
        metrics_from_confusion(torch.zeros(3, 3, dtype=torch.int64), ("a", "b"))
