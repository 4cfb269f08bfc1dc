"""Faults: read-only, locked and corrupt databases; a process killed mid-write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from lesionviewer.store import (
    DB_NAME,
    Store,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
    check_integrity,
    errors_only,
    remove_leftovers,
)
from tests.lesionviewer import store_fault_child
from tests.lesionviewer.store_samples import write_photo


def test_read_only_store_gives_clear_error(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    with Store.open(tmp_path, readonly=True) as store:
        assert store.list_patients() == []
        with pytest.raises(StoreReadOnlyError) as info:
            store.add_patient("Sample Patient")
    assert DB_NAME in str(info.value) and "read-only" in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_file_gives_clear_error(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    (tmp_path / DB_NAME).chmod(0o444)
    try:
        with pytest.raises(StoreReadOnlyError, match="read-only"):
            Store.open(tmp_path)
    finally:
        (tmp_path / DB_NAME).chmod(0o644)


def test_missing_store_opened_read_only_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        Store.open(tmp_path / "nothing", readonly=True)


def test_locked_database_gives_clear_error(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with Store.open(tmp_path, busy_timeout_ms=100) as store:
            with pytest.raises(StoreLockedError) as info:
                store.add_patient("Sample Patient")
        assert "locked" in str(info.value) and DB_NAME in str(info.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store.open(tmp_path) as store:  # usable again once the lock is gone
        store.add_patient("Sample Patient")


def test_corrupt_database_file_gives_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        Store.open(tmp_path)


def _run_and_kill(target, args: tuple, done_file: Path, at_least: int) -> list[str]:
    """Start ``target`` in a child, wait until it reported ``at_least`` writes, then
    SIGKILL it at once (mid-write, most likely); return what it reported."""
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=target, args=args, daemon=True)
    child.start()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if done_file.exists() and len(done_file.read_text().splitlines()) >= at_least:
                break
            assert child.is_alive(), "child died on its own"
            time.sleep(0.01)
        else:
            pytest.fail("child did not write in time")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    assert child.exitcode == -signal.SIGKILL
    return done_file.read_text().splitlines()


def test_killed_import_loses_nothing_saved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store.open(data) as store:
        store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
    done = tmp_path / "done.txt"
    work = tmp_path / "work"
    work.mkdir()
    saved = _run_and_kill(
        store_fault_child.import_forever, (str(data), str(work), str(done)), done, 6
    )
    with Store.open(data) as store:
        problems = check_integrity(store)
        assert errors_only(problems) == [], problems
        stored = {row["sha256"] for row in store.db.query("SELECT sha256 FROM photo")}
        assert set(saved) <= stored
        remove_leftovers(problems, data)
        assert check_integrity(store) == []


def test_killed_analysis_write_leaves_store_consistent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store.open(data) as store:
        visit = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
        photo = store.import_photo(visit.id, write_photo(tmp_path / "p.png", 3)).photo
    done = tmp_path / "done.txt"
    saved = _run_and_kill(
        store_fault_child.analyse_forever, (str(data), photo.id, str(done)), done, 3
    )
    with Store.open(data) as store:
        assert errors_only(check_integrity(store)) == []
        analyses = {a.id for a in store.list_analyses(photo.id)}
        assert {int(s) for s in saved} <= analyses
        observations = store.list_observations(photo.id)
        # every analysis is all-or-nothing: the live observations are one complete set
        assert len(observations) == 108
        assert len({o.analysis_id for o in observations}) == 1
