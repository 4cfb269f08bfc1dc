"""Opening the store's SQLite database: where it lives, pragmas, transactions, errors.

One connection per thread: a :class:`sqlite_utils.Database` (and the ``Store`` that wraps
it) must only be used by the thread that opened it. Worker threads call
``Store.open(data_dir)`` themselves; opening is cheap (migrations are skipped when the
schema is current).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from platformdirs import user_data_dir

from lesionviewer.store.errors import StoreError, StoreLockedError, StoreReadOnlyError

#: Environment variable that overrides the default data folder.
DATA_DIR_ENV = "LESIONVIEWER_DATA_DIR"
DB_NAME = "lesionviewer.sqlite3"
#: Milliseconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_MS = 5000


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The store folder: ``data_dir`` if given, else ``$LESIONVIEWER_DATA_DIR``, else the
    platform's user data folder for "LesionViewer"."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser()
    return Path(user_data_dir("LesionViewer", appauthor=False))


def utc_now() -> str:
    """Current UTC time as an ISO string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def translate_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """Turn a sqlite3 error into a StoreError naming the database and the reason."""
    text = str(exc)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return StoreReadOnlyError(path, f"database is read-only ({text})")
    if "locked" in lowered or "busy" in lowered:
        return StoreLockedError(
            path, f"database is locked by another program ({text}); try again later"
        )
    if "unable to open" in lowered:
        return StoreError(path, f"cannot open database ({text})")
    if "not a database" in lowered or "malformed" in lowered:
        return StoreError(path, f"database file is corrupt ({text})")
    return StoreError(path, text)


@contextlib.contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Re-raise sqlite3 errors inside the block as StoreError subclasses."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate_error(path, exc) from exc


def connect(
    db_path: Path, *, readonly: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite_utils.Database:
    """Open ``db_path`` with foreign keys on, WAL journal and a busy timeout (ms).

    Raises StoreReadOnlyError when the file or folder cannot be written (unless
    ``readonly``), StoreLockedError when locked, StoreError for other failures.
    """
    db_path = Path(db_path)
    if not readonly:
        folder = db_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreReadOnlyError(folder, f"cannot create the data folder ({exc})") from exc
        if db_path.exists() and not os.access(db_path, os.W_OK):
            raise StoreReadOnlyError(db_path, "database file is read-only (no write permission)")
        if not os.access(folder, os.W_OK):
            raise StoreReadOnlyError(folder, "data folder is read-only (no write permission)")
    with sqlite_errors(db_path):
        if readonly:
            conn = sqlite3.connect(
                f"file:{db_path}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000
            )
        else:
            conn = sqlite3.connect(str(db_path), timeout=busy_timeout_ms / 1000)
        db = sqlite_utils.Database(conn, execute_plugins=False)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            with db.ensure_autocommit_on():
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(db_path, f"cannot switch the journal to WAL (got {mode})")
            db.execute("PRAGMA synchronous = NORMAL")
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database, path: Path) -> Iterator[None]:
    """A write transaction that takes the write lock at once (``BEGIN IMMEDIATE``), so a
    second writer waits for the busy timeout instead of failing mid-way. Nested use
    becomes a savepoint. Rolls back on any exception; sqlite3 errors become StoreError."""
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise translate_error(path, exc) from exc
    try:
        yield
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise translate_error(path, exc) from exc
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise translate_error(path, exc) from exc
