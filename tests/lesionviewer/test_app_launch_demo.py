"""First run: the demo patient, the headless fallback, and the GUI stall probe."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QTimer

from core.errors import DataError
from lesionviewer.app import launch
from lesionviewer.bench.gui import StallProbe
from lesionviewer.demo import DEMO_RECORD, demo_photos, ensure_demo
from lesionviewer.store import Store
from tests.lesionviewer.app_samples import tiny_model_folders


def test_shipped_demo_photos_are_small_and_paired() -> None:
    photos = demo_photos()
    sites_1 = [site for _, site in photos[1]]
    assert sites_1 and sites_1 == [site for _, site in photos[2]]
    for visit in (1, 2):
        for path, _ in photos[visit]:
            assert path.suffix == ".jpg" and path.stat().st_size < 300_000


def test_demo_photos_missing_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="demo photos missing"):
        demo_photos(tmp_path)


def test_demo_patient_is_analysed_and_tracked_once(tmp_path) -> None:
    det, trk = tiny_model_folders(tmp_path / "models")
    said: list[str] = []
    data_dir, patient_id = ensure_demo(
        tmp_path / "data", device="cpu", detector=det, tracker=trk, say=said.append
    )
    with Store.open(data_dir) as store:
        record = store.open_patient(patient_id)
        assert record.patient.record_number == DEMO_RECORD
        assert len(record.visits) == 2
        photos = [p for v in record.visits for p in record.photos[v.id]]
        assert len(photos) == 4 and {p.body_site for p in photos} == {"back", "left leg"}
        kinds = [a.kind for p in photos for a in store.list_analyses(p.id)]
    assert kinds.count("detect") == 4 and kinds.count("track") == 4  # 2 pairs, seen from both
    assert any("demo ready" in s for s in said)
    again = ensure_demo(tmp_path / "data", device="cpu", detector=det, tracker=trk, say=said.append)
    assert again == (data_dir, patient_id)


def test_demo_without_models_still_opens_with_photos(tmp_path) -> None:
    said: list[str] = []
    missing = tmp_path / "no-such-model"
    data_dir, patient_id = ensure_demo(
        tmp_path / "data", device="cpu", detector=missing, tracker=missing, say=said.append
    )
    with Store.open(data_dir) as store:
        assert len(store.open_patient(patient_id).visits) == 2
    assert any("could not be analysed" in s for s in said)


def test_no_display_falls_back_to_analyze_and_says_so(monkeypatch, capsys) -> None:
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(launch.sys, "platform", "linux")
    assert not launch.has_display()
    calls = []
    monkeypatch.setattr("lesionviewer.cli.main", lambda argv: calls.append(argv) or 0)

    class Args:
        demo, data_dir, device = True, None, "cpu"

    assert launch.launch(Args()) == 0
    err = capsys.readouterr().err
    assert "no display" in err and "analysing the bundled photo" in err
    argv = calls[0]
    assert argv[:2] == ["--device", "cpu"] and argv[2] == "analyze" and argv[3].endswith(".jpg")
    assert argv[argv.index("--json") + 1].endswith(".json")
    assert argv[argv.index("--overlay") + 1].endswith("_overlay.png")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert launch.has_display()


def test_stall_probe_sees_a_blocked_event_loop(qtbot) -> None:
    probe = StallProbe()
    probe.start()
    QTimer.singleShot(30, lambda: time.sleep(0.2))  # a slot that blocks the GUI thread
    qtbot.wait(400)
    stall = probe.stop()
    assert 150 <= stall < 2000
    probe.start()
    qtbot.wait(100)
    assert probe.stop() < 150
