"""Indexing a local RAVDESS copy by file name: usable clips, and every other file with a reason."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .audio import probe_audio
from .aus import probe_openface_csv
from .errors import DataFileError
from .names import (
    CHANNEL_SONG,
    EMOTIONS,
    MODALITY_AUDIO_ONLY,
    MODALITY_AUDIO_VIDEO,
    MODALITY_VIDEO_ONLY,
    RavdessName,
    looks_like_ravdess,
    parse_name,
)
from .splits import all_folds

EXTENSIONS = (".wav", ".mp4", ".csv")
_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Skipped:
    """A file that gives no clip: its path (relative to the root, ``/``-separated) and why;
    ``broken`` when the file cannot be read (rather than not being needed)."""

    path: str
    reason: str
    broken: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Clip:
    """One usable audio-visual speech clip.

    ``clip_id`` is the 7-field stem of its OpenFace CSV (``01-01-EE-II-SS-RR-AA``); ``emotion``,
    ``intensity``, ``statement`` and ``repetition`` are the name's codes (1-based) and ``label``
    is ``emotion - 1``. Audio comes from ``audio_path``: the ``03-01-…wav`` of the take, else the
    audio track of its ``01-01-…mp4`` (``audio_source`` says which). ``video_path`` is the take's
    ``01-01-…mp4`` when the copy has one.
    """

    clip_id: str
    actor: int
    emotion: int
    label: int
    intensity: int
    statement: int
    repetition: int
    audio_path: Path
    au_path: Path
    audio_source: str
    video_path: Path | None = None

    @property
    def emotion_name(self) -> str:
        return EMOTIONS[self.label]


@dataclass
class DatasetIndex:
    """Usable clips under ``root`` (sorted by actor, then id) and skipped files (by path)."""

    root: Path
    clips: list[Clip]
    skipped: list[Skipped]

    def per_actor(self) -> dict[int, int]:
        """Clip count of every actor that has at least one usable clip, by actor id."""
        counts = Counter(clip.actor for clip in self.clips)
        return {actor: counts[actor] for actor in sorted(counts)}

    def per_emotion(self) -> dict[str, int]:
        """Clip count of each of the eight emotions (zero included), in code order."""
        counts = Counter(clip.label for clip in self.clips)
        return {name: counts[label] for label, name in enumerate(EMOTIONS)}

    def summary(self, n_folds: int = 5) -> dict:
        """The summary object: clip count, per-actor and per-emotion counts, skipped files, and
        the train/val/test clip counts of each fold of ``fold_split(k, n_folds)``."""
        per_actor = self.per_actor()
        folds = []
        for fold, split in enumerate(all_folds(n_folds)):
            sizes = {
                part: sum(per_actor.get(a, 0) for a in getattr(split, part)) for part in _PARTS
            }
            folds.append({"fold": fold, **sizes})
        return {
            "clips": len(self.clips),
            "per_actor": {str(actor): count for actor, count in per_actor.items()},
            "per_emotion": self.per_emotion(),
            "skipped": [entry.to_dict() for entry in self.skipped],
            "folds": folds,
        }


def index_dataset(
    root: str | os.PathLike,
    exclude: Iterable[str | os.PathLike] = (),
    check_files: bool = True,
) -> DatasetIndex:
    """Walk ``root`` (any folder layout; symlinked folders followed once) and pair files by name.

    A clip is usable when its take has an OpenFace CSV ``01-01-…csv`` and audio (``03-01-…wav``,
    else the audio track of ``01-01-…mp4``), wherever they lie in the tree. With
    ``check_files`` the files a clip would read are probed without decoding (a complete wav
    header with samples, an mp4 with an audio stream, a CSV header with the AU columns and a
    row); a file that fails is skipped with the reason and the next candidate is used (a
    duplicate, or the mp4 for a broken wav). Every other file is listed in ``skipped`` with a
    reason: names that are not RAVDESS names or are invalid, song, video-only, unsupported
    types, duplicates (the usable copy with the fewest folders, then the first path in sorted
    order, is kept), and files of takes that lack audio or a CSV. Folders in ``exclude`` (for
    example a feature cache inside the root) are not walked.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise ValueError(f"root: expected a folder holding a RAVDESS copy, got {str(root)!r}")
    root_path = root_path.resolve()
    excluded = {Path(path).expanduser().resolve() for path in exclude}
    skipped: list[Skipped] = []
    candidates: dict[str, dict[tuple, list[str]]] = {"wav": {}, "mp4": {}, "csv": {}}
    names: dict[tuple, RavdessName] = {}
    for rel in _walk(root_path, excluded):
        role, detail = _classify(rel)
        if role is None:
            skipped.append(Skipped(rel, detail))
            continue
        name = parse_name(_split_name(rel)[0])
        names[name.take] = name
        candidates[role].setdefault(name.take, []).append(rel)

    def pick(role: str, take: tuple, probe: Callable[[Path], None] | None) -> str | None:
        """The first usable candidate of a role (fewest folders, then path order); the others
        are skipped as broken or as duplicates of it."""
        chosen = None
        for rel in sorted(candidates[role].get(take, ()), key=lambda p: (p.count("/"), p)):
            if chosen is not None:
                skipped.append(Skipped(rel, f"duplicate of {chosen}, which is used"))
                continue
            try:
                if probe is not None:
                    probe(root_path / rel)
            except DataFileError as error:
                skipped.append(Skipped(rel, error.reason, broken=True))
                continue
            chosen = rel
        return chosen

    audio_probe = probe_audio if check_files else None
    csv_probe = probe_openface_csv if check_files else None
    clips: list[Clip] = []
    for take, name in names.items():
        csv = pick("csv", take, csv_probe)
        wav = pick("wav", take, audio_probe)
        mp4 = pick("mp4", take, audio_probe if wav is None else None)
        clip_id = name.stem(MODALITY_AUDIO_VIDEO)
        if csv is None:
            broken = "usable " if take in candidates["csv"] else ""
            reason = f"no {broken}OpenFace CSV {clip_id}.csv for this take"
            skipped.extend(Skipped(path, reason) for path in (wav, mp4) if path is not None)
            continue
        if wav is None and mp4 is None:
            wav_name = name.stem(MODALITY_AUDIO_ONLY) + ".wav"
            broken = "usable " if take in candidates["wav"] or take in candidates["mp4"] else ""
            reason = f"no {broken}audio for this take: neither {wav_name} nor {clip_id}.mp4"
            skipped.append(Skipped(csv, reason))
            continue
        clips.append(
            Clip(
                clip_id=clip_id,
                actor=name.actor,
                emotion=name.emotion,
                label=name.label,
                intensity=name.intensity,
                statement=name.statement,
                repetition=name.repetition,
                audio_path=root_path / (wav if wav is not None else mp4),
                au_path=root_path / csv,
                audio_source="wav" if wav is not None else "mp4",
                video_path=None if mp4 is None else root_path / mp4,
            )
        )
    clips.sort(key=lambda clip: (clip.actor, clip.clip_id))
    skipped.sort(key=lambda entry: entry.path)
    return DatasetIndex(root=root_path, clips=clips, skipped=skipped)


def _walk(root: Path, excluded: set[Path]) -> list[str]:
    """Relative ``/``-separated paths of every file under ``root``, sorted."""
    found: list[str] = []
    visited: set[str] = set()
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if Path(folder, d).resolve() not in excluded)
        rel_folder = Path(folder).relative_to(root)
        for filename in filenames:
            found.append((rel_folder / filename).as_posix())
    return sorted(found)


def _split_name(rel: str) -> tuple[str, str]:
    """(stem, lower-case extensions) of the file name of ``rel``, split at its first dot."""
    stem, dot, ext = rel.rsplit("/", 1)[-1].partition(".")
    return stem, (dot + ext).lower()


def _classify(rel: str) -> tuple[str | None, str]:
    """(role, "") for a file that may serve a clip (role ``wav``, ``mp4`` or ``csv``), else
    (None, reason)."""
    stem, ext = _split_name(rel)
    if not looks_like_ravdess(stem):
        return None, "not a RAVDESS file name (MM-VV-EE-II-SS-RR-AA.wav|.mp4|.csv)"
    if ext not in EXTENSIONS:
        return None, f"unsupported file type {ext or '(none)'!r}; expected .wav, .mp4 or .csv"
    try:
        name = parse_name(stem)
    except ValueError as error:
        return None, f"invalid RAVDESS name: {error}"
    if name.modality == MODALITY_VIDEO_ONLY:
        kind = "song" if name.channel == CHANNEL_SONG else "speech"
        return None, f"video-only {kind} (modality 02) is not used"
    if name.channel == CHANNEL_SONG:
        return None, "song (vocal channel 02) is not used"
    if ext == ".wav" and name.modality == MODALITY_AUDIO_ONLY:
        return "wav", ""
    if ext in (".mp4", ".csv") and name.modality == MODALITY_AUDIO_VIDEO:
        return ext[1:], ""
    expected = "03 (audio-only)" if ext == ".wav" else "01 (audio-video)"
    return None, f"a {ext} file must have modality {expected}, got {name.modality:02d}"
