"""The views driven with hand-made plain data: photo view, compare view, history panel,
import dialog. Screenshots go to /tmp/app/ (look at them)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from core.io import save_rgb
from lesionviewer.app.compare_view import LINE_COLORS, CompareView
from lesionviewer.app.graphics_items import LesionOutlineItem, PyramidImageItem
from lesionviewer.app.history_panel import HistoryPanel
from lesionviewer.app.imaging import build_pyramid, to_qimage
from lesionviewer.app.import_dialog import ImportDialog, guess_site
from lesionviewer.app.photo_panel import PhotoPanel
from lesionviewer.app.view_data import (
    CompareData,
    CompareLink,
    HistoryEntry,
    LesionHistory,
    flagged_items,
)
from lesionviewer.workers import WorkerPool
from tests.lesionviewer.app_samples import sample_photo_data, skin_photo

SHOTS = Path("/tmp/app")


def shot(widget, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert widget.grab().save(str(path))
    return path


@pytest.fixture
def workers(qtbot):
    pool = WorkerPool()
    yield pool
    pool.cancel()
    pool.wait_for_done(5000)


@pytest.fixture
def panel(qtbot, workers, tmp_path):
    widget = PhotoPanel(workers)
    qtbot.addWidget(widget)
    widget.resize(820, 560)
    widget.show()
    photo = sample_photo_data(tmp_path)
    with qtbot.waitSignal(widget.loaded, timeout=5000):
        widget.show_photo(photo)
    return widget


def viewport_point(view, x: float, y: float):
    return view.mapFromScene(QPointF(x, y))


def test_photo_view_overlay_opacity_and_outline_switch(panel) -> None:
    view = panel.view
    assert view._overlay_item is not None and view._overlay_item.isVisible()
    panel.opacity.setValue(25)
    assert view._overlay_item.opacity() == pytest.approx(0.25)
    outlines = view.outline_items()
    assert [o.mark.label for o in outlines] == ["L1", "L2", "L3"]
    assert all(o.pen().style() == Qt.PenStyle.NoPen for o in outlines)  # heatmap mode
    shot(panel, "photo_view_heatmap.png")
    panel.outline_button.setChecked(True)
    assert not view._overlay_item.isVisible()
    assert all(o.pen().style() != Qt.PenStyle.NoPen for o in outlines)
    shot(panel, "photo_view_outlines.png")


def test_hover_reads_out_probabilities_and_click_opens_the_lesion(qtbot, panel) -> None:
    view = panel.view
    pt = viewport_point(view, 150, 110)  # the malignant spot L2
    qtbot.mouseMove(view.viewport(), pt)
    qtbot.waitUntil(lambda: "lesion L2" in panel.readout.text(), timeout=3000)
    text = panel.readout.text()
    assert "p malignant 0.76" in text  # heatmap 0.9 * 0.85 at that pixel
    assert "p malignant 0.85" in text  # the lesion's own p_malignant
    outside = view.readout(5, 5)
    assert "lesion" not in outside and "p benign 0.00" in outside
    with qtbot.waitSignal(view.lesion_clicked, timeout=2000) as clicked:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)
    assert clicked.args == [panel.photo.marks[1].observation_id]


def test_drawing_a_missed_lesion_emits_its_outline(qtbot, panel) -> None:
    view = panel.view
    panel.add_button.setChecked(True)
    corners = [(250, 150), (280, 150), (280, 180), (250, 180)]
    pts = [viewport_point(view, x, y) for x, y in corners]
    with qtbot.waitSignal(panel.lesion_drawn, timeout=2000) as drawn:
        qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=pts[0])
        for p in pts[1:]:
            qtbot.mouseMove(view.viewport(), p)
        qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=pts[-1])
    contour = drawn.args[0]
    assert contour.shape[1] == 2 and len(contour) >= 3
    assert contour[:, 0].min() == pytest.approx(250, abs=2)
    assert contour[:, 1].max() == pytest.approx(180, abs=2)
    assert not panel.add_button.isChecked()  # one outline per press of the button


def test_pyramid_picks_a_coarser_level_when_zoomed_out() -> None:
    image = skin_photo(1600, 1000)
    levels = build_pyramid(image, min_side=200)
    assert [lv.shape[1] for lv in levels] == [1600, 800, 400, 200]
    item = PyramidImageItem([to_qimage(lv) for lv in levels])
    assert item.level_for_scale(1.0) == 0
    assert item.level_for_scale(0.6) == 0  # still needs full resolution
    assert item.level_for_scale(0.45) == 1
    assert item.level_for_scale(0.3) == 1
    assert item.level_for_scale(0.2) == 2
    assert item.level_for_scale(0.01) == 3


def _comparison(tmp_path: Path) -> CompareData:
    a = sample_photo_data(tmp_path, photo_id=1, name="a.png")
    b = sample_photo_data(tmp_path, photo_id=2, shift=8, name="b.png")
    levels = ("stable", "changed", "watch")
    links = tuple(
        CompareLink(ma, mb, level, 1.0 + 0.5 * (level == "changed"), 0.0)
        for ma, mb, level in zip(a.marks[:3], b.marks[:3], levels, strict=True)
    )
    new = b.marks[2]
    links = links[:2]
    return CompareData(a, b, links, new_in_b=(new,), gone_from_a=(a.marks[2],))


def test_compare_view_lines_marks_and_flagged_first(qtbot, workers, tmp_path) -> None:
    data = _comparison(tmp_path)
    view = CompareView(workers)
    qtbot.addWidget(view)
    view.resize(1100, 520)
    view.show()
    view.show_comparison(data)
    qtbot.waitUntil(lambda: view.flag_list.count() == 4, timeout=5000)
    assert len(view.scene_view.lines) == 2
    reasons = [f.reason for f in view.flags()]
    assert reasons == ["new", "changed", "gone", "stable"]
    assert flagged_items(data)[0].mark_b.label == "L3"
    texts = [t.text() for t in view.scene_view.scene().items() if hasattr(t, "text")]
    assert "NEW" in texts and "GONE" in texts
    shot(view, "compare_view.png")
    # re-link: pick a lesion on each side, then press the button
    assert not view.relink_button.isEnabled()
    outline_a = view.scene_view.outlines[("a", data.photo_a.marks[0].observation_id)]
    outline_b = view.scene_view.outlines[("b", data.photo_b.marks[1].observation_id)]
    for item in (outline_a, outline_b):
        centre = item.mapToScene(item.path().boundingRect().center())
        qtbot.mouseClick(
            view.scene_view.viewport(),
            Qt.MouseButton.LeftButton,
            pos=view.scene_view.mapFromScene(centre),
        )
    assert view.relink_button.isEnabled()
    with qtbot.waitSignal(view.relink_requested, timeout=2000) as relink:
        view.relink_button.click()
    assert relink.args == [
        data.photo_a.marks[0].observation_id,
        data.photo_b.marks[1].observation_id,
    ]
    with qtbot.waitSignal(view.split_requested, timeout=2000) as split:
        view.split_button.click()
    assert split.args == [data.photo_b.marks[1].observation_id]


def test_compare_view_sets_apart_lesions_the_other_photo_does_not_show(
    qtbot, workers, tmp_path
) -> None:
    base = _comparison(tmp_path)
    # B's third lesion lies outside photo A's view: not new, listed last, ringed in grey
    data = CompareData(
        base.photo_a,
        base.photo_b,
        base.links,
        new_in_b=(),
        gone_from_a=base.gone_from_a,
        outside_view_of_a=base.new_in_b,
    )
    view = CompareView(workers)
    qtbot.addWidget(view)
    view.resize(1100, 520)
    view.show()
    view.show_comparison(data)
    qtbot.waitUntil(lambda: view.flag_list.count() == 4, timeout=5000)
    assert [f.reason for f in view.flags()] == ["changed", "gone", "stable", "out of view"]
    texts = [t.text() for t in view.scene_view.scene().items() if hasattr(t, "text")]
    assert "NOT IN VIEW" in texts and "NEW" not in texts
    assert "0 new" in view.title.text() and "1 outside the other photo" in view.title.text()
    shot(view, "compare_view_out_of_view.png")


def test_history_panel_crops_plots_and_jump(qtbot, workers, tmp_path) -> None:
    paths = []
    for i, grow in enumerate((0, 4, 9)):
        image = skin_photo(seed=i)
        import cv2

        cv2.circle(image, (150, 110), 12 + grow, (70, 40, 30), -1)
        paths.append(tmp_path / f"v{i}.png")
        save_rgb(paths[-1], image)
    entries = tuple(
        HistoryEntry(
            visit_label=f"202{i}-05-01",
            visit_ordinal=365.0 * i,
            photo_id=10 + i,
            photo_path=paths[i],
            observation_id=100 + i,
            bbox=(150 - r, 110 - r, 151 + r, 111 + r),
            centroid=(150.0, 110.0),
            area_px=float(np.pi * r * r),
            p_malignant=p,
        )
        for i, (r, p) in enumerate(((12, 0.3), (16, 0.45), (21, 0.8)))
    )
    history = LesionHistory(7, "L7", "back", "watch", "itchy", "", entries)
    panel = HistoryPanel(workers)
    qtbot.addWidget(panel)
    panel.resize(460, 620)
    panel.show()
    panel.show_history(history)
    qtbot.waitUntil(lambda: all(not p.pixmap().isNull() for p in panel.pictures), timeout=5000)
    assert len(panel.tiles) == 3
    curve = panel.p_plot.getPlotItem().listDataItems()[0]
    assert list(curve.yData) == [0.3, 0.45, 0.8]
    assert list(panel.area_plot.getPlotItem().listDataItems()[0].xData) == [0, 365, 730]
    assert panel.notes.toPlainText() == "itchy" and panel.status.currentText() == "watch"
    shot(panel, "history_panel.png")
    jump = [b for b in panel.tiles[2].findChildren(type(panel.save_button))][0]
    with qtbot.waitSignal(panel.jump_requested, timeout=2000) as jumped:
        jump.click()
    assert jumped.args == [12, 102]
    panel.biopsy.setText("melanoma in situ")
    with qtbot.waitSignal(panel.save_requested, timeout=2000) as saved:
        panel.save_button.click()
    assert saved.args[0] == 7 and saved.args[1]["biopsy_result"] == "melanoma in situ"


def test_import_dialog_takes_folders_and_tags_sites(qtbot, tmp_path) -> None:
    for name in ("back_1.png", "left leg.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    dialog = ImportDialog("2024-01-01")
    qtbot.addWidget(dialog)
    assert dialog.add_paths([tmp_path]) == 2  # the .txt is not a photo
    assert dialog.add_paths([tmp_path / "back_1.png"]) == 0  # no duplicates
    assert [(p.name, s, c) for p, s, c in dialog.chosen()] == [
        ("back_1.png", "back", False),
        ("left leg.png", "left leg", False),
    ]
    dialog.set_all_sites("chest")
    assert {s for _, s, _ in dialog.chosen()} == {"chest"}
    assert guess_site(Path("IMG_0001.jpg")) == ""
    # the second photo is a close-up of one lesion
    dialog.set_closeup(1, True)
    assert [c for _, _, c in dialog.chosen()] == [False, True]
    dialog.show()
    shot(dialog, "import_dialog.png")


def test_lesion_outline_item_is_clickable_inside() -> None:
    from tests.lesionviewer.app_samples import spot_marks

    item = LesionOutlineItem(spot_marks()[1])
    assert item.shape().contains(QPointF(150, 110))
    assert not item.shape().contains(QPointF(10, 10))


def _shown_comparison(qtbot, workers, data: CompareData, rows: int) -> CompareView:
    """A compare view showing ``data``, once its flag list holds ``rows`` rows."""
    view = CompareView(workers)
    qtbot.addWidget(view)
    view.resize(1100, 520)
    view.show()
    view.show_comparison(data)
    qtbot.waitUntil(lambda: view.flag_list.count() == rows, timeout=5000)
    return view


def test_an_uncertain_match_is_dotted_and_listed_for_a_check(qtbot, workers, tmp_path) -> None:
    data = _comparison(tmp_path)
    stable, changed = data.links
    # a stable match the flow could not vouch for, and a changed one alike
    data = replace(data, links=(replace(stable, confidence=0.02), replace(changed, confidence=0.1)))
    items = flagged_items(data)
    assert [f.reason for f in items] == ["new", "changed", "uncertain match", "gone"]
    assert "MATCH?" in items[2].text and "confidence 0.02" in items[2].text
    assert "uncertain match" in items[1].text  # a changed lesion keeps its rank
    view = _shown_comparison(qtbot, workers, data, len(items))
    styles = {key: line.pen().style() for key, line in view.scene_view.lines.items()}
    assert set(styles.values()) == {Qt.PenStyle.DotLine}
    assert "2 matched (2 uncertain)" in view.title.text()
    shot(view, "compare_view_uncertain.png")
    sure = replace(data, links=(stable, changed))
    view.show_comparison(sure)

    def solid() -> bool:
        return {ln.pen().style() for ln in view.scene_view.lines.values()} == {
            Qt.PenStyle.SolidLine
        }

    qtbot.waitUntil(lambda: "uncertain" not in view.title.text() and solid(), timeout=5000)


def test_faint_new_lesions_come_after_the_confident_alarms(qtbot, workers, tmp_path) -> None:
    data = _comparison(tmp_path)
    confident = replace(data.new_in_b[0], score=0.99)
    spot = data.new_in_b[0]
    faint = replace(spot, observation_id=91, label="L91", centroid=(40.0, 150.0), score=0.08)
    drawn = replace(spot, observation_id=92, label="L92", centroid=(280.0, 150.0), score=0.03)
    drawn = replace(drawn, manual=True)
    data = replace(data, new_in_b=(faint, confident, drawn))
    items = flagged_items(data)
    assert [f.reason for f in items] == ["new", "new", "changed", "faint new", "gone", "stable"]
    assert "P(lesion) 0.08" in items[3].text and items[3].mark_b == faint
    view = _shown_comparison(qtbot, workers, data, len(items))
    texts = [t.text() for t in view.scene_view.scene().items() if hasattr(t, "text")]
    assert texts.count("NEW") == 2 and texts.count("NEW?") == 1
    assert "3 new (1 faint)" in view.title.text()
    shot(view, "compare_view_faint_new.png")


def test_a_change_seen_only_faintly_comes_after_the_confident_alarms(
    qtbot, workers, tmp_path
) -> None:
    data = _comparison(tmp_path)
    stable, changed = data.links
    # a low-scored region that seems to grow (a garment edge, a shadow): P(lesion) 0.20 -> 0.44
    faint = replace(changed, a=replace(changed.a, score=0.2), b=replace(changed.b, score=0.44))
    data = replace(data, links=(stable, faint))
    items = flagged_items(data)
    assert [f.reason for f in items] == ["new", "faint change", "gone", "stable"]
    assert "CHANGED?, faint" in items[1].text and "P(lesion) 0.20 -> 0.44" in items[1].text
    # the later photo decides: a faint region that became a confident one is a change
    grown = replace(faint, b=replace(faint.b, score=0.9))
    assert [f.reason for f in flagged_items(replace(data, links=(stable, grown)))][1] == "changed"
    view = _shown_comparison(qtbot, workers, data, len(items))
    assert "1 changed (1 faint)" in view.title.text()
    line = view.scene_view.lines[(faint.a.observation_id, faint.b.observation_id)]
    assert line.pen().color() == LINE_COLORS["changed"].lighter(130)
    shot(view, "compare_view_faint_change.png")


def test_a_match_the_frame_cuts_says_so(tmp_path) -> None:
    data = _comparison(tmp_path)
    stable, changed = data.links
    width, height = data.photo_b.size
    at_edge = replace(changed, b=replace(changed.b, bbox=(width - 20, 150, width, 170)))
    items = flagged_items(replace(data, links=(stable, at_edge)))
    texts = {f.mark_b.label: f.text for f in items if f.mark_b is not None and f.mark_a}
    assert "cut by the photo's edge" in texts[at_edge.b.label]
    assert "cut by the photo's edge" not in texts[stable.b.label]
    # unknown photo sizes: nothing is claimed
    unknown = replace(data, photo_b=replace(data.photo_b, size=None), links=(stable, at_edge))
    assert not any("edge" in f.text for f in flagged_items(unknown))


def test_a_faint_lesion_not_seen_again_is_gone_with_a_question_mark(
    qtbot, workers, tmp_path
) -> None:
    data = _comparison(tmp_path)
    confident_gone = data.gone_from_a[0]
    faint_gone = replace(confident_gone, observation_id=95, label="L95", score=0.17)
    faint_gone = replace(faint_gone, centroid=(60.0, 160.0))
    data = replace(data, gone_from_a=(faint_gone, confident_gone))
    items = flagged_items(data)
    assert [f.reason for f in items] == ["new", "changed", "gone", "faint gone", "stable"]
    assert items[3].text == "L95  GONE?, faint: P(lesion) 0.17"
    view = _shown_comparison(qtbot, workers, data, len(items))
    texts = [t.text() for t in view.scene_view.scene().items() if hasattr(t, "text")]
    assert texts.count("GONE") == 1 and texts.count("GONE?") == 1
    assert "2 gone (1 faint)" in view.title.text()


def test_photo_caption_counts_lesions_and_gives_a_closeups_verdict() -> None:
    from lesionviewer.app.view_data import PhotoData, lesion_count
    from lesionviewer.store import Analysis

    body = PhotoData(photo_id=1, path=Path("b.jpg"), body_site="back", visit_label="2024-01-01")
    assert body.caption(lesion_count(1)) == "2024-01-01 - back - 1 lesion"
    assert body.caption(lesion_count(3)) == "2024-01-01 - back - 3 lesions"
    close = PhotoData(
        photo_id=2, path=Path("c.jpg"), body_site="arm", visit_label="2024-01-01", closeup=True
    )
    assert close.caption("loading...").endswith("close-up, not analysed")
    analysis = Analysis(7, 2, None, "detect", "d", "1", "0" * 64, "now", None, 0.3, 0.02)
    summary = analysis.closeup_summary([])
    assert summary == "no region, centre of the photo, P(lesion) 0.02, p malignant 0.30"
    none = PhotoData(**{**close.__dict__, "closeup_verdict": summary})
    assert none.caption(lesion_count(0)).endswith(f"close-up: {summary}")
    # the central region: named by the label of the observation this analysis made of it
    found = Analysis(7, 2, None, "detect", "d", "1", "0" * 64, "now", 2, 0.426, 0.9)
    assert found.closeup_summary([]) == "the central region, p malignant 0.43"
