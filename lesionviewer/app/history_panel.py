"""A lesion's history: its crop at every visit, area and p_malignant over time (pyqtgraph),
its notes, status and biopsy result, and a jump to it on each photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from core.io import load_photo
from lesionviewer.app.imaging import lesion_crop, to_qimage
from lesionviewer.app.view_data import LesionHistory
from lesionviewer.workers import WorkerPool

CROP_SIZE = 112
STATUSES = ("active", "watch", "biopsied", "excised", "resolved")


@dataclass(frozen=True)
class HistoryCrops:
    lesion_id: int
    crops: tuple[QImage, ...]


def prepare_crops(history: LesionHistory, progress=None) -> HistoryCrops:
    """The crop of the lesion at each entry (runs on a worker; one decode per photo)."""
    images: dict[str, np.ndarray] = {}
    crops = []
    # one scale for every visit, so that growth shows as growth
    side = max([max(e.bbox[2] - e.bbox[0], e.bbox[3] - e.bbox[1]) for e in history.entries] + [8])
    for i, entry in enumerate(history.entries):
        key = str(entry.photo_path)
        if key not in images:
            images[key] = load_photo(entry.photo_path)
        cx, cy = entry.centroid
        box = (
            round(cx - side / 2),
            round(cy - side / 2),
            round(cx + side / 2),
            round(cy + side / 2),
        )
        crops.append(to_qimage(lesion_crop(images[key], box, size=CROP_SIZE)))
        if progress is not None:
            progress((i + 1) / max(1, len(history.entries)), entry.visit_label)
    return HistoryCrops(history.lesion_id, tuple(crops))


class HistoryPanel(QWidget):
    """Shows one LesionHistory. Signals: ``jump_requested(photo_id, observation_id)``;
    ``save_requested(lesion_id, changes)`` with changes a dict of status, biopsy_result,
    notes."""

    jump_requested = Signal(int, int)
    save_requested = Signal(int, dict)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers = workers
        self.history: LesionHistory | None = None
        self.title = QLabel("Click a lesion to see its history")
        self.title.setStyleSheet("font-weight: bold; font-size: 13px")
        self.title.setWordWrap(True)
        self._crop_row = QHBoxLayout()
        self._crop_row.addStretch(1)
        crop_host = QWidget()
        crop_host.setLayout(self._crop_row)
        self.crop_area = scroll = QScrollArea()
        scroll.setWidget(crop_host)
        scroll.setWidgetResizable(True)
        scroll.setFixedHeight(CROP_SIZE + 96)
        self.area_plot = self._plot("Area (px)")
        self.p_plot = self._plot("p malignant")
        self.p_plot.setYRange(0.0, 1.0, padding=0.05)
        self.status = QComboBox()
        self.status.setEditable(True)
        self.status.addItems(STATUSES)
        self.biopsy = QLineEdit()
        self.biopsy.setPlaceholderText("e.g. compound nevus, melanoma in situ")
        self.notes = QPlainTextEdit()
        self.notes.setFixedHeight(70)
        self.save_button = QPushButton("Save notes")
        form = QFormLayout()
        form.addRow("Status", self.status)
        form.addRow("Biopsy", self.biopsy)
        form.addRow("Notes", self.notes)
        plots = QHBoxLayout()
        plots.addWidget(self.area_plot)
        plots.addWidget(self.p_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(scroll)
        layout.addLayout(plots, 1)
        layout.addLayout(form)
        layout.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignRight)
        self.save_button.clicked.connect(self._on_save)
        self._set_enabled(False)
        for w in (self.area_plot, self.p_plot, self.crop_area):
            w.setVisible(False)  # nothing to show without a lesion
        self.tiles: list[QWidget] = []
        self.pictures: list[QLabel] = []

    @staticmethod
    def _plot(title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(background="w")
        plot.setTitle(title, color="#333", size="9pt")
        plot.showGrid(x=True, y=True, alpha=0.3)
        plot.setMinimumHeight(140)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        font = QFont()
        font.setPointSize(7)
        # the visit dates are the ticks: show all of them, small, even when they crowd
        plot.getAxis("bottom").setStyle(tickFont=font, hideOverlappingLabels=False)
        plot.getAxis("left").setStyle(tickFont=font)
        return plot

    def _set_enabled(self, on: bool) -> None:
        for w in (self.status, self.biopsy, self.notes, self.save_button):
            w.setEnabled(on)

    def show_history(self, history: LesionHistory) -> None:
        """Show ``history`` now; the crops follow from a worker."""
        self.history = history
        n = len(history.entries)
        self.title.setText(
            f"Lesion {history.label} - {history.body_site or 'site not set'} - "
            f"{n} visit{'s' if n != 1 else ''}"
        )
        self.status.setCurrentText(history.status)
        self.biopsy.setText(history.biopsy)
        self.notes.setPlainText(history.notes)
        self._set_enabled(True)
        for w in (self.area_plot, self.p_plot, self.crop_area):
            w.setVisible(True)
        self._fill_plots(history)
        self._fill_tiles(history)
        self._workers.submit(
            "history-crops",
            lambda progress, cancel: prepare_crops(history, progress),
            on_done=self._on_crops,
        )

    def _fill_plots(self, history: LesionHistory) -> None:
        x = np.array([e.visit_ordinal for e in history.entries], dtype=float)
        # yy-mm-dd keeps the date ticks short enough for a narrow dock
        ticks = [[(e.visit_ordinal, e.visit_label[2:]) for e in history.entries]]
        for plot, values, color in (
            (self.area_plot, [e.area_px for e in history.entries], (30, 110, 200)),
            (self.p_plot, [e.p_malignant for e in history.entries], (220, 30, 30)),
        ):
            plot.clear()
            plot.plot(
                x,
                np.array(values, dtype=float),
                pen=pg.mkPen(color, width=2),
                symbol="o",
                symbolBrush=color,
                symbolSize=8,
            )
            plot.getAxis("bottom").setTicks(ticks)
            if len(x):
                pad = max(30.0, (x.max() - x.min()) * 0.2)  # room for the date labels
                plot.setXRange(x.min() - pad, x.max() + pad, padding=0)
        self.p_plot.addLine(y=0.5, pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine))
        self.p_plot.setYRange(0.0, 1.0, padding=0.05)

    def _fill_tiles(self, history: LesionHistory) -> None:
        for tile in self.tiles:
            self._crop_row.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
        self.pictures: list[QLabel] = []
        for entry in history.entries:
            tile = QWidget()
            box = QVBoxLayout(tile)
            box.setContentsMargins(2, 2, 2, 2)
            picture = QLabel()
            picture.setFixedSize(CROP_SIZE, CROP_SIZE)
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            picture.setStyleSheet("background: #333; color: #bbb")
            picture.setText("loading")
            self.pictures.append(picture)
            caption = QLabel(f"{entry.visit_label}\np mal {entry.p_malignant:.2f}")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            jump = QPushButton("Show")
            jump.setToolTip("Show this lesion on the photo of that visit")
            jump.clicked.connect(
                lambda _=False, e=entry: self.jump_requested.emit(e.photo_id, e.observation_id)
            )
            box.addWidget(picture)
            box.addWidget(caption)
            box.addWidget(jump)
            self._crop_row.insertWidget(self._crop_row.count() - 1, tile)
            self.tiles.append(tile)

    def _on_crops(self, result: HistoryCrops) -> None:
        if self.history is None or result.lesion_id != self.history.lesion_id:
            return
        for picture, crop in zip(self.pictures, result.crops, strict=False):
            picture.setPixmap(QPixmap.fromImage(crop))

    def _on_save(self) -> None:
        if self.history is None:
            return
        changes = {
            "status": self.status.currentText().strip() or "active",
            "biopsy_result": self.biopsy.text().strip(),
            "notes": self.notes.toPlainText().strip(),
        }
        self.save_requested.emit(self.history.lesion_id, changes)
