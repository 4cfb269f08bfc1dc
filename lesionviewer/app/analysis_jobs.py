"""The work that runs off the GUI thread: analyse photos and track them between visits.

Pure functions of immutable inputs (ids, paths, the data folder, a loaded Analyzer);
each opens its own store connection, because a connection belongs to one thread.
No Qt here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LesionViewerError, PhotoError
from core.io import load_photo
from core.types import Detection, Lesion, ModelInfo
from lesionviewer.app.heatmap_cache import save_heatmap
from lesionviewer.store import DuplicatePhotoError, Observation, Store

Progress = Callable[..., None]
Cancel = Callable[[], bool]


@dataclass(frozen=True)
class PhotoJob:
    """A stored photo to analyse: id, file, the SHA-256 that keys its heatmap, and whether
    it is a close-up of one lesion (analysed as one: see core.closeup)."""

    photo_id: int
    path: Path
    sha256: str
    closeup: bool = False


@dataclass(frozen=True)
class PairJob:
    """Track from the earlier photo A to the later photo B (same body site)."""

    photo_a: PhotoJob
    photo_b: PhotoJob


@dataclass(frozen=True)
class AnalysisOutcome:
    """What a job did: photos analysed, lesions found, pairs tracked, links written, and
    the ids of the photos analysed."""

    photos: int
    lesions: int
    pairs: int
    links: int
    photo_ids: tuple[int, ...] = ()


class AnalyzerHolder:
    """Loads the Analyzer once, on first use, from any thread (the load is locked).

    ``device`` is "auto", "cpu" or "cuda"; ``detector``/``tracker`` override the shipped
    model folders (tests use tiny ones).
    """

    def __init__(
        self, device: str = "auto", *, detector: Path | None = None, tracker: Path | None = None
    ) -> None:
        self.device = device
        self.detector = detector
        self.tracker = tracker
        self._analyzer = None
        self._lock = threading.Lock()

    @property
    def loaded(self):
        """The Analyzer when loaded, else None (never loads)."""
        return self._analyzer

    def get(self):
        """The Analyzer, loading it the first time (raises core.errors.ModelError)."""
        with self._lock:
            if self._analyzer is None:
                from core.analyzer import Analyzer

                self._analyzer = Analyzer.load(
                    self.device, detector=self.detector, tracker=self.tracker
                )
            return self._analyzer


def detection_from_observations(observations: list[Observation], model: ModelInfo) -> Detection:
    """A Detection holding a photo's live stored lesions (clinicians' corrections
    included) for tracking, which uses only the lesions; the heatmap is left empty
    (0 x 0 x 3) because the store does not keep it."""
    lesions = tuple(
        Lesion(
            id=i + 1,
            centroid=(float(o.centroid[0]), float(o.centroid[1])),
            bbox=tuple(int(v) for v in o.bbox),  # type: ignore[arg-type]
            contour=np.asarray(o.outline, dtype=np.float64).round().astype(np.int32),
            area_px=float(o.area_px),
            score=float(o.score),
            p_malignant=1.0
            if o.class_override == "malignant"
            else (0.0 if o.class_override == "benign" else float(o.p_malignant)),
        )
        for i, o in enumerate(observations)
    )
    return Detection(heatmap=np.zeros((0, 0, 3), np.float32), lesions=lesions, model=model)


def run_analysis(
    data_dir: Path,
    holder: AnalyzerHolder,
    photos: tuple[PhotoJob, ...],
    pairs: tuple[PairJob, ...],
    progress: Progress,
    cancel: Cancel,
) -> AnalysisOutcome:
    """Detect lesions on ``photos`` and store them (keeping corrections), cache their
    heatmaps, then track each of ``pairs`` with the stored lesions and store the links.

    Progress goes 0 -> 1 over the photos and pairs; ``cancel()`` is polled by the
    analyzer between tiles (it raises core.errors.Cancelled); work already saved stays.
    """
    steps = max(1, len(photos) + len(pairs))
    analyzer = holder.get()
    lesions = links = 0
    with Store.open(data_dir) as store:
        for i, job in enumerate(photos):
            progress(i / steps, f"analysing {job.path.name}")
            image = load_photo(job.path)

            def sub(fraction: float, i: int = i) -> None:
                progress((i + float(fraction)) / steps, "")

            detection = analyzer.detect(image, closeup=job.closeup, progress=sub, cancel=cancel)
            save_heatmap(data_dir, job.sha256, detection)
            del image
            saved = store.save_detection(job.photo_id, detection)
            lesions += len(saved.observations)
        for j, pair in enumerate(pairs):
            progress((len(photos) + j) / steps, f"tracking {pair.photo_a.path.name}")
            if cancel():
                break
            image_a, image_b = load_photo(pair.photo_a.path), load_photo(pair.photo_b.path)
            info = analyzer.detector_info
            det_a = detection_from_observations(
                store.list_observations(pair.photo_a.photo_id), info
            )
            det_b = detection_from_observations(
                store.list_observations(pair.photo_b.photo_id), info
            )
            tracking = analyzer.track(
                image_a, image_b, detection_a=det_a, detection_b=det_b, cancel=cancel
            )
            links += len(
                store.save_tracking(pair.photo_a.photo_id, pair.photo_b.photo_id, tracking)
            )
    progress(1.0, "done")
    return AnalysisOutcome(
        len(photos), lesions, len(pairs), links, tuple(job.photo_id for job in photos)
    )


def import_photos(
    data_dir: Path,
    visit_id: int,
    files: tuple[tuple[Path, str, bool], ...],
    progress: Progress,
    cancel,
) -> list[int]:
    """Import ``files`` ((path, body site, close-up), ...) into a visit; returns the ids.

    Each file is decoded before it is stored. A refused file (corrupt, unsupported: a
    PhotoError naming it) stores nothing and the others are still imported, each complete
    on its own; then :class:`ImportProblems` lists every refused file and its reason. A
    store error (locked, read-only) stops the import at once."""
    ids: list[int] = []
    problems: list[LesionViewerError] = []
    with Store.open(data_dir) as store:
        for i, (path, site, closeup) in enumerate(files):
            if cancel():
                break
            progress(i / max(1, len(files)), f"importing {path.name}")
            try:
                result = store.import_photo(visit_id, path, body_site=site, closeup=closeup)
            except (PhotoError, DuplicatePhotoError) as exc:  # this file only: go on
                problems.append(exc)
                continue
            ids.append(result.photo.id)
    if problems:
        raise ImportProblems(problems, ids, len(files))
    return ids


class ImportProblems(LesionViewerError):
    """Some photos of an import were refused; the others were imported.

    problems: the PhotoError (or DuplicatePhotoError) of each refused file.
    imported_ids: the photos stored."""

    def __init__(
        self, problems: list[LesionViewerError], imported_ids: list[int], total: int
    ) -> None:
        self.problems = list(problems)
        self.imported_ids = list(imported_ids)
        listed = "; ".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} of {total} photos not imported: {listed}")
