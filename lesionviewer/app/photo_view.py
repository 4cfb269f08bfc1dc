"""The photo view: zoom and pan on a large photo, heatmap overlay, numbered outlines,
hover read-out, click a lesion, draw a missed one.

``PhotoView`` is the QGraphicsView; ``PhotoPanel`` adds the controls (opacity slider,
heatmap/outline switch, "add lesion" drawing mode) and loads pixels on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QMenu,
)

from core.io import load_photo
from lesionviewer.app.graphics_items import LesionOutlineItem, PyramidImageItem
from lesionviewer.app.heatmap_cache import load_heatmap_file
from lesionviewer.app.imaging import build_pyramid, heatmap_overlay, sample_heatmap, to_qimage
from lesionviewer.app.view_data import LesionMark, PhotoData


@dataclass(frozen=True)
class LoadedPhoto:
    """What a worker prepares for the photo view: the pyramid and the overlay."""

    photo_id: int
    levels: tuple[QImage, ...]
    overlay: QImage | None
    heatmap: np.ndarray | None


def prepare_photo(photo: PhotoData, progress=None, cancel=None) -> LoadedPhoto:
    """Load ``photo`` and make its pyramid and overlay (runs on a worker thread)."""
    image = load_photo(photo.path)
    if progress is not None:
        progress(0.5, f"{photo.path.name}: building views")
    levels = tuple(to_qimage(level, copy=False) for level in build_pyramid(image))
    heatmap = photo.heatmap
    if heatmap is None and photo.heatmap_file is not None:
        heatmap = load_heatmap_file(photo.heatmap_file)
    overlay = None if heatmap is None else to_qimage(heatmap_overlay(heatmap))
    return LoadedPhoto(photo.photo_id, levels, overlay, heatmap)


class PhotoView(QGraphicsView):
    """Shows one photo with its lesions; wheel zooms around the cursor, drag pans.

    Signals: ``hovered(x, y, text)`` the read-out under the cursor (empty text outside);
    ``lesion_clicked(observation_id)``; ``lesion_drawn(contour)`` with an (N, 2) float
    array of photo pixels; ``correction_requested(action, observation_id)`` with action
    in {"delete", "benign", "malignant", "history"}.
    """

    hovered = Signal(float, float, str)
    lesion_clicked = Signal(int)
    lesion_drawn = Signal(object)
    correction_requested = Signal(str, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QColor(40, 40, 44))
        self.setMouseTracking(True)
        self.photo: PhotoData | None = None
        self.heatmap: np.ndarray | None = None
        self._image_item: PyramidImageItem | None = None
        self._overlay_item: QGraphicsPixmapItem | None = None
        self._outlines: list[LesionOutlineItem] = []
        self._show_heatmap = True
        self._opacity = 0.6
        self._draw_mode = False
        self._stroke: list[QPointF] = []
        self._stroke_item = None

    # -- content -----------------------------------------------------------------------
    def set_photo(self, photo: PhotoData, loaded: LoadedPhoto) -> None:
        """Show ``photo`` from its prepared pixels; fits it in the window."""
        scene = self.scene()
        scene.clear()
        self._outlines = []
        self._stroke_item = None
        self.photo = photo
        self.heatmap = loaded.heatmap
        self._image_item = PyramidImageItem(list(loaded.levels))
        scene.addItem(self._image_item)
        w, h = self._image_item.size
        scene.setSceneRect(QRectF(0, 0, w, h))
        self._overlay_item = None
        if loaded.overlay is not None:
            item = QGraphicsPixmapItem(QPixmap.fromImage(loaded.overlay))
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            item.setTransform(
                QTransform.fromScale(w / loaded.overlay.width(), h / loaded.overlay.height())
            )
            item.setZValue(1)
            scene.addItem(item)
            self._overlay_item = item
        self.set_marks(photo.marks)
        self._apply_display()
        self.fit()

    def set_marks(self, marks: tuple[LesionMark, ...]) -> None:
        """Replace the lesion outlines (after a correction or a new analysis)."""
        for item in self._outlines:
            self.scene().removeItem(item)
        self._outlines = [LesionOutlineItem(m) for m in marks]
        for item in self._outlines:
            self.scene().addItem(item)
        if self.photo is not None:
            self.photo = PhotoData(**{**self.photo.__dict__, "marks": tuple(marks)})
        self._apply_display()

    def highlight(self, observation_id: int | None) -> None:
        """Draw one lesion's outline white and thick (None: no highlight)."""
        for item in self._outlines:
            item.set_selected_look(item.mark.observation_id == observation_id)

    def outline_items(self) -> list[LesionOutlineItem]:
        return list(self._outlines)

    # -- display options ---------------------------------------------------------------
    def set_overlay_opacity(self, opacity: float) -> None:
        """Opacity of the heatmap overlay in [0, 1]."""
        self._opacity = float(np.clip(opacity, 0.0, 1.0))
        self._apply_display()

    def set_show_heatmap(self, show_heatmap: bool) -> None:
        """True: the raw heatmap; False: the post-processed outlines."""
        self._show_heatmap = bool(show_heatmap)
        self._apply_display()

    def _apply_display(self) -> None:
        heatmap = self._show_heatmap and self._overlay_item is not None
        if self._overlay_item is not None:
            self._overlay_item.setVisible(heatmap)
            self._overlay_item.setOpacity(self._opacity)
        for item in self._outlines:
            item.set_outline_visible(not heatmap)

    def set_draw_mode(self, on: bool) -> None:
        """In draw mode a press-drag-release outlines a missed lesion."""
        self._draw_mode = bool(on)
        self.setDragMode(
            QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag
        )
        self.viewport().setCursor(
            Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor
        )

    # -- navigation --------------------------------------------------------------------
    def fit(self) -> None:
        if self._image_item is not None:
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        scale = self.transform().m11() * factor
        if 0.005 < scale < 40.0:
            self.scale(factor, factor)

    def center_on_lesion(self, x: float, y: float, *, radius: float = 60.0) -> None:
        """Zoom to show a lesion at photo pixel (x, y) with some skin around it."""
        side = max(radius * 6.0, 200.0)
        self.fitInView(
            QRectF(x - side / 2, y - side / 2, side, side), Qt.AspectRatioMode.KeepAspectRatio
        )

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    # -- mouse ---------------------------------------------------------------------------
    def outline_at(self, scene_pos: QPointF) -> LesionOutlineItem | None:
        for item in self.scene().items(scene_pos):
            if isinstance(item, LesionOutlineItem):
                return item
        return None

    def readout(self, x: float, y: float) -> str:
        """The hover text at photo pixel (x, y): heatmap probabilities and the lesion."""
        if self.photo is None:
            return ""
        parts: list[str] = []
        size = self._image_item.size if self._image_item is not None else self.photo.size
        if self.heatmap is not None and size is not None:
            p = sample_heatmap(self.heatmap, size, x, y)
            if p is not None:
                parts.append(f"p benign {p[1]:.2f}  p malignant {p[2]:.2f}")
        item = self.outline_at(QPointF(x, y))
        if item is not None:
            m = item.mark
            parts.append(
                f"lesion {m.label}: score {m.score:.2f}, p malignant {m.p_malignant:.2f}, "
                f"{m.area_px:.0f} px"
            )
        return f"({x:.0f}, {y:.0f})  " + "  |  ".join(parts) if parts else f"({x:.0f}, {y:.0f})"

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.mapToScene(event.position().toPoint())
        if self._draw_mode and event.button() == Qt.MouseButton.LeftButton:
            self._stroke = [pos]
            pen = QPen(QColor(80, 200, 255), 2.0)
            pen.setCosmetic(True)
            self._stroke_item = self.scene().addPath(QPainterPath(), pen)
            self._stroke_item.setZValue(10)
            return
        if event.button() == Qt.MouseButton.LeftButton:
            item = self.outline_at(pos)
            if item is not None:
                self.highlight(item.mark.observation_id)
                self.lesion_clicked.emit(item.mark.observation_id)
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = self.mapToScene(event.position().toPoint())
        if self._draw_mode and self._stroke_item is not None:
            self._stroke.append(pos)
            path = QPainterPath(self._stroke[0])
            for p in self._stroke[1:]:
                path.lineTo(p)
            self._stroke_item.setPath(path)
        self.hovered.emit(pos.x(), pos.y(), self.readout(pos.x(), pos.y()))
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._draw_mode and self._stroke_item is not None:
            self.scene().removeItem(self._stroke_item)
            self._stroke_item = None
            points = np.array([(p.x(), p.y()) for p in self._stroke], dtype=np.float64)
            self._stroke = []
            if len(points) >= 3 and np.ptp(points, axis=0).min() >= 2.0:
                self.lesion_drawn.emit(points)
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802
        item = self.outline_at(self.mapToScene(event.pos()))
        if item is None:
            return
        menu = QMenu(self)
        actions = {
            menu.addAction(f"History of {item.mark.label}"): "history",
            menu.addAction("Mark benign"): "benign",
            menu.addAction("Mark malignant"): "malignant",
            menu.addAction("Delete (not a lesion)"): "delete",
        }
        chosen = menu.exec(event.globalPos())
        if chosen in actions:
            self.correction_requested.emit(actions[chosen], item.mark.observation_id)
