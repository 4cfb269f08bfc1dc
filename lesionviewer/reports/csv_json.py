"""The lesion table as CSV and JSON (no Qt), and readers for both (round trip).

JSON: ``{"schema": 1, "patient": {...}, "visits": [...], "models": [...],
"lesions": [row, ...]}``; the patient block holds name, record_number and birth_date
only when not de-identified. CSV: one row per lesion with the columns of
:data:`CSV_COLUMNS`; flags joined by ';'. Numbers are written rounded as in
``LesionRow.to_json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from core.errors import DataError
from lesionviewer.reports.tables import ReportData

SCHEMA = 1
CSV_COLUMNS = (
    "label",
    "visit_date",
    "photo_id",
    "body_site",
    "class",
    "source",
    "area_px",
    "score",
    "p_malignant",
    "area_ratio",
    "delta_e",
    "p_malignant_change",
    "status",
    "biopsy_result",
    "flags",
)
_FLOATS = ("area_px", "score", "p_malignant", "area_ratio", "delta_e", "p_malignant_change")


def patient_block(report: ReportData) -> dict[str, Any]:
    """The patient as written in exports: identifying fields only when allowed."""
    block: dict[str, Any] = {"ref": report.patient_ref, "sex": report.sex}
    if report.patient is not None and not report.deidentified:
        block.update(
            {
                "name": report.patient.name,
                "record_number": report.patient.record_number,
                "birth_date": report.patient.birth_date,
            }
        )
    return block


def report_json(report: ReportData) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (schema 1)."""
    return {
        "schema": SCHEMA,
        "deidentified": report.deidentified,
        "patient": patient_block(report),
        "visits": [{"id": v.id, "date": v.date} for v in report.visits],
        "models": [
            {"name": a.model_name, "version": a.model_version, "sha256": a.model_sha256}
            for a in report.models
        ],
        "lesions": [row.to_json() for row in report.rows],
    }


def write_json(report: ReportData, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report_json(report), indent=2), encoding="utf-8")
    return path


def write_csv(report: ReportData, path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in report.rows:
            values = row.to_json()
            values["flags"] = ";".join(values["flags"])
            writer.writerow({k: "" if values[k] is None else values[k] for k in CSV_COLUMNS})
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a lesions CSV as dicts typed like ``LesionRow.to_json`` (DataError if
    the header is wrong or a number is not a number)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise DataError(path, f"unexpected columns {reader.fieldnames}")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, Any] = dict(raw)
            try:
                row["photo_id"] = int(row["photo_id"])
                for key in _FLOATS:
                    row[key] = None if row[key] == "" else float(row[key])
            except ValueError as exc:
                raise DataError(path, f"line {line}: {exc}") from exc
            row["flags"] = [f for f in row["flags"].split(";") if f]
            rows.append(row)
    return rows


def read_json(path: str | Path) -> dict[str, Any]:
    """A report JSON (DataError when it is not one of schema 1)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise DataError(path, f"not a lesion report of schema {SCHEMA}")
    return data
