"""Photo files stored by content: ``photos/ab/cdef....ext`` under the data folder.

A file is copied byte for byte (the original is never touched) to a temporary name in
its final folder, flushed to disk, then moved into place with ``os.replace``, so a
reader never sees a half-written photo. Leftover temporary files of an interrupted
import end in ``.partial`` and are reported by the integrity check.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from core.errors import PhotoError
from core.io import SUPPORTED_SUFFIXES

PHOTOS_DIRNAME = "photos"
PARTIAL_SUFFIX = ".partial"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (raises PhotoError naming it if unreadable)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise PhotoError(path, f"cannot read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def stored_suffix(path: Path) -> str:
    """The lower-case suffix the stored copy keeps ('.jpeg' becomes '.jpg')."""
    suffix = path.suffix.lower()
    if suffix == ".jpeg":
        return ".jpg"
    if suffix == ".tiff":
        return ".tif"
    if suffix not in SUPPORTED_SUFFIXES:
        raise PhotoError(path, f"unsupported file type {suffix or '(none)'}")
    return suffix


def relative_photo_path(sha256: str, suffix: str) -> str:
    """``photos/ab/cdef...<suffix>`` (POSIX separators, relative to the data folder)."""
    return f"{PHOTOS_DIRNAME}/{sha256[:2]}/{sha256[2:]}{suffix}"


def write_atomically(source: Path, target: Path, expected_sha256: str) -> None:
    """Copy ``source`` to ``target`` via a temporary file and ``os.replace``.

    The copy's SHA-256 is checked against ``expected_sha256`` before it is moved into
    place (the source changed while importing -> PhotoError). An existing target with
    the right content is left as it is.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PhotoError(
            source, f"cannot store a copy in {target.parent} ({exc.strerror or exc})"
        ) from exc
    if target.exists() and file_sha256(target) == expected_sha256:
        return
    temp = target.with_name(f"{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(temp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != expected_sha256:
            raise PhotoError(source, "file changed while it was being imported")
        os.replace(temp, target)
    except OSError as exc:
        raise PhotoError(source, f"cannot store a copy ({exc.strerror or exc})") from exc
    finally:
        if temp.exists():
            temp.unlink()
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Flush a folder entry to disk where the platform allows it (not on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
