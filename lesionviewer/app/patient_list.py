"""The patient list with search, and the "new patient" form."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lesionviewer.app.view_data import PatientSummary


class PatientList(QWidget):
    """A search box over a list of patients.

    Signals: ``search_changed(text)`` (the controller refills the list with ``set_patients``),
    ``patient_selected(patient_id)``, ``new_patient_requested()``.
    """

    search_changed = Signal(str)
    patient_selected = Signal(int)
    new_patient_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name or record number")
        self.search.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.new_button = QPushButton("New patient...")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.new_button)
        self.search.textChanged.connect(self.search_changed)
        self.list.currentItemChanged.connect(self._on_current)
        self.new_button.clicked.connect(self.new_patient_requested)

    def set_patients(self, patients: list[PatientSummary], *, select: int | None = None) -> None:
        """Fill the list; keep (or set) the selection on ``select``."""
        keep = select if select is not None else self.current_patient()
        self.list.blockSignals(True)
        self.list.clear()
        for p in patients:
            text = f"{p.name}  ({p.record_number})" if p.record_number else p.name
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, p.patient_id)
            self.list.addItem(item)
            if p.patient_id == keep:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        if select is not None:
            self.patient_selected.emit(select)

    def current_patient(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def select_row(self, row: int) -> None:
        self.list.setCurrentRow(row)

    def _on_current(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is not None:
            self.patient_selected.emit(int(item.data(Qt.ItemDataRole.UserRole)))


class NewPatientDialog(QDialog):
    """Name, record number, birth date and sex of a new patient."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New patient")
        self.name = QLineEdit()
        self.record_number = QLineEdit()
        self.birth_date = QDateEdit()
        self.birth_date.setDisplayFormat("yyyy-MM-dd")
        self.birth_date.setCalendarPopup(True)
        self.sex = QLineEdit()
        self.sex.setMaxLength(8)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Record number", self.record_number)
        form.addRow("Birth date", self.birth_date)
        form.addRow("Sex", self.sex)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict:
        """Keyword arguments for ``Store.add_patient``."""
        return {
            "name": self.name.text().strip(),
            "record_number": self.record_number.text().strip(),
            "birth_date": self.birth_date.date().toString("yyyy-MM-dd"),
            "sex": self.sex.text().strip(),
        }
