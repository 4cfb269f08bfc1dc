"""The lesion table of a report: one row per lesion observation, flagged lesions first.

A lesion is flagged when it is new (first seen at a later visit, on a body photo: a
close-up is never tracked, so its lesion has no past to be new against), changed (its link
from the previous visit says so), likely malignant (effective class malignant, i.e.
p_malignant >= HIGH_P_MALIGNANT or a clinician's class), or linked to the previous visit
by an uncertain match (a link of low confidence: check it is the same lesion). A new or
changed lesion that the detector found only faintly (P(lesion) under
``lesionviewer.store.models.FAINT_SCORE``, like the compare view's "NEW?" and "CHANGED?,
faint") is flagged "faint" too and listed after the confident alarms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lesionviewer.store import Analysis, Patient, Photo, Store, Visit
from lesionviewer.store.models import MALIGNANT_THRESHOLD

#: p_malignant from which a lesion is flagged as likely malignant.
HIGH_P_MALIGNANT = MALIGNANT_THRESHOLD

FLAG_NEW = "new"
FLAG_CHANGED = "changed"
FLAG_MALIGNANT = "high p_malignant"
FLAG_UNCERTAIN = "uncertain match"
FLAG_FAINT = "faint"


@dataclass(frozen=True)
class LesionRow:
    """One lesion on one photo of the report.

    area_px: pixels; score, p_malignant in [0, 1]; area_ratio (this / previous visit),
    delta_e (colour change) and p_malignant_change (this - previous) are None when there
    is no previous observation. flags: subset of ('new', 'changed', 'high p_malignant',
    'uncertain match', 'faint'); 'faint' only beside 'new' or 'changed', for a detection
    scored under ``lesionviewer.store.models.FAINT_SCORE``.
    """

    label: str
    visit_date: str
    photo_id: int
    body_site: str
    class_name: str
    source: str
    area_px: float
    score: float
    p_malignant: float
    area_ratio: float | None
    delta_e: float | None
    p_malignant_change: float | None
    status: str
    biopsy_result: str
    flags: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def to_json(self) -> dict:
        """JSON-ready dict with the CSV column names."""

        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(float(value), digits)

        return {
            "label": self.label,
            "visit_date": self.visit_date,
            "photo_id": self.photo_id,
            "body_site": self.body_site,
            "class": self.class_name,
            "source": self.source,
            "area_px": rounded(self.area_px, 1),
            "score": rounded(self.score, 4),
            "p_malignant": rounded(self.p_malignant, 4),
            "area_ratio": rounded(self.area_ratio, 4),
            "delta_e": rounded(self.delta_e, 2),
            "p_malignant_change": rounded(self.p_malignant_change, 4),
            "status": self.status,
            "biopsy_result": self.biopsy_result,
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows. ``patient`` is None when de-identified (then
    ``patient_ref`` is an opaque 'patient-<id>'); rows are flagged first."""

    patient: Patient | None
    patient_ref: str
    sex: str
    visits: tuple[Visit, ...]
    photos: tuple[Photo, ...]
    rows: tuple[LesionRow, ...]
    models: tuple[Analysis, ...]
    deidentified: bool
    #: photo id -> the latest detection of each analysed close-up among ``photos``
    closeup_analyses: dict[int, Analysis] = field(default_factory=dict)


def _sort_key(row: LesionRow) -> tuple:
    """Flagged first, faint ones after the confident, then by number of alarms."""
    number = int(row.label[1:]) if row.label[1:].isdigit() else 0
    faint = FLAG_FAINT in row.flags
    alarms = len(row.flags) - faint
    return (not row.flagged, faint, -alarms, -row.p_malignant, row.visit_date, number)


def collect_report(
    store: Store, patient_id: int, *, visit_id: int | None = None, deidentify: bool = False
) -> ReportData:
    """Read a patient's (or one visit's) lesions and model versions from the store."""
    record = store.open_patient(patient_id)
    lesions = {le.id: le for le in record.lesions}
    visits = [v for v in record.visits if visit_id is None or v.id == visit_id]
    if visit_id is not None and not visits:
        from lesionviewer.store import NotFoundError

        raise NotFoundError(store.db_path, f"no visit {visit_id} of patient {patient_id}")
    first_visit_with_photos = next(
        (v.id for v in record.visits if any(not p.closeup for p in record.photos.get(v.id, ()))),
        None,
    )
    links_into = {link.observation_b: link for link in record.links}
    seen_before: dict[int, str] = {}
    for visit in record.visits:
        for photo in record.photos.get(visit.id, ()):
            for obs in record.observations.get(photo.id, ()):
                seen_before.setdefault(obs.lesion_id, visit.date)
    rows: list[LesionRow] = []
    photos: list[Photo] = []
    models: dict[tuple[str, str, str], Analysis] = {}
    for visit in visits:
        for photo in record.photos.get(visit.id, ()):
            photos.append(photo)
            for analysis in store.list_analyses(photo.id):
                key = (analysis.model_name, analysis.model_version, analysis.model_sha256)
                models.setdefault(key, analysis)
            for obs in record.observations.get(photo.id, ()):
                lesion = lesions[obs.lesion_id]
                link = links_into.get(obs.id)
                flags = []
                if (
                    link is None
                    and not photo.closeup
                    and visit.id != first_visit_with_photos
                    and seen_before[obs.lesion_id] == visit.date
                ):
                    flags.append(FLAG_NEW)
                if link is not None and link.changed:
                    flags.append(FLAG_CHANGED)
                if obs.malignant:
                    flags.append(FLAG_MALIGNANT)
                if link is not None and link.uncertain:
                    flags.append(FLAG_UNCERTAIN)
                if obs.faint and (FLAG_NEW in flags or FLAG_CHANGED in flags):
                    flags.append(FLAG_FAINT)
                rows.append(
                    LesionRow(
                        label=obs.lesion_label,
                        visit_date=visit.date,
                        photo_id=photo.id,
                        body_site=lesion.body_site or photo.body_site,
                        class_name=obs.class_name,
                        source=obs.source,
                        area_px=obs.area_px,
                        score=obs.score,
                        p_malignant=obs.p_malignant,
                        area_ratio=None if link is None else link.area_ratio,
                        delta_e=None if link is None else link.delta_e,
                        p_malignant_change=None if link is None else link.p_malignant_change,
                        status=lesion.status,
                        biopsy_result=lesion.biopsy_result,
                        flags=tuple(flags),
                    )
                )
    return ReportData(
        patient=None if deidentify else record.patient,
        patient_ref=f"patient-{patient_id}",
        sex=record.patient.sex,
        visits=tuple(visits),
        photos=tuple(photos),
        rows=tuple(sorted(rows, key=_sort_key)),
        models=tuple(models.values()),
        deidentified=deidentify,
        closeup_analyses={
            p.id: record.closeup_analyses[p.id] for p in photos if p.id in record.closeup_analyses
        },
    )
