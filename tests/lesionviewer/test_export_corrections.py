"""`lesionviewer export-corrections`: corrections as a labelled folder training can read."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest

from lesionviewer.cli import main
from tests.lesionviewer.report_samples import NAME, filled_store


def _corrected_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store, _, photos = filled_store(data, tmp_path)
    obs_b = store.list_observations(photos[1])
    by_label = {o.lesion_label: o for o in obs_b}
    store.set_class(by_label["L2"].id, "malignant")
    store.update_lesion(by_label["L2"].lesion_id, biopsy_result="bcc")
    store.delete_observation(by_label["L3"].id, reason="hair")
    store.close()
    return data


def test_export_writes_crops_masks_and_labels(tmp_path: Path, capsys) -> None:
    data = _corrected_store(tmp_path)
    out = tmp_path / "corrections"
    assert main(["export-corrections", "--data-dir", str(data), "--out", str(out)]) == 0
    assert "2 corrected lesions and 1 rejected" in capsys.readouterr().out
    with open(out / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_label = {row["lesion_label"]: row for row in rows}
    assert set(by_label) == {"L2", "L4"}
    assert by_label["L2"]["diagnostic"] == "BCC" and by_label["L2"]["malignant"] == "1"
    assert by_label["L2"]["class_source"] == "biopsy"
    assert by_label["L4"]["diagnostic"] == "NEV" and by_label["L4"]["class_source"] == "clinician"
    assert by_label["L4"]["source"] == "manual"
    manual = by_label["L4"]
    crop = cv2.imread(str(out / manual["file"]))
    mask = cv2.imread(str(out / manual["file"]).replace(".png", "_mask.png"), 0)
    assert crop.shape[:2] == mask.shape[:2]
    outline = json.loads(manual["outline"])
    x0, y0 = min(p[0] for p in outline), min(p[1] for p in outline)
    assert mask[int(y0) + 2, int(x0) + 2] == 255 and mask[0, 0] == 0
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels["lesions"]) == 2 and len(labels["rejected"]) == 1
    assert (out / labels["rejected"][0]["file"]).is_file()
    assert NAME not in (out / "labels.csv").read_text()


def test_training_reader_accepts_the_export(tmp_path: Path) -> None:
    real_lesions = pytest.importorskip("training.sources.real_lesions")
    data = _corrected_store(tmp_path)
    out = tmp_path / "corrections"
    assert main(["export-corrections", "--data-dir", str(data), "--out", str(out)]) == 0
    folder = real_lesions.read_lesion_folder(out)
    assert len(folder) == 2
    base = pytest.importorskip("training.sources.base")
    assert sorted(folder.labels()) == sorted([base.BENIGN, base.MALIGNANT])
    patch = folder[0]
    assert patch.image.ndim == 3 and patch.mask.any()


def test_export_of_missing_store_fails_with_message(tmp_path: Path, capsys) -> None:
    code = main(["export-corrections", "--data-dir", str(tmp_path / "none"), "--out", "x"])
    assert code == 2
    assert "not found" in capsys.readouterr().err
