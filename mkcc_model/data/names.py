"""RAVDESS file names: ``MM-VV-EE-II-SS-RR-AA.ext`` parsed and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
"""Emotion names in code order: code 01 is ``EMOTIONS[0]``; the label is ``code - 1``."""

N_ACTORS = 24
ACTORS: tuple[int, ...] = tuple(range(1, N_ACTORS + 1))

MODALITY_AUDIO_VIDEO = 1
MODALITY_VIDEO_ONLY = 2
MODALITY_AUDIO_ONLY = 3
CHANNEL_SPEECH = 1
CHANNEL_SONG = 2

_STEM = re.compile(r"^\d\d(-\d\d){6}$")
_FIELDS = (
    ("modality", (1, 3)),
    ("vocal channel", (1, 2)),
    ("emotion", (1, 8)),
    ("intensity", (1, 2)),
    ("statement", (1, 2)),
    ("repetition", (1, 2)),
    ("actor", (1, N_ACTORS)),
)


@dataclass(frozen=True)
class RavdessName:
    """The seven fields of a RAVDESS file name, as integers."""

    modality: int
    channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def label(self) -> int:
        """Class label 0..7 (emotion code - 1)."""
        return self.emotion - 1

    @property
    def take(self) -> tuple[int, int, int, int, int, int]:
        """The fields shared by the audio-only, video-only and audio-video files of a take."""
        return (
            self.channel,
            self.emotion,
            self.intensity,
            self.statement,
            self.repetition,
            self.actor,
        )

    def stem(self, modality: int | None = None) -> str:
        """The ``MM-VV-EE-II-SS-RR-AA`` stem, optionally with another modality field."""
        fields = (self.modality if modality is None else modality, *self.take)
        return "-".join(f"{value:02d}" for value in fields)


def looks_like_ravdess(stem: str) -> bool:
    """True when ``stem`` has the shape of a RAVDESS name (seven two-digit fields)."""
    return _STEM.match(stem) is not None


def parse_name(stem: str) -> RavdessName:
    """Parse and validate a file stem such as ``"01-01-06-01-02-01-12"``.

    Raises ``ValueError`` saying which field is out of range, or that a neutral clip is marked
    strong (RAVDESS has no strong neutral).
    """
    if not looks_like_ravdess(stem):
        raise ValueError(
            f"stem: expected seven two-digit fields MM-VV-EE-II-SS-RR-AA, got {stem!r}"
        )
    values = [int(part) for part in stem.split("-")]
    for (field, (low, high)), value in zip(_FIELDS, values):
        if not low <= value <= high:
            raise ValueError(f"{field} {value:02d} is outside {low:02d}..{high:02d}")
    name = RavdessName(*values)
    if name.emotion == 1 and name.intensity == 2:
        raise ValueError("neutral (emotion 01) has no strong intensity (02)")
    return name
