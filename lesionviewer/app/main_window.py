"""The main window: docks (patients, visits, lesion history), the photo and compare views
in the centre, the status bar; controllers do the work, this file only wires them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QWidget

from core.resources import resource_path
from lesionviewer.app.analysis_controller import AnalysisController
from lesionviewer.app.compare_view import CompareView
from lesionviewer.app.corrections import CorrectionsController
from lesionviewer.app.error_handler import ErrorReporter
from lesionviewer.app.history_panel import HistoryPanel
from lesionviewer.app.import_dialog import ImportDialog
from lesionviewer.app.patient_list import NewPatientDialog, PatientList
from lesionviewer.app.photo_panel import PhotoPanel
from lesionviewer.app.session import AppSession
from lesionviewer.app.status_bar import AppStatusBar
from lesionviewer.app.store_adapter import (
    PatientView,
    compare_data,
    lesion_history,
    matching_photo_pairs,
)
from lesionviewer.app.visit_timeline import NewVisitDialog, VisitTimeline
from lesionviewer.workers import WorkerPool

APP_TITLE = "LesionViewer"


def app_icon() -> QIcon:
    """The app icon: the SVG, or its 256 px PNG where Qt has no SVG support."""
    icon = QIcon(str(resource_path("icons", "lesionviewer.svg")))
    if icon.pixmap(64, 64).isNull():
        icon = QIcon(str(resource_path("icons", "lesionviewer.png")))
    return icon


class MainWindow(QMainWindow):
    """LesionViewer's window. ``session`` holds the store; ``reporter`` shows errors.

    ``report_written(dict)`` carries {format: path} after an export.
    """

    report_written = Signal(dict)

    def __init__(self, session: AppSession, reporter: ErrorReporter) -> None:
        super().__init__()
        self.setWindowTitle(f"{APP_TITLE} - not a medical device")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1400, 880)
        self.session = session
        self.reporter = reporter
        reporter.set_parent_widget(self)
        self.workers = WorkerPool(self)
        self.status = AppStatusBar(self.workers, self)
        self.setStatusBar(self.status)
        self.analysis = AnalysisController(session, self.workers, self.status)
        self.corrections = CorrectionsController(session)
        self._compare_pair: tuple[int, int] | None = None
        self._pending_jump: int | None = None

        self.patients = PatientList()
        self.timeline = VisitTimeline()
        self.photo_panel = PhotoPanel(self.workers)
        self.compare_view = CompareView(self.workers)
        self.history = HistoryPanel(self.workers)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.photo_panel, "Photo")
        self.tabs.addTab(self.compare_view, "Compare visits")
        self.setCentralWidget(self.tabs)
        self._dock("Patients", self.patients, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Visits", self.timeline, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.history_dock = self._dock(
            "Lesion history", self.history, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self._menus()
        self._connect()
        self.refresh_patients()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        widget.setMinimumWidth(250)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu, text: str, slot, shortcut: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "New patient...", self.new_patient, "Ctrl+N")
        self._action(file_menu, "Import photos...", self.import_photos, "Ctrl+I")
        self._action(file_menu, "Export report...", self.export_report, "Ctrl+E")
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, "Ctrl+Q")
        analysis_menu = self.menuBar().addMenu("&Analysis")
        self._action(analysis_menu, "Analyse visit", self.analyse_current_visit, "Ctrl+R")
        self._action(analysis_menu, "Compare visits", self.timeline.request_compare, "Ctrl+K")
        self._action(analysis_menu, "Cancel", lambda: self.workers.cancel(), "Esc")

    def _connect(self) -> None:
        s, t, pp, cv, h = (
            self.session,
            self.timeline,
            self.photo_panel,
            self.compare_view,
            self.history,
        )
        s.patient_changed.connect(self._on_patient_changed)
        s.patients_changed.connect(self.refresh_patients)
        self.patients.search_changed.connect(lambda _text: self.refresh_patients())
        self.patients.patient_selected.connect(s.open)
        self.patients.new_patient_requested.connect(self.new_patient)
        t.photo_selected.connect(self.show_photo)
        t.compare_requested.connect(self.compare_visits)
        t.import_requested.connect(self.import_photos)
        t.analyse_requested.connect(self.analysis.analyse_visit)
        t.new_visit_requested.connect(self.new_visit)
        pp.lesion_clicked.connect(self.open_history)
        pp.lesion_drawn.connect(self._on_lesion_drawn)
        pp.correction_requested.connect(self._on_correction)
        pp.loaded.connect(self._on_photo_loaded)
        cv.lesion_clicked.connect(self.open_history)
        cv.relink_requested.connect(self.corrections.relink)
        cv.split_requested.connect(self.corrections.split)
        h.jump_requested.connect(self.jump_to)
        h.save_requested.connect(self.corrections.save_lesion)
        self.corrections.corrected.connect(lambda msg: self.status.showMessage(msg, 8000))
        self.analysis.failed.connect(self.reporter.report)
        self.analysis.analysed.connect(self._on_analysed)
        self.workers.error.connect(lambda _key, exc: self.reporter.report(exc))

    # -- patients and visits ------------------------------------------------------------------
    def refresh_patients(self, select: int | None = None) -> None:
        self.patients.set_patients(
            self.session.patients(self.patients.search.text()), select=select
        )

    def new_patient(self) -> None:
        dialog = NewPatientDialog(self)
        if dialog.exec():
            self.refresh_patients(select=self.session.add_patient(**dialog.values()))

    def new_visit(self) -> None:
        dialog = NewVisitDialog(self)
        if dialog.exec():
            self.timeline.select_visit(self.session.add_visit(*dialog.values()))

    def _on_patient_changed(self, view: PatientView) -> None:
        p = view.record.patient
        self.timeline.set_visits(f"{p.name} ({p.record_number})", view.visits)
        shown = self.photo_panel.photo
        if shown is not None:
            fresh = view.photo(shown.photo_id)
            if fresh is not None and fresh.heatmap_file != shown.heatmap_file:
                self.photo_panel.show_photo(fresh)  # a first analysis: load the overlay
            elif fresh is not None:
                self.photo_panel.update_marks(fresh)
        if self._compare_pair is not None and view.photo(self._compare_pair[0]) is not None:
            self.compare_view.show_comparison(compare_data(view, *self._compare_pair))
        if self.history.history is not None:
            try:
                self.history.show_history(
                    lesion_history(self.session.store, self.history.history.lesion_id)
                )
            except Exception:
                self.history.history = None  # the lesion was merged away by a correction

    def _on_analysed(self, outcome) -> None:
        shown = self.photo_panel.photo
        view = self.session.patient
        if shown is None or view is None or shown.photo_id not in outcome.photo_ids:
            return
        fresh = view.photo(shown.photo_id)
        if fresh is not None and fresh.heatmap_file == shown.heatmap_file:
            self.photo_panel.show_photo(fresh)  # re-analysed: the overlay file has changed

    def show_photo(self, photo_id: int) -> None:
        view = self.session.patient
        photo = view.photo(photo_id) if view is not None else None
        if photo is not None:
            self.photo_panel.show_photo(photo)
            self.timeline.select_photo(photo_id)
            self.tabs.setCurrentWidget(self.photo_panel)

    def compare_visits(self, visit_a: int, visit_b: int) -> None:
        view = self.session.patient
        if view is None:
            return
        pairs = matching_photo_pairs(view, visit_a, visit_b)
        if not pairs:
            self.status.showMessage("these visits have no photos to compare", 8000)
            return
        self._compare_pair = pairs[0]
        self.compare_view.show_comparison(compare_data(view, *pairs[0]))
        self.tabs.setCurrentWidget(self.compare_view)

    # -- import and analysis --------------------------------------------------------------------
    def import_photos(self, visit_id: int | None = None, paths: list[Path] | None = None) -> None:
        visit_id = visit_id if isinstance(visit_id, int) else self.timeline.current_visit()
        view = self.session.patient
        if visit_id is None or view is None:
            self.status.showMessage("choose a patient and a visit first", 8000)
            return
        label = next(v.label for v in view.visits if v.visit_id == visit_id)
        dialog = ImportDialog(label, paths, self)
        if dialog.exec() and dialog.chosen():
            self.analysis.import_files(visit_id, dialog.chosen())

    def analyse_current_visit(self) -> None:
        visit_id = self.timeline.current_visit()
        if visit_id is not None:
            self.analysis.analyse_visit(visit_id)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_photos(None, paths)

    # -- lesions ---------------------------------------------------------------------------------
    def open_history(self, observation_id: int) -> None:
        lesion_id = self.session.store.get_observation(observation_id).lesion_id
        self.history.show_history(lesion_history(self.session.store, lesion_id))
        self.history_dock.show()
        self.history_dock.raise_()

    def jump_to(self, photo_id: int, observation_id: int) -> None:
        self._pending_jump = observation_id
        shown = self.photo_panel.photo
        if shown is not None and shown.photo_id == photo_id:
            self._on_photo_loaded(photo_id)
            self.tabs.setCurrentWidget(self.photo_panel)
        else:
            self.show_photo(photo_id)

    def _on_photo_loaded(self, photo_id: int) -> None:
        photo = self.photo_panel.photo
        if self._pending_jump is None or photo is None:
            return
        mark = photo.mark(self._pending_jump)
        self._pending_jump = None
        if mark is not None:
            self.photo_panel.show_lesion(mark)

    def _on_lesion_drawn(self, contour) -> None:
        photo = self.photo_panel.photo
        if photo is not None:
            self.corrections.add_lesion(photo.photo_id, contour)

    def _on_correction(self, action: str, observation_id: int) -> None:
        if action == "history":
            self.open_history(observation_id)
        else:
            self.corrections.apply(action, observation_id)

    # -- reports ---------------------------------------------------------------------------------
    def export_report(
        self, out_dir: Path | None = None, *, visit_id: int | None = None, deidentify=False
    ) -> None:
        """Write the open patient's report folder (PDF, CSV, JSON, photos) on a worker."""
        from lesionviewer.app.report_export import ExportDialog, export_job

        view = self.session.patient
        if view is None:
            self.status.showMessage("open a patient first", 8000)
            return
        if not isinstance(out_dir, Path):
            dialog = ExportDialog([(v.visit_id, v.label) for v in view.visits], self)
            if not dialog.exec():
                return
            out_dir, visit_id, deidentify = dialog.values()
        args = (self.session.data_dir, view.record.patient.id, out_dir, visit_id, deidentify)
        self.status.job_started(f"writing the report into {out_dir}")

        def done(written: dict) -> None:
            self.status.job_ended(f"report written: {', '.join(sorted(written))} in {out_dir}")
            self.report_written.emit(written)

        self.workers.submit(
            "report",
            lambda progress, cancel: export_job(*args),
            on_done=done,
            on_error=lambda exc: (
                self.status.job_ended("report failed"),
                self.reporter.report(exc),
            ),
        )

    def closeEvent(self, event) -> None:  # noqa: N802
        self.workers.cancel()
        self.workers.wait_for_done(5000)
        super().closeEvent(event)
