"""The main window driven as a clinician would, on a fresh store per test: open a
patient, a photo, a lesion's history, correct, compare, import, analyse, export."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from lesionviewer.app import import_dialog
from lesionviewer.app.launch import build_window
from lesionviewer.store import Store
from tests.lesionviewer.app_samples import make_store_patient, skin_photo, tiny_model_folders
from tests.lesionviewer.test_app_views import shot


@pytest.fixture
def app_window(qtbot, tmp_path):
    data_dir = tmp_path / "data"
    ids = make_store_patient(data_dir, tmp_path / "incoming")
    window, reporter = build_window(data_dir, "cpu")
    qtbot.addWidget(window)
    window.show()
    yield window, ids, data_dir
    window.workers.cancel()
    window.workers.wait_for_done(10000)
    window.session.store.close()


def open_patient_and_photo(qtbot, window, ids, photo_index: int = 1):
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    tree = window.timeline.tree
    visit_item = tree.topLevelItem(photo_index)
    photo_item = visit_item.child(0)
    rect = tree.visualItemRect(photo_item)
    with qtbot.waitSignal(window.photo_panel.loaded, timeout=5000):
        qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.photo_panel.photo.photo_id == ids["photos"][photo_index]
    return window.photo_panel.photo


def click_scene(qtbot, view, x: float, y: float) -> None:
    pos = view.mapFromScene(QPointF(x, y))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_open_patient_photo_and_lesion_history(qtbot, app_window) -> None:
    window, ids, _ = app_window
    photo = open_patient_and_photo(qtbot, window, ids)
    assert [m.label for m in photo.marks] == ["L1", "L2", "L3", "L4"]
    assert window.timeline.tree.topLevelItem(1).text(2) == "4"
    l2 = photo.marks[1]
    click_scene(qtbot, window.photo_panel.view, *l2.centroid)
    history = window.history.history
    assert history is not None and history.label == "L2"
    assert [e.visit_label for e in history.entries] == ["2024-03-01", "2025-03-04"]
    assert history.entries[1].area_px > 1.5 * history.entries[0].area_px  # it grew
    qtbot.waitUntil(
        lambda: all(not p.pixmap().isNull() for p in window.history.pictures), timeout=5000
    )
    # jump to the lesion on the first visit's photo
    first = window.history.tiles[0].findChildren(type(window.history.save_button))[0]
    with qtbot.waitSignal(window.photo_panel.loaded, timeout=5000):
        first.click()
    assert window.photo_panel.photo.photo_id == ids["photos"][0]
    centre = window.photo_panel.view.mapToScene(window.photo_panel.view.viewport().rect().center())
    assert abs(centre.x() - 150) < 15 and abs(centre.y() - 110) < 15
    shot(window, "main_window_history.png")
    # notes and the biopsy result are saved on the lesion
    window.history.biopsy.setText("compound nevus")
    window.history.notes.setPlainText("patient noticed growth")
    window.history.save_button.click()
    with Store.open(window.session.data_dir) as store:
        lesion = store.get_lesion(history.lesion_id)
    assert (lesion.biopsy_result, lesion.notes) == ("compound nevus", "patient noticed growth")
    assert window.history.biopsy.text() == "compound nevus"  # re-read after the save


def test_corrections_add_delete_change_class_are_stored_and_audited(qtbot, app_window) -> None:
    window, ids, data_dir = app_window
    photo = open_patient_and_photo(qtbot, window, ids)
    view = window.photo_panel.view
    # add a missed lesion by drawing its outline
    window.photo_panel.add_button.setChecked(True)
    corners = [(40, 150), (60, 150), (60, 170), (40, 170)]
    pts = [view.mapFromScene(QPointF(x, y)) for x, y in corners]
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=pts[0])
    for p in pts[1:]:
        qtbot.mouseMove(view.viewport(), p)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=pts[-1])
    qtbot.waitUntil(lambda: len(window.photo_panel.photo.marks) == 5, timeout=3000)
    added = [m for m in window.photo_panel.photo.marks if m.manual]
    assert len(added) == 1 and added[0].label == "L5" and not added[0].malignant
    # change its class and delete a false one through the context-menu signal
    view.correction_requested.emit("malignant", added[0].observation_id)
    l3 = photo.marks[2]
    view.correction_requested.emit("delete", l3.observation_id)
    marks = {m.label: m for m in window.photo_panel.photo.marks}
    assert marks["L5"].malignant and marks["L5"].class_override == "malignant"
    assert "L3" not in marks
    assert len(view.outline_items()) == 4
    with Store.open(data_dir) as store:
        obs = store.get_observation(l3.observation_id)
        assert obs.deleted
        actions = {(a.action, a.entity) for a in store.audit_log(entity="observation")}
    assert len(actions) >= 2


def test_compare_relink_and_split_through_the_store(qtbot, app_window) -> None:
    window, ids, data_dir = app_window
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    window.timeline.compare_button.click()
    cv = window.compare_view
    qtbot.waitUntil(lambda: cv.flag_list.count() == 4, timeout=5000)
    assert [f.reason for f in cv.flags()][:2] == ["new", "changed"]
    assert len(cv.scene_view.lines) == 3
    shot(window, "main_window_compare.png")
    data = cv.data
    l1_a = next(m for m in data.photo_a.marks if m.label == "L1")
    l1_b = next(m for m in data.photo_b.marks if m.label == "L1")
    # split L1 of visit 2 off its track: it becomes a new lesion
    cv._on_scene_click(l1_b.observation_id, "b")
    cv.split_button.click()
    qtbot.waitUntil(lambda: cv.data.photo_b.mark(l1_b.observation_id).label != "L1", timeout=5000)
    split_label = cv.data.photo_b.mark(l1_b.observation_id).label
    qtbot.waitUntil(lambda: cv.flag_list.count() == 5, timeout=5000)  # + L1 gone, new split
    assert {f.reason for f in cv.flags()} >= {"new", "gone"}
    # that was wrong: re-link it to L1 of the first visit
    cv._on_scene_click(l1_a.observation_id, "a")
    cv._on_scene_click(l1_b.observation_id, "b")
    cv.relink_button.click()
    qtbot.waitUntil(lambda: cv.data.photo_b.mark(l1_b.observation_id).label == "L1", timeout=5000)
    qtbot.waitUntil(lambda: len(cv.scene_view.lines) == 3, timeout=5000)
    with Store.open(data_dir) as store:
        assert store.get_observation(l1_b.observation_id).lesion_label == "L1"
        entities = {a.entity for a in store.audit_log()}
    assert split_label.startswith("L") and "track_link" in entities


def test_import_by_dialog_refuses_a_corrupt_photo_and_keeps_the_good_ones(
    qtbot, app_window, tmp_path, monkeypatch
) -> None:
    window, ids, data_dir = app_window
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    from core.io import save_rgb

    good = [tmp_path / "chest_a.png", tmp_path / "left arm.png"]
    for i, path in enumerate(good):
        save_rgb(path, skin_photo(seed=10 + i))
    bad = tmp_path / "zz_broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9")

    def fake_exec(dialog):
        dialog.add_paths([tmp_path])
        return True

    monkeypatch.setattr(import_dialog.ImportDialog, "exec", fake_exec)
    window.timeline.select_visit(ids["visits"][1])
    errors = []
    window.reporter.error_shown.connect(errors.append)
    window.timeline.import_button.click()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert "zz_broken.jpg" in errors[0]
    with Store.open(data_dir) as store:
        photos = store.list_photos(ids["visits"][1])
    assert sorted(p.body_site for p in photos) == ["back", "chest", "left arm"]
    qtbot.waitUntil(lambda: window.timeline.tree.topLevelItem(1).text(1) == "3", timeout=3000)
    window.reporter.last_dialog.close()


def test_analyse_with_a_tiny_model_and_export_a_report(qtbot, app_window, tmp_path) -> None:
    window, ids, data_dir = app_window
    det, trk = tiny_model_folders(tmp_path / "models")
    window.session.holder.detector, window.session.holder.tracker = det, trk
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    window.timeline.select_visit(ids["visits"][1])
    with qtbot.waitSignal(window.analysis.analysed, timeout=60000) as analysed:
        window.timeline.analyse_button.click()
        assert window.status.progress.isVisible() and window.status.cancel_button.isVisible()
    outcome = analysed.args[0]
    assert outcome.photos == 1 and outcome.pairs == 1
    assert not window.status.progress.isVisible()
    with Store.open(data_dir) as store:
        kinds = [a.kind for a in store.list_analyses(ids["photos"][1])]
        assert "detect" in kinds and "track" in kinds
        assert any(a.model_name == "tiny-random" for a in store.list_analyses(ids["photos"][1]))
    qtbot.waitUntil(lambda: "tiny-random" in window.status.models_label.text(), timeout=30000)
    # clinicians' corrections survived: the hand-made lesions are replaced, labels stay unique
    out = tmp_path / "report"
    with qtbot.waitSignal(window.report_written, timeout=60000) as written:
        window.export_report(out, deidentify=True)
    files = written.args[0]
    assert files["pdf"].is_file() and files["csv"].is_file()
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(files["pdf"]).pages)
    assert "Sample Patient" not in text  # de-identified


def test_a_closeup_is_analysed_as_one_and_not_tracked(qtbot, app_window, tmp_path) -> None:
    from core.io import save_rgb

    window, ids, data_dir = app_window
    det, trk = tiny_model_folders(tmp_path / "models")
    window.session.holder.detector, window.session.holder.tracker = det, trk
    mole = tmp_path / "mole.png"
    save_rgb(mole, skin_photo(seed=5))
    visit = ids["visits"][1]
    closeup = window.session.store.import_photo(visit, mole, body_site="back", closeup=True)
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    window.timeline.select_visit(visit)
    with qtbot.waitSignal(window.analysis.analysed, timeout=60000) as analysed:
        window.timeline.analyse_button.click()
    outcome = analysed.args[0]
    assert outcome.photos == 2 and outcome.pairs == 1  # the close-up is not paired
    with Store.open(data_dir) as store:
        [detect] = [a for a in store.list_analyses(closeup.photo.id) if a.kind == "detect"]
        assert detect.closeup_p_malignant is not None
        tracked = [a for a in store.list_analyses(closeup.photo.id) if a.kind == "track"]
        assert tracked == []
    photo = window.session.patient.photo(closeup.photo.id)
    assert photo.closeup and photo.closeup_verdict is not None
    with qtbot.waitSignal(window.photo_panel.loaded, timeout=5000):
        window.photo_panel.show_photo(photo)
    assert "close-up:" in window.photo_panel.title.text()
    visit_item = window.timeline.tree.topLevelItem(1)
    names = [visit_item.child(i).text(0) for i in range(visit_item.childCount())]
    assert names == ["back", "back (close-up)"]
    shot(window, "main_window_closeup.png")


@pytest.mark.qt_no_exception_capture
def test_a_slot_that_raises_shows_an_error_and_the_app_keeps_running(qtbot, app_window) -> None:
    window, ids, _ = app_window
    window.reporter.install()
    try:
        shown = []
        window.reporter.error_shown.connect(shown.append)

        def broken_slot() -> None:
            raise RuntimeError("boom in a slot")

        window.photo_panel.fit_button.clicked.connect(broken_slot)
        window.photo_panel.fit_button.click()
        qtbot.waitUntil(lambda: bool(shown), timeout=3000)
        assert "boom in a slot" in shown[0]
        assert window.reporter.last_dialog.isVisible()
        window.reporter.last_dialog.close()
        # still working: open a photo afterwards
        photo = open_patient_and_photo(qtbot, window, ids)
        assert photo.marks
    finally:
        window.reporter.uninstall()


def test_main_window_screenshot_with_overlay(qtbot, app_window) -> None:
    window, ids, _ = app_window
    open_patient_and_photo(qtbot, window, ids)
    assert window.photo_panel.view._overlay_item is not None
    assert window.status.device_label.text().startswith("Device: CPU")
    assert not window.windowIcon().pixmap(32, 32).isNull()
    image = window.grab().toImage()
    assert image.width() > 1000
    shot(window, "main_window.png")
    # the overlay is drawn: the pixel over the malignant lesion L2 is reddish
    view = window.photo_panel.view
    pt = view.mapTo(window, view.mapFromScene(QPointF(156, 110)))
    color = image.pixelColor(pt)
    assert color.red() > color.green() + 20
    assert np.isfinite(color.redF())


def test_dropping_photos_on_the_window_imports_them(qtbot, app_window, tmp_path, monkeypatch):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    from core.io import save_rgb

    window, ids, data_dir = app_window
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    window.timeline.select_visit(ids["visits"][0])
    dropped = [tmp_path / "abdomen_1.png", tmp_path / "abdomen_2.png"]
    for i, path in enumerate(dropped):
        save_rgb(path, skin_photo(seed=30 + i))
    seen = {}

    def fake_exec(dialog):
        seen["rows"] = dialog.chosen()
        return True

    monkeypatch.setattr(import_dialog.ImportDialog, "exec", fake_exec)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in dropped])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.analysis.imported, timeout=10000) as imported:
        window.dropEvent(event)
    assert [(s, c) for _, s, c in seen["rows"]] == [("abdomen", False), ("abdomen", False)]
    assert len(imported.args[0]) == 2
    with Store.open(data_dir) as store:
        sites = [p.body_site for p in store.list_photos(ids["visits"][0])]
    assert sites == ["back", "abdomen", "abdomen"]


def test_the_status_bar_names_an_opt_in_bfloat16_network(
    qtbot, app_window, tmp_path, monkeypatch
) -> None:
    window, _, _ = app_window
    monkeypatch.setenv("LESIONVIEWER_PRECISION", "bfloat16")
    det, trk = tiny_model_folders(tmp_path / "models")
    window.session.holder.detector, window.session.holder.tracker = det, trk
    window.analysis.load_models()
    qtbot.waitUntil(lambda: "bfloat16" in window.status.device_label.text(), timeout=30000)
    assert window.status.device_label.text().startswith("Device: CPU")
    assert "tiny-random" in window.status.models_label.text()
