"""Writing detection and tracking results (core.types) into the store.

Rules (the clinician's word wins over the machine's):
- Re-analysis of a photo replaces its automatic observations. An old automatic
  observation that overlaps a new detection is updated in place (keeps id, lesion label
  and track links); the others are removed; unmatched detections get new lesions.
- Manual, re-classed and deleted observations are never replaced; a new detection that
  overlaps one of them is dropped.
- Tracking gives B's observation the lesion identity of A's unless a clinician locked
  it (re-link or split) or rejected that pair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from core.types import CloseupAssessment, Detection, Lesion, Tracking
from lesionviewer.store import rows
from lesionviewer.store.db import utc_now
from lesionviewer.store.errors import StoreError
from lesionviewer.store.geometry import box_iou, inside, same_region
from lesionviewer.store.lesions import (
    live_on_photo,
    move_observation,
    new_lesion,
    photo_context,
    retire_if_empty,
)
from lesionviewer.store.models import SavedDetection, TrackLink

if TYPE_CHECKING:
    from lesionviewer.store.repository import Store


def _outline(lesion: Lesion) -> str:
    from lesionviewer.store.repository import outline_json

    contour = np.asarray(lesion.contour).reshape(-1, 2)
    return outline_json(contour.tolist())


def _geometry(lesion: Lesion, analysis_id: int) -> dict[str, Any]:
    x0, y0, x1, y1 = (int(v) for v in lesion.bbox)
    return {
        "analysis_id": analysis_id,
        "detection_index": int(lesion.id),
        "outline": _outline(lesion),
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "cx": float(lesion.centroid[0]),
        "cy": float(lesion.centroid[1]),
        "area_px": float(lesion.area_px),
        "score": float(np.clip(lesion.score, 0.0, 1.0)),
        "p_malignant": float(np.clip(lesion.p_malignant, 0.0, 1.0)),
    }


def _insert_analysis(
    store: Store,
    photo_id: int,
    other: int | None,
    kind: str,
    model,
    closeup: CloseupAssessment | None = None,
) -> int:
    values = {
        "photo_id": photo_id,
        "other_photo_id": other,
        "kind": kind,
        "model_name": model.name,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "created_at": utc_now(),
    }
    if closeup is not None:
        values["closeup_region"] = closeup.lesion_id
        values["closeup_p_malignant"] = float(np.clip(closeup.p_malignant, 0.0, 1.0))
        values["closeup_p_lesion"] = float(np.clip(closeup.p_lesion, 0.0, 1.0))
    return store._insert("analysis", values)


def _box(row: dict[str, Any]) -> tuple[int, int, int, int]:
    return (row["x0"], row["y0"], row["x1"], row["y1"])


def save_detection(store: Store, photo_id: int, detection: Detection) -> SavedDetection:
    """See :meth:`Store.save_detection`."""
    photo = photo_context(store, photo_id)
    if tuple(detection.shape) != (photo["height"], photo["width"]):
        raise StoreError(
            store.db_path,
            f"detection of size {detection.shape[1]}x{detection.shape[0]} does not fit photo "
            f"{photo_id} ({photo['width']}x{photo['height']})",
        )
    if bool(photo["closeup"]) != (detection.closeup is not None):
        wanted = "a close-up" if photo["closeup"] else "a body photo"
        raise StoreError(
            store.db_path,
            f"photo {photo_id} is {wanted}, but the detection was not analysed as one",
        )
    with store.transaction():
        analysis_id = _insert_analysis(
            store, photo_id, None, "detect", detection.model, detection.closeup
        )
        existing = store._all("SELECT * FROM observation WHERE photo_id = ?", [photo_id])
        kept = [r for r in existing if r["source"] == "manual" or r["corrected"] or r["deleted"]]
        replaceable = [r for r in existing if r not in kept]
        for lesion in sorted(detection.lesions, key=lambda item: item.id):
            box = tuple(int(v) for v in lesion.bbox)
            centroid = (float(lesion.centroid[0]), float(lesion.centroid[1]))
            if any(same_region(box, centroid, _box(r), (r["cx"], r["cy"])) for r in kept):
                continue  # the clinician's version of this region wins
            values = _geometry(lesion, analysis_id)
            candidates = [
                r for r in replaceable if same_region(box, centroid, _box(r), (r["cx"], r["cy"]))
            ]
            if candidates:
                best = max(candidates, key=lambda r: box_iou(box, _box(r)))
                replaceable.remove(best)
                store._update("observation", best["id"], values)
                continue
            lesion_id = new_lesion(
                store, photo["patient_id"], body_site=photo["body_site"], analysis_id=analysis_id
            )
            values.update(
                {
                    "lesion_id": lesion_id,
                    "photo_id": photo_id,
                    "source": "auto",
                    "created_at": utc_now(),
                }
            )
            store._insert("observation", values)
        for old in replaceable:
            store.db.execute("DELETE FROM observation WHERE id = ?", [old["id"]])
            store._audit("replace", "observation", old["id"], rows.observation_audit(old), None)
            retire_if_empty(store, old["lesion_id"])
    return SavedDetection(
        analysis=store.get_analysis(analysis_id),
        observations=tuple(
            sorted(
                store.list_observations(photo_id),
                key=lambda o: (o.detection_index is None, o.detection_index or 0, o.id),
            )
        ),
    )


def _find_observation(
    lesion: Lesion, candidates: list[dict[str, Any]], used: set[int]
) -> dict[str, Any] | None:
    """The live observation a tracked lesion refers to: same detection index and
    region first, else the one whose box holds its centroid (closest centroid)."""
    box = tuple(int(v) for v in lesion.bbox)
    centroid = (float(lesion.centroid[0]), float(lesion.centroid[1]))
    free = [r for r in candidates if r["id"] not in used]
    for r in free:
        if r["detection_index"] == lesion.id and same_region(
            box, centroid, _box(r), (r["cx"], r["cy"])
        ):
            return r
    near = [r for r in free if inside(centroid, _box(r)) or inside((r["cx"], r["cy"]), box)]
    if not near:
        return None
    return min(near, key=lambda r: (r["cx"] - centroid[0]) ** 2 + (r["cy"] - centroid[1]) ** 2)


def save_tracking(
    store: Store, photo_a_id: int, photo_b_id: int, tracking: Tracking
) -> list[TrackLink]:
    """See :meth:`Store.save_tracking`."""
    photo_a, photo_b = photo_context(store, photo_a_id), photo_context(store, photo_b_id)
    if photo_a["patient_id"] != photo_b["patient_id"]:
        raise StoreError(store.db_path, "cannot track between photos of different patients")
    if photo_a_id == photo_b_id:
        raise StoreError(store.db_path, "cannot track a photo to itself")
    written: list[int] = []
    with store.transaction():
        analysis_id = _insert_analysis(store, photo_a_id, photo_b_id, "track", tracking.model)
        # the new tracking replaces earlier automatic links between these two photos
        stale = store._all(
            "SELECT t.* FROM track_link t JOIN observation a ON a.id = t.observation_a "
            "JOIN observation b ON b.id = t.observation_b WHERE a.photo_id = ? "
            "AND b.photo_id = ? AND t.source = 'auto' AND t.rejected = 0",
            [photo_a_id, photo_b_id],
        )
        for link in stale:
            store.db.execute("DELETE FROM track_link WHERE id = ?", [link["id"]])
            store._audit("replace", "track_link", link["id"], link, None)
        live = "SELECT * FROM observation WHERE photo_id = ? AND deleted = 0"
        obs_a, obs_b = store._all(live, [photo_a_id]), store._all(live, [photo_b_id])
        by_id_a = {lesion.id: lesion for lesion in tracking.lesions_a}
        by_id_b = {lesion.id: lesion for lesion in tracking.lesions_b}
        used_a: set[int] = set()
        used_b: set[int] = set()
        absorbed: list[int] = []
        for match in sorted(tracking.matches, key=lambda m: -m.confidence):
            if match.a not in by_id_a or match.b not in by_id_b:
                continue
            row_a = _find_observation(by_id_a[match.a], obs_a, used_a)
            row_b = _find_observation(by_id_b[match.b], obs_b, used_b)
            if row_a is None or row_b is None:
                continue
            used_a.add(row_a["id"])
            used_b.add(row_b["id"])
            rejected = store.db.execute(
                "SELECT 1 FROM track_link WHERE observation_a = ? AND observation_b = ? "
                "AND (rejected = 1 OR source = 'manual')",
                [row_a["id"], row_b["id"]],
            ).fetchone()
            if rejected is not None:
                continue  # a clinician already decided about this pair
            if row_b["link_locked"] and row_b["lesion_id"] != row_a["lesion_id"]:
                continue
            if row_b["lesion_id"] != row_a["lesion_id"]:
                if not _merge_into(store, row_b["lesion_id"], row_a["lesion_id"]):
                    continue
                absorbed.append(row_b["lesion_id"])
            written.append(
                store._insert(
                    "track_link",
                    {
                        "observation_a": row_a["id"],
                        "observation_b": row_b["id"],
                        "analysis_id": analysis_id,
                        "source": "auto",
                        "confidence": float(match.confidence),
                        "area_ratio": float(match.area_ratio),
                        "delta_e": float(match.delta_e),
                        "p_malignant_change": float(match.p_malignant_change),
                        "changed": int(bool(match.changed)),
                        "created_at": utc_now(),
                    },
                )
            )
        _record_out_of_view(store, analysis_id, tracking, obs_a, obs_b, used_a, used_b)
        for lesion_id in absorbed:
            retire_if_empty(store, lesion_id)
        _compact_new_labels(store, photo_b["patient_id"], photo_b_id)
    return [
        rows.link(r)
        for r in store._all(
            rows.LINK_SELECT + " WHERE t.id IN (SELECT value FROM json_each(?))", [str(written)]
        )
    ]


def _record_out_of_view(
    store: Store,
    analysis_id: int,
    tracking: Tracking,
    obs_a: list[dict[str, Any]],
    obs_b: list[dict[str, Any]],
    used_a: set[int],
    used_b: set[int],
) -> None:
    """Remember which unmatched observations the other photo does not show, so the compare
    view calls them neither new nor gone (see ``core.matching.split_by_field_of_view``)."""
    sides = (
        (tracking.outside_view_of_a, tracking.lesions_b, obs_b, used_b),
        (tracking.outside_view_of_b, tracking.lesions_a, obs_a, used_a),
    )
    for ids, lesions, candidates, used in sides:
        by_id = {lesion.id: lesion for lesion in lesions}
        for lesion_id in ids:
            if lesion_id not in by_id:
                continue
            row = _find_observation(by_id[lesion_id], candidates, used)
            if row is None:
                continue
            used.add(row["id"])
            store._insert("out_of_view", {"analysis_id": analysis_id, "observation_id": row["id"]})


def _merge_into(store: Store, source_lesion: int, target_lesion: int) -> bool:
    """Move every observation of ``source_lesion`` to ``target_lesion``; refuse (False)
    when both have a live observation on the same photo or the source was locked."""
    moving = store._all(
        "SELECT * FROM observation WHERE lesion_id = ? AND deleted = 0", [source_lesion]
    )
    for r in moving:
        if live_on_photo(store, target_lesion, r["photo_id"]):
            return False
    for r in store._all("SELECT * FROM observation WHERE lesion_id = ?", [source_lesion]):
        move_observation(store, r["id"], target_lesion)
    return True


def _compact_new_labels(store: Store, patient_id: int, photo_id: int) -> None:
    """Close label gaps left when tracking absorbed lesions that detection had just
    created on photo B: B's still-new lesions take the lowest free numbers above every
    other lesion of the patient, but only when that lowers their numbers."""
    fresh = store._all(
        "SELECT l.* FROM lesion l WHERE l.patient_id = ? AND l.created_analysis_id IN "
        "(SELECT id FROM analysis WHERE photo_id = ? AND kind = 'detect') "
        "AND NOT EXISTS (SELECT 1 FROM observation o WHERE o.lesion_id = l.id "
        "AND o.photo_id != ?) AND l.notes = '' AND l.biopsy_result = '' "
        "AND l.status = 'active' ORDER BY l.number",
        [patient_id, photo_id, photo_id],
    )
    if not fresh:
        return
    fresh_ids = [r["id"] for r in fresh]
    others = store.db.execute(
        "SELECT COALESCE(MAX(number), 0) FROM lesion WHERE patient_id = ? AND id NOT IN "
        "(SELECT value FROM json_each(?))",
        [patient_id, str(fresh_ids)],
    ).fetchone()[0]
    targets = [int(others) + 1 + i for i in range(len(fresh))]
    if all(t == r["number"] for t, r in zip(targets, fresh, strict=True)):
        return
    if any(t > r["number"] for t, r in zip(targets, fresh, strict=True)):
        return
    offset = 1_000_000
    for r in fresh:  # two steps keep (patient_id, number) unique throughout
        store.db.execute(
            "UPDATE lesion SET number = number + ?, label = 'tmp' || id WHERE id = ?",
            [offset, r["id"]],
        )
    for target, r in zip(targets, fresh, strict=True):
        store.db.execute(
            "UPDATE lesion SET number = ?, label = ? WHERE id = ?", [target, f"L{target}", r["id"]]
        )
        store._audit(
            "relabel",
            "lesion",
            r["id"],
            {"number": r["number"], "label": r["label"]},
            {"number": target, "label": f"L{target}"},
        )
