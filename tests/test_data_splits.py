"""Actor-disjoint splits: the 5-fold rule, the 6-fold variant, explicit lists, and their checks."""

from __future__ import annotations

import pytest

from mkcc_model.data import Split, all_folds, explicit_split, fold_split


@pytest.mark.parametrize(
    ("fold", "test", "val"),
    [
        (0, (1, 2, 3, 4), (5, 6, 7, 8)),
        (1, (5, 6, 7, 8), (9, 10, 11, 12)),
        (3, (13, 14, 15, 16), (17, 18, 19, 20)),
        (4, (17, 18, 19, 20), (21, 22, 23, 24)),
    ],
    ids=["fold0", "fold1", "fold3", "fold4"],
)
def test_five_fold_rule(fold, test, val):
    split = fold_split(fold)
    assert split.test == test
    assert split.val == val
    assert split.train == tuple(a for a in range(1, 25) if a not in test + val)
    assert len(split.train) == 16


def test_six_fold_variant_wraps_and_tests_every_actor_once():
    folds = all_folds(6)
    assert folds[5] == Split(train=tuple(range(5, 21)), val=(1, 2, 3, 4), test=(21, 22, 23, 24))
    tested = sorted(a for split in folds for a in split.test)
    assert tested == list(range(1, 25))
    assert all_folds(5) == folds[:5]
    never_tested = set(range(1, 25)) - {a for split in all_folds(5) for a in split.test}
    assert never_tested == {21, 22, 23, 24}


@pytest.mark.parametrize("n_folds", [5, 6])
def test_every_fold_is_disjoint_and_covers_all_actors(n_folds):
    for split in all_folds(n_folds):
        parts = [set(split.train), set(split.val), set(split.test)]
        assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2])
        assert parts[1].isdisjoint(parts[2])
        assert parts[0] | parts[1] | parts[2] == set(range(1, 25))


def test_explicit_split_sorts_and_allows_an_empty_validation_part():
    split = explicit_split([3, 1], [], (24,))
    assert split == Split(train=(1, 3), val=(), test=(24,))
    assert split.part_of(3) == "train" and split.part_of(24) == "test"
    assert split.part_of(7) is None


@pytest.mark.parametrize(
    ("train", "val", "test", "error", "message"),
    [
        ((1, 2), (2,), (3,), ValueError, "val: actor 2 appears in train and val"),
        ((1, 1), (2,), (3,), ValueError, "train: actor 1 appears twice"),
        ((1,), (2,), (1,), ValueError, "test: actor 1 appears in train and test"),
        ((1, 25), (2,), (3,), ValueError, "train: actor 25 is outside 1..24"),
        ((0,), (2,), (3,), ValueError, "train: actor 0 is outside"),
        ((), (2,), (3,), ValueError, "train: no actors"),
        ((1,), (2,), (), ValueError, "test: no actors"),
        (("1",), (2,), (3,), TypeError, "train: actor ids must be int"),
        ((1,), (True,), (3,), TypeError, "val: actor ids must be int"),
    ],
    ids=[
        "overlap",
        "repeat",
        "train-test",
        "actor25",
        "actor0",
        "no-train",
        "no-test",
        "str",
        "bool",
    ],
)
def test_explicit_split_rejects_bad_lists(train, val, test, error, message):
    with pytest.raises(error, match=message):
        explicit_split(train, val, test)


def test_split_constructor_checks_too():
    with pytest.raises(ValueError, match="disjoint"):
        Split(train=(1, 2), val=(), test=(2,))
    with pytest.raises(TypeError, match="train: expected a tuple"):
        Split(train=[1, 2], val=(), test=(3,))


@pytest.mark.parametrize(
    ("fold", "n_folds", "error", "message"),
    [
        (5, 5, ValueError, r"fold: expected 0\.\.4"),
        (-1, 6, ValueError, r"fold: expected 0\.\.5"),
        (0, 4, ValueError, "n_folds: expected one of"),
        (0.0, 5, TypeError, "fold: expected int"),
        (0, "5", TypeError, "n_folds: expected int"),
    ],
    ids=["fold5", "negative", "four-folds", "float", "str"],
)
def test_fold_split_rejects_bad_arguments(fold, n_folds, error, message):
    with pytest.raises(error, match=message):
        fold_split(fold, n_folds)
