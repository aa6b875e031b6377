"""Atomic checkpoint files and the random-number state that makes a resumed run exact."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def _atomic_write(path: str | Path, mode: str, write: Callable[[IO], None]) -> Path:
    """Calls ``write`` on a temporary file in the target's folder, flushes and fsyncs it, then
    ``os.replace``s it onto ``path``: a reader sees the old file or the new one, never a torn
    one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` of ``obj`` to ``path``, atomically (see ``_atomic_write``)."""
    return _atomic_write(path, "wb", lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Writes ``text`` to ``path``, atomically (see ``_atomic_write``)."""
    return _atomic_write(path, "w", lambda f: f.write(text))


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by training (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"checkpoint: {path} is not an MKCC checkpoint")
    return checkpoint


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's generators (CUDA's too when present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_directory(directory: Path) -> None:
    """Makes the rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
