"""Errors of the store: every one names the database or file and the reason."""

from __future__ import annotations

from pathlib import Path

from core.errors import LesionViewerError


class StoreError(LesionViewerError):
    """The store cannot do what was asked: database read-only, locked, corrupt, or a
    request that breaks its rules (unknown id, conflicting correction)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class StoreReadOnlyError(StoreError):
    """The database file or its folder cannot be written."""


class StoreLockedError(StoreError):
    """Another process holds the write lock longer than the busy timeout."""


class NotFoundError(StoreError):
    """No row with the asked id."""


class DuplicatePhotoError(StoreError):
    """The photo file is already stored for another visit (possibly another patient)."""
