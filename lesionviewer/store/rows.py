"""Turning database rows (dicts) into the store's frozen records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lesionviewer.store.models import (
    Analysis,
    LesionRecord,
    Observation,
    Patient,
    Photo,
    TrackLink,
    Visit,
)

#: Observations joined with their lesion label.
OBSERVATION_SELECT = (
    "SELECT o.*, l.label AS lesion_label FROM observation o JOIN lesion l ON l.id = o.lesion_id"
)
#: Track links (all columns).
LINK_SELECT = "SELECT t.* FROM track_link t"

Row = dict[str, Any]


def patient(row: Row) -> Patient:
    return Patient(
        id=row["id"],
        name=row["name"],
        record_number=row["record_number"],
        birth_date=row["birth_date"],
        sex=row["sex"],
        notes=row["notes"],
        created_at=row["created_at"],
    )


def visit(row: Row) -> Visit:
    return Visit(
        id=row["id"],
        patient_id=row["patient_id"],
        date=row["date"],
        notes=row["notes"],
        created_at=row["created_at"],
    )


def photo(row: Row, data_dir: Path) -> Photo:
    return Photo(
        id=row["id"],
        visit_id=row["visit_id"],
        body_site=row["body_site"],
        sha256=row["sha256"],
        path=data_dir / row["file"],
        original_name=row["original_name"],
        width=row["width"],
        height=row["height"],
        size_bytes=row["size_bytes"],
        imported_at=row["imported_at"],
        closeup=bool(row["closeup"]),
    )


def analysis(row: Row) -> Analysis:
    return Analysis(
        id=row["id"],
        photo_id=row["photo_id"],
        other_photo_id=row["other_photo_id"],
        kind=row["kind"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        model_sha256=row["model_sha256"],
        created_at=row["created_at"],
        closeup_region=row["closeup_region"],
        closeup_p_malignant=row["closeup_p_malignant"],
        closeup_p_lesion=row["closeup_p_lesion"],
    )


def lesion(row: Row) -> LesionRecord:
    return LesionRecord(
        id=row["id"],
        patient_id=row["patient_id"],
        label=row["label"],
        number=row["number"],
        body_site=row["body_site"],
        status=row["status"],
        biopsy_result=row["biopsy_result"],
        notes=row["notes"],
        created_at=row["created_at"],
    )


def observation(row: Row) -> Observation:
    # outlines are written as JSON floats (repository.outline_json), so no conversion
    outline = tuple(map(tuple, json.loads(row["outline"])))
    return Observation(
        id=row["id"],
        lesion_id=row["lesion_id"],
        lesion_label=row["lesion_label"],
        photo_id=row["photo_id"],
        analysis_id=row["analysis_id"],
        detection_index=row["detection_index"],
        source=row["source"],
        outline=outline,
        bbox=(row["x0"], row["y0"], row["x1"], row["y1"]),
        centroid=(row["cx"], row["cy"]),
        area_px=row["area_px"],
        score=row["score"],
        p_malignant=row["p_malignant"],
        class_override=row["class_override"],
        corrected=bool(row["corrected"]),
        link_locked=bool(row["link_locked"]),
        deleted=bool(row["deleted"]),
        created_at=row["created_at"],
    )


def link(row: Row) -> TrackLink:
    return TrackLink(
        id=row["id"],
        observation_a=row["observation_a"],
        observation_b=row["observation_b"],
        analysis_id=row["analysis_id"],
        source=row["source"],
        confidence=row["confidence"],
        area_ratio=row["area_ratio"],
        delta_e=row["delta_e"],
        p_malignant_change=row["p_malignant_change"],
        changed=bool(row["changed"]),
        created_at=row["created_at"],
    )


def observation_audit(row: Row) -> dict[str, Any]:
    """The fields of an observation row worth keeping in the audit log."""
    keys = (
        "lesion_id",
        "photo_id",
        "analysis_id",
        "detection_index",
        "source",
        "x0",
        "y0",
        "x1",
        "y1",
        "cx",
        "cy",
        "area_px",
        "score",
        "p_malignant",
        "class_override",
        "corrected",
        "link_locked",
        "deleted",
    )
    return {k: row[k] for k in keys if k in row}
