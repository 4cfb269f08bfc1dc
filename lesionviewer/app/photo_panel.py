"""The photo view with its controls: overlay opacity, heatmap/outline switch, add lesion."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from lesionviewer.app.photo_view import LoadedPhoto, PhotoView, prepare_photo
from lesionviewer.app.view_data import LesionMark, PhotoData, lesion_count
from lesionviewer.workers import WorkerPool


class PhotoPanel(QWidget):
    """A PhotoView plus its toolbar and hover read-out; loads pixels on ``workers``.

    Signals: ``loaded(photo_id)`` once a photo is on screen, and the view's
    ``lesion_clicked``, ``lesion_drawn`` and ``correction_requested`` re-emitted.
    """

    loaded = Signal(int)
    lesion_clicked = Signal(int)
    lesion_drawn = Signal(object)
    correction_requested = Signal(str, int)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers = workers
        self.view = PhotoView(self)
        self.title = QLabel("No photo")
        self.title.setStyleSheet("font-weight: bold")
        self.heatmap_button = QRadioButton("Heatmap")
        self.outline_button = QRadioButton("Outlines")
        self.heatmap_button.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.heatmap_button)
        group.addButton(self.outline_button)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(120)
        self.opacity.setToolTip("Heatmap opacity")
        self.add_button = QPushButton("Add lesion")
        self.add_button.setCheckable(True)
        self.add_button.setToolTip("Draw the outline of a lesion the detector missed")
        self.fit_button = QPushButton("Fit")
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        bar.addWidget(self.heatmap_button)
        bar.addWidget(self.outline_button)
        bar.addWidget(QLabel("Opacity"))
        bar.addWidget(self.opacity)
        bar.addWidget(self.add_button)
        bar.addWidget(self.fit_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)

        self.opacity.valueChanged.connect(lambda v: self.view.set_overlay_opacity(v / 100.0))
        self.heatmap_button.toggled.connect(self.view.set_show_heatmap)
        self.add_button.toggled.connect(self.view.set_draw_mode)
        self.fit_button.clicked.connect(self.view.fit)
        self.view.hovered.connect(lambda _x, _y, text: self.readout.setText(text))
        self.view.lesion_clicked.connect(self.lesion_clicked)
        self.view.lesion_drawn.connect(self._on_drawn)
        self.view.correction_requested.connect(self.correction_requested)
        self._pending: PhotoData | None = None

    @property
    def photo(self) -> PhotoData | None:
        return self.view.photo

    def show_photo(self, photo: PhotoData) -> None:
        """Load ``photo`` off the GUI thread and show it; a newer call wins."""
        self._pending = photo
        self.title.setText(photo.caption("loading..."))
        self._workers.submit(
            "photo-view",
            lambda progress, cancel: prepare_photo(photo, progress, cancel),
            on_done=self._on_loaded,
        )

    def _on_loaded(self, loaded: LoadedPhoto) -> None:
        photo = self._pending
        if photo is None or photo.photo_id != loaded.photo_id:
            return
        self.view.set_photo(photo, loaded)
        self.title.setText(photo.caption(lesion_count(len(photo.marks))))
        self.outline_button.setEnabled(True)
        self.heatmap_button.setEnabled(loaded.heatmap is not None)
        if loaded.heatmap is None:
            self.outline_button.setChecked(True)
            self.view.set_show_heatmap(False)
        self.loaded.emit(photo.photo_id)

    def update_marks(self, photo: PhotoData) -> None:
        """New lesions for the photo on screen (after a correction): no reload of pixels."""
        if self.view.photo is not None and self.view.photo.photo_id == photo.photo_id:
            self._pending = photo
            self.view.set_marks(photo.marks)
            self.title.setText(photo.caption(lesion_count(len(photo.marks))))

    def show_lesion(self, mark: LesionMark) -> None:
        """Zoom to a lesion and highlight it."""
        self.view.highlight(mark.observation_id)
        self.view.center_on_lesion(*mark.centroid, radius=max(mark.bbox[2] - mark.bbox[0], 8))

    def _on_drawn(self, contour) -> None:
        self.add_button.setChecked(False)
        self.lesion_drawn.emit(contour)
