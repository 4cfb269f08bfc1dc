"""The app's state on the GUI thread: the store, the open patient, the analyzer holder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from lesionviewer.app.analysis_jobs import AnalyzerHolder, PairJob, PhotoJob
from lesionviewer.app.store_adapter import (
    PatientView,
    matching_photo_pairs,
    open_patient,
    patient_summaries,
)
from lesionviewer.app.view_data import PatientSummary
from lesionviewer.store import Store


class AppSession(QObject):
    """Holds the GUI thread's Store and the open patient as view data.

    ``patient_changed(PatientView)`` is emitted whenever the open patient is (re)read:
    after opening it, an import, an analysis or a correction.
    """

    patient_changed = Signal(object)
    patients_changed = Signal()

    def __init__(self, store: Store, holder: AnalyzerHolder) -> None:
        super().__init__()
        self.store = store
        self.holder = holder
        self.patient: PatientView | None = None

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir

    def patients(self, text: str = "") -> list[PatientSummary]:
        return patient_summaries(self.store, text)

    def open(self, patient_id: int) -> PatientView:
        self.patient = open_patient(self.store, patient_id)
        self.patient_changed.emit(self.patient)
        return self.patient

    def reload(self) -> PatientView | None:
        if self.patient is None:
            return None
        return self.open(self.patient.record.patient.id)

    def add_patient(self, **values) -> int:
        patient = self.store.add_patient(**values)
        self.patients_changed.emit()
        return patient.id

    def add_visit(self, date: str, notes: str = "") -> int:
        if self.patient is None:
            raise RuntimeError("no patient is open")
        visit = self.store.add_visit(self.patient.record.patient.id, date, notes=notes)
        self.reload()
        return visit.id

    # -- what to analyse -------------------------------------------------------------------
    def photo_job(self, photo_id: int) -> PhotoJob:
        photo = self.store.get_photo(photo_id)
        return PhotoJob(photo.id, photo.path, photo.sha256, closeup=photo.closeup)

    def pairs_around(self, visit_id: int) -> tuple[PairJob, ...]:
        """Same-site photo pairs between a visit and its neighbours (before and after)."""
        if self.patient is None:
            return ()
        order = [v.visit_id for v in self.patient.visits]
        i = order.index(visit_id)
        pairs: list[tuple[int, int]] = []
        if i > 0:
            pairs += matching_photo_pairs(self.patient, order[i - 1], visit_id)
        if i + 1 < len(order):
            pairs += matching_photo_pairs(self.patient, visit_id, order[i + 1])
        return tuple(PairJob(self.photo_job(a), self.photo_job(b)) for a, b in pairs)
