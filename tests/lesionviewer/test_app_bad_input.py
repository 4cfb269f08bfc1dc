"""The app on bad photos: importing a folder with damaged or unsupported files shows one
message naming each refused file and its reason, imports every good one, and stores
nothing for the bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.io import save_rgb
from lesionviewer.app import import_dialog
from lesionviewer.app.analysis_jobs import ImportProblems, import_photos
from lesionviewer.store import Store
from tests.lesionviewer.app_samples import skin_photo
from tests.lesionviewer.test_app_window import app_window  # noqa: F401 (fixture)


def _garbled_jpeg(path: Path) -> Path:
    save_rgb(path.with_name("source.jpg"), skin_photo(seed=40))
    data = bytearray(path.with_name("source.jpg").read_bytes())
    path.with_name("source.jpg").unlink()
    data[len(data) // 2 : len(data) // 2 + 600] = np.random.default_rng(4).bytes(600)
    path.write_bytes(bytes(data))
    return path


def _heic(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(300))
    return path


def _stored_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "photos").rglob("*") if p.is_file()}


def test_folder_with_bad_photos_names_each_and_imports_the_rest(
    qtbot,
    app_window,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, ids, data_dir = app_window
    window.patients.select_row(0)
    qtbot.waitUntil(lambda: window.session.patient is not None, timeout=3000)
    incoming = tmp_path / "phone"
    incoming.mkdir()
    _garbled_jpeg(incoming / "b_chest.jpg")  # sorted between the good ones
    _heic(incoming / "c_IMG_0042.HEIC")
    save_rgb(incoming / "a_back.png", skin_photo(seed=41))
    save_rgb(incoming / "d_left arm.png", skin_photo(seed=42))
    visit_id = ids["visits"][1]
    with Store.open(data_dir) as store:
        before = {p.id for p in store.list_photos(visit_id)}
    files_before = _stored_files(data_dir)

    def fake_exec(dialog) -> bool:
        dialog.add_paths([incoming])
        return True

    monkeypatch.setattr(import_dialog.ImportDialog, "exec", fake_exec)
    window.timeline.select_visit(visit_id)
    errors: list[str] = []
    window.reporter.error_shown.connect(errors.append)
    window.timeline.import_button.click()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)

    message = errors[0]
    assert message.startswith("2 of 4 photos not imported")
    assert "b_chest.jpg: corrupt JPEG data" in message
    assert "c_IMG_0042.HEIC: unsupported file type .heic" in message
    assert "a_back.png" not in message and "d_left arm.png" not in message
    with Store.open(data_dir) as store:
        new = [p for p in store.list_photos(visit_id) if p.id not in before]
    assert sorted(p.original_name for p in new) == ["a_back.png", "d_left arm.png"]
    assert len(_stored_files(data_dir) - files_before) == 2  # nothing of the bad ones
    window.reporter.last_dialog.close()


def test_import_job_keeps_going_after_a_bad_file(tmp_path: Path) -> None:
    """The worker job itself: refused files are collected, good ones after them stored."""
    data_dir = tmp_path / "data"
    with Store.open(data_dir) as store:
        visit_id = store.add_visit(store.add_patient("Sample Patient").id, "2024-01-02").id
    bad = _garbled_jpeg(tmp_path / "bad.jpg")
    good = tmp_path / "good.png"
    save_rgb(good, skin_photo(seed=43))
    files = ((bad, "back", False), (good, "chest", True))
    with pytest.raises(ImportProblems) as info:
        import_photos(data_dir, visit_id, files, lambda *a: None, lambda: False)
    assert [p.path.name for p in info.value.problems] == ["bad.jpg"]
    assert len(info.value.imported_ids) == 1
    with Store.open(data_dir) as store:
        assert [(p.body_site, p.closeup) for p in store.list_photos(visit_id)] == [("chest", True)]


def test_dropped_heic_file_is_listed_so_its_refusal_is_seen(tmp_path: Path) -> None:
    heic = _heic(tmp_path / "IMG_0001.HEIC")
    (tmp_path / "notes.txt").write_text("not a photo")
    assert import_dialog.photo_files([heic]) == [heic]
    assert import_dialog.photo_files([tmp_path]) == [heic]  # the folder: photos only
