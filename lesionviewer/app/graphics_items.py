"""QGraphicsItems shared by the photo view and the compare view.

Scene units are photo pixels (x right, y down) unless an item says otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsSimpleTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from lesionviewer.app.view_data import LesionMark

BENIGN_COLOR = QColor(255, 214, 0)
MALIGNANT_COLOR = QColor(235, 30, 30)
MANUAL_COLOR = QColor(80, 200, 255)


class PyramidImageItem(QGraphicsItem):
    """A large photo drawn from a pyramid of QImages: each paint uses the smallest level
    that still has at least one image pixel per screen pixel, and only the exposed part.

    ``levels[0]`` is full size (width x height scene units); level k is about 1/2**k.
    """

    def __init__(self, levels: list[QImage], parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._levels = levels
        self._size = (levels[0].width(), levels[0].height())
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, self._size[0], self._size[1])

    def level_for_scale(self, scale: float) -> int:
        """Index of the pyramid level to draw at a view scale (screen px per photo px)."""
        if scale <= 0:
            return len(self._levels) - 1
        k = int(math.floor(math.log2(1.0 / scale))) if scale < 1.0 else 0
        return max(0, min(len(self._levels) - 1, k))

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        scale = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        image = self._levels[self.level_for_scale(scale)]
        sx = image.width() / self._size[0]
        sy = image.height() / self._size[1]
        target = option.exposedRect.intersected(self.boundingRect())
        if target.isEmpty():
            return
        source = QRectF(target.x() * sx, target.y() * sy, target.width() * sx, target.height() * sy)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, image, source)


def contour_path(contour: np.ndarray) -> QPainterPath:
    """A closed QPainterPath through (N, 2) (x, y) vertices."""
    path = QPainterPath()
    pts = np.asarray(contour, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return path
    path.moveTo(QPointF(pts[0, 0], pts[0, 1]))
    for x, y in pts[1:]:
        path.lineTo(QPointF(x, y))
    path.closeSubpath()
    return path


def mark_color(mark: LesionMark) -> QColor:
    return MALIGNANT_COLOR if mark.malignant else BENIGN_COLOR


class LesionOutlineItem(QGraphicsPathItem):
    """A lesion's outline (cosmetic pen, so it stays 2 screen px wide at any zoom) with its
    number; ``mark`` is the LesionMark it draws."""

    def __init__(
        self,
        mark: LesionMark,
        *,
        offset: tuple[float, float] = (0.0, 0.0),
        scale: float = 1.0,
        show_outline: bool = True,
    ) -> None:
        contour = np.asarray(mark.contour, dtype=np.float64).reshape(-1, 2) * scale
        super().__init__(contour_path(contour))
        self.mark = mark
        self.setPos(offset[0], offset[1])
        self._color = MANUAL_COLOR if mark.manual else mark_color(mark)
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.side = ""  # "a" or "b" in the compare view
        self._outline_visible = show_outline
        self._selected = False
        self.setZValue(3)
        self.label_item = NumberLabel(mark.label, self._color, self)
        cx, cy = mark.centroid
        radius = math.sqrt(max(mark.area_px, 1.0) / math.pi) * scale
        self.label_item.setPos(cx * scale + radius * 0.75, cy * scale - radius * 0.75)
        self.set_outline_visible(show_outline)

    def set_outline_visible(self, visible: bool) -> None:
        """Outlines show in outline mode; in heatmap mode only a selected one shows."""
        self._outline_visible = bool(visible)
        self._apply_pen()

    def set_selected_look(self, selected: bool) -> None:
        """Draw the outline white and thicker while the lesion is selected."""
        self._selected = bool(selected)
        self._apply_pen()

    def _apply_pen(self) -> None:
        if self._selected:
            pen = QPen(QColor(255, 255, 255), 3.5)
        elif self._outline_visible:
            pen = QPen(self._color, 2.0)
        else:
            self.setPen(QPen(Qt.PenStyle.NoPen))
            return
        pen.setCosmetic(True)
        self.setPen(pen)

    def shape(self) -> QPainterPath:  # noqa: N802 (Qt name): click anywhere inside
        return self.path()


class NumberLabel(QGraphicsSimpleTextItem):
    """A lesion number that keeps its screen size at any zoom, with a dark halo."""

    def __init__(self, text: str, color: QColor, parent: QGraphicsItem | None = None) -> None:
        super().__init__(text, parent)
        font = QFont()
        font.setPointSize(10)
        font.setBold(True)
        self.setFont(font)
        self.setBrush(QBrush(color))
        outline = QPen(QColor(0, 0, 0, 200), 2.5)
        self.setPen(outline)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.setZValue(4)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        # halo first (the stroke), then the fill on top, so the number reads on any skin
        path = QPainterPath()
        path.addText(QPointF(0, self.font().pointSizeF() * 1.3), self.font(), self.text())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.strokePath(path, self.pen())
        painter.fillPath(path, self.brush())
