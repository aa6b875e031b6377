"""Training killed with SIGKILL in the middle of an epoch resumes with --resume and ends with the
same parameters as an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from mkcc_model.checkpoint import load_checkpoint
from mkcc_model.data import load_features
from mkcc_model.experiment import ensure_demo

ROOT = Path(__file__).resolve().parents[1]
DEMO_ACTORS = 4
EPOCHS = 4


def command(cache: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mkcc_model.train",
        "--data",
        "demo",
        "--demo-actors",
        str(DEMO_ACTORS),
        "--cache-dir",
        str(cache),
        "--train-actors",
        "1,2",
        "--val-actors",
        "3",
        "--test-actors",
        "4",
        "--channels-part1",
        "4",
        "--channels-part2",
        "6",
        "--backend",
        "cpu",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--epochs",
        str(EPOCHS),
        "--eval-batch-size",
        "4",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def checkpoint_epoch(path: Path) -> int:
    try:
        return int(load_checkpoint(path)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    cache = tmp_path / "cache"
    load_features(ensure_demo(cache, DEMO_ACTORS), cache / "features", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    full = tmp_path / "full"
    done = subprocess.run(command(cache, full), cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command(cache, killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    # Wait until epoch 1 is checkpointed, then kill during epoch 2.
    while checkpoint_epoch(killed / "last.pt") < 1:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint of epoch 1"
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    interrupted_at = checkpoint_epoch(killed / "last.pt")
    assert 1 <= interrupted_at < EPOCHS
    assert not (killed / "metrics.json").exists()

    resumed = subprocess.run(
        command(cache, killed, "--resume"), cwd=ROOT, env=env, capture_output=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final, reference = load_checkpoint(killed / "last.pt"), load_checkpoint(full / "last.pt")
    assert final["epoch"] == reference["epoch"] == EPOCHS
    assert final["model"].keys() == reference["model"].keys()
    for name, value in reference["model"].items():
        assert torch.equal(final["model"][name], value), name
    assert (killed / "metrics.json").read_text() == (full / "metrics.json").read_text()
