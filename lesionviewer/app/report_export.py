"""Export a report (PDF, CSV, JSON, annotated photos) of the open patient or one visit,
through the reports package, on a worker thread with its own store connection."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from lesionviewer.reports import export_report
from lesionviewer.store import Store


def export_job(
    data_dir: Path, patient_id: int, out_dir: Path, visit_id: int | None, deidentify: bool
) -> dict[str, Path]:
    """Write the report folder (runs on a worker; opens its own store)."""
    with Store.open(data_dir) as store:
        return export_report(store, patient_id, out_dir, visit_id=visit_id, deidentify=deidentify)


class ExportDialog(QDialog):
    """Where to write the report, of the whole patient or one visit, de-identified or not."""

    def __init__(self, visits: list[tuple[int, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export report")
        self.folder = QLineEdit(str(Path.home() / "lesionviewer-report"))
        browse = QPushButton("Choose...")
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.scope = QComboBox()
        self.scope.addItem("All visits", None)
        for visit_id, label in visits:
            self.scope.addItem(f"Visit {label}", visit_id)
        self.deidentify = QCheckBox("De-identify (no name, record number, birth date; no EXIF)")
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Report of", self.scope)
        form.addRow(self.deidentify)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        browse.clicked.connect(self._browse)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Report folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def values(self) -> tuple[Path, int | None, bool]:
        """(output folder, visit id or None for all, de-identify)."""
        return Path(self.folder.text()), self.scope.currentData(), self.deidentify.isChecked()
