"""Frozen records the store hands out: plain data, no Qt, no database handles.

Coordinates: pixels of the photo as displayed (after EXIF orientation), x to the right,
y down, pixel centres at integer coordinates. Dates are ISO strings: ``YYYY-MM-DD`` for
visit and birth dates, ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (UTC) for times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: p_malignant at or above which an observation counts as malignant (when no override).
MALIGNANT_THRESHOLD = 0.5

#: A detection whose score (P(lesion)) is under this is "faint": a new lesion or a change
#: that only faint detections show is listed after the confident alarms (the compare view's
#: "NEW?" / "CHANGED?, faint") and flagged "faint" in reports. On a later visit's photo,
#: faint spots the earlier photo's detection did not reach, or a faint region that seems to
#: grow, are more often a lighting, focus or garment-edge difference than a finding. The
#: detector's scores are calibrated probabilities (its candidate verifier is Platt-scaled on
#: validation photos, see training.calibration), so "faint" means what it says: more likely
#: not a lesion than one. (Detector 1.7.0, uncalibrated, needed 0.1 here; 1.6.0, which
#: scored regions by their peak P(lesion), 0.95.)
FAINT_SCORE = 0.5

#: A link whose confidence (see core.matching.match_lesions) is under this is an uncertain
#: match, for a clinician to check: matches the flow carried within half the distance gate
#: score above it; the second look's matches (a lesion carried beyond the gate, where the
#: skin gave the flow nothing to hold on to) score under 0.02. A clinician's links have 1.
UNCERTAIN_MATCH_CONFIDENCE = 0.3


@dataclass(frozen=True)
class Patient:
    """A patient. ``birth_date`` is ``YYYY-MM-DD`` or None; ``sex`` free text ('F', 'M', '')."""

    id: int
    name: str
    record_number: str
    birth_date: str | None
    sex: str
    notes: str
    created_at: str


@dataclass(frozen=True)
class Visit:
    """One visit of a patient on one day (``date`` is ``YYYY-MM-DD``)."""

    id: int
    patient_id: int
    date: str
    notes: str
    created_at: str


@dataclass(frozen=True)
class Photo:
    """A photo stored by content: ``path`` is ``<data_dir>/photos/ab/cdef...<ext>``.

    width, height: pixels after EXIF orientation (as ``core.io.load_photo`` returns it).
    sha256: hex digest of the file bytes (the file is stored unchanged).
    closeup: a close-up of one lesion rather than a body region (see core.closeup): it is
    analysed as one and never paired with another photo for tracking.
    """

    id: int
    visit_id: int
    body_site: str
    sha256: str
    path: Path
    original_name: str
    width: int
    height: int
    size_bytes: int
    imported_at: str
    closeup: bool = False


@dataclass(frozen=True)
class ImportResult:
    """Outcome of importing one file: the stored photo and whether it was already there."""

    photo: Photo
    duplicate: bool
    source: Path


@dataclass(frozen=True)
class Analysis:
    """One run of a model: ``kind`` 'detect' on ``photo_id`` or 'track' from photo_id to
    ``other_photo_id``; model name, version and SHA-256 of its weights; UTC time."""

    id: int
    photo_id: int
    other_photo_id: int | None
    kind: str
    model_name: str
    model_version: str
    model_sha256: str
    created_at: str
    #: a close-up's detection: the detection index (observation.detection_index) of the
    #: region at its centre, None when no region was found or for a body photo
    closeup_region: int | None = None
    #: a close-up's detection: the photographed lesion's p_malignant; None for a body photo
    closeup_p_malignant: float | None = None
    #: a close-up's detection: the central region's score, or without a region the mean
    #: P(lesion) over the photo's central third; None for a body photo
    closeup_p_lesion: float | None = None

    def closeup_summary(self, observations: Iterable[Observation]) -> str | None:
        """A close-up detection's verdict in words: ``"L3, p malignant 0.43"``, or without
        a region ``"no region, centre of the photo, P(lesion) 0.02, p malignant 0.43"``;
        None for a body photo's detection. ``observations``: the photo's."""
        if self.closeup_p_malignant is None:
            return None
        where = self.closeup_label(observations)
        if where is None:
            where = "no region, centre of the photo"
            if self.closeup_p_lesion is not None:
                where += f", P(lesion) {self.closeup_p_lesion:.2f}"
        return f"{where}, p malignant {self.closeup_p_malignant:.2f}"

    def closeup_label(self, observations: Iterable[Observation]) -> str | None:
        """A close-up detection's central region named by the label ('L3') of the
        observation this detection made of it among ``observations`` (the photo's), or
        "the central region" where a clinician's outline took its place; None when no
        region was found (p_malignant then came from the heatmap's centre)."""
        if self.closeup_region is None:
            return None
        return next(
            (
                o.lesion_label
                for o in observations
                if o.analysis_id == self.id and o.detection_index == self.closeup_region
            ),
            "the central region",
        )


@dataclass(frozen=True)
class LesionRecord:
    """A lesion's identity across visits. ``label`` like 'L7' is unique per patient and
    never reused; ``status`` free text ('active' by default, e.g. 'excised');
    ``biopsy_result`` free text ('' = none)."""

    id: int
    patient_id: int
    label: str
    number: int
    body_site: str
    status: str
    biopsy_result: str
    notes: str
    created_at: str


@dataclass(frozen=True)
class Observation:
    """A lesion seen on one photo.

    outline: closed polygon, tuple of (x, y) float vertices in photo pixels.
    bbox: (x0, y0, x1, y1) int pixels, x1/y1 exclusive. centroid: (x, y) float pixels.
    area_px: area in pixels. score: P(lesion) in [0, 1]; p_malignant: P(malignant | lesion)
    in [0, 1] (for manual observations the clinician's class: 1.0 or 0.0, or the model's).
    source: 'auto' (from an analysis) or 'manual' (drawn by a clinician).
    class_override: None, 'benign' or 'malignant' (a clinician's class change).
    corrected: a clinician changed it; re-analysis keeps it.
    deleted: soft-deleted by a clinician (a false detection); re-analysis keeps it deleted.
    detection_index: the ``core.types.Lesion.id`` it came from (auto only).
    """

    id: int
    lesion_id: int
    lesion_label: str
    photo_id: int
    analysis_id: int | None
    detection_index: int | None
    source: str
    outline: tuple[tuple[float, float], ...] = field(repr=False)
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area_px: float
    score: float
    p_malignant: float
    class_override: str | None
    corrected: bool
    link_locked: bool
    deleted: bool
    created_at: str

    @property
    def malignant(self) -> bool:
        """The effective class: the override when set, else p_malignant >= 0.5."""
        if self.class_override is not None:
            return self.class_override == "malignant"
        return self.p_malignant >= MALIGNANT_THRESHOLD

    @property
    def faint(self) -> bool:
        """A detection scored under :data:`FAINT_SCORE`; a clinician's outline never is."""
        return self.source != "manual" and self.score < FAINT_SCORE

    @property
    def class_name(self) -> str:
        """'malignant' or 'benign' (effective class)."""
        return "malignant" if self.malignant else "benign"


@dataclass(frozen=True)
class TrackLink:
    """Observation A (earlier photo) and observation B (later photo) are the same lesion.

    confidence in [0, 1]; area_ratio = area B / area A; delta_e: mean colour change
    (CIE Delta E 2000); p_malignant_change = B - A; changed: flagged by the change rule.
    source: 'auto' (from a tracking analysis) or 'manual' (a clinician's re-link).
    """

    id: int
    observation_a: int
    observation_b: int
    analysis_id: int | None
    source: str
    confidence: float
    area_ratio: float | None
    delta_e: float | None
    p_malignant_change: float | None
    changed: bool
    created_at: str

    @property
    def uncertain(self) -> bool:
        """Whether the match needs a check (see :data:`UNCERTAIN_MATCH_CONFIDENCE`)."""
        return self.confidence < UNCERTAIN_MATCH_CONFIDENCE


@dataclass(frozen=True)
class HistoryEntry:
    """One observation of a lesion at one visit, with the link that led to it (if any)."""

    visit: Visit
    photo: Photo
    observation: Observation
    link_from_previous: TrackLink | None


@dataclass(frozen=True)
class SavedDetection:
    """What :meth:`Store.save_detection` wrote: the analysis row and the photo's live
    observations afterwards (kept manual ones included), ordered by detection index."""

    analysis: Analysis
    observations: tuple[Observation, ...]


@dataclass(frozen=True)
class AuditEntry:
    """One append-only audit row: who did what to which row, with JSON before/after."""

    id: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: int | None
    before: dict | None
    after: dict | None


@dataclass(frozen=True)
class Problem:
    """One finding of the integrity check. severity: 'error' (inconsistent) or 'warning'
    (harmless leftovers such as orphan photo files of an interrupted import)."""

    severity: str
    kind: str
    detail: str


@dataclass(frozen=True)
class PatientRecord:
    """Everything the app shows when a patient is opened, read in a handful of queries.

    visits: ordered by date. photos: visit id -> photos (by id). observations: photo id ->
    live (not deleted) observations. lesions: the patient's lesion identities by label
    number. links: live (not rejected) track links between the patient's observations.
    out_of_view: (photo A id, photo B id, observation id) for every observation the latest
    tracking of that photo pair found outside the other photo's view.
    closeup_analyses: photo id -> the latest detection of each analysed close-up (its
    verdict in ``closeup_region`` / ``closeup_p_malignant``).
    """

    patient: Patient
    visits: tuple[Visit, ...]
    photos: dict[int, tuple[Photo, ...]]
    observations: dict[int, tuple[Observation, ...]]
    lesions: tuple[LesionRecord, ...]
    links: tuple[TrackLink, ...]
    out_of_view: frozenset[tuple[int, int, int]] = frozenset()
    closeup_analyses: dict[int, Analysis] = field(default_factory=dict)
