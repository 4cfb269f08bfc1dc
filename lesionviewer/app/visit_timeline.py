"""A patient's visits on a timeline (oldest at the top), each with its photos."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lesionviewer.app.view_data import VisitSummary

VISIT_ROLE = Qt.ItemDataRole.UserRole
PHOTO_ROLE = Qt.ItemDataRole.UserRole + 1


class VisitTimeline(QWidget):
    """Visits (date, photos, lesions) as a tree; a photo row opens it in the photo view.

    Signals: ``photo_selected(photo_id)``; ``compare_requested(visit_a, visit_b)`` (A the
    earlier); ``import_requested(visit_id)``; ``analyse_requested(visit_id)``;
    ``new_visit_requested()``.
    """

    photo_selected = Signal(int)
    compare_requested = Signal(int, int)
    import_requested = Signal(int)
    analyse_requested = Signal(int)
    new_visit_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel("No patient")
        self.header.setStyleSheet("font-weight: bold")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Visit / photo", "Photos", "Lesions"])
        # the name column takes the room the two counts leave ("back (close-up)" fits)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.new_button = QPushButton("New visit...")
        self.import_button = QPushButton("Import photos...")
        self.analyse_button = QPushButton("Analyse visit")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "Compare the selected visit with the one before it, or two selected visits"
        )
        buttons = QGridLayout()
        buttons.addWidget(self.new_button, 0, 0)
        buttons.addWidget(self.import_button, 0, 1)
        buttons.addWidget(self.analyse_button, 1, 0)
        buttons.addWidget(self.compare_button, 1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.visits: tuple[VisitSummary, ...] = ()
        self.tree.itemClicked.connect(self._on_clicked)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.new_button.clicked.connect(self.new_visit_requested)
        self.import_button.clicked.connect(self._emit_for_visit(self.import_requested))
        self.analyse_button.clicked.connect(self._emit_for_visit(self.analyse_requested))
        self.compare_button.clicked.connect(self.request_compare)
        self.set_visits("No patient", ())

    def set_visits(self, title: str, visits: tuple[VisitSummary, ...], *, select_visit=None):
        """Show ``visits`` (oldest first); keep the visit ``select_visit`` selected."""
        self.header.setText(title)
        keep = select_visit if select_visit is not None else self.current_visit()
        self.visits = visits
        self.tree.clear()
        for visit in visits:
            n_lesions = sum(len(p.marks) for p in visit.photos)
            item = QTreeWidgetItem([visit.label, str(len(visit.photos)), str(n_lesions)])
            item.setData(0, VISIT_ROLE, visit.visit_id)
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            for photo in visit.photos:
                name = f"{photo.body_site} (close-up)" if photo.closeup else photo.body_site
                child = QTreeWidgetItem([name, "", str(len(photo.marks))])
                child.setData(0, VISIT_ROLE, visit.visit_id)
                child.setData(0, PHOTO_ROLE, photo.photo_id)
                tip = photo.path.name + (" - a close-up of one lesion" if photo.closeup else "")
                child.setToolTip(0, tip)
                item.addChild(child)
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
            if visit.visit_id == keep:
                self.tree.setCurrentItem(item)
        self._update_buttons()

    def current_visit(self) -> int | None:
        item = self.tree.currentItem()
        return None if item is None else item.data(0, VISIT_ROLE)

    def selected_visits(self) -> list[int]:
        ids = []
        for item in self.tree.selectedItems():
            vid = item.data(0, VISIT_ROLE)
            if vid not in ids:
                ids.append(vid)
        return ids

    def select_visit(self, visit_id: int) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, VISIT_ROLE) == visit_id:
                self.tree.setCurrentItem(item)

    def select_photo(self, photo_id: int) -> None:
        """Mark the photo on screen in the tree (emits nothing)."""
        for i in range(self.tree.topLevelItemCount()):
            visit = self.tree.topLevelItem(i)
            for j in range(visit.childCount()):
                if visit.child(j).data(0, PHOTO_ROLE) == photo_id:
                    self.tree.setCurrentItem(visit.child(j))
                    return

    def compare_pair(self) -> tuple[int, int] | None:
        """(earlier, later) visit ids to compare: two selected, or the selected and the
        one before it, or the last two."""
        order = [v.visit_id for v in self.visits]
        chosen = [v for v in self.selected_visits() if v in order]
        if len(chosen) >= 2:
            a, b = sorted(chosen[:2], key=order.index)
            return a, b
        if len(chosen) == 1 and order.index(chosen[0]) > 0:
            i = order.index(chosen[0])
            return order[i - 1], order[i]
        if len(order) >= 2:
            return order[-2], order[-1]
        return None

    def _emit_for_visit(self, signal):
        def emit() -> None:
            visit = self.current_visit()
            if visit is not None:
                signal.emit(visit)

        return emit

    def _on_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        photo_id = item.data(0, PHOTO_ROLE)
        if photo_id is not None:
            self.photo_selected.emit(int(photo_id))

    def request_compare(self) -> None:
        """Emit compare_requested for :meth:`compare_pair` (if there is one)."""
        pair = self.compare_pair()
        if pair is not None:
            self.compare_requested.emit(*pair)

    def _update_buttons(self) -> None:
        has_visit = self.current_visit() is not None
        self.import_button.setEnabled(has_visit)
        self.analyse_button.setEnabled(has_visit)
        self.compare_button.setEnabled(len(self.visits) >= 2)
        self.new_button.setEnabled(self.header.text() != "No patient")


class NewVisitDialog(QDialog):
    """Date and notes of a new visit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New visit")
        from PySide6.QtCore import QDate

        self.date = QDateEdit(QDate.currentDate())
        self.date.setDisplayFormat("yyyy-MM-dd")
        self.date.setCalendarPopup(True)
        self.notes = QLineEdit()
        form = QFormLayout(self)
        form.addRow("Date", self.date)
        form.addRow("Notes", self.notes)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[str, str]:
        return self.date.date().toString("yyyy-MM-dd"), self.notes.text().strip()
