"""Indexing by file name: name validation, folder spellings, pairing, and skipped files with
their reasons, on hand-built trees and on the generated stand-in."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from mkcc_model.data import AU_COLUMNS, EMOTIONS, index_dataset, make_demo, parse_name
from mkcc_model.data.demo import _write_mp4
from mkcc_model.data.names import RavdessName

DEMO_ACTORS = 2


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The 2-actor stand-in (written once per session; later calls find it complete)."""
    return make_demo(tmp_path_factory.getbasetemp() / "data-demo-2", actors=DEMO_ACTORS)


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def test_parse_name_reads_the_seven_fields():
    name = parse_name("01-01-06-01-02-01-12")
    assert name == RavdessName(1, 1, 6, 1, 2, 1, 12)
    assert name.label == 5
    assert name.stem(3) == "03-01-06-01-02-01-12"


@pytest.mark.parametrize(
    ("stem", "message"),
    [
        ("01-01-01-02-01-01-01", "neutral .* no strong intensity"),
        ("01-01-09-01-01-01-01", "emotion 09 is outside 01..08"),
        ("01-01-05-01-01-01-25", "actor 25 is outside 01..24"),
        ("04-01-05-01-01-01-01", "modality 04"),
        ("01-03-05-01-01-01-01", "vocal channel 03"),
        ("01-01-05-03-01-01-01", "intensity 03"),
        ("01-01-05-01-00-01-01", "statement 00"),
        ("01-01-05-01-01-03-01", "repetition 03"),
        ("01-01-05-01-01-01", "seven two-digit fields"),
        ("1-01-05-01-01-01-01", "seven two-digit fields"),
    ],
)
def test_parse_name_rejects_invalid_names(stem, message):
    with pytest.raises(ValueError, match=message):
        parse_name(stem)


@pytest.mark.parametrize(
    "folders",
    [("Actor_01", "Actor_02"), ("ACTOR01", "ACTOR02"), ("", ""), ("Actor_02", "ACTOR01")],
    ids=["Actor_NN", "ACTORNN", "flat", "mismatched-folders"],
)
def test_folder_spelling_does_not_matter(tmp_path, folders):
    audio_folder, csv_folder = (f"{f}/" if f else "" for f in folders)
    touch(
        tmp_path,
        f"audio/{audio_folder}03-01-05-02-01-02-01.wav",
        f"faces/{csv_folder}01-01-05-02-01-02-01.csv",
        f"audio/{audio_folder}03-01-01-01-02-01-02.wav",
        f"faces/{csv_folder}01-01-01-01-02-01-02.csv",
    )
    index = index_dataset(tmp_path, check_files=False)
    assert index.skipped == []
    assert [(c.clip_id, c.actor, c.label, c.intensity) for c in index.clips] == [
        ("01-01-05-02-01-02-01", 1, 4, 2),
        ("01-01-01-01-02-01-02", 2, 0, 1),
    ]
    first = index.clips[0]
    assert (first.statement, first.repetition, first.emotion_name) == (1, 2, "angry")
    assert first.audio_path == tmp_path / f"audio/{audio_folder}03-01-05-02-01-02-01.wav"
    assert first.au_path.name == "01-01-05-02-01-02-01.csv"
    assert first.audio_source == "wav" and first.video_path is None


def test_audio_falls_back_to_the_mp4_and_every_unused_file_has_a_reason(tmp_path):
    touch(
        tmp_path,
        "Actor_01/01-01-02-01-01-01-01.mp4",  # audio only inside the mp4
        "Actor_01/01-01-02-01-01-01-01.csv",
        "Actor_01/03-01-03-01-01-01-01.wav",  # wav and mp4: the wav is the audio
        "Actor_01/01-01-03-01-01-01-01.mp4",
        "Actor_01/01-01-03-01-01-01-01.csv",
        "Actor_01/03-01-04-01-01-01-01.WAV",  # upper-case extension
        "Actor_01/01-01-04-01-01-01-01.csv",
        "Actor_01/03-01-05-01-01-01-01.wav",  # no CSV
        "Actor_01/01-01-06-01-01-01-01.csv",  # no audio
        "Actor_01/03-02-03-01-01-01-01.wav",  # song
        "Actor_01/02-01-03-01-01-01-01.mp4",  # video-only
        "Actor_01/02-02-03-01-01-01-01.csv",  # video-only song
        "Actor_01/01-01-01-02-01-01-01.csv",  # neutral strong
        "Actor_01/03-01-07-01-01-01-25.wav",  # actor 25
        "Actor_01/01-01-03-01-01-01-01.wav",  # a wav with the audio-video modality
        "Actor_01/03-01-03-01-01-01-01.mp4",  # an mp4 with the audio-only modality
        "Actor_01/03-01-03-01-01-01-01.txt",  # unsupported type
        "Actor_01/notes.txt",
        "__MACOSX/Actor_01/._03-01-03-01-01-01-01.wav",
        "copy/Actor_01/03-01-03-01-01-01-01.wav",  # deeper duplicate
        "Actor_01/01-01-04-01-01-01-01.csv.bak",
    )
    index = index_dataset(tmp_path, check_files=False)
    clips = {c.clip_id: c for c in index.clips}
    assert sorted(clips) == ["01-01-02-01-01-01-01", "01-01-03-01-01-01-01", "01-01-04-01-01-01-01"]
    assert clips["01-01-02-01-01-01-01"].audio_source == "mp4"
    assert clips["01-01-02-01-01-01-01"].audio_path.suffix == ".mp4"
    assert clips["01-01-03-01-01-01-01"].audio_source == "wav"
    assert clips["01-01-03-01-01-01-01"].video_path.name == "01-01-03-01-01-01-01.mp4"
    assert clips["01-01-04-01-01-01-01"].audio_path.name == "03-01-04-01-01-01-01.WAV"

    reasons = {entry.path: entry.reason for entry in index.skipped}
    expected = {
        "Actor_01/03-01-05-01-01-01-01.wav": "no OpenFace CSV 01-01-05-01-01-01-01.csv",
        "Actor_01/01-01-06-01-01-01-01.csv": "no audio for this take: neither "
        "03-01-06-01-01-01-01.wav nor 01-01-06-01-01-01-01.mp4",
        "Actor_01/03-02-03-01-01-01-01.wav": "song (vocal channel 02) is not used",
        "Actor_01/02-01-03-01-01-01-01.mp4": "video-only speech (modality 02) is not used",
        "Actor_01/02-02-03-01-01-01-01.csv": "video-only song (modality 02) is not used",
        "Actor_01/01-01-01-02-01-01-01.csv": "invalid RAVDESS name: neutral",
        "Actor_01/03-01-07-01-01-01-25.wav": "invalid RAVDESS name: actor 25",
        "Actor_01/01-01-03-01-01-01-01.wav": "a .wav file must have modality 03",
        "Actor_01/03-01-03-01-01-01-01.mp4": "a .mp4 file must have modality 01",
        "Actor_01/03-01-03-01-01-01-01.txt": "unsupported file type '.txt'",
        "Actor_01/notes.txt": "not a RAVDESS file name",
        "__MACOSX/Actor_01/._03-01-03-01-01-01-01.wav": "not a RAVDESS file name",
        "copy/Actor_01/03-01-03-01-01-01-01.wav": "duplicate of "
        "Actor_01/03-01-03-01-01-01-01.wav, which is used",
        "Actor_01/01-01-04-01-01-01-01.csv.bak": "unsupported file type '.csv.bak'",
    }
    assert sorted(reasons) == sorted(expected)
    for path, reason in expected.items():
        assert reasons[path].startswith(reason), (path, reasons[path])
    assert [entry.path for entry in index.skipped] == sorted(reasons)


def write_wav(path: Path, seconds: float = 0.2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * 48000)), 48000, subtype="PCM_16")


def write_csv(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ", ".join(["frame", "timestamp", "success", *AU_COLUMNS])
    path.write_text(header + "\n" + ", ".join(["1", "0.0", "1"] + ["0"] * 35) + "\n")


def test_broken_files_are_skipped_at_indexing_and_the_next_candidate_used(tmp_path):
    write_wav(tmp_path / "a/03-01-02-01-01-01-01.wav")
    (tmp_path / "a/03-01-02-01-01-01-01.wav").write_bytes(b"")  # broken, fewest folders
    write_wav(tmp_path / "b/c/03-01-02-01-01-01-01.wav")  # the usable copy
    write_wav(tmp_path / "d/e/03-01-02-01-01-01-01.wav")  # a duplicate of it
    write_csv(tmp_path / "01-01-02-01-01-01-01.csv")

    broken_wav = tmp_path / "03-01-03-01-01-01-01.wav"
    write_wav(broken_wav)
    broken_wav.write_bytes(broken_wav.read_bytes()[:2000])  # truncated: the mp4 gives the audio
    (tmp_path / "video").mkdir()
    _write_mp4(tmp_path / "video/01-01-03-01-01-01-01.mp4", np.zeros(4800, np.float32))
    write_csv(tmp_path / "01-01-03-01-01-01-01.csv")

    write_wav(tmp_path / "03-01-04-01-01-01-01.wav")
    (tmp_path / "01-01-04-01-01-01-01.csv").write_text("frame, timestamp\n1, 0\n")

    write_wav(tmp_path / "03-01-05-01-01-01-01.wav")
    write_csv(tmp_path / "01-01-05-01-01-01-01.csv")
    (tmp_path / "01-01-05-01-01-01-01.mp4").write_bytes(b"not a video")  # not probed

    (tmp_path.joinpath("video") / "01-01-06-01-01-01-01.mp4").write_bytes(b"\x00" * 64)
    write_csv(tmp_path / "01-01-06-01-01-01-01.csv")

    index = index_dataset(tmp_path)
    clips = {clip.clip_id: clip for clip in index.clips}
    assert sorted(clips) == ["01-01-02-01-01-01-01", "01-01-03-01-01-01-01", "01-01-05-01-01-01-01"]
    assert clips["01-01-02-01-01-01-01"].audio_path == tmp_path / "b/c/03-01-02-01-01-01-01.wav"
    assert clips["01-01-03-01-01-01-01"].audio_source == "mp4"
    assert clips["01-01-05-01-01-01-01"].video_path.name == "01-01-05-01-01-01-01.mp4"
    reasons = {entry.path: entry.reason for entry in index.skipped}
    assert reasons == {
        "a/03-01-02-01-01-01-01.wav": "empty file",
        "d/e/03-01-02-01-01-01-01.wav": "duplicate of b/c/03-01-02-01-01-01-01.wav, which is used",
        "03-01-03-01-01-01-01.wav": reasons["03-01-03-01-01-01-01.wav"],
        "01-01-04-01-01-01-01.csv": reasons["01-01-04-01-01-01-01.csv"],
        "03-01-04-01-01-01-01.wav": "no usable OpenFace CSV 01-01-04-01-01-01-01.csv for this take",
        "video/01-01-06-01-01-01-01.mp4": reasons["video/01-01-06-01-01-01-01.mp4"],
        "01-01-06-01-01-01-01.csv": "no usable audio for this take: neither "
        "03-01-06-01-01-01-01.wav nor 01-01-06-01-01-01-01.mp4",
    }
    assert reasons["03-01-03-01-01-01-01.wav"].startswith("truncated wav")
    assert reasons["01-01-04-01-01-01-01.csv"].startswith("not an OpenFace AU CSV: 36 columns")
    assert reasons["video/01-01-06-01-01-01-01.mp4"].startswith("unreadable media")
    assert index_dataset(tmp_path, check_files=False).clips[0].audio_path.parent.name == "a"


def test_duplicates_are_decided_by_depth_then_path(tmp_path):
    touch(
        tmp_path,
        "b/03-01-02-01-01-01-03.wav",
        "a/03-01-02-01-01-01-03.wav",
        "03-01-02-01-01-01-03.wav.d/x/03-01-02-01-01-01-03.wav",
        "z/01-01-02-01-01-01-03.csv",
    )
    index = index_dataset(tmp_path, check_files=False)
    assert index.clips[0].audio_path == tmp_path / "a/03-01-02-01-01-01-03.wav"
    losers = [(e.path, e.reason) for e in index.skipped]
    assert losers == [
        (
            "03-01-02-01-01-01-03.wav.d/x/03-01-02-01-01-01-03.wav",
            "duplicate of a/03-01-02-01-01-01-03.wav, which is used",
        ),
        ("b/03-01-02-01-01-01-03.wav", "duplicate of a/03-01-02-01-01-01-03.wav, which is used"),
    ]


def test_symlinked_folders_are_followed_once(tmp_path):
    touch(
        tmp_path, "real/Actor_01/03-01-02-01-01-01-01.wav", "real/Actor_01/01-01-02-01-01-01-01.csv"
    )
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    index = index_dataset(tmp_path, check_files=False)
    assert [c.clip_id for c in index.clips] == ["01-01-02-01-01-01-01"]


def test_excluded_folders_are_not_walked(tmp_path):
    touch(tmp_path, "03-01-02-01-01-01-01.wav", "01-01-02-01-01-01-01.csv", "cache/aa/x.npz")
    assert index_dataset(tmp_path, check_files=False).skipped[0].path == "cache/aa/x.npz"
    excluded = index_dataset(tmp_path, exclude=[tmp_path / "cache"], check_files=False)
    assert excluded.skipped == []


def test_root_must_be_a_folder(tmp_path):
    with pytest.raises(ValueError, match="root: expected a folder"):
        index_dataset(tmp_path / "missing")
    touch(tmp_path, "file.wav")
    with pytest.raises(ValueError, match="root: expected a folder"):
        index_dataset(tmp_path / "file.wav")


def test_summary_object_of_a_full_copy(tmp_path):
    for actor in range(1, 25):
        for emotion in range(1, 9):
            for intensity in (1,) if emotion == 1 else (1, 2):
                for statement in (1, 2):
                    for repetition in (1, 2):
                        stem = f"{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}"
                        touch(
                            tmp_path,
                            f"Actor_{actor:02d}/03-01-{stem}-{actor:02d}.wav",
                            f"csv/{actor:02d}/01-01-{stem}-{actor:02d}.csv",
                        )
    summary = index_dataset(tmp_path, check_files=False).summary()
    assert list(summary) == ["clips", "per_actor", "per_emotion", "skipped", "folds"]
    assert summary["clips"] == 1440
    assert summary["per_actor"] == {str(a): 60 for a in range(1, 25)}
    assert summary["per_emotion"] == {name: 96 if name == "neutral" else 192 for name in EMOTIONS}
    assert summary["skipped"] == []
    assert summary["folds"] == [
        {"fold": k, "train": 960, "val": 240, "test": 240} for k in range(5)
    ]
    assert len(index_dataset(tmp_path, check_files=False).summary(n_folds=6)["folds"]) == 6
    json.dumps(summary)


def test_demo_counts_labels_and_layout(demo_root):
    index = index_dataset(demo_root)
    assert len(index.clips) == 60 * DEMO_ACTORS - 2
    per_actor = index.per_actor()
    assert sorted(per_actor) == [1, 2] and sum(per_actor.values()) == len(index.clips)
    per_emotion = Counter(c.emotion_name for c in index.clips)
    assert per_emotion["neutral"] >= 4 * DEMO_ACTORS - 2
    assert all(per_emotion[name] >= 8 * DEMO_ACTORS - 2 for name in EMOTIONS[1:])
    for clip in index.clips:
        name = parse_name(clip.clip_id)
        assert (name.modality, name.channel, name.actor) == (1, 1, clip.actor)
        assert clip.label == name.emotion - 1 == clip.emotion - 1
        assert clip.au_path.name == clip.clip_id + ".csv"
        assert f"{clip.actor:02d}" in clip.audio_path.name
    folders = {c.audio_path.parent.name for c in index.clips if c.audio_source == "wav"}
    assert {"Actor_01", "Audio_Speech_Actors_01-24"} <= folders  # actor 2 is flat


def test_demo_quirks_are_reported(demo_root):
    index = index_dataset(demo_root)
    sources = Counter(c.audio_source for c in index.clips)
    assert sources["mp4"] == 2
    assert sum(c.video_path is not None for c in index.clips) == 3
    assert sum(c.audio_path.suffix == ".WAV" for c in index.clips) == 1
    kinds = Counter(_reason_kind(entry.reason) for entry in index.skipped)
    assert kinds == {
        "song": 3,
        "video-only": 1,
        "invalid": 2,
        "not RAVDESS": 3,
        "duplicate": 2,
        "no CSV": 1,
        "no audio": 1,
    }
    assert len({entry.path for entry in index.skipped}) == len(index.skipped)
    for entry in index.skipped:
        assert (demo_root / entry.path).is_file()


def _reason_kind(reason: str) -> str:
    for kind, start in [
        ("song", "song"),
        ("video-only", "video-only"),
        ("invalid", "invalid RAVDESS name"),
        ("not RAVDESS", "not a RAVDESS file name"),
        ("duplicate", "duplicate of"),
        ("no CSV", "no OpenFace CSV"),
        ("no audio", "no audio"),
    ]:
        if reason.startswith(start):
            return kind
    return reason
