"""Audio: the paper's MFCC against an independent numpy computation, shapes, cropping and
padding, decoding (stereo, resampling, mp4 audio) and unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from mkcc_model.data import (
    DataFileError,
    FeatureConfig,
    extract_audio,
    index_dataset,
    load_audio,
    make_demo,
    mfcc,
    read_audio,
)
from mkcc_model.data.audio import fit_length


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The 2-actor stand-in (written once per session; later calls find it complete)."""
    return make_demo(tmp_path_factory.getbasetemp() / "data-demo-2", actors=2)


def numpy_mfcc(signal: np.ndarray, sample_rate: int, n_mels: int, n_mfcc: int) -> np.ndarray:
    """The paper's MFCC written out in float64 numpy, independently of librosa."""
    frame, hop, coefficient = 256, 128, 0.95
    signal = signal.astype(np.float64)
    emphasized = np.concatenate([signal[:1], signal[1:] - coefficient * signal[:-1]])
    padded = np.pad(emphasized, frame // 2)
    n_frames = 1 + len(emphasized) // hop
    frames = np.stack([padded[i * hop : i * hop + frame] for i in range(n_frames)])
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(frame) / frame)  # periodic Hamming
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # [frames, bins]

    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def hz(mels):
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)

    edges = hz(np.linspace(0.0, mel(sample_rate / 2), n_mels + 2))
    bins = np.arange(frame // 2 + 1) * sample_rate / frame
    filters = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        low, centre, high = edges[m : m + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        filters[m] = np.maximum(0.0, np.minimum(rising, falling))
    log_mel = np.log(np.maximum(power @ filters.T, 1e-10))  # [frames, n_mels]

    k = np.arange(n_mfcc)[:, None]
    m = np.arange(n_mels)[None, :]
    dct = np.sqrt(2.0 / n_mels) * np.cos(np.pi * k * (2 * m + 1) / (2 * n_mels))
    dct[0] /= np.sqrt(2.0)
    return dct @ log_mel.T  # [n_mfcc, frames]


@pytest.mark.parametrize(
    ("sample_rate", "n_mels", "n_mfcc"),
    [(22050, 26, 10), (16000, 40, 13), (48000, 29, 10)],
    ids=["default", "16k-40mels", "48k-29mels"],
)
def test_mfcc_matches_an_independent_numpy_computation(sample_rate, n_mels, n_mfcc):
    rng = np.random.default_rng(7)
    time = np.arange(round(1.3 * sample_rate)) / sample_rate
    chirp = 0.4 * np.sin(2 * np.pi * (150.0 * time + 900.0 * time**2))
    signal = (chirp + 0.05 * rng.standard_normal(len(time))).astype(np.float32)
    signal[: sample_rate // 10] = 0.0  # exact silence reaches the log floor
    config = FeatureConfig(sample_rate=sample_rate, n_mels=n_mels, n_mfcc=n_mfcc)
    ours = mfcc(signal, config)
    reference = numpy_mfcc(signal, sample_rate, n_mels, n_mfcc)
    assert ours.dtype == np.float32
    assert ours.shape == reference.shape == (n_mfcc, 1 + len(signal) // 128)
    error = np.abs(ours - reference).max()
    assert error < 2e-3 * np.abs(reference).max(), f"max abs error {error}"


@pytest.mark.parametrize(
    ("sample_rate", "frames"), [(22050, 621), (48000, 1351), (16000, 451)], ids=str
)
def test_mfcc_shape_of_a_clip(sample_rate, frames):
    config = FeatureConfig(sample_rate=sample_rate)
    assert config.audio_shape == (10, frames)
    signal = np.random.default_rng(0).standard_normal(config.n_samples).astype(np.float32)
    assert mfcc(signal, config).shape == (10, frames)


def test_fit_length_centre_crops_and_end_pads():
    signal = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(signal, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(signal, 5), [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(signal, 12), [*range(10), 0, 0])
    np.testing.assert_array_equal(fit_length(signal, 10), signal)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


def test_stereo_is_averaged_and_other_rates_are_resampled(tmp_path):
    rate = 44100
    time = np.arange(2 * rate) / rate
    left = 0.5 * np.sin(2 * np.pi * 440.0 * time)
    path = write_wav(tmp_path / "stereo.wav", np.column_stack([left, 0.5 * left]), rate)
    mono, read_rate = read_audio(path)
    assert read_rate == rate and mono.dtype == np.float32 and mono.shape == (2 * rate,)
    np.testing.assert_allclose(mono, 0.75 * left, atol=1e-4)

    resampled = load_audio(path, 22050, 3.6)
    assert resampled.shape == (round(3.6 * 22050),)
    assert np.all(resampled[2 * 22050 + 50 :] == 0.0)  # end-padded
    spectrum = np.abs(np.fft.rfft(resampled[: 2 * 22050]))
    assert abs(np.argmax(spectrum) * 22050 / (2 * 22050) - 440.0) < 1.0


def test_long_audio_is_centre_cropped(tmp_path):
    rate = 16000
    ramp = np.linspace(-0.5, 0.5, 5 * rate)
    cropped = load_audio(write_wav(tmp_path / "long.wav", ramp, rate), rate, 3.6)
    assert cropped.shape == (round(3.6 * rate),)
    start = (5 * rate - len(cropped)) // 2
    np.testing.assert_allclose(cropped, ramp[start : start + len(cropped)], atol=1e-4)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "header-only", "broken-link"])
def test_unreadable_audio_names_the_file(tmp_path, damage):
    good = write_wav(tmp_path / "good.wav", np.zeros(4800), 48000)
    path = tmp_path / "03-01-02-01-01-01-01.wav"
    data = good.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
        message = "truncated wav"
    elif damage == "garbage":
        path.write_bytes(b"RIFX" + bytes(range(256)) * 8)
        message = "unreadable audio"
    elif damage == "empty":
        path.write_bytes(b"")
        message = "empty file"
    elif damage == "header-only":
        path.write_bytes(data[:44])
        message = "truncated wav|no audio samples"
    else:
        path.symlink_to(tmp_path / "nowhere.wav")
        message = "cannot read the file"
    with pytest.raises(DataFileError, match=message) as caught:
        read_audio(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(str(path))


def test_mp4_without_audio_and_corrupt_mp4_name_the_file(tmp_path):
    path = tmp_path / "01-01-02-01-01-01-01.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    with pytest.raises(DataFileError, match="unreadable media|no audio") as caught:
        read_audio(path)
    assert caught.value.path == str(path)


def test_mp4_audio_track_matches_its_wav(demo_root):
    both = [c for c in index_dataset(demo_root).clips if c.video_path and c.audio_source == "wav"]
    assert len(both) == 1
    clip = both[0]
    config = FeatureConfig()
    from_wav = extract_audio(clip.audio_path, config)
    from_mp4 = extract_audio(clip.video_path, config)
    assert from_mp4.shape == from_wav.shape == (10, 621)
    speech = from_wav[0] > np.percentile(from_wav[0], 50)  # frames with energy (AAC is lossy)
    correlation = np.corrcoef(from_wav[:, speech].ravel(), from_mp4[:, speech].ravel())[0, 1]
    assert correlation > 0.98
    signal, rate = read_audio(clip.video_path)
    assert rate == 48000 and signal.ndim == 1


def test_demo_wavs_are_48k_16bit(demo_root):
    clips = index_dataset(demo_root).clips
    infos = [soundfile.info(str(c.audio_path)) for c in clips if c.audio_source == "wav"]
    assert {(i.samplerate, i.subtype) for i in infos} == {(48000, "PCM_16")}
    assert sorted({i.channels for i in infos}) == [1, 2]
    assert 3.0 < min(i.duration for i in infos) < 3.6 < max(i.duration for i in infos) < 4.4
