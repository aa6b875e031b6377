"""OpenFace action units: header variants, column selection by name, the centred window of
uniformly spaced frames, masking of lost faces, per-video normalization, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mkcc_model.data import (
    AU_COLUMNS,
    AU_INTENSITY,
    AU_PRESENCE,
    DataFileError,
    extract_aus,
    read_openface_csv,
)

LEADING = ["frame", "face_id", "timestamp", "confidence", "success"]


def test_the_35_au_columns():
    assert len(AU_INTENSITY) == 17 and len(AU_PRESENCE) == 18 and len(AU_COLUMNS) == 35
    assert AU_COLUMNS[:2] == ("AU01_r", "AU02_r") and AU_COLUMNS[16] == "AU45_r"
    assert AU_PRESENCE[-2:] == ("AU28_c", "AU45_c") and "AU28_r" not in AU_INTENSITY
    assert {c[:-2] for c in AU_PRESENCE} - {c[:-2] for c in AU_INTENSITY} == {"AU28"}


def write_csv(
    path: Path,
    seconds: float,
    separator: str = ", ",
    fps: float = 30.0,
    lost: tuple[int, ...] = (),
    columns: list[str] | None = None,
    faces: int = 1,
) -> Path:
    """An OpenFace-style CSV whose AU column j holds ``timestamp + j`` (0 where lost)."""
    columns = columns or [*LEADING, "gaze_angle_x", "pose_Tx", *AU_COLUMNS]
    frames = int(round(seconds * fps))
    lines = [separator.join(columns)]
    for frame in range(frames):
        for face in range(faces):
            time = round(frame / fps, 3)
            success = 0 if frame in lost or face > 0 else 1
            values = {"frame": frame + 1, "face_id": face, "timestamp": time}
            values.update(confidence=0.95 * success, success=success, gaze_angle_x=0.1)
            values["pose_Tx"] = 3.0
            for j, name in enumerate(AU_COLUMNS):
                values[name] = (time + j) * success
            lines.append(separator.join(f"{values.get(name, 7.0):g}" for name in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_times(seconds: float, fps: float = 30.0, duration: float = 3.6, frames: int = 15):
    """Timestamp of the video frame shown at each sampled time of the centred window."""
    span = round(seconds * fps) / fps
    start = max(0.0, (span - duration) / 2)
    times = start + (np.arange(frames) + 0.5) * duration / frames
    return np.floor((times + 5e-4) * fps) / fps, times


@pytest.mark.parametrize("separator", [", ", ","], ids=["openface-2.1", "plain"])
def test_header_variants_and_the_centred_window(tmp_path, separator):
    path = write_csv(tmp_path / "01-01-03-01-01-01-01.csv", 5.0, separator)
    aus, mask = extract_aus(path, normalize=False)
    assert aus.shape == (35, 15) and aus.dtype == np.float32
    assert mask.shape == (15,) and mask.dtype == bool and mask.all()
    frame_times, _ = expected_times(5.0)
    np.testing.assert_allclose(aus[0], frame_times, atol=2e-3)
    np.testing.assert_allclose(aus[34], frame_times + 34, atol=2e-3)


def test_columns_are_found_by_name_in_any_order(tmp_path):
    shuffled = [*reversed(AU_COLUMNS), "extra_column", *LEADING]
    path = write_csv(tmp_path / "x.csv", 4.0, columns=shuffled)
    aus, _ = extract_aus(path, normalize=False)
    reference, _ = extract_aus(write_csv(tmp_path / "y.csv", 4.0), normalize=False)
    np.testing.assert_allclose(aus, reference)


def test_short_video_is_masked_past_its_end(tmp_path):
    aus, mask = extract_aus(write_csv(tmp_path / "short.csv", 2.0), normalize=False)
    _, times = expected_times(2.0)
    np.testing.assert_array_equal(mask, times < 2.0)
    assert np.all(aus[:, ~mask] == 0.0)


def test_lost_faces_are_masked(tmp_path):
    frame_times, _ = expected_times(4.0)
    lost_frames = tuple(int(round(t * 30)) for t in frame_times[[2, 3, 9]])
    assert len(set(lost_frames)) == 3
    path = write_csv(tmp_path / "lost.csv", 4.0, lost=lost_frames)
    aus, mask = extract_aus(path, normalize=False)
    assert list(np.flatnonzero(~mask)) == [2, 3, 9]
    assert np.all(aus[:, ~mask] == 0.0)
    np.testing.assert_allclose(aus[5, mask], frame_times[mask] + 5, atol=2e-3)


def test_per_video_normalization_uses_the_tracked_frames(tmp_path):
    path = write_csv(tmp_path / "norm.csv", 4.0, lost=(0, 1, 2, 60))
    raw, mask = extract_aus(path, normalize=False)
    normalized, same_mask = extract_aus(path, normalize=True)
    np.testing.assert_array_equal(mask, same_mask)
    track = read_openface_csv(path)
    tracked = track.aus[track.success].astype(np.float64)
    mean, std = tracked.mean(axis=0), tracked.std(axis=0)
    expected = (raw - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(normalized[:, mask], expected[:, mask], atol=1e-4)
    assert np.all(normalized[:, ~mask] == 0.0)


def test_constant_columns_normalize_to_zero(tmp_path):
    columns = [*LEADING, *AU_COLUMNS]
    lines = [",".join(columns)]
    for frame in range(120):
        values = [frame + 1, 0, frame / 30, 0.9, 1] + [2.5] * 35
        lines.append(",".join(f"{v:g}" for v in values))
    path = tmp_path / "flat.csv"
    path.write_text("\n".join(lines) + "\n")
    aus, mask = extract_aus(path, normalize=True)
    assert mask.all() and np.all(aus == 0.0)
    aus, _ = extract_aus(path)  # the default: OpenFace's values as they are
    assert np.all(aus == 2.5)


def test_the_face_tracked_most_is_kept(tmp_path):
    path = write_csv(tmp_path / "two.csv", 4.0, faces=2)
    single = write_csv(tmp_path / "one.csv", 4.0)
    track = read_openface_csv(path)
    assert len(track.timestamps) == 120 and track.success.all()
    np.testing.assert_allclose(extract_aus(path)[0], extract_aus(single)[0])


def test_all_frames_lost_gives_an_all_false_mask(tmp_path):
    path = write_csv(tmp_path / "gone.csv", 4.0, lost=tuple(range(120)))
    aus, mask = extract_aus(path)
    assert not mask.any() and np.all(aus == 0.0)


def test_other_window_and_frame_counts(tmp_path):
    path = write_csv(tmp_path / "w.csv", 6.0)
    aus, mask = extract_aus(path, duration_s=2.4, n_frames=8, normalize=False)
    frame_times, _ = expected_times(6.0, duration=2.4, frames=8)
    assert aus.shape == (35, 8) and mask.all()
    np.testing.assert_allclose(aus[0], frame_times, atol=2e-3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        (", ".join([*LEADING, *AU_COLUMNS]) + "\n", "no data rows"),
        (
            ", ".join([*LEADING, *AU_COLUMNS[:-3]]) + "\n1, 0, 0, 1, 1\n",
            r"3 columns missing \(AU26_c",
        ),
        ("frame,timestamp,x_0\n1,0,3\n", r"36 columns missing \(success, AU01_r"),
        (
            ", ".join([*LEADING, *AU_COLUMNS]) + "\n1, 0, 0.0, 0.9, 1, oops\n",
            "malformed OpenFace rows",
        ),
        (
            ", ".join([*LEADING, *AU_COLUMNS]) + "\n" + ", ".join(["1"] * 39) + ", nan\n",
            "non-finite",
        ),
    ],
    ids=["empty", "blank", "header-only", "missing-au", "not-openface", "text-value", "nan"],
)
def test_bad_csv_names_the_file(tmp_path, content, message):
    path = tmp_path / "01-01-02-01-01-01-01.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message) as caught:
        extract_aus(path)
    assert caught.value.path == str(path)


def test_binary_or_missing_csv_names_the_file(tmp_path):
    path = tmp_path / "01-01-02-01-01-01-01.csv"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(DataFileError, match="cannot read the file"):
        extract_aus(path)
    with pytest.raises(DataFileError, match="cannot read the file"):
        extract_aus(tmp_path / "missing.csv")
