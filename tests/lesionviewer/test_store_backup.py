"""Backup, restore and the integrity check of a whole store."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesionviewer.store import (
    Store,
    StoreError,
    backup_store,
    check_integrity,
    errors_only,
    restore_store,
)
from tests.lesionviewer.store_samples import detection, square_lesion, write_photo


def _filled_store(data: Path, tmp_path: Path) -> Store:
    store = Store.open(data)
    visit = store.add_visit(
        store.add_patient("Sample Patient", record_number="R1").id, "2024-01-01"
    )
    photos = [
        store.import_photo(visit.id, write_photo(tmp_path / f"in{i}.png", i)).photo
        for i in range(2)
    ]
    store.save_detection(photos[0].id, detection([square_lesion(1, 5, 5)]))
    return store


@pytest.mark.parametrize("name", ["backup_folder", "backup.zip"])
def test_backup_and_restore_round_trip(tmp_path: Path, name: str) -> None:
    with _filled_store(tmp_path / "data", tmp_path) as store:
        destination = backup_store(store, tmp_path / name)
        audit_rows = len(store.audit_log())
        store.add_patient("Added after the backup")
    restored = restore_store(destination, tmp_path / "restored")
    with Store.open(restored) as copy:
        assert [p.name for p in copy.list_patients()] == ["Sample Patient"]
        [visit] = copy.list_visits(copy.list_patients()[0].id)
        photos = copy.list_photos(visit.id)
        assert len(photos) == 2 and all(p.path.is_file() for p in photos)
        assert len(copy.list_observations(photos[0].id)) == 1
        assert len(copy.audit_log()) == audit_rows
        assert check_integrity(copy) == []


def test_restore_refuses_to_overwrite_without_asking(tmp_path: Path) -> None:
    with _filled_store(tmp_path / "data", tmp_path) as store:
        destination = backup_store(store, tmp_path / "b.zip")
    with pytest.raises(StoreError, match="already exists"):
        restore_store(destination, tmp_path / "data")
    restore_store(destination, tmp_path / "data", overwrite=True)
    assert list(tmp_path.glob("data.before-restore-*"))
    with pytest.raises(StoreError, match="already exists"):
        backup_store(Store.open(tmp_path / "data"), destination)


def test_restore_refuses_damaged_backup(tmp_path: Path) -> None:
    with _filled_store(tmp_path / "data", tmp_path) as store:
        destination = backup_store(store, tmp_path / "folder")
    next(destination.joinpath("photos").rglob("*.png")).write_bytes(b"changed")
    with pytest.raises(StoreError, match="damaged"):
        restore_store(destination, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(StoreError, match="not a backup zip"):
        restore_store(tmp_path / "junk.zip", tmp_path / "restored")


def test_integrity_check_finds_problems(tmp_path: Path) -> None:
    with _filled_store(tmp_path / "data", tmp_path) as store:
        assert check_integrity(store) == []
        photos = store.list_photos(1)
        photos[1].path.unlink()
        photos[0].path.write_bytes(b"tampered")
        other = store.add_patient("Second Case")
        # break a rule behind the API's back: patient 2's lesion on patient 1's photo
        store.db.execute(
            "INSERT INTO lesion (patient_id, number, label, created_at) VALUES (?, 1, 'L1', 'x')",
            [other.id],
        )
        lesion_id = store.db.execute("SELECT MAX(id) FROM lesion").fetchone()[0]
        store.db.execute("UPDATE observation SET lesion_id = ?", [lesion_id])
        (store.data_dir / "photos" / "stray.png").write_bytes(b"x")
        kinds = {p.kind for p in check_integrity(store)}
        assert {"photo-missing", "photo-changed", "observation-patient", "orphan-file"} <= kinds
        assert {p.severity for p in check_integrity(store) if p.kind == "orphan-file"} == {
            "warning"
        }
        assert errors_only(check_integrity(store, verify_hashes=False))
