"""The annotated PDF report, drawn with Qt's QPdfWriter and QPainter.

PySide6 is imported when a PDF is written, not when this package is imported. A
QGuiApplication is created if none exists (offscreen works).

Layout (A4, 150 dpi): header (patient, visits, time), disclaimer, the lesion table
(flagged first), the model versions, then every photo with numbered outlines.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np

from core.io import load_photo
from lesionviewer.reports.annotate import annotated_photo
from lesionviewer.reports.csv_json import patient_block
from lesionviewer.reports.tables import LesionRow, ReportData
from lesionviewer.store import Store

DISCLAIMER = (
    "Not a medical device. The scores are computer estimates to support, not replace, "
    "a clinician's examination; every decision rests with the clinician."
)
DPI = 150
_COLUMNS = (
    ("Lesion", 0.07),
    ("Visit", 0.11),
    ("Site", 0.09),
    ("Class", 0.09),
    ("P(mal.)", 0.07),
    ("Score", 0.07),
    ("Area px", 0.08),
    ("Area ratio", 0.08),
    ("dE", 0.06),
    ("dP(mal.)", 0.08),
    ("Flags", 0.20),
)


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _cells(row: LesionRow) -> list[str]:
    return [
        row.label,
        row.visit_date,
        row.body_site,
        row.class_name + (" (hand)" if row.source == "manual" else ""),
        _fmt(row.p_malignant, 2),
        _fmt(row.score, 2),
        _fmt(row.area_px, 0),
        _fmt(row.area_ratio, 2),
        _fmt(row.delta_e, 1),
        _fmt(row.p_malignant_change, 2),
        ", ".join(row.flags),
    ]


def _ensure_gui_app() -> None:
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # headless: no screen needed
        _ensure_gui_app.app = QGuiApplication([])  # type: ignore[attr-defined]


class _Pages:
    """A cursor over the pages of a QPdfWriter: text lines, table rows, images."""

    def __init__(self, writer, painter) -> None:
        self.writer, self.painter = writer, painter
        rect = writer.pageLayout().paintRectPixels(DPI)
        self.width, self.height = rect.width(), rect.height()
        self.y = 0

    def need(self, height: int) -> None:
        if self.y + height > self.height:
            self.writer.newPage()
            self.y = 0

    def text(self, text: str, *, size: int = 10, bold: bool = False, wrap: bool = False) -> None:
        from PySide6.QtCore import QRect, Qt
        from PySide6.QtGui import QFont

        font = QFont("Helvetica", size)
        font.setBold(bold)
        self.painter.setFont(font)
        flags = Qt.AlignmentFlag.AlignLeft | (Qt.TextFlag.TextWordWrap if wrap else 0)
        bound = self.painter.boundingRect(QRect(0, 0, self.width, 10_000), flags, text)
        self.need(bound.height() + 6)
        self.painter.drawText(QRect(0, self.y, self.width, bound.height()), flags, text)
        self.y += bound.height() + 6

    def table(self, header: list[str], rows: list[tuple[list[str], bool]]) -> None:
        from PySide6.QtCore import QRect, Qt
        from PySide6.QtGui import QColor, QFont

        font = QFont("Helvetica", 8)
        lefts, x = [], 0
        for _, fraction in _COLUMNS:
            lefts.append(x)
            x += int(fraction * self.width)

        def draw(cells: list[str], *, bold: bool, shade: QColor | None) -> None:
            self.need(row_height)
            if shade is not None:
                self.painter.fillRect(QRect(0, self.y, self.width, row_height), shade)
            font.setBold(bold)
            self.painter.setFont(font)
            for i, cell in enumerate(cells):
                width = int(_COLUMNS[i][1] * self.width) - 4
                box = QRect(lefts[i] + 2, self.y, width, row_height)
                self.painter.drawText(box, Qt.AlignmentFlag.AlignVCenter, cell)
            self.y += row_height

        self.painter.setFont(font)
        row_height = self.painter.fontMetrics().height() + 10
        draw(header, bold=True, shade=QColor(225, 225, 225))
        for cells, flagged in rows:
            draw(cells, bold=False, shade=QColor(255, 228, 225) if flagged else None)
        self.y += 10

    def image(self, rgb: np.ndarray, caption: str) -> None:
        from PySide6.QtCore import QRect
        from PySide6.QtGui import QImage

        height, width = rgb.shape[:2]
        rgb = np.ascontiguousarray(rgb)
        qimage = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        scale = min(self.width / width, (self.height * 0.6) / height)
        target_w, target_h = int(width * scale), int(height * scale)
        self.need(target_h + 40)
        self.text(caption, size=9, bold=True)
        self.painter.drawImage(QRect(0, self.y, target_w, target_h), qimage)
        self.y += target_h + 20


def write_pdf(store: Store, report: ReportData, path: str | Path) -> Path:
    """Write the report as a PDF at ``path`` (photos read from the store)."""
    _ensure_gui_app()
    from PySide6.QtCore import QMarginsF
    from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter

    path = Path(path)
    writer = QPdfWriter(str(path))
    writer.setResolution(DPI)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    writer.setTitle("LesionViewer report" + (" (de-identified)" if report.deidentified else ""))
    writer.setCreator("LesionViewer")
    painter = QPainter(writer)
    try:
        paint_report(_Pages(writer, painter), store, report)
    finally:
        painter.end()
    return path


def paint_report(pages: _Pages, store: Store, report: ReportData) -> None:
    """Draw the whole report through ``pages`` (any QPaintDevice cursor)."""
    pages.text("LesionViewer lesion report", size=16, bold=True)
    block = patient_block(report)
    if report.deidentified:
        pages.text(f"Patient: {block['ref']} (de-identified)   Sex: {block['sex'] or '-'}")
    else:
        pages.text(
            f"Patient: {block['name']}   Record number: {block['record_number'] or '-'}   "
            f"Born: {block['birth_date'] or '-'}   Sex: {block['sex'] or '-'}"
        )
    dates = ", ".join(v.date for v in report.visits) or "-"
    label = "Visit" if len(report.visits) == 1 else "Visits"
    pages.text(f"{label}: {dates}   Report made: {datetime.now():%Y-%m-%d %H:%M}")
    pages.text(DISCLAIMER, size=9, bold=True, wrap=True)
    flagged = sum(row.flagged for row in report.rows)
    pages.text(
        f"Lesions: {len(report.rows)} observations, {flagged} flagged "
        "(new, changed, high P(malignant) or an uncertain match to check) listed first",
        size=11,
        bold=True,
    )
    pages.table(
        [name for name, _ in _COLUMNS],
        [(_cells(row), row.flagged) for row in report.rows],
    )
    pages.text("Models", size=11, bold=True)
    if not report.models:
        pages.text("no analysis stored", size=9)
    for analysis in report.models:
        pages.text(
            f"{analysis.kind}: {analysis.model_name} {analysis.model_version} "
            f"(SHA-256 {analysis.model_sha256[:16]}...)",
            size=9,
        )
    flagged_labels = frozenset(row.label for row in report.rows if row.flagged)
    visit_dates = {v.id: v.date for v in report.visits}
    for photo in report.photos:
        observations = store.list_observations(photo.id)
        image = annotated_photo(load_photo(photo.path), observations, flagged_labels=flagged_labels)
        caption = f"{visit_dates.get(photo.visit_id, '')}  {photo.body_site}  photo {photo.id}"
        if photo.closeup:
            analysis = report.closeup_analyses.get(photo.id)
            summary = analysis.closeup_summary(observations) if analysis else None
            caption += f"  close-up: {summary}" if summary else "  close-up"
        pages.image(image, caption)
    pages.text(DISCLAIMER, size=8, wrap=True)
