"""Turn the store's records into the plain view data the views draw (no Qt here).

Reads go through one ``lesionviewer.store.Store`` (its thread's own connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from lesionviewer.app.heatmap_cache import cache_path
from lesionviewer.app.view_data import (
    CompareData,
    CompareLink,
    HistoryEntry,
    LesionHistory,
    LesionMark,
    PatientSummary,
    PhotoData,
    VisitSummary,
    change_level,
)
from lesionviewer.store import Analysis, Observation, PatientRecord, Photo, Store, TrackLink


def mark_from_observation(obs: Observation) -> LesionMark:
    """A view mark for a stored observation (label = the lesion's label, e.g. 'L7')."""
    return LesionMark(
        observation_id=obs.id,
        lesion_id=obs.lesion_id,
        label=obs.lesion_label,
        contour=np.asarray(obs.outline, dtype=np.float64).reshape(-1, 2),
        centroid=(float(obs.centroid[0]), float(obs.centroid[1])),
        bbox=tuple(int(v) for v in obs.bbox),  # type: ignore[arg-type]
        area_px=float(obs.area_px),
        score=float(obs.score),
        p_malignant=float(obs.p_malignant),
        manual=obs.source == "manual",
        class_override=obs.class_override,
    )


def photo_data(
    photo: Photo,
    visit_label: str,
    observations: tuple[Observation, ...],
    data_dir: Path,
    closeup_analysis: Analysis | None = None,
) -> PhotoData:
    heatmap_file = cache_path(data_dir, photo.sha256)
    return PhotoData(
        photo_id=photo.id,
        path=photo.path,
        body_site=photo.body_site or "unspecified site",
        visit_label=visit_label,
        marks=tuple(mark_from_observation(o) for o in observations),
        size=(photo.width, photo.height),
        heatmap_file=heatmap_file if heatmap_file.is_file() else None,
        closeup=photo.closeup,
        closeup_verdict=(
            closeup_analysis.closeup_summary(observations) if closeup_analysis else None
        ),
    )


def patient_summaries(store: Store, text: str = "") -> list[PatientSummary]:
    """Patients matching ``text`` (name or record number), for the patient list."""
    patients = store.search_patients(text) if text.strip() else store.list_patients()
    return [PatientSummary(p.id, p.name, p.record_number) for p in patients]


@dataclass(frozen=True)
class PatientView:
    """An opened patient: the record and its visits as view data, oldest first."""

    record: PatientRecord
    visits: tuple[VisitSummary, ...]

    def photo(self, photo_id: int) -> PhotoData | None:
        for visit in self.visits:
            for photo in visit.photos:
                if photo.photo_id == photo_id:
                    return photo
        return None

    def visit_of_photo(self, photo_id: int) -> VisitSummary | None:
        for visit in self.visits:
            if any(p.photo_id == photo_id for p in visit.photos):
                return visit
        return None

    def find_observation(self, observation_id: int) -> tuple[PhotoData, LesionMark] | None:
        for visit in self.visits:
            for photo in visit.photos:
                mark = photo.mark(observation_id)
                if mark is not None:
                    return photo, mark
        return None


def open_patient(store: Store, patient_id: int) -> PatientView:
    """Read a patient and turn every visit's photos and observations into view data."""
    record = store.open_patient(patient_id)
    visits = []
    for visit in record.visits:
        photos = tuple(
            photo_data(
                p,
                visit.date,
                record.observations.get(p.id, ()),
                store.data_dir,
                record.closeup_analyses.get(p.id),
            )
            for p in record.photos.get(visit.id, ())
        )
        visits.append(VisitSummary(visit.id, visit.date, photos))
    return PatientView(record, tuple(visits))


def _level(link: TrackLink, a: LesionMark, b: LesionMark) -> tuple[str, float, float]:
    area_ratio = link.area_ratio if link.area_ratio is not None else b.area_px / max(a.area_px, 1)
    dp = (
        link.p_malignant_change
        if link.p_malignant_change is not None
        else b.p_malignant - a.p_malignant
    )
    return change_level(link.changed, area_ratio, dp), float(area_ratio), float(dp)


def compare_data(view: PatientView, photo_a_id: int, photo_b_id: int) -> CompareData:
    """The comparison of two photos of a patient: live links between their observations,
    B's observations without a link from A as new, A's without a link to B as gone, except
    those the latest tracking of the pair found outside the other photo's view."""
    photo_a, photo_b = view.photo(photo_a_id), view.photo(photo_b_id)
    if photo_a is None or photo_b is None:
        raise KeyError(f"photo {photo_a_id} or {photo_b_id} is not of this patient")
    marks_a = {m.observation_id: m for m in photo_a.marks}
    marks_b = {m.observation_id: m for m in photo_b.marks}
    links, linked_a, linked_b = [], set(), set()
    for link in view.record.links:
        a, b = marks_a.get(link.observation_a), marks_b.get(link.observation_b)
        if a is None or b is None or link.observation_b in linked_b:
            continue
        level, area_ratio, dp = _level(link, a, b)
        links.append(CompareLink(a, b, level, area_ratio, dp, float(link.confidence)))
        linked_a.add(a.observation_id)
        linked_b.add(b.observation_id)
    hidden = {o for a, b, o in view.record.out_of_view if (a, b) == (photo_a_id, photo_b_id)}
    unlinked_b = [m for m in photo_b.marks if m.observation_id not in linked_b]
    unlinked_a = [m for m in photo_a.marks if m.observation_id not in linked_a]
    return CompareData(
        photo_a=photo_a,
        photo_b=photo_b,
        links=tuple(links),
        new_in_b=tuple(m for m in unlinked_b if m.observation_id not in hidden),
        gone_from_a=tuple(m for m in unlinked_a if m.observation_id not in hidden),
        outside_view_of_a=tuple(m for m in unlinked_b if m.observation_id in hidden),
        outside_view_of_b=tuple(m for m in unlinked_a if m.observation_id in hidden),
    )


def matching_photo_pairs(view: PatientView, visit_a: int, visit_b: int) -> list[tuple[int, int]]:
    """Pairs (photo of visit A, photo of visit B) of the same body site, in import order;
    when no site matches, the first photos of each visit. Close-ups are never paired: the
    tracker follows lesions across body photos, not one lesion across two close-ups."""
    va = next(v for v in view.visits if v.visit_id == visit_a)
    vb = next(v for v in view.visits if v.visit_id == visit_b)
    photos_a = [p for p in va.photos if not p.closeup]
    photos_b = [p for p in vb.photos if not p.closeup]
    pairs, used = [], set()
    for pa in photos_a:
        for pb in photos_b:
            if pb.photo_id not in used and pb.body_site == pa.body_site:
                pairs.append((pa.photo_id, pb.photo_id))
                used.add(pb.photo_id)
                break
    if not pairs and photos_a and photos_b:
        pairs.append((photos_a[0].photo_id, photos_b[0].photo_id))
    return pairs


def _days(iso: str) -> float:
    try:
        return float(date.fromisoformat(iso[:10]).toordinal())
    except ValueError:
        return 0.0


def lesion_history(store: Store, lesion_id: int) -> LesionHistory:
    """A lesion across visits (visit_ordinal: days since its first visit)."""
    lesion = store.get_lesion(lesion_id)
    rows = store.lesion_history(lesion_id)
    first = _days(rows[0].visit.date) if rows else 0.0
    entries = tuple(
        HistoryEntry(
            visit_label=r.visit.date,
            visit_ordinal=_days(r.visit.date) - first,
            photo_id=r.photo.id,
            photo_path=r.photo.path,
            observation_id=r.observation.id,
            bbox=tuple(int(v) for v in r.observation.bbox),  # type: ignore[arg-type]
            centroid=(float(r.observation.centroid[0]), float(r.observation.centroid[1])),
            area_px=float(r.observation.area_px),
            p_malignant=float(r.observation.p_malignant),
        )
        for r in rows
    )
    return LesionHistory(
        lesion_id=lesion.id,
        label=lesion.label,
        body_site=lesion.body_site,
        status=lesion.status,
        notes=lesion.notes,
        biopsy=lesion.biopsy_result,
        entries=entries,
    )
