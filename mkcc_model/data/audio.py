"""Audio: reading wavs (soundfile) and mp4 audio tracks (PyAV), resampling, and the paper's MFCC."""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import av
import librosa
import numpy as np
import soundfile
import soxr

from .config import FeatureConfig
from .errors import DataFileError

LOG_FLOOR = 1e-10
"""Mel energies are floored here before the natural log (exact silence, e.g. padding)."""


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to ``(mono float32 samples [n], sample rate)``; channels are averaged.

    ``.wav`` (and other libsndfile formats) are read with soundfile; ``.mp4`` and any other
    container with PyAV (its first audio stream). Raises ``DataFileError`` naming the file when
    it is empty, truncated, unreadable or holds no audio.
    """
    path = Path(path)
    size = _nonempty_size(path)
    if path.suffix.lower() == ".wav":
        _check_wav_complete(path, size)
        try:
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise DataFileError(path, f"unreadable audio ({error})") from error
        mono = samples.mean(axis=1, dtype=np.float32)
    else:
        mono, rate = _read_container_audio(path)
    if mono.size == 0:
        raise DataFileError(path, "no audio samples")
    if not np.isfinite(mono).all():
        raise DataFileError(path, "non-finite audio samples")
    return mono, int(rate)


def probe_audio(path: str | os.PathLike) -> None:
    """Check that a file can give audio without decoding it: a complete wav header with
    samples (soundfile), or a container with an audio stream (PyAV). Raises ``DataFileError``
    naming the file as ``read_audio`` would."""
    path = Path(path)
    size = _nonempty_size(path)
    if path.suffix.lower() == ".wav":
        _check_wav_complete(path, size)
        try:
            frames = soundfile.info(str(path)).frames
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise DataFileError(path, f"unreadable audio ({error})") from error
        if frames == 0:
            raise DataFileError(path, "no audio samples")
        return
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataFileError(path, "no audio stream in the container")
    except av.FFmpegError as error:
        raise DataFileError(path, f"unreadable media ({error})") from error


def _nonempty_size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DataFileError(path, f"cannot read the file ({error})") from error
    if size == 0:
        raise DataFileError(path, "empty file")
    return size


def _check_wav_complete(path: Path, size: int) -> None:
    """Raise when a RIFF/WAVE file's data chunk claims more bytes than the file holds."""
    try:
        _check_wav_chunks(path, size)
    except OSError as error:
        raise DataFileError(path, f"cannot read the file ({error})") from error


def _check_wav_chunks(path: Path, size: int) -> None:
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = size - offset - 8
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise DataFileError(
                        path,
                        f"truncated wav: the data chunk declares {chunk_size} bytes, "
                        f"the file holds {available}",
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def _read_container_audio(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream of a media container, decoded with PyAV, averaged to mono."""
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataFileError(path, "no audio stream in the container")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")
            rate = stream.rate
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    except av.FFmpegError as error:
        raise DataFileError(path, f"unreadable media ({error})") from error
    if not chunks or not rate:
        raise DataFileError(path, "the audio stream holds no samples")
    return np.concatenate(chunks, axis=1).mean(axis=0, dtype=np.float32), int(rate)


def fit_length(signal: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop ``signal [n]`` to ``n_samples``, or pad it with zeros at the end."""
    if len(signal) >= n_samples:
        start = (len(signal) - n_samples) // 2
        return signal[start : start + n_samples]
    return np.pad(signal, (0, n_samples - len(signal)))


def load_audio(path: str | os.PathLike, sample_rate: int, duration_s: float) -> np.ndarray:
    """Mono float32 ``[round(duration_s * sample_rate)]``: decoded, resampled (soxr, high
    quality), centre-cropped or end-padded."""
    signal, rate = read_audio(path)
    if rate != sample_rate:
        signal = soxr.resample(signal, rate, sample_rate, quality="HQ").astype(np.float32)
    return fit_length(signal, round(duration_s * sample_rate))


def mfcc(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The paper's MFCC of ``signal [n]`` (at ``config.sample_rate``): float32 ``[n_mfcc, frames]``.

    Pre-emphasis ``y[t] - a * y[t-1]`` (``y[0]`` kept), centred frames of ``frame_length``
    samples (zero padding at the ends) every ``hop_length``, periodic Hamming window, power
    spectrum, ``n_mels`` triangular filters of unit height spaced on the HTK mel scale
    ``2595 * log10(1 + f / 700)`` from 0 Hz to Nyquist, natural log (floored at 1e-10),
    orthonormal DCT-II, the first ``n_mfcc`` coefficients (c0 included). ``frames`` is
    ``1 + n // hop_length``.
    """
    emphasized = librosa.effects.preemphasis(signal, coef=config.preemphasis, zi=0.0)
    spectrum = librosa.stft(
        emphasized,
        n_fft=config.frame_length,
        hop_length=config.hop_length,
        window="hamming",
        center=True,
        pad_mode="constant",
    )
    power = np.abs(spectrum) ** 2
    filterbank = mel_filterbank(config.sample_rate, config.frame_length, config.n_mels)
    # A plain einsum, not BLAS: next to torch's thread pool, BLAS threads slow this small product
    # by two orders of magnitude.
    mel_power = np.einsum("mf,ft->mt", filterbank, power)
    log_mel = np.log(np.maximum(mel_power, LOG_FLOOR))
    coefficients = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho")
    return coefficients.astype(np.float32)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, frame_length: int, n_mels: int) -> np.ndarray:
    """``[n_mels, frame_length // 2 + 1]`` triangular filters of unit height, HTK mel scale,
    0 Hz to Nyquist (librosa's ``filters.mel``)."""
    return librosa.filters.mel(
        sr=sample_rate,
        n_fft=frame_length,
        n_mels=n_mels,
        fmin=0.0,
        fmax=sample_rate / 2,
        htk=True,
        norm=None,
        dtype=np.float32,
    )


def extract_audio(path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
    """MFCCs of one audio file: ``load_audio`` then ``mfcc`` -> ``[n_mfcc, frames]`` float32."""
    return mfcc(load_audio(path, config.sample_rate, config.duration_s), config)
