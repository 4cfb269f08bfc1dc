"""Plain, Qt-free data the views draw: the views adapt these, the store adapter makes them.

Coordinates are photo pixels as displayed (after EXIF orientation), x right, y down,
pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.matching import touches_edge
from core.types import Lesion
from lesionviewer.store.models import FAINT_SCORE, UNCERTAIN_MATCH_CONFIDENCE

#: p_malignant at or above which a lesion is drawn and flagged as malignant.
MALIGNANT_THRESHOLD = 0.5


@dataclass(frozen=True)
class LesionMark:
    """One lesion as seen on one photo (an observation).

    observation_id: the store's observation id (the key of every correction).
    lesion_id: the stable identity across visits, or None when not linked.
    label: short display label such as "L7".
    contour: (N, 2) float or int array of (x, y) outline vertices, a closed polygon.
    centroid: (x, y) float pixels; bbox: (x0, y0, x1, y1) int pixels, x1/y1 exclusive.
    area_px: area in pixels; score: P(lesion) in [0, 1];
    p_malignant: P(malignant | lesion) in [0, 1].
    manual: drawn by a clinician rather than found by the detector.
    class_override: None, "benign" or "malignant" (a clinician's class change).
    """

    observation_id: int
    lesion_id: int | None
    label: str
    contour: np.ndarray = field(repr=False, compare=False)
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    area_px: float
    score: float
    p_malignant: float
    manual: bool = False
    class_override: str | None = None

    @property
    def malignant(self) -> bool:
        """The effective class: the clinician's override, else p_malignant >= 0.5."""
        if self.class_override is not None:
            return self.class_override == "malignant"
        return self.p_malignant >= MALIGNANT_THRESHOLD

    @classmethod
    def from_lesion(cls, lesion: Lesion, *, observation_id: int | None = None) -> LesionMark:
        """A mark for a freshly detected ``core.types.Lesion`` (label = its number)."""
        return cls(
            observation_id=lesion.id if observation_id is None else observation_id,
            lesion_id=None,
            label=str(lesion.id),
            contour=np.asarray(lesion.contour),
            centroid=(float(lesion.centroid[0]), float(lesion.centroid[1])),
            bbox=tuple(int(v) for v in lesion.bbox),  # type: ignore[arg-type]
            area_px=float(lesion.area_px),
            score=float(lesion.score),
            p_malignant=float(lesion.p_malignant),
        )


def lesion_count(n: int) -> str:
    """``"1 lesion"``, ``"3 lesions"``."""
    return f"{n} lesion" if n == 1 else f"{n} lesions"


@dataclass(frozen=True)
class PhotoData:
    """A stored photo and what is known on it.

    path: the photo file (read with core.load_photo off the GUI thread).
    size: (width, height) in pixels as displayed, when known.
    heatmap: float32 or uint8 (h, w, 3) (p background, p benign, p malignant; uint8 means
        probability * 255) at any resolution; it is stretched over the photo. None when the
        photo was not analysed in a way that kept the heatmap.
    heatmap_file: a cached heatmap (lesionviewer.app.heatmap_cache) read off the GUI
        thread when ``heatmap`` is None.
    """

    photo_id: int
    path: Path
    body_site: str
    visit_label: str
    marks: tuple[LesionMark, ...] = ()
    heatmap: np.ndarray | None = field(default=None, repr=False, compare=False)
    size: tuple[int, int] | None = None
    model: str = ""
    heatmap_file: Path | None = None
    #: a close-up of one lesion (see core.closeup), and its latest analysis's verdict in
    #: words once analysed (``lesionviewer.store.Analysis.closeup_summary``)
    closeup: bool = False
    closeup_verdict: str | None = None

    def caption(self, status: str) -> str:
        """The photo's title line: visit, site, ``status`` ('3 lesions', 'loading...') and,
        for a close-up, what its analysis says about the lesion."""
        parts = [self.visit_label, self.body_site, status]
        if self.closeup:
            verdict = self.closeup_verdict
            parts.append(f"close-up: {verdict}" if verdict else "close-up, not analysed")
        return " - ".join(parts)

    def mark(self, observation_id: int) -> LesionMark | None:
        for m in self.marks:
            if m.observation_id == observation_id:
                return m
        return None


#: How a matched lesion changed, worst first: the colour of its line in the compare view.
CHANGE_LEVELS = ("changed", "watch", "stable")


@dataclass(frozen=True)
class CompareLink:
    """One lesion seen at both visits.

    level: one of CHANGE_LEVELS; area_ratio = area B / area A (flow corrected);
    p_malignant_change = p_malignant B - A; confidence of the match in [0, 1].
    """

    a: LesionMark
    b: LesionMark
    level: str
    area_ratio: float
    p_malignant_change: float
    confidence: float = 1.0


@dataclass(frozen=True)
class CompareData:
    """Two photos of one body site from two visits, and the lesions joining them.

    outside_view_of_a: unlinked lesions of B where photo A does not show the skin (the
    camera moved), so they cannot be called new; outside_view_of_b: unlinked lesions of A
    that photo B does not show, so they cannot be called gone.
    """

    photo_a: PhotoData
    photo_b: PhotoData
    links: tuple[CompareLink, ...]
    new_in_b: tuple[LesionMark, ...]
    gone_from_a: tuple[LesionMark, ...]
    outside_view_of_a: tuple[LesionMark, ...] = ()
    outside_view_of_b: tuple[LesionMark, ...] = ()


@dataclass(frozen=True)
class FlagItem:
    """One row of the compare view's list: why a lesion is flagged, worst first."""

    rank: int
    reason: str
    text: str
    mark_a: LesionMark | None
    mark_b: LesionMark | None


def change_level(changed: bool, area_ratio: float, p_malignant_change: float) -> str:
    """The colour class of a match: "changed" when the change rule flags it, "watch" when
    its area moved by more than 10 % or p_malignant by more than 0.1, else "stable"."""
    if changed:
        return "changed"
    if abs(area_ratio - 1.0) > 0.1 or abs(p_malignant_change) > 0.1:
        return "watch"
    return "stable"


def is_faint(mark: LesionMark) -> bool:
    """Whether a lesion of a photo is a faint detection (see :data:`FAINT_SCORE`); a lesion a
    clinician drew is never faint."""
    return not mark.manual and mark.score < FAINT_SCORE


def is_faint_change(link: CompareLink) -> bool:
    """Whether a changed match is seen only faintly on the later photo (its B lesion is
    faint): listed after the confident alarms, like a faint new lesion."""
    return link.level == "changed" and is_faint(link.b)


def cut_by_the_frame(link: CompareLink, data: CompareData) -> bool:
    """Whether either photo's frame cuts the lesion (its outline touches the edge): its area
    ratio then compares parts, and core.matching's change rule leaves the area out."""
    for mark, photo in ((link.a, data.photo_a), (link.b, data.photo_b)):
        if photo.size is not None and touches_edge(mark.bbox, photo.size[::-1]):
            return True
    return False


def is_uncertain(link: CompareLink) -> bool:
    """Whether a match needs a look: drawn dotted, listed for a check (see
    :data:`lesionviewer.store.models.UNCERTAIN_MATCH_CONFIDENCE`)."""
    return link.confidence < UNCERTAIN_MATCH_CONFIDENCE


def flagged_items(data: CompareData) -> list[FlagItem]:
    """Every lesion of a comparison, flagged ones first: new, changed, high p_malignant,
    then uncertain matches otherwise stable (:func:`is_uncertain`), faint new ones and faint
    changes (the later photo's P(lesion) under :data:`FAINT_SCORE`), then gone (faint ones,
    the earlier photo's P(lesion) under it, last), then the rest, then lesions the other
    photo does not show (ordered by p_malignant, highest first, within a group). An
    uncertain match that is changed or malignant keeps its rank and says it is uncertain."""
    items: list[FlagItem] = []
    for m in data.new_in_b:
        if not is_faint(m):
            text = f"{m.label}  NEW, p malignant {m.p_malignant:.2f}"
            items.append(FlagItem(0, "new", text, None, m))
        else:
            text = (
                f"{m.label}  NEW?, faint: P(lesion) {m.score:.2f}, p malignant {m.p_malignant:.2f}"
            )
            items.append(FlagItem(3, "faint new", text, None, m))
    for link in data.links:
        b = link.b
        if is_faint_change(link):
            rank, reason = 3, "faint change"
        elif link.level == "changed":
            rank, reason = 1, "changed"
        elif b.malignant:
            rank, reason = 2, "malignant"
        elif is_uncertain(link):
            rank, reason = 3, "uncertain match"
        elif link.level == "watch":
            rank, reason = 5, "watch"
        else:
            rank, reason = 6, "stable"
        label = {"uncertain match": "MATCH?", "faint change": "CHANGED?, faint"}.get(
            reason, reason.upper()
        )
        text = f"{b.label}  {label}, area x{link.area_ratio:.2f}, "
        if cut_by_the_frame(link, data):
            text += "cut by the photo's edge, "
        if reason == "faint change":
            text += f"P(lesion) {link.a.score:.2f} -> {b.score:.2f}, "
        text += f"p malignant {b.p_malignant:.2f} ({link.p_malignant_change:+.2f})"
        if is_uncertain(link):
            text += f", uncertain match of {link.a.label} (confidence {link.confidence:.2f})"
        items.append(FlagItem(rank, reason, text, link.a, b))
    for m in data.gone_from_a:
        if is_faint(m):  # a faint earlier detection not seen again: most likely never a lesion
            text = f"{m.label}  GONE?, faint: P(lesion) {m.score:.2f}"
            items.append(FlagItem(4, "faint gone", text, m, None))
        else:
            items.append(FlagItem(4, "gone", f"{m.label}  GONE", m, None))
    for m in data.outside_view_of_a:
        text = f"{m.label}  not in the earlier photo's view, p malignant {m.p_malignant:.2f}"
        items.append(FlagItem(7, "out of view", text, None, m))
    for m in data.outside_view_of_b:
        items.append(
            FlagItem(7, "out of view", f"{m.label}  not in the later photo's view", m, None)
        )

    def p_of(item: FlagItem) -> float:
        mark = item.mark_b or item.mark_a
        return mark.p_malignant if mark is not None else 0.0

    # within a rank, the confident before the faint
    items.sort(key=lambda it: (it.rank, it.reason.startswith("faint"), -p_of(it)))
    return items


@dataclass(frozen=True)
class HistoryEntry:
    """One sighting of a lesion: the photo and the observation on it."""

    visit_label: str
    visit_ordinal: float
    photo_id: int
    photo_path: Path
    observation_id: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area_px: float
    p_malignant: float
    area_mm2: float | None = None


@dataclass(frozen=True)
class LesionHistory:
    """A lesion across visits: entries in visit order (visit_ordinal ascending, in days)."""

    lesion_id: int
    label: str
    body_site: str
    status: str
    notes: str
    biopsy: str
    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True)
class PatientSummary:
    """One row of the patient list."""

    patient_id: int
    name: str
    record_number: str
    visits: int = 0


@dataclass(frozen=True)
class VisitSummary:
    """One visit on the timeline with its photos."""

    visit_id: int
    label: str
    photos: tuple[PhotoData, ...]
