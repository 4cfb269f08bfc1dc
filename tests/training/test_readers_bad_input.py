"""Training readers on malformed tables and folders: a DataError naming the file (and the
line), never a KeyError/AttributeError from deep inside, never a silently wrong record."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import DataError
from training.sources.real_bodies import RealBodyFolder
from training.sources.real_lesions import read_lesion_folder
from training.sources.splits import pad_ufes_holdout
from training.synthesis.datasets import FolderDetectionDataset, FolderPairDataset

HEADER = "file,img_id,patient_id,diagnostic,diameter_1_mm,diameter_2_mm"


def _photo(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((size, size, 3), (130, 150, 190), np.uint8)  # BGR skin
    cv2.circle(image, (size // 2, size // 2), size // 6, (50, 60, 90), -1)
    cv2.imwrite(str(path), image)
    return path


def _pad_folder(root: Path, lines: list[str], *, encoding: str = "utf-8") -> Path:
    """A PAD-UFES-like folder: photos images/p0.png..p3.png and labels.csv of ``lines``."""
    for i in range(4):
        _photo(root / "images" / f"p{i}.png")
    (root / "labels.csv").write_bytes("\n".join(lines).encode(encoding) + b"\n")
    return root


def _row(i: int, dx: str = "NEV", d1: str = "5.0", patient: str | None = None) -> str:
    return f"images/p{i}.png,p{i}.png,{patient if patient is not None else i},{dx},{d1},"


# --------------------------------------------------------------- lesion tables
def test_utf8_bom_header_is_read(tmp_path: Path) -> None:
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0), _row(1, "MEL")], encoding="utf-8-sig")
    assert (root / "labels.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    folder = read_lesion_folder(root, check_photos=False)
    assert len(folder) == 2 and folder.records[0].group == "patient:0"


def test_semicolon_delimiter_is_named(tmp_path: Path) -> None:
    lines = [HEADER.replace(",", ";"), _row(0).replace(",", ";")]
    with pytest.raises(DataError, match=r"labels\.csv: missing column.*separated by ';'"):
        read_lesion_folder(_pad_folder(tmp_path / "pad", lines))


def test_missing_header_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels\.csv: missing column"):
        read_lesion_folder(_pad_folder(tmp_path / "pad", [_row(0), _row(1)]))


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    lines = [HEADER, _row(0), "", "", _row(1, "XYZ")]  # the bad row is on line 5
    with pytest.raises(DataError, match=r"labels\.csv: line 5: unknown diagnosis 'XYZ'"):
        read_lesion_folder(_pad_folder(tmp_path / "pad", lines))


def test_non_numeric_diameter_is_refused_not_dropped(tmp_path: Path) -> None:
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0), _row(1, d1="about 6")])
    with pytest.raises(DataError, match=r"line 3: diameter_1_mm 'about 6' is not a number"):
        read_lesion_folder(root)
    folder = read_lesion_folder(root, skip_bad=True, check_photos=False)
    assert len(folder) == 1 and "diameter_1_mm" in folder.skipped[0][1]


def test_empty_and_nan_diameters_mean_unknown(tmp_path: Path) -> None:
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0, d1=""), _row(1, d1="nan")])
    folder = read_lesion_folder(root, check_photos=False)
    assert [r.diameter_mm for r in folder.records] == [None, None]


def test_duplicate_photo_rows_are_refused(tmp_path: Path) -> None:
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0), _row(1), _row(0, "MEL")])
    with pytest.raises(
        DataError, match=r"line 4: 'images/p0\.png' listed twice \(first on line 2\)"
    ):
        read_lesion_folder(root)


def test_duplicate_isic_image_ids_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "isic"
    _photo(root / "ISIC_1.jpg")
    (root / "meta.csv").write_text("lesion_id,image_id,dx\nL1,ISIC_1,nv\nL2,ISIC_1,mel\n")
    with pytest.raises(DataError, match=r"meta\.csv: line 3: image_id 'ISIC_1' listed twice"):
        read_lesion_folder(root)


def test_short_rows_and_empty_cells_are_named(tmp_path: Path) -> None:
    """A row cut short gives None cells; they used to raise AttributeError."""
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0), "images/p1.png,p1.png"])
    with pytest.raises(DataError, match=r"line 3: unknown diagnosis None"):
        read_lesion_folder(root)
    root = _pad_folder(tmp_path / "pad2", [HEADER, _row(0), _row(1, patient="")])
    with pytest.raises(DataError, match=r"labels\.csv: line 3: empty patient_id"):
        read_lesion_folder(root)
    root = _pad_folder(tmp_path / "pad3", [HEADER, _row(0), ",,7,NEV,5.0,"])
    with pytest.raises(DataError, match=r"labels\.csv: line 3: empty file/img_id"):
        read_lesion_folder(root)


def test_latin1_table_is_named(tmp_path: Path) -> None:
    root = _pad_folder(tmp_path / "pad", [HEADER, _row(0) + "\u00e9"], encoding="latin-1")
    with pytest.raises(DataError, match=r"labels\.csv: cannot read table"):
        read_lesion_folder(root)


def test_holdout_split_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text(f"{HEADER}\n{_row(0)}\n\n{_row(1, patient='')}\n")
    with pytest.raises(DataError, match=r"labels\.csv: line 4: empty patient_id"):
        pad_ufes_holdout(table)


# ------------------------------------------------------------------ body scale.csv
def _body_folder(root: Path, scale: str) -> Path:
    _photo(root / "back.png", 48)
    _photo(root / "leg.png", 48)
    (root / "scale.csv").write_text(scale)
    return root


@pytest.mark.parametrize(
    ("scale", "reason"),
    [
        ("file;mm_per_px\nback.png;0.2\n", r"missing column\(s\) file, mm_per_px"),
        ("file,mm_per_px\nback.png,0.2\n\nleg.png,wide\n", r"line 4: mm_per_px 'wide' is not"),
        ("file,mm_per_px\nback.png,0.2\nback.png,0.3\n", r"line 3: 'back\.png' listed twice"),
        ("file,mm_per_px\n,0.2\n", r"line 2: empty file name"),
        ("file,mm_per_px\nback.png,nan\n", r"line 2: mm_per_px nan out of range"),
    ],
    ids=["semicolons", "text", "duplicate", "empty-name", "nan"],
)
def test_body_scale_table_errors_name_file_and_line(
    tmp_path: Path, scale: str, reason: str
) -> None:
    with pytest.raises(DataError, match=f"scale\\.csv: {reason}"):
        RealBodyFolder(_body_folder(tmp_path / "bodies", scale))


# ------------------------------------------------------- `lesion-train synth` output
def _detection_folder(root: Path, manifest: object, *, label_size: int = 32) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / "000000.png"), np.zeros((32, 32, 3), np.uint8))
    cv2.imwrite(str(root / "labels" / "000000_class.png"), np.zeros((label_size,) * 2, np.uint8))
    instances = np.zeros((32, 32), np.uint16)
    cv2.imwrite(str(root / "labels" / "000000_instances.png"), instances)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


SAMPLE = {
    "image": "images/000000.png",
    "class_map": "labels/000000_class.png",
    "instance_map": "labels/000000_instances.png",
}


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ([SAMPLE], "must hold a JSON object, not list"),
        ({"schema": 1, "kind": "detection", "samples": ["000000"]}, "sample 0 is not a JSON"),
        ({"schema": 2, "kind": "detection", "samples": []}, "unsupported schema 2"),
        ({"schema": 1, "kind": "pairs", "samples": []}, "holds 'pairs' samples"),
        ({"schema": 1, "kind": "detection"}, "no sample list"),
    ],
    ids=["list", "string-sample", "schema", "kind", "no-samples"],
)
def test_malformed_manifest_is_named(tmp_path: Path, manifest: object, reason: str) -> None:
    root = _detection_folder(tmp_path / "synth", manifest)
    with pytest.raises(DataError, match=f"manifest\\.json: {reason}"):
        FolderDetectionDataset(root)


def test_truncated_manifest_is_named(tmp_path: Path) -> None:
    root = _detection_folder(tmp_path / "synth", {})
    (root / "manifest.json").write_text('{"schema": 1, "kind": "detec')
    with pytest.raises(DataError, match=r"manifest\.json: unreadable manifest"):
        FolderDetectionDataset(root)


def test_label_of_another_size_is_named(tmp_path: Path) -> None:
    manifest = {"schema": 1, "kind": "detection", "samples": [SAMPLE]}
    dataset = FolderDetectionDataset(_detection_folder(tmp_path / "s", manifest, label_size=16))
    with pytest.raises(DataError, match=r"manifest\.json: sample 0: images and labels differ"):
        dataset[0]


def _pair_folder(root: Path, flow: np.ndarray) -> Path:
    for sub in ("images", "labels", "flow", "valid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files = {
        "image_a": "images/000000_a.png",
        "image_b": "images/000000_b.png",
        "class_map_a": "labels/000000_a_class.png",
        "class_map_b": "labels/000000_b_class.png",
        "instance_map_a": "labels/000000_a_instances.png",
        "instance_map_b": "labels/000000_b_instances.png",
        "flow": "flow/000000.npy",
        "valid": "valid/000000.png",
    }
    for key, name in files.items():
        if key.startswith("image"):
            cv2.imwrite(str(root / name), np.zeros((24, 32, 3), np.uint8))
        elif key.startswith("instance"):
            cv2.imwrite(str(root / name), np.zeros((24, 32), np.uint16))
        elif key != "flow":
            cv2.imwrite(str(root / name), np.zeros((24, 32), np.uint8))
    np.save(root / files["flow"], flow)
    manifest = {"schema": 1, "kind": "pairs", "samples": [{"index": 0, **files}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_pair_folder_reads_a_good_flow(tmp_path: Path) -> None:
    item = FolderPairDataset(_pair_folder(tmp_path / "p", np.zeros((24, 32, 2), np.float32)))[0]
    assert item["flow"].shape == (2, 24, 32)


@pytest.mark.parametrize(
    ("flow", "reason"),
    [
        (np.zeros((24, 32), np.float32), r"flow shape \(24, 32\) does not match"),
        (np.zeros((32, 24, 2), np.float32), r"flow shape \(32, 24, 2\) does not match"),
        (np.zeros((2, 24, 32), np.float32), r"flow shape \(2, 24, 32\) does not match"),
        (np.zeros((24, 32, 2), np.int64), "flow must hold floats, not int64"),
        (np.array([{"x": 1}], dtype=object), "missing or unreadable flow"),
    ],
    ids=["no-channels", "transposed", "channels-first", "integers", "pickled-object"],
)
def test_pair_flow_of_wrong_shape_or_type_is_named(
    tmp_path: Path, flow: np.ndarray, reason: str
) -> None:
    dataset = FolderPairDataset(_pair_folder(tmp_path / "p", flow))
    with pytest.raises(DataError, match=f"000000\\.npy: {reason}"):
        dataset[0]


def test_pair_flow_file_truncated(tmp_path: Path) -> None:
    root = _pair_folder(tmp_path / "p", np.zeros((24, 32, 2), np.float32))
    data = (root / "flow" / "000000.npy").read_bytes()
    (root / "flow" / "000000.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"000000\.npy: missing or unreadable flow"):
        FolderPairDataset(root)[0]
