"""Training, evaluation and ablation on a small generated demo set: outputs, learning, exact
resume, determinism, atomic checkpoints, the command lines, and 2-process DDP."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mkcc_model import ablate, evaluate, train
from mkcc_model.checkpoint import atomic_save, atomic_write_text, load_checkpoint
from mkcc_model.data import EMOTIONS, explicit_split, index_dataset, load_features, make_demo
from mkcc_model.experiment import ensure_demo
from mkcc_model.model import ModelConfig
from mkcc_model.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO_ACTORS = 4
SPLIT = explicit_split((1, 2), (3,), (4,))
SPLIT_ARGS = ["--train-actors", "1,2", "--val-actors", "3", "--test-actors", "4"]
TINY = ModelConfig(channels_part1=4, channels_part2=6, backend="cpu")
TINY_ARGS = ["--channels-part1", "4", "--channels-part2", "6", "--backend", "cpu"]
EPOCHS = 3
# lr 0.04 for two epochs, then 0.004: short, and the resume crosses a scheduler step
RECIPE = TrainConfig(epochs=EPOCHS, lr_schedule="step", milestones=(2,))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A cache holding the 4-actor demo set and its features (as ``--cache-dir`` lays it out)."""
    cache = tmp_path_factory.mktemp("cache")
    load_features(ensure_demo(cache, DEMO_ACTORS), cache / "features", progress=False)
    return cache


@pytest.fixture(scope="module")
def features(cache_dir):
    return load_features(
        cache_dir / f"demo-actors{DEMO_ACTORS}-seed0", cache_dir / "features", progress=False
    )


@pytest.fixture(scope="module")
def full_run(features, tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted 3-epoch run of the tiny model."""
    out = tmp_path_factory.mktemp("full")
    metrics = train.train(features, SPLIT, out, TINY, RECIPE, progress=False)
    return out, metrics


def test_run_writes_metrics_schema_and_figures(full_run, features):
    out, metrics = full_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk) == {"test", "val", "epochs", "config"}
    assert on_disk["epochs"] == EPOCHS
    assert on_disk["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    for part in ("test", "val"):
        result = on_disk[part]
        assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_f1"] <= 1.0
        assert list(result["per_class"]) == list(EMOTIONS)
        for values in result["per_class"].values():
            assert all(0.0 <= values[k] <= 1.0 for k in ("precision", "recall", "f1"))
    test_clips = int((features.actors == 4).sum())
    assert sum(v["support"] for v in on_disk["test"]["per_class"].values()) == test_clips
    assert on_disk["config"]["model"] == TINY.to_dict()
    assert on_disk["config"]["train"] == {**RECIPE.to_dict(), "resolved_milestones": [2]}
    assert on_disk["config"]["features"]["au_normalize"] is False
    assert on_disk["config"]["split"] == {"train": [1, 2], "val": [3], "test": [4]}
    for name in ("confusion.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    assert last["epoch"] == EPOCHS and len(last["history"]) == EPOCHS
    assert [h["epoch"] for h in last["history"]] == list(range(1, EPOCHS + 1))
    assert best["epoch"] == on_disk["val"]["best_epoch"]
    assert not list(out.glob(".*.tmp"))


def test_demo_training_beats_chance(full_run):
    """Chance is 1/8; on 60 test clips 18 correct is about 4 standard deviations above it."""
    _, metrics = full_run
    assert metrics["test"]["accuracy"] >= 0.3, metrics["test"]["accuracy"]
    assert metrics["test"]["macro_f1"] >= 0.2, metrics["test"]["macro_f1"]
    assert metrics["val"]["accuracy"] >= 0.3, metrics["val"]["accuracy"]


def test_lr_schedule(full_run):
    out, _ = full_run
    lrs = [h["lr"] for h in load_checkpoint(out / "last.pt")["history"]]
    assert lrs == pytest.approx([0.04, 0.04, 0.004])
    # the step schedule: 40, 55, 65, 70 of 100 epochs -> 1, 2, 2, 2 of 3 epochs, 3, 4, 5, 6 of 8
    step = dict(lr_schedule="step")
    assert TrainConfig(epochs=3, **step).resolved_milestones() == (1, 2, 2, 2)
    assert TrainConfig(epochs=8, **step).resolved_milestones() == (3, 4, 5, 6)
    assert TrainConfig(**step).resolved_milestones() == (40, 55, 65, 70)
    assert TrainConfig().resolved_milestones() == ()  # the default: constant


def test_resume_reproduces_uninterrupted_run_bit_for_bit(full_run, features, tmp_path):
    full_out, full_metrics = full_run

    class Interrupted(Exception):
        pass

    def stop_after_first(epoch, record):
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train.train(
            features,
            SPLIT,
            tmp_path,
            TINY,
            RECIPE,
            progress=False,
            on_epoch_end=stop_after_first,
        )
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    metrics = train.train(features, SPLIT, tmp_path, TINY, RECIPE, progress=False, resume=True)
    full, resumed = load_checkpoint(full_out / "last.pt"), load_checkpoint(tmp_path / "last.pt")
    assert full["model"].keys() == resumed["model"].keys()
    for name, value in full["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    for a, b in zip(full["history"], resumed["history"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    assert metrics["test"] == full_metrics["test"]


def test_resume_rejects_other_options_and_fresh_run_refuses_to_overwrite(full_run, features):
    out, _ = full_run
    with pytest.raises(ValueError, match="lr"):
        train.train(
            features,
            SPLIT,
            out,
            TINY,
            dataclasses.replace(RECIPE, lr=0.1),
            resume=True,
            progress=False,
        )
    with pytest.raises(FileExistsError, match="out"):
        train.train(features, SPLIT, out, TINY, RECIPE, progress=False)


def test_resume_without_checkpoint_fails(features, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train.train(features, SPLIT, tmp_path, TINY, TrainConfig(epochs=1), resume=True)


def test_divergence_stops_training_with_a_clear_error(features, cache_dir, tmp_path, monkeypatch):
    """A non-finite loss stops the run naming the step and the settings that tame it; the
    command line exits with that message instead of a traceback."""
    huge = TrainConfig(epochs=2, lr=1e12)
    with pytest.raises(train.TrainingDiverged, match=r"step \d+ of epoch 1 .*--lr 1e\+11"):
        train.train(features, SPLIT, tmp_path / "api", TINY, huge, progress=False)
    assert not (tmp_path / "api" / "metrics.json").exists()
    args = ["--data", "demo", "--demo-actors", str(DEMO_ACTORS), "--cache-dir"]
    monkeypatch.setattr(
        sys,
        "argv",
        ["mkcc-train", *args, str(cache_dir), *SPLIT_ARGS, *TINY_ARGS]
        + ["--epochs", "1", "--lr", "1e12", "--out", str(tmp_path / "cli"), "--no-progress"],
    )
    with pytest.raises(SystemExit, match="mkcc-train: training diverged"):
        train.cli()


def test_empty_split_part_is_an_error(features, tmp_path):
    with pytest.raises(ValueError, match="val"):
        train.train(
            features, explicit_split((1, 2), (), (4,)), tmp_path, TINY, TrainConfig(epochs=1)
        )


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def torn_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_save_fsyncs_and_replaces(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b))
    path = atomic_save({"model": {}, "epoch": 0}, tmp_path / "best.pt")
    assert calls[:2] == ["fsync", "replace"]
    assert load_checkpoint(path)["epoch"] == 0
    atomic_write_text("{}\n", tmp_path / "metrics.json")
    assert (tmp_path / "metrics.json").read_text() == "{}\n"


def test_train_eval_cli_end_to_end(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "--data",
        "demo",
        "--demo-actors",
        str(DEMO_ACTORS),
        "--cache-dir",
        str(cache_dir),
        *SPLIT_ARGS,
        *TINY_ARGS,
        "--epochs",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    metrics = train.main(args)
    printed = capsys.readouterr().out
    assert f"accuracy {metrics['test']['accuracy']:.4f}" in printed
    assert str(out / "confusion.png") in printed and str(out / "curves.png") in printed
    assert json.loads((out / "metrics.json").read_text())["config"]["data"] == "demo"

    evaluated = evaluate.main([str(out / "best.pt"), *args[:6], *SPLIT_ARGS, "--no-progress"])
    assert evaluated["test"] == metrics["test"]
    eval_dir = out / "eval-fold0"
    assert json.loads((eval_dir / "metrics.json").read_text())["test"] == metrics["test"]
    assert (eval_dir / "confusion.png").is_file()

    silenced = evaluate.main(
        [str(out / "best.pt"), *args[:6], *SPLIT_ARGS, "--no-progress", "--modality-weight", "1"]
    )
    assert silenced["config"]["model"]["modality_weight"] == 1.0
    assert (out / "eval-fold0-a1" / "metrics.json").is_file()


def test_cli_rejects_bad_options(cache_dir, tmp_path):
    base = ["--data", "demo", "--cache-dir", str(cache_dir), "--out", str(tmp_path)]
    with pytest.raises(ValueError, match="scales"):
        train.main([*base, "--scales", "3,9"])
    with pytest.raises(ValueError, match="train_actors"):
        train.main([*base, "--train-actors", "1,2"])
    with pytest.raises(FileNotFoundError, match="data"):
        train.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path)])


def test_ablation_table(features, tmp_path):
    base = ModelConfig(channels_part1=2, channels_part2=2, backend="cpu")
    variants = [v for v in ablate.table4_variants(base) if v.name in ("cnn", "mkcc")]
    variants += ablate.table5_variants(base, (0.5, 0.3))
    rows = ablate.run_ablation(
        features,
        tmp_path,
        variants,
        {0: SPLIT},
        TrainConfig(epochs=1),
        torch.device("cpu"),
        progress=False,
    )
    table = (tmp_path / "ablation.md").read_text()
    assert [r["variant"] for r in rows] == ["cnn", "mkcc", "mkcc-a0.5", "mkcc-a0.3"]
    # a = 0.5 is the full model's default: trained once, reported in both rows
    assert rows[1]["accuracy"] == rows[2]["accuracy"]
    assert not (tmp_path / "mkcc-a0.5").exists()
    # the paper's numbers in the column after ours; a weight outside Table 5 has none
    lines = {
        line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| Table")
    }
    assert "| 56.53 |" in lines["cnn"] and lines["cnn"].endswith("| 58.34 |")
    assert "| 75.62 |" in lines["mkcc"] and lines["mkcc"].endswith("| 77.23 |")
    assert lines["mkcc-a0.3"].endswith("| - |")
    for row in rows:
        ours = f"{100 * row['accuracy'][0]:.2f}"
        assert f"| {ours} |" in lines[row["variant"]]
    json_rows = json.loads((tmp_path / "ablation.json").read_text())
    assert json_rows[0]["accuracy"] == rows[0]["accuracy"]
    with (tmp_path / "ablation.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["variant"] for r in csv_rows] == [r["variant"] for r in rows]
    assert csv_rows[0]["paper_accuracy"] == "56.53" and csv_rows[3]["paper_f1"] == ""
    assert float(csv_rows[0]["accuracy_mean"]) == pytest.approx(
        100 * rows[0]["accuracy"][0], abs=0.01
    )
    assert (tmp_path / "ablation.png").stat().st_size > 0
    # a second invocation reuses the finished runs
    again = ablate.run_ablation(
        features,
        tmp_path,
        variants,
        {0: SPLIT},
        TrainConfig(epochs=1),
        torch.device("cpu"),
        progress=False,
    )
    assert again == rows


def test_ablation_mean_std_formatting():
    assert ablate.mean_std([0.5, 0.7]) == "60.00 ± 14.14"
    assert ablate.mean_std([0.25]) == "25.00"


def test_ddp_two_processes_one_epoch(cache_dir, features, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "mkcc_model.train",
        "--data",
        "demo",
        "--demo-actors",
        str(DEMO_ACTORS),
        "--cache-dir",
        str(cache_dir),
        *SPLIT_ARGS,
        *TINY_ARGS,
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("test: accuracy") == 1  # only rank 0 reports
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["world_size"] == 2
    clips = sum(v["support"] for v in metrics["test"]["per_class"].values())
    assert clips == int((features.actors == 4).sum())  # the whole test actor, from both ranks
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "confusion.png",
        "curves.png",
        "last.pt",
        "metrics.json",
    ]


def test_broken_data_file_fails_naming_it_or_is_skipped_and_counted(tmp_path, capsys):
    root = make_demo(tmp_path / "data", actors=DEMO_ACTORS)
    wav = sorted(root.rglob("03-01-05-*-01.wav"))[0]
    wav.write_bytes(wav.read_bytes()[:100])  # a truncated header
    args = [
        "--data",
        str(root),
        "--cache-dir",
        str(tmp_path / "cache"),
        *SPLIT_ARGS,
        *TINY_ARGS,
        "--epochs",
        "1",
        "--no-progress",
    ]
    with pytest.raises(ValueError, match=wav.name):
        train.main([*args, "--on-error", "fail", "--out", str(tmp_path / "fail")])
    capsys.readouterr()
    train.main([*args, "--out", str(tmp_path / "skip")])
    err = capsys.readouterr().err
    skipped = index_dataset(root).skipped
    assert any(Path(s.path).name == wav.name for s in skipped)
    assert f"data: {len(skipped)} files under {root} give no clip" in err


def test_default_recipe_reaches_the_optimizer(features, tmp_path):
    """The paper's optimizer as run: SGD, lr 0.04 held constant, momentum 0.9 without
    dampening, weight decay 1e-3."""
    train.train(features, SPLIT, tmp_path, TINY, TrainConfig(epochs=2), progress=False)
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    (group,) = checkpoint["optimizer"]["param_groups"]
    assert (group["lr"], group["momentum"], group["dampening"], group["weight_decay"]) == (
        0.04,
        0.9,
        0.0,
        1e-3,
    )
    assert not group["nesterov"]
    assert [epoch["lr"] for epoch in checkpoint["history"]] == [0.04, 0.04]


def test_kan_head_trains_and_reloads_from_the_cli(cache_dir, tmp_path):
    out = tmp_path / "kanhead"
    args = [
        "--data", "demo", "--demo-actors", str(DEMO_ACTORS), "--cache-dir", str(cache_dir),
        *SPLIT_ARGS, *TINY_ARGS, "--epochs", "1", "--head", "kan", "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    metrics = train.main(args)
    assert metrics["config"]["model"]["head"] == "kan"
    evaluated = evaluate.main([str(out / "best.pt"), *args[:6], *SPLIT_ARGS, "--no-progress"])
    assert evaluated["test"] == metrics["test"]
