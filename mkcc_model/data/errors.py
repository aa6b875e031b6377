"""The error raised for a data file that cannot be read or does not hold what is expected."""

from __future__ import annotations

import os


class DataFileError(ValueError):
    """A file that cannot be used: ``path`` names it, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
