"""A generated stand-in for RAVDESS: same layout and formats, emotion-dependent signals.

Each audio-visual speech take gets a 48 kHz 16-bit wav (a synthetic voice whose pitch, pitch
contour, tempo, loudness, spectral tilt, formants and breathiness depend on the emotion, the
intensity and the actor) and an OpenFace-format CSV (action units rising with an expression of
the emotion, mouth movements following the voice's syllables, blinks, distractor movements,
tracking losses). The copy carries the quirks of real ones: three folder spellings, OpenFace 2.1
``", "`` headers next to plain ones, audio only inside an mp4, a stereo wav, an upper-case
extension, duplicates, song and video-only files, invalid names, stray files, a second tracked
face, a take without CSV and one without audio.
"""

from __future__ import annotations

import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import scipy.fft
import soundfile

from .aus import AU_INTENSITY, AU_PRESENCE
from .names import ACTORS, N_ACTORS, RavdessName

SAMPLE_RATE = 48000
_SYNTH_RATE = SAMPLE_RATE // 2
_SYNTH_FFT = 1 << 17
"""Synthesis FFT size: longer than the longest take at 24 kHz (5 s)."""
FPS = 29.97
MARKER = "MKCC_DEMO.json"
DEMO_FORMAT = 1
SYLLABLES = 7

_AUDIO_DIR = "Audio_Speech_Actors_01-24"
_SONG_DIR = "Audio_Song_Actors_01-24"
_VIDEO_DIR = "Video_Speech"
_CSV_DIR = "OpenFace"

# Voice per emotion (code order): pitch factor, pitch range, contour, syllables per second,
# spectral tilt (dB per octave), level (dB RMS), breathiness, F1 and F2 factors, vibrato depth.
_VOICE_FIELDS = ("pitch", "range", "tempo", "tilt", "level", "breath", "f1", "f2", "vibrato")
_VOICE = np.array(
    [
        [1.00, 0.08, 4.2, -10.0, -28.0, 0.05, 1.00, 1.00, 0.000],
        [0.96, 0.06, 3.5, -12.0, -31.0, 0.12, 0.97, 1.00, 0.000],
        [1.22, 0.22, 4.8, -8.0, -24.0, 0.06, 1.05, 1.12, 0.000],
        [0.92, 0.05, 3.0, -13.0, -33.0, 0.20, 0.92, 0.95, 0.000],
        [1.18, 0.15, 4.9, -5.0, -20.0, 0.05, 1.15, 1.02, 0.000],
        [1.40, 0.12, 5.4, -9.0, -26.0, 0.22, 1.00, 1.05, 0.030],
        [0.94, 0.10, 3.4, -9.5, -28.0, 0.10, 0.98, 0.93, 0.000],
        [1.32, 0.25, 4.4, -7.5, -23.0, 0.06, 1.08, 1.06, 0.000],
    ]
)
_CONTOUR = ("fall", "fall", "wave", "fall", "fall", "wave", "fall", "rise")
_STRONG = 1.6
"""A strong take moves every voice parameter this many times as far from neutral."""

# Action units each emotion raises (intensity units at normal intensity).
_EXPRESSION = (
    {},
    {"AU12_r": 0.7, "AU06_r": 0.35},
    {"AU06_r": 1.2, "AU12_r": 2.0, "AU25_r": 0.4},
    {"AU01_r": 0.9, "AU04_r": 0.8, "AU15_r": 0.9, "AU17_r": 0.5},
    {"AU04_r": 1.4, "AU07_r": 0.9, "AU23_r": 0.8, "AU17_r": 0.4},
    {"AU01_r": 1.1, "AU02_r": 0.8, "AU04_r": 0.6, "AU05_r": 0.9, "AU20_r": 1.0},
    {"AU04_r": 1.3, "AU09_r": 1.0, "AU10_r": 1.0, "AU15_r": 0.4},
    {"AU01_r": 1.3, "AU02_r": 1.2, "AU05_r": 1.1, "AU26_r": 0.9},
)
_DISTRACTORS = ("AU02_r", "AU04_r", "AU10_r", "AU14_r", "AU17_r", "AU20_r", "AU23_r")
_LEADING = ("frame", "face_id", "timestamp", "confidence", "success")
_POSE = ("gaze_angle_x", "gaze_angle_y", "pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry")
_COLUMNS = (*_LEADING, *_POSE, "pose_Rz", *AU_INTENSITY, *AU_PRESENCE)
_ROW_FORMAT = ["%d", "%d", "%.3f", "%.2f", "%d"] + ["%.3f"] * 8 + ["%.2f"] * 35

_QUIRKS = (
    "mp4_only",
    "mp4_only",
    "mp4_and_wav",
    "stereo",
    "upper_case",
    "duplicate_wav",
    "duplicate_csv",
    "no_csv",
    "no_audio",
    "second_face",
)


@dataclass(frozen=True)
class _Actor:
    actor: int
    pitch: float
    formants: float
    tilt: float
    level: float
    au_baseline: np.ndarray
    expressiveness: float
    folder: str
    header_separator: str


@dataclass(frozen=True)
class _Timing:
    onset: float
    end: float
    syllables: np.ndarray


def make_demo(out: str | os.PathLike, actors: int = 24, seed: int = 0) -> Path:
    """Write a stand-in dataset for actors ``1..actors`` into ``out`` and return its path.

    Deterministic for ``(actors, seed)``. All 60 audio-visual speech takes of each actor are
    written except one take without CSV and one without audio, so ``60 * actors - 2`` clips are
    usable; the quirks listed in the module docstring add skipped files. A folder that already
    holds the same stand-in (its ``MKCC_DEMO.json`` matches) is returned as it is; any other
    non-empty folder is refused.
    """
    if isinstance(actors, bool) or not isinstance(actors, int):
        raise TypeError(f"actors: expected int, got {type(actors).__name__}")
    if not 1 <= actors <= N_ACTORS:
        raise ValueError(f"actors: expected 1..{N_ACTORS}, got {actors}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    root = Path(out).expanduser()
    stamp = {"format": DEMO_FORMAT, "actors": actors, "seed": seed}
    marker = root / MARKER
    found = _read_stamp(marker)
    if found == stamp:
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        holds = f" (it holds the stand-in {found})" if found else ""
        raise ValueError(f"out: expected a new or empty folder, got {str(out)!r}{holds}")
    root.mkdir(parents=True, exist_ok=True)

    people = [_make_actor(actor, seed) for actor in ACTORS[:actors]]
    takes = [(person, name) for person in people for name in _speech_takes(person.actor)]
    chooser = np.random.default_rng([seed, 0])
    picked = chooser.choice(len(takes), size=len(_QUIRKS), replace=False)
    quirk_of = {takes[position][1].stem(): quirk for quirk, position in zip(_QUIRKS, picked)}

    def write(take: tuple[_Actor, RavdessName]) -> None:
        person, name = take
        rng = np.random.default_rng([seed, *name.take])
        _write_take(root, person, name, quirk_of.get(name.stem(), ""), rng)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(write, takes))
    _write_extras(root, people, seed)
    marker.write_text(json.dumps(stamp))
    return root


def _read_stamp(marker: Path) -> dict | None:
    """The parameters recorded in a stand-in's marker file, or None when there is none."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def _speech_takes(actor: int) -> list[RavdessName]:
    """The 60 audio-visual speech takes of an actor (neutral has normal intensity only)."""
    return [
        RavdessName(1, 1, emotion, intensity, statement, repetition, actor)
        for emotion in range(1, 9)
        for intensity in ((1,) if emotion == 1 else (1, 2))
        for statement in (1, 2)
        for repetition in (1, 2)
    ]


def _make_actor(actor: int, seed: int) -> _Actor:
    rng = np.random.default_rng([seed, actor, 1])
    female = actor % 2 == 0
    baseline = np.abs(rng.normal(0.0, 0.15, len(AU_INTENSITY)))
    baseline[AU_INTENSITY.index("AU07_r")] = rng.uniform(0.6, 1.3)
    folder = (f"ACTOR{actor:02d}", f"Actor_{actor:02d}", "")[actor % 3]
    return _Actor(
        actor=actor,
        pitch=rng.uniform(170.0, 230.0) if female else rng.uniform(95.0, 135.0),
        formants=(1.15 if female else 1.0) * rng.uniform(0.95, 1.05),
        tilt=rng.normal(0.0, 2.5),
        level=rng.normal(0.0, 3.0),
        au_baseline=baseline,
        expressiveness=rng.uniform(0.5, 1.2),
        folder=folder,
        header_separator=", " if actor % 2 else ",",
    )


def _folder(root: Path, top: str, person: _Actor) -> Path:
    path = root / top / person.folder if person.folder else root / top
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_take(
    root: Path, person: _Actor, name: RavdessName, quirk: str, rng: np.random.Generator
) -> None:
    """Write one speech take's wav and CSV, altered by its quirk (empty: none)."""
    duration = rng.uniform(3.1, 4.3)
    voice, timing = _voice(rng, person, name, duration)
    audio_stem = name.stem(3)
    if quirk not in ("no_audio", "mp4_only"):
        extension = ".WAV" if quirk == "upper_case" else ".wav"
        wav_path = _folder(root, _AUDIO_DIR, person) / (audio_stem + extension)
        channels = 2 if quirk == "stereo" else 1
        _write_wav(wav_path, voice, rng, channels)
        if quirk == "duplicate_wav":
            copy = _folder(root, f"{_AUDIO_DIR}/backup", person) / (audio_stem + ".wav")
            copy.write_bytes(wav_path.read_bytes())
    if quirk in ("mp4_only", "mp4_and_wav"):
        _write_mp4(_folder(root, _VIDEO_DIR, person) / (name.stem() + ".mp4"), voice)
    if quirk != "no_csv":
        table = _face(rng, person, name, duration, timing)
        if quirk == "second_face":
            table = _with_second_face(table, rng)
        text = _csv_text(table, person.header_separator)
        (_folder(root, _CSV_DIR, person) / (name.stem() + ".csv")).write_text(text)
        if quirk == "duplicate_csv":
            (_folder(root, f"{_CSV_DIR}/re-run", person) / (name.stem() + ".csv")).write_text(text)


def _write_extras(root: Path, people: list[_Actor], seed: int) -> None:
    """Song takes, a video-only CSV, invalid names and stray files."""
    singers = [person for person in people if person.actor != 18]
    for position, emotion in enumerate((2, 5)):
        person = singers[position % len(singers)]
        name = RavdessName(3, 2, emotion, 1, 1, 1, person.actor)
        rng = np.random.default_rng([seed, *name.take, 3])
        duration = rng.uniform(4.0, 5.0)
        voice, timing = _voice(rng, person, name, duration)
        _write_wav(_folder(root, _SONG_DIR, person) / (name.stem() + ".wav"), voice, rng, 1)
        if position == 0:
            table = _face(rng, person, name, duration, timing)
            csv_path = _folder(root, _CSV_DIR, person) / (name.stem(1) + ".csv")
            csv_path.write_text(_csv_text(table, person.header_separator))

    person = people[-1]
    video_only_csv = RavdessName(2, 1, 4, 1, 2, 1, person.actor)
    neutral_strong_wav = RavdessName(3, 1, 1, 2, 1, 1, person.actor)
    emotion_09_csv = RavdessName(1, 1, 9, 1, 1, 1, person.actor)
    for name in (video_only_csv, neutral_strong_wav, emotion_09_csv):
        rng = np.random.default_rng([seed, *name.take, 4])
        voice, timing = _voice(rng, person, _valid_twin(name), 3.5)
        if name is neutral_strong_wav:
            _write_wav(_folder(root, _AUDIO_DIR, person) / (name.stem() + ".wav"), voice, rng, 1)
        else:
            table = _face(rng, person, _valid_twin(name), 3.5, timing)
            path = _folder(root, _CSV_DIR, person) / (name.stem() + ".csv")
            path.write_text(_csv_text(table, person.header_separator))
    (root / "README.txt").write_text("RAVDESS stand-in written by mkcc_model.data.make_demo\n")
    (_folder(root, _AUDIO_DIR, people[0]) / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def _valid_twin(name: RavdessName) -> RavdessName:
    """A take with a synthesizable emotion and intensity for a file whose name is invalid."""
    return RavdessName(1, 1, min(name.emotion, 8), 1, name.statement, name.repetition, name.actor)


def _voice_parameters(emotion: int, intensity: int) -> dict[str, float]:
    neutral, target = _VOICE[0], _VOICE[emotion - 1]
    scale = _STRONG if intensity == 2 else 1.0
    return dict(zip(_VOICE_FIELDS, neutral + scale * (target - neutral)))


def _voice(
    rng: np.random.Generator, person: _Actor, name: RavdessName, duration: float
) -> tuple[np.ndarray, _Timing]:
    """A spoken (or sung) statement: float32 samples ``[duration * 48000]`` in -1..1 and timing.

    The voice is synthesized at 24 kHz and brought to 48 kHz by the FFT of its filter."""
    p = _voice_parameters(name.emotion, name.intensity)
    n = int(round(duration * _SYNTH_RATE))
    time = np.arange(n, dtype=np.float32) / _SYNTH_RATE
    tempo = p["tempo"] * rng.uniform(0.8, 1.2) * (0.6 if name.channel == 2 else 1.0)
    speech = min(SYLLABLES / tempo, duration - 0.6)
    onset = min(rng.uniform(0.45, 0.85), duration - speech - 0.25)
    lengths = rng.uniform(0.7, 1.3, SYLLABLES)
    lengths *= speech / lengths.sum()
    starts = onset + np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
    envelope = np.zeros(n, np.float32)
    for start, length, strength in zip(starts, lengths, rng.uniform(0.6, 1.0, SYLLABLES)):
        first, last = int(start * _SYNTH_RATE), min(n, int((start + length) * _SYNTH_RATE))
        envelope[first:last] += strength * np.sin(np.linspace(0.0, np.pi, last - first))

    progress = np.clip((time - onset) / speech, 0.0, 1.0)
    contour = {
        "fall": 0.5 - progress,
        "rise": 2.0 * progress**2 - 0.4,
        "wave": np.sin(2 * np.pi * (1.5 * progress + rng.uniform())),
    }[_CONTOUR[name.emotion - 1]]
    drift = np.interp(time, np.linspace(0, duration, 40), rng.normal(0.0, 0.02, 40))
    pitch = person.pitch * p["pitch"] * (1.0 + p["range"] * contour + drift)
    if p["vibrato"]:
        pitch *= 1.0 + p["vibrato"] * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * time)
    phase = np.cumsum(pitch / _SYNTH_RATE, dtype=np.float64)
    voiced = (2.0 * (phase % 1.0) - 1.0).astype(np.float32)
    breath = np.clip(p["breath"] * rng.uniform(0.7, 1.3), 0.0, 0.9)
    noise = rng.standard_normal(n, dtype=np.float32)
    source = ((1.0 - breath) * voiced + 2.0 * breath * noise) * envelope

    octaves, log_frequency = _filter_axes()
    gain_db = (p["tilt"] + person.tilt) * octaves
    formant_hz = person.formants * np.array([600.0 * p["f1"], 1500.0 * p["f2"], 2600.0])
    for centre, height in zip(formant_hz, (14.0, 10.0, 8.0)):
        gain_db += height * np.exp(-0.5 * ((log_frequency - np.log(centre)) / 0.12) ** 2)
    spectrum = scipy.fft.rfft(source, _SYNTH_FFT) * (10.0 ** (gain_db / 20.0)).astype(np.float32)
    speech_signal = 2.0 * scipy.fft.irfft(spectrum, 2 * _SYNTH_FFT)[: 2 * n]

    active = np.repeat(envelope > 0.3, 2)
    rms = np.sqrt(np.mean(speech_signal[active] ** 2)) if active.any() else 1.0
    level_db = p["level"] + person.level + rng.normal(0.0, 3.5)
    signal = speech_signal * np.float32(10.0 ** (level_db / 20.0) / max(rms, 1e-12))
    room = np.float32(10.0 ** (rng.uniform(-64.0, -52.0) / 20.0))
    signal += room * rng.standard_normal(2 * n, dtype=np.float32)
    timing = _Timing(onset=onset, end=onset + speech, syllables=envelope[:: _SYNTH_RATE // 100])
    return np.clip(signal, -0.99, 0.99), timing


@functools.cache
def _filter_axes() -> tuple[np.ndarray, np.ndarray]:
    """Octaves above 150 Hz and log frequency of the synthesis FFT bins (float32)."""
    frequency = scipy.fft.rfftfreq(_SYNTH_FFT, 1.0 / _SYNTH_RATE)
    octaves = np.log2(np.maximum(frequency, 150.0) / 150.0)
    return octaves.astype(np.float32), np.log(np.maximum(frequency, 1.0)).astype(np.float32)


def _smoothstep(value: np.ndarray) -> np.ndarray:
    value = np.clip(value, 0.0, 1.0)
    return value * value * (3.0 - 2.0 * value)


def _face(
    rng: np.random.Generator, person: _Actor, name: RavdessName, duration: float, timing: _Timing
) -> np.ndarray:
    """OpenFace rows ``[frames, len(_COLUMNS)]`` of one take (one face, id 0)."""
    frames = int(duration * FPS)
    time = np.arange(frames) / FPS
    n_aus = len(AU_INTENSITY)
    noise = rng.normal(0.0, 0.25, (frames + 4, n_aus))
    intensity = person.au_baseline + (noise[:-4] + noise[2:-2] + noise[4:]) / 1.7

    start = timing.onset + rng.uniform(-0.35, 0.35)
    stop = timing.end + rng.uniform(0.1, 0.6)
    expression = _smoothstep((time - start) / rng.uniform(0.2, 0.5))
    expression *= 1.0 - _smoothstep((time - stop) / rng.uniform(0.3, 0.6))
    strength = person.expressiveness * (1.5 if name.intensity == 2 else 1.0)
    strength *= rng.uniform(0.2, 1.0)
    for column, amplitude in _EXPRESSION[name.emotion - 1].items():
        wobble = 1.0 + 0.1 * rng.standard_normal(frames)
        intensity[:, AU_INTENSITY.index(column)] += amplitude * strength * expression * wobble

    mouth = np.interp(time, np.arange(len(timing.syllables)) / 100.0, timing.syllables)
    intensity[:, AU_INTENSITY.index("AU25_r")] += 0.9 * mouth
    intensity[:, AU_INTENSITY.index("AU26_r")] += 0.6 * mouth
    for blink in rng.uniform(0.0, duration, rng.poisson(0.3 * duration)):
        intensity[:, AU_INTENSITY.index("AU45_r")] += rng.uniform(1.0, 2.5) * np.exp(
            -0.5 * ((time - blink) / 0.06) ** 2
        )
    for distractor in rng.choice(len(_DISTRACTORS), size=rng.integers(0, 3), replace=False):
        column = AU_INTENSITY.index(_DISTRACTORS[distractor])
        centre, width = rng.uniform(0.5, duration - 0.5), rng.uniform(0.3, 0.8)
        intensity[:, column] += rng.uniform(0.3, 1.2) * np.exp(
            -0.5 * ((time - centre) / width) ** 2
        )
    intensity = np.clip(intensity, 0.0, 5.0)

    presence = np.zeros((frames, len(AU_PRESENCE)))
    shared = [AU_PRESENCE.index(column.replace("_r", "_c")) for column in AU_INTENSITY]
    presence[:, shared] = (intensity > 1.0) ^ (rng.uniform(size=(frames, n_aus)) < 0.08)
    presence[:, AU_PRESENCE.index("AU28_c")] = rng.uniform(size=frames) < 0.02

    success = np.ones(frames)
    if rng.uniform() < 0.15:
        first = rng.integers(0, frames - 20)
        success[first : first + rng.integers(3, 20)] = 0.0
    confidence = np.where(success > 0, rng.uniform(0.88, 0.98, frames), rng.uniform(0.0, 0.3))
    pose = np.cumsum(rng.normal(0.0, 0.01, (frames, 8)), axis=0) + [0, 0, 0, 0, 500, 0, 0, 0]
    table = np.column_stack(
        [np.arange(1, frames + 1), np.zeros(frames), np.round(time, 3), confidence, success, pose]
        + [intensity, presence]
    )
    table[success == 0, 5:] = 0.0
    return table


def _with_second_face(table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Interleave rows of a second, mostly untracked face (id 1), as multi-face OpenFace does."""
    other = table.copy()
    other[:, 1] = 1.0
    other[:, 4] = (rng.uniform(size=len(other)) < 0.1).astype(float)
    other[:, 13:] = rng.uniform(0.0, 1.0, other[:, 13:].shape) * other[:, 4:5]
    return np.stack([table, other], axis=1).reshape(-1, table.shape[1])


def _csv_text(table: np.ndarray, separator: str) -> str:
    row_format = separator.join(_ROW_FORMAT)
    lines = [separator.join(_COLUMNS)]
    lines.extend(row_format % tuple(row) for row in table.tolist())
    return "\n".join(lines) + "\n"


def _write_wav(path: Path, signal: np.ndarray, rng: np.random.Generator, channels: int) -> None:
    """16-bit PCM at 48 kHz; a second channel is the first, slightly attenuated and noisier."""
    if channels == 2:
        other = 0.8 * signal + 1e-3 * rng.standard_normal(len(signal))
        signal = np.column_stack([signal, np.clip(other, -0.99, 0.99)])
    soundfile.write(path, np.round(signal * 32767).astype(np.int16), SAMPLE_RATE, "PCM_16")


def _write_mp4(path: Path, signal: np.ndarray) -> None:
    """An mp4 with a small MPEG-4 video stream and the voice as 48 kHz AAC audio."""
    samples = signal.astype(np.float32)[None, :]
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        picture = np.full((48, 64, 3), 96, np.uint8)
        for _ in range(int(samples.shape[1] / SAMPLE_RATE * 30)):
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode(None))
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
