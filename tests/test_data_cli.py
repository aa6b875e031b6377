"""The ``mkcc-data`` command line, in process and as ``python -m mkcc_model.data``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mkcc_model.data import EMOTIONS, index_dataset, make_demo
from mkcc_model.data.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The 2-actor stand-in (written once per session; later calls find it complete)."""
    return make_demo(tmp_path_factory.getbasetemp() / "data-demo-2", actors=2)


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else None, err


def test_summarize_prints_the_summary_object(capsys, demo_root):
    status, summary, _ = run(capsys, "summarize", demo_root)
    assert status == 0
    assert list(summary) == ["clips", "per_actor", "per_emotion", "skipped", "folds"]
    assert summary == index_dataset(demo_root).summary()
    assert summary["clips"] == 118 and sum(summary["per_actor"].values()) == 118
    assert list(summary["per_actor"]) == ["1", "2"]
    assert list(summary["per_emotion"]) == list(EMOTIONS)
    assert sum(summary["per_emotion"].values()) == 118
    assert all(set(entry) == {"path", "reason"} for entry in summary["skipped"])
    assert [f["fold"] for f in summary["folds"]] == [0, 1, 2, 3, 4]
    assert summary["folds"][0] == {"fold": 0, "train": 0, "val": 0, "test": 118}
    for fold in summary["folds"][1:]:
        assert (fold["train"], fold["val"], fold["test"]) == (118, 0, 0)
    status, six, _ = run(capsys, "summarize", "--folds", "6", demo_root)
    assert len(six["folds"]) == 6 and six["folds"][5]["val"] == 118


def test_features_prints_a_summary_and_reuses_the_cache(capsys, demo_root, tmp_path):
    cache = tmp_path / "cache"
    status, result, _ = run(capsys, "features", demo_root, "--cache", cache, "--no-progress")
    assert status == 0
    assert result["clips"] == 118 and result["failed"] == 0
    assert result["computed"] == {"audio": 118, "aus": 118}
    assert result["shapes"] == {
        "audio": [118, 10, 621],
        "aus": [118, 35, 15],
        "aus_mask": [118, 15],
        "labels": [118],
    }
    assert result["skipped"] == index_dataset(demo_root).summary()["skipped"]
    assert result["config"]["sample_rate"] == 22050 and result["config"]["n_mels"] == 26
    status, again, err = run(capsys, "features", demo_root, "--cache", cache)
    assert again["computed"] == {"audio": 0, "aus": 0}
    assert again["cached"] == {"audio": 118, "aus": 118}
    assert "features" in err  # the progress bar

    status, other, _ = run(
        capsys,
        "features",
        demo_root,
        "--cache",
        cache,
        "--sample-rate",
        "16000",
        "--au-normalize",
        "--no-progress",
    )
    assert other["shapes"]["audio"] == [118, 10, 451]
    assert other["computed"] == {"audio": 118, "aus": 118}


def test_features_on_error(capsys, tmp_path):
    root = tmp_path / "copy"
    root.mkdir()
    (root / "03-01-02-01-01-01-01.wav").write_bytes(b"RIFF")
    (root / "01-01-02-01-01-01-01.csv").write_text("frame, timestamp\n")
    status, result, _ = run(capsys, "features", root, "--cache", tmp_path / "c", "--no-progress")
    assert status == 0 and result["clips"] == 0 and result["failed"] == 2
    assert [entry["path"] for entry in result["skipped"]] == [
        "01-01-02-01-01-01-01.csv",
        "03-01-02-01-01-01-01.wav",
    ]
    status, result, err = run(
        capsys, "features", root, "--cache", tmp_path / "c", "--on-error", "fail", "--no-progress"
    )
    assert status == 1 and result is None
    assert "01-01-02-01-01-01-01.csv: not an OpenFace AU CSV" in err and "error" in err


def test_make_demo_and_errors(capsys, tmp_path):
    status, result, _ = run(capsys, "make-demo", tmp_path / "demo", "--actors", "1", "--seed", "5")
    assert status == 0
    assert result["clips"] == 58 and result["actors"] == 1 and result["seed"] == 5
    assert len(index_dataset(tmp_path / "demo").clips) == 58
    status, _, err = run(capsys, "make-demo", tmp_path / "demo", "--actors", "30")
    assert status == 1 and "actors: expected 1..24" in err
    status, _, err = run(capsys, "summarize", tmp_path / "missing")
    assert status == 1 and "root: expected a folder" in err
    with pytest.raises(SystemExit):
        main(["summarize"])


def test_python_dash_m(demo_root):
    done = subprocess.run(
        [sys.executable, "-m", "mkcc_model.data", "summarize", str(demo_root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == index_dataset(demo_root).summary()
