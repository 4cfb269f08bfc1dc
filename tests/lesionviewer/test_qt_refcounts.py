"""The Qt bindings keep Python's reference counts of None, True and False intact.

PySide6 6.12.0 drops one reference to None (or True/False) on every call of a void method on
Pythons where those objects are not immortal (< 3.12); a view repainted a few thousand times
then aborts the app with "deallocating None". pyproject.toml keeps that release out; this
test catches a binding that does it again.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen

from lesionviewer.app.graphics_items import NumberLabel


def _counts() -> tuple[int, int, int]:
    return sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)


def test_painting_does_not_drain_the_reference_counts_of_none_and_bools(qapp) -> None:
    image = QImage(64, 64, QImage.Format.Format_RGB32)
    label = NumberLabel("NEW", QColor(255, 0, 255))
    painter = QPainter(image)
    try:
        before = _counts()
        for _ in range(500):
            path = QPainterPath()
            path.addText(QPointF(0, 10), QFont(), "7")
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.strokePath(path, QPen(QColor(0, 0, 0), 2.0))
            label.paint(painter, None)
        after = _counts()
    finally:
        painter.end()
    # a leak loses at least one reference per call (thousands here); allow for the few
    # references the interpreter itself takes or drops meanwhile
    assert all(a >= b - 50 for a, b in zip(after, before, strict=True)), (before, after)
