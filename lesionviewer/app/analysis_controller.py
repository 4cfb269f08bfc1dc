"""Runs imports, analyses and the model load on workers and reports back to the views."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from core.device import describe_device
from lesionviewer.app.analysis_jobs import AnalysisOutcome, import_photos, run_analysis
from lesionviewer.app.session import AppSession
from lesionviewer.app.status_bar import AppStatusBar
from lesionviewer.workers import WorkerPool


class AnalysisController(QObject):
    """Signals: ``imported(photo_ids)``, ``analysed(AnalysisOutcome)``,
    ``models_loaded(text)``, ``failed(exception)`` (for the error dialog)."""

    imported = Signal(list)
    analysed = Signal(object)
    models_loaded = Signal(str)
    failed = Signal(object)

    def __init__(self, session: AppSession, workers: WorkerPool, status: AppStatusBar) -> None:
        super().__init__()
        self.session = session
        self.workers = workers
        self.status = status

    def _failed(self, exc: BaseException) -> None:
        self.status.job_ended("failed")
        self.session.reload()  # whatever was saved before the failure is shown
        self.failed.emit(exc)

    def _cancelled(self) -> None:
        self.status.job_ended("cancelled; what was saved stays")
        self.session.reload()

    # -- models ------------------------------------------------------------------------------
    def load_models(self) -> None:
        """Load the analyzer in the background and put device and versions in the status."""
        holder = self.session.holder

        def job(progress, cancel) -> tuple[str, str]:
            analyzer = holder.get()
            det = analyzer.detector_info
            text = f"detector {det.name} {det.version}"
            try:
                trk = analyzer.tracker_info
                text += f", tracker {trk.name} {trk.version}"
            except Exception as exc:  # a missing tracker still lets detection run
                text += f", tracker unavailable ({type(exc).__name__})"
            device = describe_device(analyzer.device)
            if analyzer.precision == "bfloat16":  # opt-in (LESIONVIEWER_PRECISION): say so
                device += ", bfloat16"
            return device, text

        def done(result: tuple[str, str]) -> None:
            self.status.set_device(result[0])
            self.status.set_models(result[1])
            self.models_loaded.emit(result[1])

        def failed(exc: BaseException) -> None:
            self.status.set_models("not available")
            self.failed.emit(exc)

        self.workers.submit("models", job, on_done=done, on_error=failed)

    # -- import ------------------------------------------------------------------------------
    def import_files(self, visit_id: int, files: list[tuple[Path, str, bool]]) -> None:
        """Import (path, body site, close-up) rows into a visit off the GUI thread."""
        data_dir = self.session.data_dir
        chosen = tuple((Path(p), s, bool(c)) for p, s, c in files)
        self.status.job_started(f"importing {len(chosen)} photos")

        def done(ids: list[int]) -> None:
            self.status.job_ended(f"imported {len(ids)} photos")
            self.session.reload()
            self.imported.emit(ids)

        self.workers.submit(
            "import",
            lambda progress, cancel: import_photos(data_dir, visit_id, chosen, progress, cancel),
            on_done=done,
            on_error=self._failed,
            on_cancelled=self._cancelled,
        )

    # -- analysis ----------------------------------------------------------------------------
    def analyse_visit(self, visit_id: int) -> None:
        """Detect on every photo of a visit, then track to the visits around it."""
        view = self.session.patient
        if view is None:
            return
        visit = next(v for v in view.visits if v.visit_id == visit_id)
        self.analyse_photos([p.photo_id for p in visit.photos], visit_id)

    def analyse_photos(self, photo_ids: list[int], visit_id: int) -> None:
        photos = tuple(self.session.photo_job(pid) for pid in photo_ids)
        pairs = self.session.pairs_around(visit_id)
        data_dir, holder = self.session.data_dir, self.session.holder
        self.status.job_started(f"analysing {len(photos)} photos")

        def done(outcome: AnalysisOutcome) -> None:
            self.status.job_ended(
                f"analysed {outcome.photos} photos: {outcome.lesions} lesions; "
                f"tracked {outcome.pairs} pairs: {outcome.links} links"
            )
            if "not loaded" in self.status.models_label.text():
                self.load_models()  # the analyzer is loaded now: show device and versions
            self.session.reload()
            self.analysed.emit(outcome)

        self.workers.submit(
            "analysis",
            lambda progress, cancel: run_analysis(
                data_dir, holder, photos, pairs, progress, cancel
            ),
            on_done=done,
            on_error=self._failed,
            on_cancelled=self._cancelled,
        )
