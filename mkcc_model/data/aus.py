"""OpenFace action units: reading FeatureExtraction CSVs and sampling a clip's AU frames."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import DataFileError

_INTENSITY_AUS = (
    *("01", "02", "04", "05", "06", "07", "09", "10", "12"),
    *("14", "15", "17", "20", "23", "25", "26", "45"),
)
AU_INTENSITY: tuple[str, ...] = tuple(f"AU{au}_r" for au in _INTENSITY_AUS)
"""The 17 intensity columns (0..5)."""
AU_PRESENCE: tuple[str, ...] = tuple(f"AU{au}_c" for au in (*_INTENSITY_AUS[:-1], "28", "45"))
"""The 18 presence columns (0/1): the intensity AUs and AU28."""
AU_COLUMNS: tuple[str, ...] = AU_INTENSITY + AU_PRESENCE
"""The 35 AU feature channels, in this order."""

_STD_FLOOR = 1e-6
_TIME_TOLERANCE = 5e-4
"""OpenFace rounds timestamps to 1 ms: a time this close to a frame's timestamp is that frame."""
_DEFAULT_FPS = 30.0


@dataclass
class OpenFaceTrack:
    """One face's rows of an OpenFace CSV, sorted by time: ``timestamps [n]`` (s),
    ``success [n]`` (bool), ``aus [n, 35]`` (float32, ``AU_COLUMNS`` order)."""

    timestamps: np.ndarray
    success: np.ndarray
    aus: np.ndarray


def read_openface_csv(path: str | os.PathLike) -> OpenFaceTrack:
    """Read the time, success flag and the 35 AU columns of an OpenFace CSV, by column name.

    Header names are stripped, so both the ``", "`` separators of OpenFace 2.0/2.1 and the plain
    commas of later builds work. When the file tracks several faces (``face_id``), the face with
    the most successfully tracked rows is kept (the lowest id on a tie). Raises ``DataFileError``
    naming the file for an empty or unreadable file, missing columns or non-numeric values.
    """
    lines = _lines(path)
    columns, wanted = _header(path, lines)
    positions = [columns.index(name) for name in wanted]
    try:
        table = np.loadtxt(lines[1:], delimiter=",", usecols=positions, ndmin=2, dtype=np.float64)
    except ValueError as error:
        raise DataFileError(path, f"malformed OpenFace rows ({error})") from error
    if not np.isfinite(table).all():
        raise DataFileError(path, "non-finite values in the timestamp, success or AU columns")
    if "face_id" in columns:
        faces = table[:, -1]
        ids = np.unique(faces)
        if len(ids) > 1:
            tracked = [np.sum((faces == face) & (table[:, 1] > 0.5)) for face in ids]
            table = table[faces == ids[int(np.argmax(tracked))]]
    order = np.argsort(table[:, 0], kind="stable")
    table = table[order]
    return OpenFaceTrack(
        timestamps=table[:, 0],
        success=table[:, 1] > 0.5,
        aus=table[:, 2 : 2 + len(AU_COLUMNS)].astype(np.float32),
    )


def probe_openface_csv(path: str | os.PathLike) -> None:
    """Check an OpenFace CSV's header and that a row follows, without parsing the rows; raises
    ``DataFileError`` naming the file as ``read_openface_csv`` would."""
    _header(path, _lines(path, limit=2))


def _lines(path: str | os.PathLike, limit: int | None = None) -> list[str]:
    """The non-blank lines of a text file (the first ``limit`` of them when given)."""
    lines: list[str] = []
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                    if limit is not None and len(lines) == limit:
                        break
    except (OSError, UnicodeDecodeError) as error:
        raise DataFileError(path, f"cannot read the file ({error})") from error
    return lines


def _header(path: str | os.PathLike, lines: list[str]) -> tuple[list[str], list[str]]:
    """(header names, the names to read) of an OpenFace CSV's lines; raises when the header
    lacks a needed column or no row follows it."""
    if not lines:
        raise DataFileError(path, "empty file (no OpenFace header)")
    columns = [name.strip() for name in lines[0].split(",")]
    wanted = ["timestamp", "success", *AU_COLUMNS]
    if "face_id" in columns:
        wanted.append("face_id")
    missing = [name for name in wanted if name not in columns]
    if missing:
        shown = ", ".join(missing[:6]) + (", …" if len(missing) > 6 else "")
        raise DataFileError(
            path, f"not an OpenFace AU CSV: {len(missing)} columns missing ({shown})"
        )
    if len(lines) == 1:
        raise DataFileError(path, "no data rows after the OpenFace header")
    return columns, wanted


def sample_aus(
    track: OpenFaceTrack, duration_s: float, n_frames: int, normalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``n_frames`` AU vectors uniformly spaced over the centred ``duration_s`` window.

    The window is centred on the video's time span (or starts at its first frame when the video
    is shorter); frame ``i`` is the video frame showing at ``start + (i + 0.5) * duration_s /
    n_frames`` (the last frame whose timestamp is at most that time, within half a millisecond,
    as OpenFace rounds timestamps to 1 ms). Returns ``aus [35, n_frames]`` float32 and
    ``mask [n_frames]`` bool: False where OpenFace lost the face (``success == 0``) or the time
    falls past the end of the video, and there the AUs are 0. With ``normalize`` every AU column
    is first standardized over the video's successful frames (a column that is constant there
    becomes 0).
    """
    timestamps = track.timestamps
    step = np.median(np.diff(timestamps)) if len(timestamps) > 1 else 0.0
    step = step if step > 0 else 1.0 / _DEFAULT_FPS
    span = timestamps[-1] - timestamps[0] + step
    start = timestamps[0] + max(0.0, (span - duration_s) / 2)
    times = start + (np.arange(n_frames) + 0.5) * duration_s / n_frames
    rows = np.searchsorted(timestamps, times + _TIME_TOLERANCE, side="right") - 1
    inside = (rows >= 0) & (times < timestamps[-1] + step)
    rows = np.clip(rows, 0, len(timestamps) - 1)
    mask = inside & track.success[rows]

    values = track.aus.astype(np.float64)
    if normalize and track.success.any():
        tracked = values[track.success]
        mean = tracked.mean(axis=0)
        std = tracked.std(axis=0)
        values = (values - mean) / np.where(std > _STD_FLOOR, std, 1.0)
    sampled = np.where(mask[:, None], values[rows], 0.0)
    return sampled.T.astype(np.float32), mask


def extract_aus(
    path: str | os.PathLike, duration_s: float = 3.6, n_frames: int = 15, normalize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``read_openface_csv`` then ``sample_aus``: ``aus [35, n_frames]``, ``mask [n_frames]``."""
    return sample_aus(read_openface_csv(path), duration_s, n_frames, normalize)
