"""Clinicians' corrections: add a missed lesion, delete a false one, change a class,
re-link a wrong match, split a wrong track. Each is one audited transaction, and each
marks what it touched so that re-analysis and re-tracking keep it (see analyses.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lesionviewer.store.db import utc_now
from lesionviewer.store.errors import StoreError
from lesionviewer.store.geometry import as_polygon, polygon_area, polygon_bbox, polygon_centroid
from lesionviewer.store.lesions import (
    check_same_patient,
    live_on_photo,
    move_observation,
    new_lesion,
    observation_row,
    photo_context,
    retire_if_empty,
)
from lesionviewer.store.models import LesionRecord, Observation

if TYPE_CHECKING:
    from lesionviewer.store.repository import Store

CLASS_NAMES = ("benign", "malignant")


def add_manual_observation(
    store: Store,
    photo_id: int,
    outline: Sequence[Sequence[float]],
    malignant: bool,
    lesion_id: int | None,
) -> Observation:
    """See :meth:`Store.add_manual_observation`."""
    from lesionviewer.store.repository import outline_json

    try:
        polygon = as_polygon(outline)
    except ValueError as exc:
        raise StoreError(store.db_path, f"bad outline: {exc}") from exc
    photo = photo_context(store, photo_id)
    x0, y0, x1, y1 = polygon_bbox(polygon)
    if x1 <= 0 or y1 <= 0 or x0 >= photo["width"] or y0 >= photo["height"]:
        raise StoreError(store.db_path, f"outline lies outside photo {photo_id}")
    cx, cy = polygon_centroid(polygon)
    class_name = "malignant" if malignant else "benign"
    joins_existing = lesion_id is not None
    with store.transaction():
        if lesion_id is None:
            lesion_id = new_lesion(store, photo["patient_id"], body_site=photo["body_site"])
        else:
            check_same_patient(store, lesion_id, photo_id)
            if live_on_photo(store, lesion_id, photo_id):
                raise StoreError(store.db_path, "that lesion is already outlined on this photo")
        observation_id = store._insert(
            "observation",
            {
                "lesion_id": lesion_id,
                "photo_id": photo_id,
                "analysis_id": None,
                "detection_index": None,
                "source": "manual",
                "outline": outline_json(polygon.tolist()),
                "x0": x0,
                "y0": y0,
                "x1": x1,
                "y1": y1,
                "cx": cx,
                "cy": cy,
                "area_px": polygon_area(polygon),
                "score": 1.0,
                "p_malignant": 1.0 if malignant else 0.0,
                "class_override": class_name,
                "corrected": 1,
                "link_locked": int(joins_existing),
                "created_at": utc_now(),
            },
        )
    return store.get_observation(observation_id)


def delete_observation(store: Store, observation_id: int, reason: str) -> Observation:
    """See :meth:`Store.delete_observation`."""
    row = observation_row(store, observation_id)
    if row["deleted"]:
        return store.get_observation(observation_id)
    with store.transaction():
        store._update("observation", observation_id, {"deleted": 1, "corrected": 1})
        if reason:
            store._audit("note", "observation", observation_id, None, {"reason": reason})
    return store.get_observation(observation_id)


def set_class(store: Store, observation_id: int, class_name: str | None) -> Observation:
    """See :meth:`Store.set_class`."""
    if class_name is not None and class_name not in CLASS_NAMES:
        raise StoreError(store.db_path, f"class must be one of {CLASS_NAMES} or None")
    row = observation_row(store, observation_id)
    corrected = 1 if class_name is not None or row["source"] == "manual" else 0
    with store.transaction():
        store._update(
            "observation",
            observation_id,
            {"class_override": class_name, "corrected": corrected},
        )
    return store.get_observation(observation_id)


def _previous_observation(store: Store, lesion_id: int, photo_id: int) -> int | None:
    """The lesion's live observation on the latest photo taken before ``photo_id``."""
    photo = photo_context(store, photo_id)
    found = store.db.execute(
        "SELECT o.id FROM observation o JOIN photo f ON f.id = o.photo_id "
        "JOIN visit v ON v.id = f.visit_id WHERE o.lesion_id = ? AND o.deleted = 0 "
        "AND o.photo_id != ? AND (v.date < ? OR (v.date = ? AND f.id < ?)) "
        "ORDER BY v.date DESC, f.id DESC LIMIT 1",
        [lesion_id, photo_id, photo["visit_date"], photo["visit_date"], photo_id],
    ).fetchone()
    return None if found is None else int(found[0])


def _reject_links_into(store: Store, observation_id: int) -> None:
    for link in store._all(
        "SELECT * FROM track_link WHERE observation_b = ? AND rejected = 0", [observation_id]
    ):
        store._update("track_link", link["id"], {"rejected": 1})


def relink(store: Store, observation_id: int, lesion_id: int) -> Observation:
    """See :meth:`Store.relink`."""
    row = observation_row(store, observation_id)
    if row["deleted"]:
        raise StoreError(store.db_path, f"observation {observation_id} is deleted")
    check_same_patient(store, lesion_id, row["photo_id"])
    if row["lesion_id"] == lesion_id:
        return store.get_observation(observation_id)
    if live_on_photo(store, lesion_id, row["photo_id"], exclude=observation_id):
        raise StoreError(store.db_path, "that lesion is already outlined on this photo")
    old_lesion = row["lesion_id"]
    with store.transaction():
        _reject_links_into(store, observation_id)
        move_observation(store, observation_id, lesion_id)
        store._update("observation", observation_id, {"link_locked": 1, "corrected": 1})
        previous = _previous_observation(store, lesion_id, row["photo_id"])
        if previous is not None:
            existing = store.db.execute(
                "SELECT id FROM track_link WHERE observation_a = ? AND observation_b = ?",
                [previous, observation_id],
            ).fetchone()
            if existing is not None:
                store._update("track_link", int(existing[0]), {"rejected": 0, "source": "manual"})
            else:
                store._insert(
                    "track_link",
                    {
                        "observation_a": previous,
                        "observation_b": observation_id,
                        "analysis_id": None,
                        "source": "manual",
                        "confidence": 1.0,
                        "changed": 0,
                        "created_at": utc_now(),
                    },
                )
        retire_if_empty(store, old_lesion)
    return store.get_observation(observation_id)


def split_track(store: Store, observation_id: int) -> LesionRecord:
    """See :meth:`Store.split_track`."""
    row = observation_row(store, observation_id)
    photo = photo_context(store, row["photo_id"])
    later = store._all(
        "SELECT o.id FROM observation o JOIN photo f ON f.id = o.photo_id "
        "JOIN visit v ON v.id = f.visit_id WHERE o.lesion_id = ? AND o.id != ? "
        "AND (v.date > ? OR (v.date = ? AND f.id > ?))",
        [row["lesion_id"], observation_id, photo["visit_date"], photo["visit_date"], photo["id"]],
    )
    with store.transaction():
        lesion_id = new_lesion(store, photo["patient_id"], body_site=photo["body_site"])
        _reject_links_into(store, observation_id)
        for obs_id in [observation_id, *(r["id"] for r in later)]:
            move_observation(store, obs_id, lesion_id)
        store._update("observation", observation_id, {"link_locked": 1, "corrected": 1})
    return store.get_lesion(lesion_id)
