"""`lesionviewer track A B --json OUT [--points] [--overlay]`: output schema and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.io import save_rgb
from core.model_folder import save_model_folder
from core.models.registry import build_model
from lesionviewer.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    kwargs = {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "decoder_widths": [8, 8, 8]}
    detector = build_model("lesion_fcn", **kwargs)
    save_model_folder(
        root / "det",
        detector,
        arch="lesion_fcn",
        arch_kwargs=kwargs,
        meta={"name": "det-test", "version": "0"},
    )
    tkw = {
        "widths": [8, 16, 16],
        "depths": [1, 1, 1],
        "atrous_dilations": [2, 2],
        "feature_dim": 8,
        "estimator_width": 16,
        "correlation_radius": 2,
        "working_size": 128,
    }
    tracker = build_model("lesion_tracker", **tkw)
    save_model_folder(
        root / "trk",
        tracker,
        arch="lesion_tracker",
        arch_kwargs=tkw,
        meta={"name": "trk-test", "version": "0"},
    )
    return root / "det", root / "trk"


def photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    image = np.full((120, 160, 3), (200, 160, 140), np.uint8)
    for _ in range(4):
        cv2.circle(image, tuple(int(v) for v in rng.integers(20, 100, 2)), 6, (80, 50, 40), -1)
    save_rgb(path, image)
    return path


def test_track_writes_the_schema_points_and_overlay(tmp_path: Path, folders) -> None:
    det, trk = folders
    a, b = photo(tmp_path / "a.png", 1), photo(tmp_path / "b.png", 2)
    pts = tmp_path / "pts.json"
    pts.write_text("[[10, 20], [100.5, 60]]")
    out, overlay = tmp_path / "out.json", tmp_path / "ov.png"
    code = main(
        [
            "track",
            str(a),
            str(b),
            "--json",
            str(out),
            "--points",
            str(pts),
            "--overlay",
            str(overlay),
            "--device",
            "cpu",
            "--detector",
            str(det),
            "--tracker",
            str(trk),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and len(doc["points"]) == 2
    for key in ("lesions_a", "lesions_b", "matches", "new_in_b", "gone_from_a"):
        assert isinstance(doc[key], list)
    assert doc["model"]["tracker"]["name"] == "trk-test"
    ids_b = {le["id"] for le in doc["lesions_b"]}
    assert {m["b"] for m in doc["matches"]} | set(doc["new_in_b"]) == ids_b
    image = cv2.imread(str(overlay))
    assert image is not None and image.shape[1] == 320  # A and B side by side


@pytest.mark.parametrize("case", ["missing photo", "bad points"])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, folders, capsys, case) -> None:
    det, trk = folders
    a, b = photo(tmp_path / "a.png", 1), tmp_path / "b.png"
    args = [
        "track",
        str(a),
        str(b),
        "--json",
        str(tmp_path / "o.json"),
        "--device",
        "cpu",
        "--detector",
        str(det),
        "--tracker",
        str(trk),
    ]
    if case == "bad points":
        photo(b, 2)
        bad = tmp_path / "pts.json"
        bad.write_text('{"x": 1}')
        args += ["--points", str(bad)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert ("b.png" in err[0]) if case == "missing photo" else ("pts.json" in err[0])
