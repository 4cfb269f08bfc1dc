"""Lesion identities: new labels, moving observations between lesions, retiring empty
lesions. Helpers for analyses.py and corrections.py; call inside a write transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lesionviewer.store import rows
from lesionviewer.store.db import utc_now
from lesionviewer.store.errors import StoreError

if TYPE_CHECKING:
    from lesionviewer.store.repository import Store


def new_lesion(
    store: Store, patient_id: int, *, body_site: str = "", analysis_id: int | None = None
) -> int:
    """Create a lesion with the next label number of the patient (labels never reused
    while their lesion exists); returns its id."""
    row = store.db.execute(
        "SELECT COALESCE(MAX(number), 0) FROM lesion WHERE patient_id = ?", [patient_id]
    ).fetchone()
    number = int(row[0]) + 1
    values = {
        "patient_id": patient_id,
        "number": number,
        "label": f"L{number}",
        "body_site": body_site,
        "created_analysis_id": analysis_id,
        "created_at": utc_now(),
    }
    return store._insert("lesion", values)


def observation_row(store: Store, observation_id: int) -> dict[str, Any]:
    sql = rows.OBSERVATION_SELECT + " WHERE o.id = ?"
    return store._one(sql, [observation_id], f"observation {observation_id}")


def photo_context(store: Store, photo_id: int) -> dict[str, Any]:
    """Photo row with its visit date and patient id."""
    sql = (
        "SELECT f.*, v.date AS visit_date, v.patient_id AS patient_id FROM photo f "
        "JOIN visit v ON v.id = f.visit_id WHERE f.id = ?"
    )
    return store._one(sql, [photo_id], f"photo {photo_id}")


def live_on_photo(store: Store, lesion_id: int, photo_id: int, *, exclude: int = 0) -> bool:
    """Whether the lesion already has a live observation on the photo (other than one)."""
    found = store.db.execute(
        "SELECT 1 FROM observation WHERE lesion_id = ? AND photo_id = ? AND deleted = 0 "
        "AND id != ?",
        [lesion_id, photo_id, exclude],
    ).fetchone()
    return found is not None


def move_observation(store: Store, observation_id: int, lesion_id: int) -> None:
    """Give an observation another lesion identity (audited)."""
    store._update("observation", observation_id, {"lesion_id": lesion_id})


def is_untouched(lesion: dict[str, Any]) -> bool:
    """A lesion nobody annotated (no notes, biopsy or status change)."""
    return not lesion["notes"] and not lesion["biopsy_result"] and lesion["status"] == "active"


def retire_if_empty(store: Store, lesion_id: int) -> bool:
    """Delete a lesion that no observation refers to and nobody annotated (audited).

    Returns True if it was deleted. A lesion with notes, biopsy result or a status is
    kept even when empty, so nothing a clinician wrote is lost.
    """
    used = store.db.execute(
        "SELECT 1 FROM observation WHERE lesion_id = ? LIMIT 1", [lesion_id]
    ).fetchone()
    if used is not None:
        return False
    lesion = store._one("SELECT * FROM lesion WHERE id = ?", [lesion_id], f"lesion {lesion_id}")
    if not is_untouched(lesion):
        return False
    store.db.execute("DELETE FROM lesion WHERE id = ?", [lesion_id])
    store._audit("delete", "lesion", lesion_id, lesion, None)
    return True


def check_same_patient(store: Store, lesion_id: int, photo_id: int) -> None:
    """Refuse to put a lesion of one patient on another patient's photo."""
    lesion = store._one("SELECT * FROM lesion WHERE id = ?", [lesion_id], f"lesion {lesion_id}")
    photo = photo_context(store, photo_id)
    if lesion["patient_id"] != photo["patient_id"]:
        raise StoreError(
            store.db_path,
            f"lesion {lesion['label']} belongs to another patient than photo {photo_id}",
        )
