"""The compare view: two visits side by side, a line joining each matched lesion (its colour
says how much it changed), new and gone lesions marked, and the flagged list first.

Both photos are shown at a common height in one scene: photo A at the left, B at the
right; the scene maps photo pixel (x, y) of A to (x * scale_a, y * scale_a) and of B to
(offset_b + x * scale_b, y * scale_b).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.io import load_photo
from lesionviewer.app.graphics_items import LesionOutlineItem, NumberLabel
from lesionviewer.app.imaging import to_qimage
from lesionviewer.app.view_data import (
    CompareData,
    FlagItem,
    LesionMark,
    flagged_items,
    is_faint,
    is_faint_change,
    is_uncertain,
)
from lesionviewer.workers import WorkerPool

#: Line colour per change level (kept apart from the red/yellow of the classes).
LINE_COLORS = {
    "stable": QColor(60, 200, 90),
    "watch": QColor(255, 150, 0),
    "changed": QColor(255, 0, 200),
}
NEW_COLOR = QColor(0, 220, 255)
GONE_COLOR = QColor(200, 200, 200)
OUT_OF_VIEW_COLOR = QColor(130, 130, 130)
GAP = 24.0


@dataclass(frozen=True)
class LoadedPair:
    """Both photos of a comparison at a common display height (worker output)."""

    key: tuple[int, int]
    image_a: QImage
    image_b: QImage
    scale_a: float
    scale_b: float


def prepare_pair(data: CompareData, *, height: int = 900, progress=None) -> LoadedPair:
    """Load both photos and shrink them to ``height`` rows (runs on a worker thread)."""
    images, scales = [], []
    for i, photo in enumerate((data.photo_a, data.photo_b)):
        image = load_photo(photo.path)
        target = min(height, image.shape[0])
        scale = target / image.shape[0]
        size = (max(1, round(image.shape[1] * scale)), target)
        images.append(to_qimage(cv2.resize(image, size, interpolation=cv2.INTER_AREA)))
        scales.append(scale)
        if progress is not None:
            progress((i + 1) / 2, photo.path.name)
    key = (data.photo_a.photo_id, data.photo_b.photo_id)
    return LoadedPair(key, images[0], images[1], scales[0], scales[1])


class CompareScene(QGraphicsView):
    """The side-by-side drawing; ``lesion_clicked(observation_id, side)`` side in "a"/"b"."""

    lesion_clicked = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(40, 40, 44))
        self.outlines: dict[tuple[str, int], LesionOutlineItem] = {}
        self.lines: dict[tuple[int, int], object] = {}
        self._user_zoomed = False

    def show_pair(self, data: CompareData, pair: LoadedPair) -> None:
        scene = self.scene()
        scene.clear()
        self.outlines, self.lines = {}, {}
        offset_b = self.layout_offset(pair)
        scene.addPixmap(QPixmap.fromImage(pair.image_a))
        item_b = scene.addPixmap(QPixmap.fromImage(pair.image_b))
        item_b.setPos(*offset_b)
        ends = {"a": ((0.0, 0.0), pair.scale_a), "b": (offset_b, pair.scale_b)}
        for (ox, oy), photo in (((0.0, 0.0), data.photo_a), (offset_b, data.photo_b)):
            caption = NumberLabel(f"{photo.visit_label}", QColor(255, 255, 255))
            caption.setPos(ox + 6, oy + 4)
            scene.addItem(caption)
        for side, photo in (("a", data.photo_a), ("b", data.photo_b)):
            offset, scale = ends[side]
            for mark in photo.marks:
                item = LesionOutlineItem(mark, offset=offset, scale=scale)
                item.side = side
                scene.addItem(item)
                self.outlines[(side, mark.observation_id)] = item

        def at(side: str, mark: LesionMark) -> QPointF:
            (ox, oy), s = ends[side]
            return QPointF(ox + mark.centroid[0] * s, oy + mark.centroid[1] * s)

        for link in data.links:
            color = LINE_COLORS.get(link.level, LINE_COLORS["watch"])
            if is_faint_change(link):  # paler, as a faint new lesion's ring
                color = color.lighter(130)
            pen = QPen(color, 2.0)
            if is_uncertain(link):  # dotted: a match to check, not a finding
                pen.setStyle(Qt.PenStyle.DotLine)
            pen.setCosmetic(True)
            p_a, p_b = at("a", link.a), at("b", link.b)
            line = scene.addLine(p_a.x(), p_a.y(), p_b.x(), p_b.y(), pen)
            line.setZValue(2.5)  # under the outlines and numbers
            self.lines[(link.a.observation_id, link.b.observation_id)] = line
        new = tuple(m for m in data.new_in_b if not is_faint(m))
        faint_new = tuple(m for m in data.new_in_b if is_faint(m))
        gone = tuple(m for m in data.gone_from_a if not is_faint(m))
        faint_gone = tuple(m for m in data.gone_from_a if is_faint(m))
        for side, marks, color, text in (
            ("b", new, NEW_COLOR, "NEW"),
            ("b", faint_new, NEW_COLOR.lighter(130), "NEW?"),
            ("a", gone, GONE_COLOR, "GONE"),
            ("a", faint_gone, GONE_COLOR.lighter(130), "GONE?"),
            ("b", data.outside_view_of_a, OUT_OF_VIEW_COLOR, "NOT IN VIEW"),
            ("a", data.outside_view_of_b, OUT_OF_VIEW_COLOR, "NOT IN VIEW"),
        ):
            for mark in marks:
                self._ring(at(side, mark), mark, ends[side][1], color, text)
        rect = scene.itemsBoundingRect().adjusted(-10, -10, 10, 10)
        scene.setSceneRect(rect)
        self._user_zoomed = False
        self.fit()

    def fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802 (keeps the pair in view until zoomed)
        super().resizeEvent(event)
        if not self._user_zoomed and not self.scene().sceneRect().isEmpty():
            self.fit()

    def layout_offset(self, pair: LoadedPair) -> tuple[float, float]:
        """Where photo B goes: right of A, or below A when that shows both larger in this
        viewport (wide photos in a narrow window)."""
        wa, ha = pair.image_a.width(), pair.image_a.height()
        wb, hb = pair.image_b.width(), pair.image_b.height()
        vw, vh = max(1, self.viewport().width()), max(1, self.viewport().height())
        beside = min(vw / (wa + GAP + wb), vh / max(ha, hb))
        above = min(vw / max(wa, wb), vh / (ha + GAP + hb))
        return (wa + GAP, 0.0) if beside >= above else (0.0, ha + GAP)

    def _ring(self, centre: QPointF, mark: LesionMark, scale: float, color: QColor, text: str):
        x0, y0, x1, y1 = mark.bbox
        r = max(x1 - x0, y1 - y0) * scale * 0.5 + 8.0
        pen = QPen(color, 2.5, Qt.PenStyle.DashLine if text == "GONE" else Qt.PenStyle.SolidLine)
        pen.setCosmetic(True)
        ring = QGraphicsEllipseItem(QRectF(centre.x() - r, centre.y() - r, 2 * r, 2 * r))
        ring.setPen(pen)
        ring.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        ring.setZValue(6)
        self.scene().addItem(ring)
        label = NumberLabel(text, color, ring)
        label.setPos(centre.x() - r, centre.y() + r + 2)
        font = QFont(label.font())
        font.setPointSize(8)
        label.setFont(font)

    def highlight(self, a: int | None, b: int | None) -> None:
        for (side, oid), item in self.outlines.items():
            item.set_selected_look((side == "a" and oid == a) or (side == "b" and oid == b))

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self._user_zoomed = True
        self.scale(factor, factor)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            pos = self.mapToScene(event.position().toPoint())
            for item in self.scene().items(pos):
                if isinstance(item, LesionOutlineItem):
                    self.lesion_clicked.emit(item.mark.observation_id, item.side)
                    return
        super().mousePressEvent(event)


class CompareView(QWidget):
    """Compare two visits: the drawing, the flagged list, and re-link / split buttons.

    Signals: ``lesion_clicked(observation_id)`` (open its history);
    ``relink_requested(observation_a, observation_b)``; ``split_requested(observation_b)``.
    """

    lesion_clicked = Signal(int)
    relink_requested = Signal(int, int)
    split_requested = Signal(int)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workers = workers
        self.data: CompareData | None = None
        self.selected: dict[str, int | None] = {"a": None, "b": None}
        self.scene_view = CompareScene(self)
        self.title = QLabel("Choose two visits to compare")
        self.title.setStyleSheet("font-weight: bold")
        self.title.setWordWrap(True)  # the counts run long in a narrow window: wrap, not clip
        self.flag_list = QListWidget()
        self.flag_list.setMinimumWidth(240)
        self.flag_list.setWordWrap(True)
        self.relink_button = QPushButton("Link selected A + B")
        self.relink_button.setToolTip("Click a lesion on each photo, then link them as one lesion")
        self.split_button = QPushButton("Split track of B")
        self.split_button.setToolTip("The selected lesion on B is a different lesion")
        legend = QLabel(
            "<span style='color:#3cc85a'>&#9473; stable</span>  "
            "<span style='color:#ff9600'>&#9473; watch</span>  "
            "<span style='color:#ff00c8'>&#9473; changed</span>  "
            "<span style='color:#bbbbbb'>&#8943; uncertain match</span>  "
            "<span style='color:#00dcff'>&#9711; new</span>  "
            "<span style='color:#999'>&#9711; gone</span>  "
            "<span style='color:#828282'>&#9711; not in the other photo</span>"
        )
        side = QVBoxLayout()
        side.addWidget(QLabel("Flagged first"))
        side.addWidget(self.flag_list, 1)
        side.addWidget(self.relink_button)
        side.addWidget(self.split_button)
        side_widget = QWidget()
        side_widget.setLayout(side)
        splitter = QSplitter()
        splitter.addWidget(self.scene_view)
        splitter.addWidget(side_widget)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([900, 280])
        self.flag_list.setMaximumWidth(420)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(legend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(head)
        layout.addWidget(splitter, 1)
        self.scene_view.lesion_clicked.connect(self._on_scene_click)
        self.flag_list.currentItemChanged.connect(self._on_flag_selected)
        self.flag_list.itemDoubleClicked.connect(self._on_flag_activated)
        self.relink_button.clicked.connect(self._on_relink)
        self.split_button.clicked.connect(self._on_split)
        self._update_buttons()

    # -- content -----------------------------------------------------------------------
    def show_comparison(self, data: CompareData) -> None:
        """Load both photos off the GUI thread and draw ``data``; a newer call wins."""
        self.data = data
        a, b = data.photo_a, data.photo_b
        self.title.setText(f"{a.visit_label} -> {b.visit_label}  ({b.body_site}) loading...")
        self._workers.submit(
            "compare-view",
            lambda progress, cancel: prepare_pair(data, progress=progress),
            on_done=self._on_loaded,
        )

    def _on_loaded(self, pair: LoadedPair) -> None:
        data = self.data
        if data is None or pair.key != (data.photo_a.photo_id, data.photo_b.photo_id):
            return
        self.scene_view.show_pair(data, pair)
        self.selected = {"a": None, "b": None}
        self.flag_list.clear()
        for flag in flagged_items(data):
            row = QListWidgetItem(flag.text)
            row.setData(Qt.ItemDataRole.UserRole, flag)
            color = {
                "new": NEW_COLOR,
                "faint new": NEW_COLOR.lighter(130),
                "uncertain match": LINE_COLORS["watch"],
                "changed": LINE_COLORS["changed"],
                "faint change": LINE_COLORS["changed"].lighter(130),
                "malignant": QColor(235, 30, 30),
                "gone": QColor(120, 120, 120),
                "faint gone": QColor(120, 120, 120).lighter(130),
            }.get(flag.reason)
            if color is not None:
                row.setForeground(QBrush(color.darker(130)))
            self.flag_list.addItem(row)
        n_new, n_changed = len(data.new_in_b), sum(lk.level == "changed" for lk in data.links)
        n_faint = sum(is_faint(m) for m in data.new_in_b)
        n_faint_changed = sum(is_faint_change(lk) for lk in data.links)
        n_faint_gone = sum(is_faint(m) for m in data.gone_from_a)
        gone_text = f"{len(data.gone_from_a)} gone" + (
            f" ({n_faint_gone} faint)" if n_faint_gone else ""
        )
        n_hidden = len(data.outside_view_of_a) + len(data.outside_view_of_b)
        new_text = f"{n_new} new" + (f" ({n_faint} faint)" if n_faint else "")
        n_uncertain = sum(is_uncertain(lk) for lk in data.links)
        matched_text = f"{len(data.links)} matched" + (
            f" ({n_uncertain} uncertain)" if n_uncertain else ""
        )
        self.title.setText(
            f"{data.photo_a.visit_label} -> {data.photo_b.visit_label} ({data.photo_b.body_site}): "
            f"{matched_text}, {new_text}, {gone_text}, "
            f"{n_changed} changed"
            + (f" ({n_faint_changed} faint)" if n_faint_changed else "")
            + (f", {n_hidden} outside the other photo" if n_hidden else "")
        )
        self._update_buttons()

    def flags(self) -> list[FlagItem]:
        return [
            self.flag_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.flag_list.count())
        ]

    # -- selection and corrections -------------------------------------------------------
    def _on_scene_click(self, observation_id: int, side: str) -> None:
        self.selected[side] = observation_id
        self.scene_view.highlight(self.selected["a"], self.selected["b"])
        self._update_buttons()
        self.lesion_clicked.emit(observation_id)

    def _on_flag_selected(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is None:
            return
        flag: FlagItem = item.data(Qt.ItemDataRole.UserRole)
        self.selected = {
            "a": flag.mark_a.observation_id if flag.mark_a else None,
            "b": flag.mark_b.observation_id if flag.mark_b else None,
        }
        self.scene_view.highlight(self.selected["a"], self.selected["b"])
        self._update_buttons()

    def _on_flag_activated(self, item: QListWidgetItem) -> None:
        flag: FlagItem = item.data(Qt.ItemDataRole.UserRole)
        mark = flag.mark_b or flag.mark_a
        if mark is not None:
            self.lesion_clicked.emit(mark.observation_id)

    def _update_buttons(self) -> None:
        self.relink_button.setEnabled(None not in (self.selected["a"], self.selected["b"]))
        self.split_button.setEnabled(self.selected["b"] is not None)

    def _on_relink(self) -> None:
        a, b = self.selected["a"], self.selected["b"]
        if a is not None and b is not None:
            self.relink_requested.emit(a, b)

    def _on_split(self) -> None:
        if self.selected["b"] is not None:
            self.split_requested.emit(self.selected["b"])
