"""Backup and restore of a whole store: the database through SQLite's backup API (a
consistent snapshot even while the app writes) plus the photo files it refers to.

A backup is a folder (or the same folder zipped) holding ``lesionviewer.sqlite3``,
``photos/...`` and ``manifest.json`` (schema version, counts, time).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import zipfile
from pathlib import Path

from lesionviewer.store.db import DB_NAME, utc_now
from lesionviewer.store.errors import StoreError
from lesionviewer.store.integrity import check_integrity, errors_only
from lesionviewer.store.migrations import schema_version
from lesionviewer.store.repository import Store

MANIFEST = "manifest.json"


def _snapshot(store: Store, folder: Path) -> dict:
    """Write the database snapshot and its photos into ``folder``; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    target_db = folder / DB_NAME
    destination = sqlite3.connect(target_db)
    try:
        store.db.conn.backup(destination)
        destination.execute("PRAGMA journal_mode = DELETE")
        files = [row[0] for row in destination.execute("SELECT file FROM photo ORDER BY id")]
        patients = destination.execute("SELECT COUNT(*) FROM patient").fetchone()[0]
    finally:
        destination.close()
    for relative in files:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(store.data_dir / relative, target)
    manifest = {
        "format": 1,
        "created_at": utc_now(),
        "schema_version": schema_version(store.db),
        "patients": patients,
        "photos": len(files),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def backup_store(store: Store, destination: str | Path) -> Path:
    """Back up the store to ``destination``: a ``.zip`` file or a new/empty folder.

    Returns the destination path. Raises StoreError if the destination exists and is
    not an empty folder.
    """
    destination = Path(destination)
    if destination.suffix.lower() == ".zip":
        if destination.exists():
            raise StoreError(destination, "backup file already exists")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent) as temp:
            _snapshot(store, Path(temp) / "store")
            partial = destination.with_name(destination.name + ".partial")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted((Path(temp) / "store").rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(Path(temp) / "store").as_posix())
            partial.replace(destination)
        return destination
    if destination.exists() and any(destination.iterdir()):
        raise StoreError(destination, "backup folder is not empty")
    _snapshot(store, destination)
    return destination


def restore_store(source: str | Path, data_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Restore a backup (folder or ``.zip``) into ``data_dir``.

    The backup is unpacked beside ``data_dir`` and checked (integrity check, SHA-256 of
    every photo) before anything is replaced. With ``overwrite`` an existing store is
    moved aside to ``<data_dir>.before-restore-<time>`` (returned in the log of the app);
    without it, a data_dir holding a store is refused. Returns ``data_dir``.
    """
    source, data_dir = Path(source), Path(data_dir)
    if not source.exists():
        raise StoreError(source, "backup not found")
    if (data_dir / DB_NAME).exists() and not overwrite:
        raise StoreError(data_dir, "a store already exists here (restore with overwrite)")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir.parent))
    try:
        unpacked = staging / "store"
        if source.is_file():
            try:
                with zipfile.ZipFile(source) as archive:
                    for name in archive.namelist():
                        if name.startswith("/") or ".." in Path(name).parts:
                            raise StoreError(source, f"unsafe path in backup: {name}")
                    archive.extractall(unpacked)
            except zipfile.BadZipFile as exc:
                raise StoreError(source, f"not a backup zip ({exc})") from exc
        else:
            shutil.copytree(source, unpacked)
        if not (unpacked / DB_NAME).is_file():
            raise StoreError(source, f"backup holds no {DB_NAME}")
        (unpacked / MANIFEST).unlink(missing_ok=True)
        with Store.open(unpacked) as restored:
            problems = errors_only(check_integrity(restored))
        if problems:
            details = "; ".join(p.detail for p in problems[:3])
            raise StoreError(source, f"backup is damaged: {details}")
        if data_dir.exists():
            if overwrite and any(data_dir.iterdir()):
                aside = data_dir.with_name(
                    f"{data_dir.name}.before-restore-{utc_now()[:19].replace(':', '')}"
                )
                data_dir.rename(aside)
            else:
                data_dir.rmdir()
        unpacked.rename(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return data_dir
