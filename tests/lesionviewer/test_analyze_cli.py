"""`lesionviewer analyze`: JSON schema, overlays, several images, bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.io import save_rgb
from lesionviewer.cli import main
from tests.core.detector_fixtures import make_model_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("m") / "detector"
    make_model_folder(folder, seed=3)
    return folder


def _photo(path: Path, h: int = 90, w: int = 140) -> Path:
    rng = np.random.default_rng(1)
    save_rgb(path, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return path


def test_one_image_writes_schema_1_json_and_overlay(model: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "back.png")
    out, overlay = tmp_path / "out.json", tmp_path / "over.png"
    code = main(
        ["analyze", str(photo), "--json", str(out), "--overlay", str(overlay), "--device", "cpu",
         "--model", str(model)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"schema", "image", "model", "lesions"} and doc["schema"] == 1
    assert doc["image"] == {"width": 140, "height": 90}
    meta = json.loads((model / "model.json").read_text())
    assert doc["model"] == {
        "name": meta["name"],
        "version": meta["version"],
        "sha256": meta["sha256"],
    }
    for lesion in doc["lesions"]:
        assert set(lesion) == {"id", "centroid", "bbox", "area_px", "score", "p_malignant"}
        x0, y0, x1, y1 = lesion["bbox"]
        assert 0 <= x0 < x1 <= 140 and 0 <= y0 < y1 <= 90
        assert 0 <= lesion["score"] <= 1 and 0 <= lesion["p_malignant"] <= 1
    from core.io import load_photo

    assert load_photo(overlay).shape == (90, 140, 3)


def test_several_images_write_one_file_each_into_a_folder(model: Path, tmp_path: Path) -> None:
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.jpg", 64, 64)
    code = main(["analyze", str(a), str(b), "--json", str(tmp_path / "out"), "--model", str(model)])
    assert code == 0
    assert json.loads((tmp_path / "out" / "b.json").read_text())["image"]["width"] == 64
    assert (tmp_path / "out" / "a.json").is_file()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.jpg", "missing.jpg: file not found"),
        (lambda d: (d / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish") and d / "bad.png",
         "bad.png:"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "notes.txt:"),
    ],
)  # fmt: skip
def test_bad_photos_exit_2_with_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make, reason: str
) -> None:
    photo = make(tmp_path)
    code = main(["analyze", str(photo), "--json", str(tmp_path / "o.json"), "--model", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and reason in err[0]
    assert not (tmp_path / "o.json").exists()


def test_good_images_still_analysed_next_to_a_bad_one(model: Path, tmp_path: Path) -> None:
    good = _photo(tmp_path / "good.png")
    code = main(
        ["analyze", str(tmp_path / "nope.png"), str(good), "--json", str(tmp_path / "o"),
         "--model", str(model)]
    )  # fmt: skip
    assert code == 2 and (tmp_path / "o" / "good.json").is_file()


def test_bad_model_folder_exits_2(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = _photo(tmp_path / "p.png")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{")
    code = main(["analyze", str(photo), "--json", str(tmp_path / "o.json"), "--model", str(broken)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "broken" in err[0] and "JSON" in err[0]


def test_closeup_reports_the_photographed_lesion_in_photo_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "closeup-detector"
    make_model_folder(folder, seed=3, meta={"inference": {"closeup_side_px": 48}})
    photo = _photo(tmp_path / "closeup.jpg", 300, 400)
    out = tmp_path / "closeup.json"
    args = ["analyze", str(photo), "--json", str(out), "--model", str(folder), "--closeup"]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["image"] == {"width": 400, "height": 300}
    verdict = doc["closeup"]
    assert verdict["analysed_size"] == [48, 36]
    assert 0 <= verdict["p_malignant"] <= 1 and 0 <= verdict["p_lesion"] <= 1
    ids = [lesion["id"] for lesion in doc["lesions"]]
    assert (verdict["lesion_id"] in ids) == (verdict["read_from"] == "region")
    for lesion in doc["lesions"]:
        x0, y0, x1, y1 = lesion["bbox"]
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300
    assert "close-up: " in capsys.readouterr().out  # the verdict, as on the overlay
    # a detector without the setting: one line, exit 2, nothing written
    plain, without = tmp_path / "plain.json", tmp_path / "no-closeup"
    make_model_folder(without, seed=3)
    code = main(["analyze", str(photo), "--json", str(plain), "--model", str(without), "--closeup"])
    assert code == 2 and not plain.exists()
    assert "closeup_side_px" in capsys.readouterr().err.strip()


def test_bfloat16_is_a_choice_and_a_bad_variable_exits_2(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = _photo(tmp_path / "p.png")
    out = {}
    for precision in ("float32", "bfloat16"):
        target = tmp_path / f"{precision}.json"
        args = ["analyze", str(photo), "--json", str(target), "--model", str(model)]
        assert main([*args, "--precision", precision]) == 0
        out[precision] = json.loads(target.read_text())
    assert out["float32"].keys() == out["bfloat16"].keys()  # the same document
    assert out["float32"]["model"] == out["bfloat16"]["model"]
    monkeypatch.setenv("LESIONVIEWER_PRECISION", "half")
    code = main(["analyze", str(photo), "--json", str(tmp_path / "o.json"), "--model", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "LESIONVIEWER_PRECISION" in err[0] and "half" in err[0]
