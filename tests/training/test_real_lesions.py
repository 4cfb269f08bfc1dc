"""Readers of real lesion folders: three layouts, bad inputs, skip-and-report, masks, cache."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import DataError
from training.sources.base import BENIGN, MALIGNANT
from training.sources.real_lesions import CLASS_FOLDERS, ISIC, PAD_UFES, read_lesion_folder


def _photo(path: Path, colour=(190, 150, 130), lesion=(90, 60, 50), size=96) -> Path:
    """A skin-coloured photo with a dark round lesion in the middle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = colour
    cv2.circle(image, (size // 2 + 3, size // 2 - 2), size // 6, lesion, -1)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _table(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pad(root: Path, diagnoses=("NEV", "MEL", "BCC")) -> Path:
    rows = []
    for i, dx in enumerate(diagnoses):
        _photo(root / "images" / f"PAT_{i}_1_{i}.jpg")
        rows.append(
            {
                "file": f"images/PAT_{i}_1_{i}.jpg",
                "img_id": f"PAT_{i}_1_{i}.png",
                "patient_id": str(i),
                "diagnostic": dx,
                "malignant": str(int(dx in ("MEL", "BCC", "SCC"))),
                "diameter_1_mm": "6.0",
                "diameter_2_mm": "",
            }
        )
    _table(root / "labels.csv", rows)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_pad_ufes_layout(tmp_path: Path, cache: Path) -> None:
    folder = read_lesion_folder(_pad(tmp_path / "pad"), cache_folder=cache)
    assert folder.layout == PAD_UFES
    assert len(folder) == 3
    assert folder.labels() == [BENIGN, MALIGNANT, MALIGNANT]
    patch = folder[0]
    assert patch.diagnosis == "NEV" and patch.diameter_mm == 6.0
    assert patch.image.dtype == np.uint8 and patch.image.shape[:2] == patch.mask.shape
    # the crop keeps skin around the lesion (about one radius each side)
    assert 0.1 < patch.mask.mean() < 0.5
    assert not patch.mask[0].any() and not patch.mask[-1].any()


def test_isic_layout_in_subfolders(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "ham"
    _photo(root / "part_1" / "ISIC_0001.jpg")
    _photo(root / "part_2" / "ISIC_0002.jpg")
    _table(
        root / "HAM10000_metadata.csv",
        [
            {"lesion_id": "HAM_1", "image_id": "ISIC_0001", "dx": "nv"},
            {"lesion_id": "HAM_2", "image_id": "ISIC_0002", "dx": "mel"},
        ],
    )
    folder = read_lesion_folder(root, cache_folder=cache)
    assert folder.layout == ISIC
    assert [r.diagnosis for r in folder.records] == ["NV", "MEL"]
    assert folder.labels() == [BENIGN, MALIGNANT]
    assert folder[1].mask.any()


def test_class_folders_with_given_mask(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "dermofit"
    _photo(root / "BCC" / "B1" / "B1.png")
    _photo(root / "ML" / "M1" / "M1.png")
    given = np.zeros((96, 96), np.uint8)
    given[10:30, 20:50] = 255
    cv2.imwrite(str(root / "ML" / "M1" / "M1mask.png"), given)
    folder = read_lesion_folder(root, cache_folder=cache)
    assert folder.layout == CLASS_FOLDERS
    assert sorted(r.diagnosis for r in folder.records) == ["BCC", "ML"]
    ml = next(i for i, r in enumerate(folder.records) if r.diagnosis == "ML")
    image, mask = folder.full_mask(ml)
    assert mask.sum() == 20 * 30  # the given mask, not the automatic one


def test_missing_column_names_the_table(tmp_path: Path) -> None:
    root = _pad(tmp_path / "pad")
    rows = list(csv.DictReader(open(root / "labels.csv")))
    for row in rows:
        del row["diagnostic"]
    _table(root / "labels.csv", rows)
    with pytest.raises(DataError, match=r"labels\.csv: missing column.*diagnostic"):
        read_lesion_folder(root, skip_bad=True)


def test_unknown_diagnosis_raises_then_skips(tmp_path: Path, cache: Path) -> None:
    root = _pad(tmp_path / "pad", diagnoses=("NEV", "XYZ", "BCC"))
    with pytest.raises(DataError, match=r"labels\.csv: line 3: unknown diagnosis 'XYZ'"):
        read_lesion_folder(root)
    folder = read_lesion_folder(root, skip_bad=True, cache_folder=cache)
    assert len(folder) == 2
    assert folder.skipped == [(str(root / "labels.csv"), "line 3: unknown diagnosis 'XYZ'")]


def test_corrupt_photo_raises_then_skips(tmp_path: Path, cache: Path) -> None:
    root = _pad(tmp_path / "pad")
    bad = root / "images" / "PAT_1_1_1.jpg"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"PAT_1_1_1\.jpg: corrupt photo"):
        read_lesion_folder(root)
    folder = read_lesion_folder(root, skip_bad=True, cache_folder=cache)
    assert len(folder) == 2
    assert len(folder.skipped) == 1 and folder.skipped[0][0].endswith("PAT_1_1_1.jpg")


def test_missing_photo_and_unknown_class_folder(tmp_path: Path, cache: Path) -> None:
    root = _pad(tmp_path / "pad")
    (root / "images" / "PAT_2_1_2.jpg").unlink()
    with pytest.raises(DataError, match=r"PAT_2_1_2\.jpg: photo listed in the table is missing"):
        read_lesion_folder(root)
    classes = tmp_path / "classes"
    _photo(classes / "MEL" / "a.jpg")
    _photo(classes / "WART" / "b.jpg")
    with pytest.raises(DataError, match=r"WART: unknown diagnosis"):
        read_lesion_folder(classes)
    assert len(read_lesion_folder(classes, skip_bad=True, cache_folder=cache)) == 1


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: empty folder"):
        read_lesion_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        read_lesion_folder(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    _table(other / "notes.csv", [{"name": "a", "value": "1"}])
    with pytest.raises(DataError, match=r"notes\.csv: missing column"):
        read_lesion_folder(other)


def test_mask_cache_hit(tmp_path: Path, cache: Path) -> None:
    root = _pad(tmp_path / "pad")
    first = read_lesion_folder(root, cache_folder=cache)
    mask_a = first[0].mask
    assert first.mask_cache.misses == 1 and first.mask_cache.hits == 0
    cached = list(first.mask_cache.folder.glob("*.png"))
    assert len(cached) == 1
    # mark the cached mask so a hit is visible: a fresh reader must return it unchanged
    stored = cv2.imread(str(cached[0]), cv2.IMREAD_GRAYSCALE)
    stored[:5, :5] = 255
    cv2.imwrite(str(cached[0]), stored)
    second = read_lesion_folder(root, cache_folder=cache)
    _, full = second.full_mask(0)
    assert second.mask_cache.hits == 1 and second.mask_cache.misses == 0
    assert full[:5, :5].all()
    assert mask_a.any()


def test_cache_folder_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONVIEWER_CACHE", str(tmp_path / "envcache"))
    folder = read_lesion_folder(_pad(tmp_path / "pad"))
    folder[0]
    assert list((tmp_path / "envcache").rglob("*.png"))


def _centre_component_ok(mask: np.ndarray) -> bool:
    h, w = mask.shape
    frac = mask.mean()
    ys, xs = np.nonzero(mask)
    d = np.hypot(xs - w / 2, ys - h / 2).min() / max(h, w)
    return 0.005 < frac < 0.7 and d < 0.2


def test_real_pad_folder_masks(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "pad-ufes20-dev"
    if not root.is_dir():
        pytest.skip("pad-ufes20-dev not present")
    folder = read_lesion_folder(root, cache_folder=tmp_path / "cache", check_photos=False)
    assert len(folder) == 65 and not folder.skipped
    good = 0
    for i in range(len(folder)):
        _, mask = folder.full_mask(i)
        good += _centre_component_ok(mask)
    assert good >= 60, f"only {good} of 65 masks plausible"
