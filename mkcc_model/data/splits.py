"""Actor-disjoint splits: the 5-fold rule, its 6-fold variant and explicit actor lists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .names import ACTORS, N_ACTORS

ACTORS_PER_GROUP = 4
FOLD_COUNTS = (5, 6)


@dataclass(frozen=True)
class Split:
    """Actor ids (1..24) of the train, validation and test parts; the three are disjoint."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for part in ("train", "val", "test"):
            actors = getattr(self, part)
            if not isinstance(actors, tuple):
                raise TypeError(
                    f"{part}: expected a tuple of actor ids, got {type(actors).__name__}"
                )
            for actor in actors:
                if isinstance(actor, bool) or not isinstance(actor, int):
                    raise TypeError(f"{part}: actor ids must be int, got {actor!r}")
                if actor not in ACTORS:
                    raise ValueError(f"{part}: actor {actor} is outside 1..{N_ACTORS}")
                if actor in seen:
                    where = "twice" if seen[actor] == part else f"in {seen[actor]} and {part}"
                    raise ValueError(
                        f"{part}: actor {actor} appears {where}; parts must be disjoint"
                    )
                seen[actor] = part
        if not self.train:
            raise ValueError("train: no actors")
        if not self.test:
            raise ValueError("test: no actors")

    def part_of(self, actor: int) -> str | None:
        """``"train"``, ``"val"``, ``"test"``, or None for an actor in no part."""
        for part in ("train", "val", "test"):
            if actor in getattr(self, part):
                return part
        return None


def fold_split(fold: int, n_folds: int = 5) -> Split:
    """The reproducible actor split of ``fold``.

    Fold ``k`` tests actors ``4k+1 .. 4k+4``, validates on ``4k+5 .. 4k+8`` (wrapping past 24 to
    actor 1) and trains on the other 16. With ``n_folds=5`` (the default) actors 21..24 are never
    tested; ``n_folds=6`` adds fold 5 (test 21..24, validation 1..4), so every actor is tested once.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int):
        raise TypeError(f"n_folds: expected int, got {type(n_folds).__name__}")
    if n_folds not in FOLD_COUNTS:
        raise ValueError(f"n_folds: expected one of {FOLD_COUNTS}, got {n_folds}")
    if isinstance(fold, bool) or not isinstance(fold, int):
        raise TypeError(f"fold: expected int, got {type(fold).__name__}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold: expected 0..{n_folds - 1} for n_folds={n_folds}, got {fold}")
    start = ACTORS_PER_GROUP * fold
    test = tuple((start + i) % N_ACTORS + 1 for i in range(ACTORS_PER_GROUP))
    val = tuple((start + ACTORS_PER_GROUP + i) % N_ACTORS + 1 for i in range(ACTORS_PER_GROUP))
    train = tuple(actor for actor in ACTORS if actor not in test and actor not in val)
    return Split(train=train, val=val, test=test)


def all_folds(n_folds: int = 5) -> list[Split]:
    """``[fold_split(k, n_folds) for k in range(n_folds)]``."""
    return [fold_split(fold, n_folds) for fold in range(n_folds)]


def explicit_split(train: Iterable[int], val: Iterable[int], test: Iterable[int]) -> Split:
    """A split from explicit actor lists (sorted); ``val`` may be empty. Raises on overlap."""
    return Split(train=_actor_tuple(train), val=_actor_tuple(val), test=_actor_tuple(test))


def _actor_tuple(actors: Iterable[int]) -> tuple[int, ...]:
    values = tuple(actors)
    return tuple(sorted(values)) if all(isinstance(a, int) for a in values) else values
