"""Feature extraction over the stand-in: shapes, labels, the cache (a second run computes
nothing), skipped and failing files, splits, batches, and the generator itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from mkcc_model.data import (
    ClipDataset,
    DataFileError,
    FeatureConfig,
    FeatureSet,
    collate_clips,
    compute_features,
    explicit_split,
    fold_split,
    index_dataset,
    load_features,
    make_demo,
)
from mkcc_model.data import audio as audio_module
from mkcc_model.data import aus as aus_module
from mkcc_model.data.demo import MARKER

DEMO_ACTORS = 2


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The 2-actor stand-in (written once per session; later calls find it complete)."""
    return make_demo(tmp_path_factory.getbasetemp() / "data-demo-2", actors=DEMO_ACTORS)


@pytest.fixture(scope="module")
def demo_cache(demo_root, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("features")
    load_features(demo_root, cache, progress=False)
    return cache


@pytest.fixture(scope="module")
def features(demo_root, demo_cache) -> FeatureSet:
    return load_features(demo_root, demo_cache, progress=False)


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """Counts calls of the two extractors."""
    calls = {"audio": 0, "aus": 0}
    extract_audio, extract_aus = audio_module.extract_audio, aus_module.extract_aus

    def count_audio(*args, **kwargs):
        calls["audio"] += 1
        return extract_audio(*args, **kwargs)

    def count_aus(*args, **kwargs):
        calls["aus"] += 1
        return extract_aus(*args, **kwargs)

    monkeypatch.setattr(audio_module, "extract_audio", count_audio)
    monkeypatch.setattr(aus_module, "extract_aus", count_aus)
    return calls


def small_copy(demo_root: Path, destination: Path, clips: int = 6) -> Path:
    """The wav and CSV files of the first ``clips`` wav clips, in one flat folder."""
    destination.mkdir()
    chosen = [c for c in index_dataset(demo_root).clips if c.audio_source == "wav"][:clips]
    for clip in chosen:
        shutil.copy(clip.audio_path, destination / clip.audio_path.name)
        shutil.copy(clip.au_path, destination / clip.au_path.name)
    return destination


def test_shapes_labels_and_order(features, demo_root):
    index = index_dataset(demo_root)
    n = 60 * DEMO_ACTORS - 2
    assert len(features) == n
    assert features.audio.shape == (n, 10, 621) and features.audio.dtype == torch.float32
    assert features.aus.shape == (n, 35, 15) and features.aus.dtype == torch.float32
    assert features.aus_mask.shape == (n, 15) and features.aus_mask.dtype == torch.bool
    assert features.labels.dtype == features.actors.dtype == torch.int64
    assert features.clip_ids == [c.clip_id for c in index.clips]
    assert features.labels.tolist() == [c.label for c in index.clips]
    assert features.actors.tolist() == [c.actor for c in index.clips]
    assert sorted(set(features.labels.tolist())) == list(range(8))
    assert [e.path for e in features.skipped] == [e.path for e in index.skipped]
    assert features.config == FeatureConfig()
    assert torch.isfinite(features.audio).all() and torch.isfinite(features.aus).all()
    assert not features.aus_mask.all() and features.aus_mask.float().mean() > 0.9
    assert torch.all(features.aus.permute(0, 2, 1)[~features.aus_mask] == 0)


def pooled(features: FeatureSet, name: str) -> torch.Tensor:
    """Per-clip vectors: MFCC means and standard deviations over time, or the AU frames."""
    if name == "audio":
        return torch.cat([features.audio.mean(2), features.audio.std(2)], 1)
    return features.aus.flatten(1)


def test_both_modalities_carry_the_emotion(features, demo_root):
    """Nearest class mean, fitted on the first statement's clips, labels the second statement's
    clips well above chance (1/8) from either modality, and better from both."""
    statement = torch.tensor([int(i.split("-")[4]) for i in features.clip_ids])
    accuracies = {}
    for name in ("audio", "aus", "both"):
        if name == "both":
            vectors = torch.cat([pooled(features, "audio"), pooled(features, "aus")], 1)
        else:
            vectors = pooled(features, name)
        fit, held_out = statement == 1, statement == 2
        mean, std = vectors[fit].mean(0), vectors[fit].std(0) + 1e-6
        vectors = (vectors - mean) / std
        centres = torch.stack([vectors[fit & (features.labels == k)].mean(0) for k in range(8)])
        predicted = torch.cdist(vectors[held_out], centres).argmin(1)
        accuracies[name] = (predicted == features.labels[held_out]).float().mean().item()
    assert accuracies["audio"] > 0.4 and accuracies["aus"] > 0.4, accuracies
    assert accuracies["both"] > max(accuracies["audio"], accuracies["aus"]), accuracies


def test_second_run_computes_nothing(demo_root, tmp_path, counted):
    source = small_copy(demo_root, tmp_path / "copy")
    first, stats = compute_features(index_dataset(source), tmp_path / "cache", progress=False)
    assert counted == {"audio": 6, "aus": 6}
    assert stats.computed == {"audio": 6, "aus": 6} and stats.cached == {"audio": 0, "aus": 0}
    second, stats = compute_features(index_dataset(source), tmp_path / "cache", progress=True)
    assert counted == {"audio": 6, "aus": 6}
    assert stats.cached == {"audio": 6, "aus": 6} and stats.computed == {"audio": 0, "aus": 0}
    torch.testing.assert_close(first.audio, second.audio, rtol=0, atol=0)
    torch.testing.assert_close(first.aus, second.aus, rtol=0, atol=0)
    assert torch.equal(first.aus_mask, second.aus_mask)


def test_cache_is_keyed_by_content_and_parameters(demo_root, tmp_path, counted):
    source = small_copy(demo_root, tmp_path / "copy")
    cache = tmp_path / "cache"
    load_features(source, cache, progress=False)
    assert counted == {"audio": 6, "aus": 6}

    load_features(source, cache, FeatureConfig(au_normalize=True), progress=False)
    assert counted == {"audio": 6, "aus": 12}  # the MFCCs do not depend on AU settings
    load_features(source, cache, FeatureConfig(n_mels=20), progress=False)
    assert counted == {"audio": 12, "aus": 12}

    wav = sorted(source.glob("*.wav"))[0]
    samples, rate = soundfile.read(wav, dtype="int16")
    soundfile.write(wav, samples // 2, rate, subtype="PCM_16")
    renamed = source / "moved"
    renamed.mkdir()
    csv = sorted(source.glob("*.csv"))[-1]
    csv.rename(renamed / csv.name)  # same bytes elsewhere: still cached
    load_features(source, cache, progress=False)
    assert counted == {"audio": 13, "aus": 12}


def test_cache_inside_the_root_is_not_indexed(demo_root, tmp_path):
    source = small_copy(demo_root, tmp_path / "copy")
    load_features(source, source / "cache", progress=False)
    again = load_features(source, source / "cache", progress=False)
    assert len(again) == 6 and again.skipped == []


def test_a_damaged_cache_entry_is_recomputed(demo_root, tmp_path, counted):
    source = small_copy(demo_root, tmp_path / "copy", clips=2)
    first = load_features(source, tmp_path / "cache", progress=False)
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"not an npz")
    second = load_features(source, tmp_path / "cache", progress=False)
    assert counted == {"audio": 4, "aus": 4}
    torch.testing.assert_close(first.audio, second.audio)


def damage(source: Path) -> dict[str, str]:
    """Damage four clips of a small copy; returns their file names and the expected reasons."""
    wavs, csvs = sorted(source.glob("*.wav")), sorted(source.glob("*.csv"))
    wavs[0].write_bytes(wavs[0].read_bytes()[:5000])
    csvs[1].write_text("frame, timestamp, success\n1, 0.0, 1\n")
    csvs[2].write_text("")
    wavs[3].write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    return {
        wavs[0].name: "truncated wav",
        csvs[1].name: "not an OpenFace AU CSV: 35 columns missing",
        csvs[2].name: "empty file",
        wavs[3].name: "unreadable audio",
    }


@pytest.mark.parametrize("check_files", [True, False], ids=["probed", "at-extraction"])
def test_on_error_skip_lists_each_damaged_file(demo_root, tmp_path, check_files):
    source = small_copy(demo_root, tmp_path / "copy")
    expected = damage(source)
    index = index_dataset(source, check_files=check_files)
    features, stats = compute_features(index, tmp_path / "cache", progress=False)
    assert len(features) == 2 and stats.failed == 4
    reasons = {entry.path: entry.reason for entry in features.skipped if entry.broken}
    assert sorted(reasons) == sorted(expected)
    for name, reason in expected.items():
        assert reasons[name].startswith(reason), reasons[name]
    partners = [entry for entry in features.skipped if not entry.broken]
    assert len(partners) == 4  # the other file of each broken clip is listed too
    assert {entry.path[:2] for entry in partners} == {"01", "03"}


@pytest.mark.parametrize("check_files", [True, False], ids=["probed", "at-extraction"])
def test_on_error_fail_names_the_file(demo_root, tmp_path, check_files):
    source = small_copy(demo_root, tmp_path / "copy")
    expected = damage(source)
    index = index_dataset(source, check_files=check_files)
    with pytest.raises(DataFileError) as caught:
        compute_features(index, tmp_path / "cache", on_error="fail", progress=False)
    assert Path(caught.value.path).name in expected
    assert str(caught.value).startswith(str(source.resolve()))
    with pytest.raises(DataFileError):
        load_features(source, tmp_path / "cache", on_error="fail", progress=False)


def test_a_row_level_defect_is_found_at_extraction(demo_root, tmp_path):
    source = small_copy(demo_root, tmp_path / "copy", clips=2)
    csv = sorted(source.glob("*.csv"))[0]
    lines = csv.read_text().splitlines()
    lines[40] = lines[40].replace("0", "x", 3)
    csv.write_text("\n".join(lines) + "\n")
    assert index_dataset(source).skipped == []
    features, stats = compute_features(index_dataset(source), tmp_path / "cache", progress=False)
    assert len(features) == 1 and stats.failed == 1
    assert features.skipped[0].path == csv.name
    assert features.skipped[0].reason.startswith("malformed OpenFace rows")


def test_an_unexpected_extractor_failure_names_the_file(demo_root, tmp_path, monkeypatch):
    source = small_copy(demo_root, tmp_path / "copy", clips=2)

    def broken(path, config):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(audio_module, "extract_audio", broken)
    features, stats = compute_features(index_dataset(source), tmp_path / "cache", progress=False)
    assert len(features) == 0 and stats.failed == 2
    broken = [entry for entry in features.skipped if entry.broken]
    assert [entry.path[-4:] for entry in broken] == [".wav", ".wav"]
    for entry in broken:
        assert entry.reason == "cannot extract audio features (RuntimeError: decoder exploded)"


def test_no_usable_clip_is_an_error(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="root: no usable clips"):
        load_features(tmp_path, tmp_path / "cache", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"on_error": "ignore"}, ValueError, "on_error: expected one of"),
        ({"config": {"sample_rate": 16000}}, TypeError, "config: expected a FeatureConfig"),
        ({"workers": 0}, ValueError, "workers: expected a positive int"),
    ],
    ids=["on_error", "config", "workers"],
)
def test_bad_arguments(demo_root, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        compute_features(index_dataset(demo_root), tmp_path, progress=False, **kwargs)


def test_cache_dir_must_be_a_folder(demo_root, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cache_dir: expected a folder"):
        load_features(demo_root, tmp_path / "file", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sample_rate": 0}, ValueError, "sample_rate: expected a positive value"),
        ({"n_mfcc": 30}, ValueError, "n_mfcc: expected at most n_mels=26"),
        ({"n_mels": 40, "sample_rate": 48000}, ValueError, "n_mels: .* use at most 29"),
        ({"preemphasis": 1.0}, ValueError, "preemphasis"),
        ({"duration_s": -1.0}, ValueError, "duration_s"),
        ({"frame_length": 1}, ValueError, "frame_length"),
        ({"au_frames": 2.5}, TypeError, "au_frames: expected int"),
        ({"au_normalize": 1}, TypeError, "au_normalize: expected bool"),
        ({"sample_rate": True}, TypeError, "sample_rate: expected int"),
    ],
    ids=["rate", "n_mfcc", "n_mels", "preemphasis", "duration", "frame", "float", "int", "bool"],
)
def test_feature_config_checks(kwargs, error, message):
    with pytest.raises(error, match=message):
        FeatureConfig(**kwargs)


def test_feature_config_round_trips_through_json():
    config = FeatureConfig(sample_rate=16000, au_normalize=True)
    assert FeatureConfig(**json.loads(json.dumps(config.to_dict()))) == config
    assert config.audio_shape == (10, 451) and config.au_shape == (35, 15)


def test_subset_and_split(features):
    train, val, test = features.split(explicit_split([2], [], [1]))
    assert len(train) + len(test) == len(features) and len(val) == 0
    assert set(train.actors.tolist()) == {2} and set(test.actors.tolist()) == {1}
    assert val.audio.shape == (0, 10, 621) and val.aus_mask.shape == (0, 15)
    positions = [features.clip_ids.index(i) for i in test.clip_ids]
    torch.testing.assert_close(test.audio, features.audio[positions])
    assert test.labels.tolist() == features.labels[positions].tolist()
    assert test.config == features.config and test.skipped == features.skipped
    fold_parts = features.split(fold_split(0))
    assert [len(part) for part in fold_parts] == [0, 0, len(features)]
    with pytest.raises(TypeError, match="split: expected a Split"):
        features.split((1, 2, 3))


def test_dataset_and_batches(features):
    dataset = ClipDataset(features)
    assert len(dataset) == len(features)
    item = dataset[3]
    assert set(item) == {"audio", "aus", "aus_mask", "label", "clip_id"}
    assert item["audio"].shape == (10, 621) and item["aus"].shape == (35, 15)
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert item["clip_id"] == features.clip_ids[3]
    loader = DataLoader(dataset, batch_size=8, shuffle=False, collate_fn=collate_clips)
    batch = next(iter(loader))
    assert batch["audio"].shape == (8, 10, 621) and batch["aus"].shape == (8, 35, 15)
    assert batch["aus_mask"].shape == (8, 15) and batch["label"].shape == (8,)
    assert batch["label"].tolist() == features.labels[:8].tolist()
    assert batch["clip_id"] == features.clip_ids[:8]
    with pytest.raises(ValueError, match="items"):
        collate_clips([])
    with pytest.raises(TypeError, match="features: expected a FeatureSet"):
        ClipDataset([item])


def test_demo_is_deterministic_and_reused(tmp_path):
    first = make_demo(tmp_path / "a", actors=1, seed=3)
    second = make_demo(tmp_path / "b", actors=1, seed=3)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    assert len(index_dataset(first).clips) == 58

    stamp = (first / MARKER).stat().st_mtime_ns
    wav = next(first.rglob("*.wav"))
    before = wav.stat().st_mtime_ns
    assert make_demo(first, actors=1, seed=3) == first
    assert wav.stat().st_mtime_ns == before and (first / MARKER).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="out: expected a new or empty folder"):
        make_demo(first, actors=1, seed=4)


def test_demo_quirks_in_the_files(demo_root):
    csvs = sorted(demo_root.rglob("01-01-*.csv"))
    headers = {path.read_text().split("\n", 1)[0][:16] for path in csvs}
    assert headers == {"frame, face_id, ", "frame,face_id,ti"}
    lost = 0
    for path in csvs:
        text = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 4), ndmin=2)
        lost += int((text[:, 1] == 0).any())
    assert 0 < lost < len(csvs)
    assert any(
        np.unique(np.loadtxt(p, delimiter=",", skiprows=1, usecols=1)).size == 2 for p in csvs
    )
    assert (demo_root / "README.txt").is_file()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"actors": 0}, ValueError, r"actors: expected 1\.\.24"),
        ({"actors": 25}, ValueError, r"actors: expected 1\.\.24"),
        ({"actors": 2.0}, TypeError, "actors: expected int"),
        ({"seed": -1}, ValueError, "seed: expected a non-negative int"),
    ],
    ids=["zero", "too-many", "float", "seed"],
)
def test_demo_rejects_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        make_demo(tmp_path / "x", **kwargs)


@pytest.mark.slow
def test_full_stand_in_is_learnable_across_actors(tmp_path):
    """The 24-actor stand-in: 1438 clips, the five folds' sizes, and emotions of unseen actors
    recognized by a linear classifier from each modality, and better from both."""
    root = make_demo(tmp_path / "demo")
    features = load_features(root, tmp_path / "cache", progress=False)
    assert len(features) == 60 * 24 - 2
    sizes = [tuple(len(part) for part in features.split(fold_split(k))) for k in range(5)]
    assert sum(sum(size) for size in sizes) == 5 * len(features)
    assert all(abs(train - 960) <= 2 and abs(test - 240) <= 2 for train, _, test in sizes)

    train, _, test = features.split(fold_split(0))
    accuracies = {}
    for name in ("audio", "aus", "both"):
        if name == "both":
            x_train, x_test = (
                torch.cat([pooled(p, "audio"), pooled(p, "aus")], 1) for p in (train, test)
            )
        else:
            x_train, x_test = pooled(train, name), pooled(test, name)
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        torch.manual_seed(0)
        layer = torch.nn.Linear(x_train.shape[1], 8)
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-3)
        for _ in range(300):
            loss = torch.nn.functional.cross_entropy(layer(x_train), train.labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracies[name] = (layer(x_test).argmax(1) == test.labels).float().mean().item()
    assert 0.4 < accuracies["audio"] < 0.95 and 0.4 < accuracies["aus"] < 0.95, accuracies
    assert accuracies["both"] > max(accuracies["audio"], accuracies["aus"]), accuracies
