"""Feature extraction over an indexed copy, with an on-disk cache keyed by file content and
parameters, and the resulting tensors."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soxr
import torch
from tqdm.auto import tqdm

from . import audio as audio_features
from . import aus as au_features
from .config import FeatureConfig
from .errors import DataFileError
from .index import Clip, DatasetIndex, Skipped, index_dataset
from .splits import Split

CACHE_FORMAT = 1
DEFAULT_CONFIG = FeatureConfig()
ON_ERROR = ("skip", "fail")
_ARRAYS = {"audio": ("mfcc",), "aus": ("aus", "mask")}
"""The arrays stored per cache entry of each kind."""
_HASH_CHUNK = 1 << 20


@dataclass
class FeatureSet:
    """Features of ``N`` clips, in index order (actor, then clip id).

    ``audio`` float32 ``[N, n_mfcc, T]``; ``aus`` float32 ``[N, 35, au_frames]``; ``aus_mask``
    bool ``[N, au_frames]`` (False where OpenFace lost the face or the video had ended; the AUs
    are 0 there); ``labels`` int64 ``[N]`` in 0..7; ``actors`` int64 ``[N]`` in 1..24;
    ``clip_ids`` the ``01-01-…`` stems; ``skipped`` every file of the copy that gave no clip
    (indexing and extraction); ``config`` the parameters used.
    """

    audio: torch.Tensor
    aus: torch.Tensor
    aus_mask: torch.Tensor
    labels: torch.Tensor
    actors: torch.Tensor
    clip_ids: list[str]
    skipped: list[Skipped]
    config: FeatureConfig

    def __len__(self) -> int:
        return len(self.clip_ids)

    def subset(self, actors: Iterable[int]) -> FeatureSet:
        """The clips of the given actor ids (order kept); ``skipped`` and ``config`` shared."""
        wanted = torch.tensor(sorted(set(actors)), dtype=torch.int64)
        keep = torch.isin(self.actors, wanted)
        positions = keep.nonzero().flatten().tolist()
        return FeatureSet(
            audio=self.audio[keep],
            aus=self.aus[keep],
            aus_mask=self.aus_mask[keep],
            labels=self.labels[keep],
            actors=self.actors[keep],
            clip_ids=[self.clip_ids[i] for i in positions],
            skipped=self.skipped,
            config=self.config,
        )

    def split(self, split: Split) -> tuple[FeatureSet, FeatureSet, FeatureSet]:
        """``(train, val, test)`` subsets of an actor split."""
        if not isinstance(split, Split):
            raise TypeError(f"split: expected a Split, got {type(split).__name__}")
        return self.subset(split.train), self.subset(split.val), self.subset(split.test)


@dataclass
class ExtractionStats:
    """What one extraction run did: features computed and read from the cache, per kind, and
    the number of broken files (found when indexing or when extracting)."""

    computed: dict[str, int] = field(default_factory=lambda: {"audio": 0, "aus": 0})
    cached: dict[str, int] = field(default_factory=lambda: {"audio": 0, "aus": 0})
    failed: int = 0


class FeatureCache:
    """One ``.npz`` per (kind, key) under ``directory/kind/``; writes are atomic."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory).expanduser()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"cache_dir: expected a folder, got the file {str(directory)!r}")

    def _path(self, kind: str, key: str) -> Path:
        return self.directory / kind / key[:2] / f"{key}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None when absent, unreadable or incomplete."""
        path = self._path(kind, key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as stored:
                if sorted(stored.files) != sorted(_ARRAYS[kind]):
                    return None
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def save(self, kind: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b hex digest of a file's bytes; ``DataFileError`` naming the file when unreadable."""
    digest = hashlib.blake2b(digest_size=20)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise DataFileError(path, f"cannot read the file ({error})") from error
    return digest.hexdigest()


def _cache_key(kind: str, content: str, params: dict) -> str:
    versions = {"format": CACHE_FORMAT}
    if kind == "audio":
        versions.update(librosa=librosa.__version__, soxr=soxr.__version__)
    text = json.dumps(
        {"kind": kind, "content": content, "params": params, **versions}, sort_keys=True
    )
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _cached(
    cache: FeatureCache,
    kind: str,
    path: Path,
    params: dict,
    compute: Callable[[], dict[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays of ``kind`` for ``path`` and whether they came from the cache. A failure of
    ``compute`` on the file becomes a ``DataFileError`` naming it."""
    key = _cache_key(kind, file_digest(path), params)
    stored = cache.load(kind, key)
    if stored is not None:
        return stored, True
    try:
        arrays = compute()
    except DataFileError:
        raise
    except (ValueError, RuntimeError, OSError, EOFError) as error:
        reason = f"cannot extract {kind} features ({type(error).__name__}: {error})"
        raise DataFileError(path, reason) from error
    cache.save(kind, key, arrays)
    return arrays, False


def _clip_features(
    clip: Clip, cache: FeatureCache, config: FeatureConfig
) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """``{"mfcc", "aus", "mask"}`` arrays of one clip and, per kind, whether they were cached."""
    audio, audio_hit = _cached(
        cache,
        "audio",
        clip.audio_path,
        {**config.audio_params(), "source": clip.audio_source},
        lambda: {"mfcc": audio_features.extract_audio(clip.audio_path, config)},
    )
    aus, aus_hit = _cached(
        cache, "aus", clip.au_path, config.au_params(), lambda: _au_arrays(clip, config)
    )
    return {**audio, **aus}, {"audio": audio_hit, "aus": aus_hit}


def compute_features(
    index: DatasetIndex,
    cache_dir: str | os.PathLike,
    config: FeatureConfig = DEFAULT_CONFIG,
    on_error: str = "skip",
    progress: bool = True,
    workers: int | None = None,
) -> tuple[FeatureSet, ExtractionStats]:
    """Features of every clip of ``index``, read from the cache when present, else computed and
    stored, on ``workers`` threads (default: up to 4, one per CPU). A broken file (found by the
    index's probe or when extracting, ``DataFileError``) is skipped and listed with the reason
    (``on_error="skip"``), or stops the run with that error (``on_error="fail"``)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error: expected one of {ON_ERROR}, got {on_error!r}")
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config: expected a FeatureConfig, got {type(config).__name__}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    broken = [entry for entry in index.skipped if entry.broken]
    if broken and on_error == "fail":
        raise DataFileError(index.root / broken[0].path, broken[0].reason)
    cache = FeatureCache(cache_dir)
    stats = ExtractionStats(failed=len(broken))
    rows: list[tuple] = []
    skipped = list(index.skipped)

    def work(clip: Clip) -> tuple:
        try:
            return (clip, *_clip_features(clip, cache, config), None)
        except DataFileError as error:
            return clip, None, None, error

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = pool.map(work, index.clips)
        bar = tqdm(
            results, total=len(index.clips), desc="features", unit="clip", disable=not progress
        )
        for clip, arrays, hits, error in bar:
            if error is not None:
                if on_error == "fail":
                    raise error
                stats.failed += 1
                path = _relative(error.path, index.root)
                skipped.append(Skipped(path, error.reason, broken=True))
                for other in (clip.audio_path, clip.au_path, clip.video_path):
                    if other is not None and str(other) != error.path:
                        reason = f"clip {clip.clip_id} left out: {path} cannot be used"
                        skipped.append(Skipped(_relative(str(other), index.root), reason))
                continue
            for kind, hit in hits.items():
                (stats.cached if hit else stats.computed)[kind] += 1
            rows.append((clip, arrays["mfcc"], arrays["aus"], arrays["mask"]))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    skipped.sort(key=lambda entry: entry.path)
    return _stack(rows, skipped, config), stats


def load_features(
    root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    config: FeatureConfig = DEFAULT_CONFIG,
    on_error: str = "skip",
    progress: bool = True,
    workers: int | None = None,
) -> FeatureSet:
    """Index ``root``, extract (through the cache in ``cache_dir``) and return every usable clip.

    Raises ``ValueError`` when no clip is usable, and with ``on_error="fail"`` a
    ``DataFileError`` naming the first file that cannot be used.
    """
    index = index_dataset(root, exclude=(cache_dir,))
    features, _ = compute_features(index, cache_dir, config, on_error, progress, workers)
    if len(features) == 0:
        raise ValueError(
            f"root: no usable clips under {str(root)!r} ({len(features.skipped)} files skipped; "
            "index_dataset(root).skipped says why)"
        )
    return features


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _au_arrays(clip: Clip, config: FeatureConfig) -> dict[str, np.ndarray]:
    aus, mask = au_features.extract_aus(
        clip.au_path, config.duration_s, config.au_frames, config.au_normalize
    )
    return {"aus": aus, "mask": mask}


def _stack(rows: list[tuple], skipped: list[Skipped], config: FeatureConfig) -> FeatureSet:
    """``rows`` of (clip, mfcc, aus, mask) as a FeatureSet (empty tensors of the right shapes
    when there are none)."""
    audio = np.zeros((0, *config.audio_shape), np.float32)
    aus = np.zeros((0, *config.au_shape), np.float32)
    mask = np.zeros((0, config.au_frames), bool)
    if rows:
        audio, aus, mask = (np.stack([row[i] for row in rows]) for i in (1, 2, 3))
    return FeatureSet(
        audio=torch.from_numpy(audio.astype(np.float32)),
        aus=torch.from_numpy(aus.astype(np.float32)),
        aus_mask=torch.from_numpy(mask.astype(bool)),
        labels=torch.tensor([row[0].label for row in rows], dtype=torch.int64),
        actors=torch.tensor([row[0].actor for row in rows], dtype=torch.int64),
        clip_ids=[row[0].clip_id for row in rows],
        skipped=skipped,
        config=config,
    )
