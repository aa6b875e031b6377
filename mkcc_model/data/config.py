"""Feature parameters shared by the audio and action-unit extractors and the cache."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .aus import AU_COLUMNS


@dataclass(frozen=True)
class FeatureConfig:
    """How clips become features.

    Audio: resampled to ``sample_rate`` (Hz), centre-cropped or end-padded with zeros to
    ``duration_s``, then ``n_mfcc`` MFCCs from ``n_mels`` HTK-scale mel bands over frames of
    ``frame_length`` samples every ``hop_length`` (centred frames, Hamming window, pre-emphasis
    ``preemphasis``) -> ``[n_mfcc, 1 + round(duration_s * sample_rate) // hop_length]``; the
    defaults give ``[10, 621]``. ``n_mels`` defaults to 26, HTK's usual filterbank size; a band
    count that leaves a band without an FFT bin is refused (with 256-sample frames at most 29
    bands at 48 kHz, 47 at 22 050 Hz). Action units: the 35 OpenFace AU columns at ``au_frames``
    uniformly spaced times over the same centred ``duration_s`` window -> ``[35, au_frames]``,
    on OpenFace's own scales (its default video-level normalization, which the paper uses and
    nothing more); with ``au_normalize`` (mkcc 0.1's default, not in the paper) each AU column is
    also standardized per video (mean and standard deviation over the video's successfully
    tracked frames).
    """

    sample_rate: int = 22050
    duration_s: float = 3.6
    n_mfcc: int = 10
    n_mels: int = 26
    frame_length: int = 256
    hop_length: int = 128
    preemphasis: float = 0.95
    au_frames: int = 15
    au_normalize: bool = False

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            expected = {"int": int, "float": (int, float), "bool": bool}[field.type]
            if (isinstance(value, bool) and field.type != "bool") or not isinstance(
                value, expected
            ):
                raise TypeError(f"{field.name}: expected {field.type}, got {value!r}")
        for name in ("sample_rate", "n_mfcc", "n_mels", "hop_length", "au_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive value, got {getattr(self, name)}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s: expected a positive duration, got {self.duration_s}")
        if self.frame_length < 2:
            raise ValueError(f"frame_length: expected at least 2 samples, got {self.frame_length}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc: expected at most n_mels={self.n_mels}, got {self.n_mfcc}")
        if _empty_mel_bands(self.sample_rate, self.frame_length, self.n_mels):
            fitting = [
                n
                for n in range(1, self.n_mels)
                if not _empty_mel_bands(self.sample_rate, self.frame_length, n)
            ]
            advice = f"use at most {fitting[-1]}" if fitting else "use longer frames"
            raise ValueError(
                f"n_mels: {self.n_mels} bands over {self.frame_length}-sample frames at "
                f"{self.sample_rate} Hz leave bands without a frequency bin; {advice}"
            )
        if not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(f"preemphasis: expected 0 <= preemphasis < 1, got {self.preemphasis}")

    @property
    def n_samples(self) -> int:
        """Audio samples per clip after cropping or padding."""
        return round(self.duration_s * self.sample_rate)

    @property
    def audio_shape(self) -> tuple[int, int]:
        """``(n_mfcc, frames)`` of one clip's MFCCs."""
        return (self.n_mfcc, 1 + self.n_samples // self.hop_length)

    @property
    def au_shape(self) -> tuple[int, int]:
        """``(35, au_frames)`` of one clip's action units."""
        return (len(AU_COLUMNS), self.au_frames)

    def to_dict(self) -> dict:
        """The parameters as a JSON-ready dict."""
        return asdict(self)

    def audio_params(self) -> dict:
        """The parameters the MFCCs depend on (part of their cache key)."""
        names = ("sample_rate", "duration_s", "n_mfcc", "n_mels", "frame_length", "hop_length")
        return {name: getattr(self, name) for name in (*names, "preemphasis")}

    def au_params(self) -> dict:
        """The parameters the action-unit features depend on (part of their cache key)."""
        return {name: getattr(self, name) for name in ("duration_s", "au_frames", "au_normalize")}


def _empty_mel_bands(sample_rate: int, frame_length: int, n_mels: int) -> int:
    """How many HTK-scale triangular bands (0 Hz to Nyquist) contain no FFT bin."""
    top = 2595.0 * np.log10(1.0 + sample_rate / 2 / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(0.0, top, n_mels + 2) / 2595.0) - 1.0)
    bins = np.arange(frame_length // 2 + 1) * sample_rate / frame_length
    inside = (bins[None, :] > edges[:-2, None]) & (bins[None, :] < edges[2:, None])
    return int(np.sum(~inside.any(axis=1)))
