"""Write a report folder: PDF, lesions CSV and JSON, and annotated photos (no EXIF)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.io import load_photo
from lesionviewer.reports import csv_json
from lesionviewer.reports.annotate import annotated_photo
from lesionviewer.reports.deidentify import save_clean_image
from lesionviewer.reports.tables import collect_report
from lesionviewer.store import Store


def export_report(
    store: Store,
    patient_id: int,
    out_dir: str | Path,
    *,
    visit_id: int | None = None,
    deidentify: bool = False,
    formats: Sequence[str] = ("pdf", "csv", "json", "images"),
) -> dict[str, Path]:
    """Write the chosen formats into ``out_dir``; returns {format: path}.

    Files: ``report.pdf``, ``lesions.csv``, ``lesions.json`` and ``images/photo_<id>.jpg``
    (annotated, re-encoded from pixels: no EXIF). File names never hold the patient's
    name. De-identified: no name, record number or birth date anywhere.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = collect_report(store, patient_id, visit_id=visit_id, deidentify=deidentify)
    written: dict[str, Path] = {}
    if "csv" in formats:
        written["csv"] = csv_json.write_csv(report, out / "lesions.csv")
    if "json" in formats:
        written["json"] = csv_json.write_json(report, out / "lesions.json")
    if "images" in formats:
        folder = out / "images"
        folder.mkdir(exist_ok=True)
        for photo in report.photos:
            image = annotated_photo(load_photo(photo.path), store.list_observations(photo.id))
            save_clean_image(image, folder / f"photo_{photo.id}.jpg")
        written["images"] = folder
    if "pdf" in formats:
        from lesionviewer.reports.pdf import write_pdf

        written["pdf"] = write_pdf(store, report, out / "report.pdf")
    return written
