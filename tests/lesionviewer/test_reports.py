"""Reports: lesion table order, CSV/JSON round trip, PDF text, de-identification."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from core.errors import DataError
from lesionviewer.reports import collect_report, export_report
from lesionviewer.reports.csv_json import read_csv, read_json
from lesionviewer.reports.deidentify import has_metadata
from tests.lesionviewer.report_samples import BIRTH, NAME, RECORD, filled_store


@pytest.fixture(autouse=True)
def _widgets_application(qapp):
    """pytest-qt's QApplication before any PDF is written: the PDF writer makes a bare
    QGuiApplication when none exists, and widget tests run after it in this process would
    then abort (a QWidget needs a QApplication)."""
    yield qapp


@pytest.fixture
def filled(tmp_path: Path):
    store, patient_id, photos = filled_store(tmp_path / "data", tmp_path)
    yield store, patient_id, photos
    store.close()


def test_table_lists_flagged_lesions_first(filled) -> None:
    store, patient_id, _ = filled
    rows = collect_report(store, patient_id).rows
    assert [(r.label, r.visit_date) for r in rows[:3]] == [
        ("L1", "2024-03-01"),
        ("L3", "2024-03-01"),
        ("L4", "2024-03-01"),
    ]
    assert rows[0].flags == ("changed", "high p_malignant")
    assert rows[1].flags == ("new",) and rows[2].source == "manual"
    assert not any(r.flagged for r in rows[3:])
    visit_rows = collect_report(store, patient_id, visit_id=1).rows
    assert {r.visit_date for r in visit_rows} == {"2023-03-01"}
    assert not any(r.flagged for r in visit_rows)


def test_a_lesion_linked_by_an_uncertain_match_is_flagged_for_a_check(tmp_path: Path) -> None:
    store, patient_id, _ = filled_store(tmp_path / "data", tmp_path, uncertain=(2,))
    try:
        rows = collect_report(store, patient_id).rows
    finally:
        store.close()
    later = {r.label: r for r in rows if r.visit_date == "2024-03-01"}
    assert later["L2"].flags == ("uncertain match",)
    assert later["L1"].flags == ("changed", "high p_malignant")  # a sure match: unchanged
    assert [r.label for r in rows[:4]] == ["L1", "L2", "L3", "L4"]  # flagged ones first


def test_a_faint_new_lesion_is_flagged_faint_after_the_confident_alarms(tmp_path: Path) -> None:
    store, patient_id, _ = filled_store(tmp_path / "data", tmp_path, new_score=0.3)
    try:
        rows = collect_report(store, patient_id).rows
    finally:
        store.close()
    later = {r.label: r for r in rows if r.visit_date == "2024-03-01"}
    assert later["L3"].flags == ("new", "faint") and later["L3"].score == pytest.approx(0.3)
    assert later["L1"].flags == ("changed", "high p_malignant")  # confident: no "faint"
    # flagged first, the faint one after the confident ones (L4: a clinician's new outline)
    assert [r.label for r in rows[:3]] == ["L1", "L4", "L3"]
    assert not any(r.flagged for r in rows[3:])


def test_csv_and_json_round_trip(filled, tmp_path: Path) -> None:
    store, patient_id, _ = filled
    report = collect_report(store, patient_id)
    written = export_report(store, patient_id, tmp_path / "out", formats=("csv", "json"))
    expected = [row.to_json() for row in report.rows]
    assert read_csv(written["csv"]) == expected
    data = read_json(written["json"])
    assert data["lesions"] == expected
    assert data["patient"]["name"] == NAME
    assert {m["name"] for m in data["models"]} == {"test-detector", "test-tracker"}
    (tmp_path / "bad.json").write_text('{"schema": 99}')
    with pytest.raises(DataError, match="bad.json"):
        read_json(tmp_path / "bad.json")


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    text = " ".join(page.extract_text() for page in PdfReader(path).pages)
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))  # no ligatures


def test_pdf_holds_header_lesion_table_models_and_disclaimer(filled, tmp_path: Path) -> None:
    store, patient_id, _ = filled
    written = export_report(store, patient_id, tmp_path / "out", formats=("pdf",))
    text = _pdf_text(written["pdf"])
    assert NAME in text and RECORD in text
    assert "Not a medical device" in text
    assert "test-detector 0.1" in text and "test-tracker 0.1" in text
    table = text[text.index("Flags") :]
    # the first table row is the flagged, changed, malignant L1 of the second visit
    assert re.search(r"L1 2024-03-01 back malignant 0\.70 0\.90 324 1\.20", table)
    assert table.index("L3 2024-03-01") < table.index("L1 2023-03-01")


def test_deidentified_export_has_no_identity_and_no_exif(filled, tmp_path: Path) -> None:
    store, patient_id, photos = filled
    original = store.get_photo(photos[0]).path
    assert has_metadata(original)  # the stored photo keeps its GPS EXIF untouched
    out = tmp_path / "anon"
    written = export_report(store, patient_id, out, deidentify=True)
    for path in [written["csv"], written["json"], written["pdf"]]:
        raw = path.read_bytes()
        for secret in (NAME, RECORD, BIRTH, "Zelda"):
            assert secret.encode() not in raw, (path.name, secret)
    text = _pdf_text(written["pdf"])
    assert "de-identified" in text and "L1 2024-03-01" in text
    assert NAME not in text and RECORD not in text and BIRTH not in text
    images = sorted(written["images"].glob("*.jpg"))
    assert len(images) == 2
    for image in images:
        assert not has_metadata(image)
        with Image.open(image) as opened:
            assert len(opened.getexif()) == 0 and opened.size == (1400, 933)
    assert all(NAME not in p.name for p in out.rglob("*"))


def test_a_closeup_is_never_new_and_its_verdict_is_captioned(tmp_path: Path) -> None:
    from core.types import CloseupAssessment, Detection
    from tests.lesionviewer.report_samples import H, W, skin_photo
    from tests.lesionviewer.store_samples import detection, square_lesion

    store, patient_id, _ = filled_store(tmp_path / "data", tmp_path)
    try:
        later = store.list_visits(patient_id)[1]
        path = skin_photo(tmp_path / "mole.jpg", 9, [(120, 90, 30)], gps=False)
        photo = store.import_photo(later.id, path, body_site="back", closeup=True).photo
        plain = detection([square_lesion(1, 100, 70, 40, p_malignant=0.7)], width=W, height=H)
        verdict = CloseupAssessment(
            lesion_id=1, p_malignant=0.7, p_lesion=0.9, analysed_size=(160, 120)
        )
        closeup = Detection(plain.heatmap, plain.lesions, plain.model, closeup=verdict)
        store.save_detection(photo.id, closeup)
        rows = [r for r in collect_report(store, patient_id).rows if r.photo_id == photo.id]
        assert len(rows) == 1 and rows[0].flags == ("high p_malignant",)  # not "new"
        label = rows[0].label
        written = export_report(store, patient_id, tmp_path / "out", formats=("pdf",))
    finally:
        store.close()
    assert f"close-up: {label}, p malignant 0.70" in _pdf_text(written["pdf"])
