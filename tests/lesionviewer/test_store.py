"""Store behaviour: data folder, migrations, patients, visits, photo import, audit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import PhotoError
from lesionviewer.store import (
    DATA_DIR_ENV,
    DB_NAME,
    LATEST_VERSION,
    DuplicatePhotoError,
    Store,
    StoreError,
    resolve_data_dir,
)
from lesionviewer.store.db import connect
from lesionviewer.store.migrations import migrate, schema_version
from tests.lesionviewer.store_samples import write_photo


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "data", actor="tester") as opened:
        yield opened


def test_data_dir_argument_beats_env_var(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(DATA_DIR_ENV)
    assert "LesionViewer" in str(resolve_data_dir(None))


def test_fresh_store_pragmas_and_schema(store: Store) -> None:
    conn = store.db.conn
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert schema_version(store.db) == LATEST_VERSION
    tables = set(store.db.table_names())
    assert {"patient", "visit", "photo", "lesion", "observation", "analysis"} <= tables
    assert {"track_link", "audit", "schema_version"} <= tables


def test_migrating_version_1_forward_keeps_data(tmp_path: Path) -> None:
    db_path = tmp_path / DB_NAME
    db = connect(db_path)
    assert migrate(db, db_path, target=1) == 1
    assert not db["lesion"].exists()
    db.execute("INSERT INTO patient (name, record_number, created_at) VALUES ('Old', 'R9', 'then')")
    db.close()
    with Store.open(tmp_path) as store:
        assert schema_version(store.db) == LATEST_VERSION
        [patient] = store.search_patients("R9")
        assert patient.name == "Old"
        assert store.list_lesions(patient.id) == []


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("INSERT INTO schema_version VALUES (?, 'future')", [LATEST_VERSION + 1])
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        Store.open(tmp_path)


def test_patients_search_and_update_are_audited(store: Store) -> None:
    a = store.add_patient("Sample Patient", record_number="MRN-001", birth_date="1960-02-03")
    store.add_patient("Second Case", record_number="MRN-002")
    assert [p.name for p in store.search_patients("sample")] == ["Sample Patient"]
    assert [p.name for p in store.search_patients("mrn-002")] == ["Second Case"]
    assert store.search_patients("%") == []
    assert len(store.list_patients()) == 2
    store.update_patient(a.id, notes="allergic to plaster")
    log = store.audit_log(entity="patient", entity_id=a.id)
    assert [e.action for e in log] == ["create", "update"]
    assert log[1].before == {"notes": ""} and log[1].after == {"notes": "allergic to plaster"}
    assert log[1].actor == "tester"
    with pytest.raises(StoreError):
        store.update_patient(a.id, id=5)


def test_audit_log_is_append_only(store: Store) -> None:
    store.add_patient("Sample Patient")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.conn.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.conn.execute("DELETE FROM audit")


def test_visits_are_ordered_by_date(store: Store) -> None:
    p = store.add_patient("Sample Patient")
    store.add_visit(p.id, "2024-06-01")
    store.add_visit(p.id, "2023-01-15")
    assert [v.date for v in store.list_visits(p.id)] == ["2023-01-15", "2024-06-01"]
    with pytest.raises(StoreError):
        store.add_visit(999, "2024-01-01")


def test_import_stores_copy_by_sha_and_detects_duplicates(store: Store, tmp_path: Path) -> None:
    p = store.add_patient("Sample Patient")
    v = store.add_visit(p.id, "2024-01-01")
    first = write_photo(tmp_path / "in" / "a.JPEG", 1)
    second = write_photo(tmp_path / "in" / "b.png", 2)
    original = first.read_bytes()
    results = store.import_photos(v.id, [first, second], body_site={str(first): "back"})
    assert [r.duplicate for r in results] == [False, False]
    photo = results[0].photo
    assert photo.body_site == "back" and results[1].photo.body_site == ""
    assert photo.path.read_bytes() == original == first.read_bytes()
    rel = photo.path.relative_to(store.data_dir).as_posix()
    assert rel == f"photos/{photo.sha256[:2]}/{photo.sha256[2:]}.jpg"
    assert (photo.width, photo.height) == (64, 48)
    again = store.import_photo(v.id, tmp_path / "in" / "a.JPEG")
    assert again.duplicate and again.photo.id == photo.id
    assert len(store.list_photos(v.id)) == 2
    assert not list(store.data_dir.rglob("*.partial"))


def test_same_photo_for_another_patient_is_refused(store: Store, tmp_path: Path) -> None:
    first = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
    other = store.add_visit(store.add_patient("Second Case").id, "2024-01-02")
    photo = write_photo(tmp_path / "a.png", 1)
    store.import_photo(first.id, photo)
    with pytest.raises(DuplicatePhotoError, match="a.png: already imported for another visit"):
        store.import_photo(other.id, photo)
    assert store.list_photos(other.id) == []


def test_import_size_is_after_exif_rotation(store: Store, tmp_path: Path) -> None:
    from PIL import Image

    v = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.new("RGB", (40, 20), (200, 150, 120)).save(path, exif=exif)
    photo = store.import_photo(v.id, path).photo
    assert (photo.width, photo.height) == (20, 40)


@pytest.mark.parametrize(
    "content, name",
    [(b"", "empty.jpg"), (b"not an image at all", "junk.png"), (b"\xff\xd8\xff\xe0trunc", "t.jpg")],
)
def test_corrupt_photo_is_refused_and_nothing_stays(
    store: Store, tmp_path: Path, content: bytes, name: str
) -> None:
    v = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(PhotoError) as info:
        store.import_photo(v.id, bad)
    assert name in str(info.value)
    assert store.list_photos(v.id) == []
    photos_dir = store.data_dir / "photos"
    assert not photos_dir.exists() or not [p for p in photos_dir.rglob("*") if p.is_file()]
    assert store.audit_log(entity="photo") == []


def test_unsupported_suffix_is_refused(store: Store, tmp_path: Path) -> None:
    v = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-01")
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(PhotoError, match="notes.txt: unsupported"):
        store.import_photo(v.id, bad)


def test_two_connections_see_each_others_writes(tmp_path: Path) -> None:
    with Store.open(tmp_path) as one, Store.open(tmp_path) as two:
        one.add_patient("Sample Patient")
        assert [p.name for p in two.list_patients()] == ["Sample Patient"]
