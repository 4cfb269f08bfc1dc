"""Import photos into a visit: pick by dialog or drag-and-drop, many at once, tag body sites
and say which photos are close-ups of one lesion rather than body regions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.io import REFUSED_PHOTO_SUFFIXES, SUPPORTED_SUFFIXES

BODY_SITES = (
    "back",
    "chest",
    "abdomen",
    "left arm",
    "right arm",
    "left leg",
    "right leg",
    "face",
    "neck",
    "scalp",
    "hand",
    "foot",
    "other",
)


def photo_files(paths: list[Path]) -> list[Path]:
    """The photo files among ``paths``; folders are searched (not recursively), sorted.

    Files named one by one are kept whatever their suffix, and folders also list HEIC,
    AVIF and camera RAW files: importing them then says why they are refused, instead of
    leaving them out without a word."""
    shown = SUPPORTED_SUFFIXES + tuple(sorted(REFUSED_PHOTO_SUFFIXES))
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in shown)
            )
        else:
            found.append(path)
    return found


#: the "Kind" column's choices: a photo of a body region (the default) or a close-up of one
#: lesion, analysed as one (see core.closeup)
BODY_REGION, CLOSEUP = "body region", "close-up"


def guess_site(path: Path) -> str:
    """A body site named in the file name ('back_2024.jpg' -> 'back'), else ''."""
    name = path.stem.lower().replace("-", " ").replace("_", " ")
    for site in sorted(BODY_SITES, key=len, reverse=True):
        if site in name:
            return site
    return ""


class ImportDialog(QDialog):
    """A table of files with a body-site box and a kind box each. ``chosen()`` after exec()
    is accepted."""

    def __init__(
        self, visit_label: str, paths: list[Path] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import photos into visit {visit_label}")
        self.setAcceptDrops(True)
        self.resize(760, 380)
        hint = QLabel("Drop photos or folders here, or add them with the button.")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Photo", "Body site", "Kind"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.add_button = QPushButton("Add photos...")
        self.remove_button = QPushButton("Remove")
        self.all_site = QComboBox()
        self.all_site.setEditable(True)
        self.all_site.addItems(BODY_SITES)
        self.apply_button = QPushButton("Set site of all")
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        row.addWidget(self.all_site)
        row.addWidget(self.apply_button)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        layout.addWidget(self.buttons)
        self.add_button.clicked.connect(self._browse)
        self.remove_button.clicked.connect(self._remove_selected)
        self.apply_button.clicked.connect(lambda: self.set_all_sites(self.all_site.currentText()))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.add_paths(paths or [])

    def add_paths(self, paths: list[Path]) -> int:
        """Add photo files (folders are opened); returns how many new rows were added."""
        present = {str(p) for p, _, _ in self.chosen()}
        added = 0
        for path in photo_files([Path(p) for p in paths]):
            if str(path) in present:
                continue
            row = self.table.rowCount()
            self.table.insertRow(row)
            item = QTableWidgetItem(path.name)
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(row, 0, item)
            site = QComboBox()
            site.setEditable(True)
            site.addItems(BODY_SITES)
            site.setCurrentText(guess_site(path) or self.all_site.currentText())
            self.table.setCellWidget(row, 1, site)
            kind = QComboBox()
            kind.addItems([BODY_REGION, CLOSEUP])
            kind.setToolTip(
                "A close-up shows one lesion filling much of the frame (a phone a few cm "
                "from the skin): it is analysed as one, and not tracked against other photos."
            )
            self.table.setCellWidget(row, 2, kind)
            present.add(str(path))
            added += 1
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            self.table.rowCount() > 0
        )
        return added

    def set_all_sites(self, site: str) -> None:
        for row in range(self.table.rowCount()):
            self.table.cellWidget(row, 1).setCurrentText(site)

    def set_closeup(self, row: int, closeup: bool) -> None:
        self.table.cellWidget(row, 2).setCurrentText(CLOSEUP if closeup else BODY_REGION)

    def chosen(self) -> list[tuple[Path, str, bool]]:
        """(file, body site, whether it is a close-up) of every row, in order."""
        out = []
        for row in range(self.table.rowCount()):
            path = Path(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
            site = self.table.cellWidget(row, 1).currentText().strip()
            out.append((path, site, self.table.cellWidget(row, 2).currentText() == CLOSEUP))
        return out

    def _browse(self) -> None:
        patterns = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self, "Photos to import", "", f"Photos ({patterns});;All files (*)"
        )
        self.add_paths([Path(f) for f in files])

    def _remove_selected(self) -> None:
        for row in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if self.add_paths(paths):
            event.acceptProposedAction()
