"""Close-ups in the store: the photo's kind, the verdict of its detection, old databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.types import CloseupAssessment, Detection
from lesionviewer.store import DB_NAME, LATEST_VERSION, Store, StoreError
from lesionviewer.store.db import connect
from lesionviewer.store.migrations import migrate, schema_version
from tests.lesionviewer.store_samples import detection, square_lesion, write_photo


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "data", actor="tester") as opened:
        yield opened


def _closeup(lesions: list, verdict: CloseupAssessment) -> Detection:
    plain = detection(lesions)
    return Detection(plain.heatmap, plain.lesions, plain.model, closeup=verdict)


def _visit(store: Store) -> tuple[int, int]:
    patient = store.add_patient("Sample Patient")
    return patient.id, store.add_visit(patient.id, "2024-03-01").id


def test_a_closeup_keeps_its_kind_and_its_verdict(store: Store, tmp_path: Path) -> None:
    patient_id, visit_id = _visit(store)
    body = store.import_photo(visit_id, write_photo(tmp_path / "back.png", 1), body_site="back")
    close = store.import_photo(
        visit_id, write_photo(tmp_path / "mole.png", 2), body_site="back", closeup=True
    )
    assert not body.photo.closeup and close.photo.closeup
    assert store.get_photo(close.photo.id).closeup
    lesions = [square_lesion(1, 20, 15, p_malignant=0.7), square_lesion(2, 2, 2)]
    verdict = CloseupAssessment(lesion_id=1, p_malignant=0.7, p_lesion=0.9, analysed_size=(64, 48))
    saved = store.save_detection(close.photo.id, _closeup(lesions, verdict))
    assert (saved.analysis.closeup_region, saved.analysis.closeup_p_malignant) == (1, 0.7)
    store.save_detection(body.photo.id, detection(lesions))
    record = store.open_patient(patient_id)
    assert set(record.closeup_analyses) == {close.photo.id}
    assert record.closeup_analyses[close.photo.id].closeup_p_malignant == 0.7
    # a later analysis of the close-up that found no region: read from the heatmap's centre
    blank = CloseupAssessment(lesion_id=None, p_malignant=0.2, p_lesion=0.9, analysed_size=(64, 48))
    store.save_detection(close.photo.id, _closeup([], blank))
    latest = store.open_patient(patient_id).closeup_analyses[close.photo.id]
    assert (latest.closeup_region, latest.closeup_p_malignant) == (None, 0.2)
    assert latest.closeup_p_lesion == 0.9


def test_a_detection_of_the_wrong_kind_is_refused(store: Store, tmp_path: Path) -> None:
    _, visit_id = _visit(store)
    close = store.import_photo(visit_id, write_photo(tmp_path / "a.png", 1), closeup=True).photo
    body = store.import_photo(visit_id, write_photo(tmp_path / "b.png", 2)).photo
    with pytest.raises(StoreError, match="is a close-up"):
        store.save_detection(close.id, detection([square_lesion(1, 5, 5)]))
    verdict = CloseupAssessment(
        lesion_id=None, p_malignant=0.5, p_lesion=0.9, analysed_size=(64, 48)
    )
    with pytest.raises(StoreError, match="is a body photo"):
        store.save_detection(body.id, _closeup([], verdict))
    assert store.list_analyses(close.id) == [] and store.list_analyses(body.id) == []


def test_photos_of_an_older_database_are_body_photos(tmp_path: Path) -> None:
    db_path = tmp_path / DB_NAME
    db = connect(db_path)
    assert migrate(db, db_path, target=3) == 3
    db.execute("INSERT INTO patient (name, record_number, created_at) VALUES ('Old', 'R1', 'x')")
    db.execute("INSERT INTO visit (patient_id, date, created_at) VALUES (1, '2020-01-01', 'x')")
    db.execute(
        "INSERT INTO photo (visit_id, sha256, file, original_name, width, height, size_bytes, "
        "imported_at) VALUES (1, 'ab', 'photos/ab.png', 'a.png', 64, 48, 10, 'x')"
    )
    db.close()
    with Store.open(tmp_path) as store:
        assert schema_version(store.db) == LATEST_VERSION
        assert store.get_photo(1).closeup is False
