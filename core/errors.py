"""Errors raised by the core library.

Every error that comes from a user's input names the file and the reason, so that
the app and the command line can show it as one line.
"""

from __future__ import annotations

from pathlib import Path


class LesionViewerError(Exception):
    """Base class of every error the project raises on purpose."""


class PhotoError(LesionViewerError):
    """A photo file cannot be used: unreadable, truncated, empty, oversized or of a wrong format."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class ModelError(LesionViewerError):
    """A model folder is missing, malformed, or its weights do not match their SHA-256."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DataError(LesionViewerError):
    """A data file (CSV, JSON, label image) is missing, malformed or inconsistent."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class Cancelled(LesionViewerError):
    """A long computation stopped because its caller asked it to (``cancel()`` returned True).

    Not a failure of the input: the app drops the stale request and shows nothing.
    """

    def __init__(self, what: str = "computation") -> None:
        self.what = what
        super().__init__(f"{what} cancelled")
