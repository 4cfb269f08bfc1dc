"""`lesionviewer analyze` / `track` on bad input: exit 2, exactly one stderr line naming the
file and the reason (no traceback, no decoder chatter), and no output file left behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from core.model_folder import save_model_folder
from core.models.registry import build_model
from lesionviewer.cli import main
from tests.conftest import REPO_ROOT

TRACKER_KWARGS = {
    "widths": [8, 16, 16],
    "depths": [1, 1, 1],
    "atrous_dilations": [2, 2],
    "feature_dim": 8,
    "estimator_width": 16,
    "correlation_radius": 2,
    "working_size": 128,
}
DETECTOR_KWARGS = {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "decoder_widths": [8, 8, 8]}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny random detector and tracker folders (the machinery, not the shipped models)."""
    root = tmp_path_factory.mktemp("models")
    for name, arch, kwargs in (
        ("det", "lesion_fcn", DETECTOR_KWARGS),
        ("trk", "lesion_tracker", TRACKER_KWARGS),
    ):
        meta = {"name": f"{name}-test", "version": "0"}
        save_model_folder(root / name, build_model(arch, **kwargs), arch=arch,
                          arch_kwargs=kwargs, meta=meta)  # fmt: skip
    return root / "det", root / "trk"


def _photo(path: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    image = np.full((96, 128, 3), (200, 160, 140), np.uint8)
    for _ in range(3):
        centre = tuple(int(v) for v in rng.integers(20, 80, 2))
        cv2.circle(image, centre, 6, (80, 50, 40), -1)
    image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path, quality=90)
    return path


def _garbled_jpeg(path: Path) -> Path:
    """Random bytes over the middle of the scan data. (JPEG has no checksum: damage that
    happens to decode as valid codes cannot be seen; this one cannot decode cleanly.)"""
    data = bytearray(_photo(path.with_name("clean.jpg")).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 600] = np.random.default_rng(2).bytes(600)
    path.write_bytes(bytes(data))
    return path


def _truncated_jpeg(path: Path) -> Path:
    data = _photo(path.with_name("whole.jpg")).read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _heic(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
    return path


def _bad_png_crc(path: Path) -> Path:
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[data.find(b"IDAT") + 6] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _tiff_with_cut_exif(path: Path) -> Path:
    """A TIFF cut inside its directory: Pillow warns about EXIF on the way to refusing it."""
    cv2.imwrite(str(path), np.zeros((64, 64, 3), np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# name of the bad photo, how to make it, words its one-line reason must hold
BAD_PHOTOS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing.jpg", lambda p: p, "file not found"),
    ("visit", _folder, "is a folder"),
    ("garbled.jpg", _garbled_jpeg, "corrupt JPEG data"),
    ("cut.jpg", _truncated_jpeg, "truncated JPEG"),
    ("empty.png", _empty, "empty file"),
    ("IMG_0001.HEIC", _heic, "HEIC"),
    ("crc.png", _bad_png_crc, "CRC error"),
    ("cut.tif", _tiff_with_cut_exif, "not a readable image"),
]


def _one_error_line(capfd: pytest.CaptureFixture[str]) -> str:
    """The single stderr line (also what C libraries wrote to fd 2), checked for tracebacks."""
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("lesionviewer: ")
    return lines[0]


def _no_outputs(folder: Path, *names: str) -> None:
    for name in names:
        assert not (folder / name).exists(), f"{name} left behind"
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def _tampered(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    weights = target / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    return target


def _malformed_meta(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    text = (target / "model.json").read_text()
    (target / "model.json").write_text(text[: len(text) // 2])
    return target


def _meta_not_object(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    (target / "model.json").write_text("[1, 2, 3]\n")
    return target


def _no_weights(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    (target / "weights.safetensors").unlink()
    return target


BAD_MODELS: list[tuple[str, Callable[[Path, Path], Path], str]] = [
    ("tampered", _tampered, "SHA-256"),
    ("halfjson", _malformed_meta, "not valid JSON"),
    ("listjson", _meta_not_object, "JSON object"),
    ("noweights", _no_weights, "weights file weights.safetensors missing"),
    ("nowhere", lambda source, target: target, "model folder not found"),
]


# ------------------------------------------------------------------------ analyze
@pytest.mark.parametrize(("name", "make", "reason"), BAD_PHOTOS, ids=[c[0] for c in BAD_PHOTOS])
def test_analyze_bad_photo(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str], name, make, reason
) -> None:
    photo = make(tmp_path / name)
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        ["analyze", str(photo), "--json", str(out / "o.json"), "--overlay", str(out / "o.png"),
         "--device", "cpu", "--model", str(models[0])]
    )  # fmt: skip
    line = _one_error_line(capfd)
    assert code == 2
    assert f"{name}: " in line and reason in line
    _no_outputs(out, "o.json", "o.png")


@pytest.mark.parametrize(("name", "make", "reason"), BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_analyze_bad_model_folder(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str], name, make, reason
) -> None:
    folder = make(models[0], tmp_path / name)
    code = main(
        ["analyze", str(_photo(tmp_path / "p.jpg")), "--json", str(tmp_path / "o.json"),
         "--device", "cpu", "--model", str(folder)]
    )  # fmt: skip
    line = _one_error_line(capfd)
    assert code == 2 and name in line and reason in line
    _no_outputs(tmp_path, "o.json")


def test_analyze_unwritable_json_path(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file where a folder was expected\n")
    code = main(
        ["analyze", str(_photo(tmp_path / "p.jpg")), "--json", str(blocker / "o.json"),
         "--device", "cpu", "--model", str(models[0])]
    )  # fmt: skip
    line = _one_error_line(capfd)
    assert code == 2 and "report.txt" in line and "cannot write" in line
    _no_outputs(tmp_path, "o.json")


def test_analyze_unwritable_overlay_leaves_no_json(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run that fails part-way leaves no half of its outputs behind."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        ["analyze", str(_photo(tmp_path / "p.jpg")), "--json", str(tmp_path / "o.json"),
         "--overlay", str(blocker / "o.png"), "--device", "cpu", "--model", str(models[0])]
    )  # fmt: skip
    line = _one_error_line(capfd)
    assert code == 2 and "cannot write" in line
    _no_outputs(tmp_path, "o.json")


# -------------------------------------------------------------------------- track
def _track(tmp_path: Path, models, a: Path, b: Path, *extra: str) -> int:
    det, trk = models
    return main(
        ["track", str(a), str(b), "--json", str(tmp_path / "t.json"), "--device", "cpu",
         "--detector", str(det), "--tracker", str(trk), *extra]
    )  # fmt: skip


@pytest.mark.parametrize(("name", "make", "reason"), BAD_PHOTOS, ids=[c[0] for c in BAD_PHOTOS])
@pytest.mark.parametrize("which", ["A", "B"])
def test_track_bad_photo(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str], name, make, reason, which
) -> None:
    bad, good = make(tmp_path / name), _photo(tmp_path / "good.jpg")
    a, b = (bad, good) if which == "A" else (good, bad)
    code = _track(tmp_path, models, a, b, "--overlay", str(tmp_path / "t.png"))
    line = _one_error_line(capfd)
    assert code == 2 and f"{name}: " in line and reason in line
    _no_outputs(tmp_path, "t.json", "t.png")


BAD_POINTS = [
    ("garbled", "[[1, 2], [3", "not a JSON file"),
    ("object", '{"x": 1, "y": 2}', "list of [x, y]"),
    ("flat", "[1, 2, 3, 4]", "list of [x, y]"),
    ("triples", "[[1, 2, 3]]", "list of [x, y]"),
    ("strings", '[["10", "20"]]', "list of [x, y]"),
    ("booleans", "[[true, false]]", "list of [x, y]"),
    ("nan", "[[NaN, 2]]", "finite"),
    ("latin1", None, "not a JSON file"),
]


@pytest.mark.parametrize(("case", "text", "reason"), BAD_POINTS, ids=[c[0] for c in BAD_POINTS])
def test_track_bad_points_file(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str], case, text, reason
) -> None:
    points = tmp_path / f"{case}-points.json"
    if text is None:
        points.write_bytes(b"[[1, 2], \xe9]")
    else:
        points.write_text(text)
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    code = _track(tmp_path, models, a, b, "--points", str(points))
    line = _one_error_line(capfd)
    assert code == 2 and f"{case}-points.json: " in line and reason in line
    _no_outputs(tmp_path, "t.json")


def test_track_missing_points_file(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str]
) -> None:
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    code = _track(tmp_path, models, a, b, "--points", str(tmp_path / "pts.json"))
    line = _one_error_line(capfd)
    assert code == 2 and "pts.json: file not found" in line
    _no_outputs(tmp_path, "t.json")


@pytest.mark.parametrize(("name", "make", "reason"), BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
@pytest.mark.parametrize("role", ["detector", "tracker"])
def test_track_bad_model_folder(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str], name, make, reason, role
) -> None:
    det, trk = models
    det, trk = (make(det, tmp_path / name), trk) if role == "detector" else (
        det, make(trk, tmp_path / name))  # fmt: skip
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    code = _track(tmp_path, (det, trk), a, b, "--overlay", str(tmp_path / "t.png"))
    line = _one_error_line(capfd)
    assert code == 2 and name in line and reason in line
    _no_outputs(tmp_path, "t.json", "t.png")


def test_track_unwritable_json_path(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("a file where a folder was expected\n")
    det, trk = models
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    code = main(
        ["track", str(a), str(b), "--json", str(blocker / "t.json"), "--device", "cpu",
         "--detector", str(det), "--tracker", str(trk)]
    )  # fmt: skip
    line = _one_error_line(capfd)
    assert code == 2 and "report.txt" in line and "cannot write" in line


def test_track_unwritable_overlay_leaves_no_json(
    tmp_path: Path, models, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    code = _track(tmp_path, models, a, b, "--overlay", str(blocker / "t.png"))
    line = _one_error_line(capfd)
    assert code == 2 and "cannot write" in line
    _no_outputs(tmp_path, "t.json")


# ---------------------------------------------------------------- real process
def test_real_process_exit_code_and_one_stderr_line_per_bad_photo(tmp_path: Path, models) -> None:
    """The entry point as a process (no pytest warning capture): exit status and stderr, with
    neither decoder chatter nor Pillow's EXIF warning around the one-line reasons."""
    garbled = _garbled_jpeg(tmp_path / "garbled.jpg")
    cut = _tiff_with_cut_exif(tmp_path / "cut.tif")
    done = subprocess.run(
        [sys.executable, "-m", "lesionviewer.cli", "analyze", str(garbled), str(cut),
         "--json", str(tmp_path / "out"), "--device", "cpu", "--model", str(models[0])],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lesionviewer: garbled.jpg: corrupt JPEG data (premature end of data segment)",
        "lesionviewer: cut.tif: not a readable image (format .tif unknown or corrupt)",
    ]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert done.stdout == ""
