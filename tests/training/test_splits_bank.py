"""PAD-UFES holdout split and the lesion bank."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from training.sources.bank import LesionBank, default_lesion_bank
from training.sources.base import BENIGN, MALIGNANT, LesionPatch
from training.sources.splits import pad_ufes_holdout


def _labels(path: Path, n_patients: int = 40) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "patient_id", "diagnostic", "malignant"])
        for p in range(n_patients):
            for k in range(1 + p % 3):  # several lesions for some patients
                dx = "BCC" if p % 4 == 0 else "NEV"
                writer.writerow([f"images/{p}_{k}.jpg", str(100 + p), dx, int(dx == "BCC")])
    return path


def test_holdout_disjoint_deterministic_stratified(tmp_path: Path) -> None:
    table = _labels(tmp_path / "labels.csv")
    train, holdout = pad_ufes_holdout(table)
    assert train.isdisjoint(holdout) and len(train | holdout) == 40
    assert len(holdout) == 12  # 30% of 10 malignant + 30% of 30 benign
    malignant = {str(100 + p) for p in range(40) if p % 4 == 0}
    assert len(holdout & malignant) == 3
    assert pad_ufes_holdout(table) == (train, holdout)


def test_holdout_stable_when_patients_added(tmp_path: Path) -> None:
    small = pad_ufes_holdout(_labels(tmp_path / "a.csv", 40))[1]
    large = pad_ufes_holdout(_labels(tmp_path / "b.csv", 400))[1]
    assert len(small & large) >= len(small) // 2


def test_holdout_bad_table(tmp_path: Path) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("file,diagnostic\na.jpg,NEV\n")
    with pytest.raises(DataError, match=r"labels\.csv: missing column"):
        pad_ufes_holdout(table)
    with pytest.raises(DataError, match="not found"):
        pad_ufes_holdout(tmp_path / "none.csv")


def test_real_pad_holdout(shared_data: Path) -> None:
    table = shared_data / "pad-ufes20-dev" / "labels.csv"
    if not table.is_file():
        pytest.skip("pad-ufes20-dev not present")
    train, holdout = pad_ufes_holdout(table)
    assert train.isdisjoint(holdout) and len(train) + len(holdout) == 64
    assert 0.25 <= len(holdout) / 64 <= 0.35


class _Stand:
    """A tiny LesionSource: one benign, one malignant real lesion."""

    def __init__(self) -> None:
        mask = np.zeros((20, 30), bool)
        mask[5:15, 10:20] = True
        self.items = [
            LesionPatch(np.full((20, 30, 3), 100, np.uint8), mask, BENIGN, "NEV", "a.jpg"),
            LesionPatch(np.full((20, 30, 3), 50, np.uint8), mask, MALIGNANT, "MEL", "b.jpg"),
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> LesionPatch:
        return self.items[i]


def test_bank_samples_by_label_and_size() -> None:
    bank = LesionBank([_Stand()], procedural_fraction=0.5)
    rng = np.random.default_rng(0)
    sources = set()
    for _ in range(30):
        patch = bank.sample(rng, label=MALIGNANT, diameter_px=20)
        assert patch.label == MALIGNANT
        ys, xs = np.nonzero(patch.mask)
        assert 14 <= max(np.ptp(xs), np.ptp(ys)) + 1 <= 44
        sources.add("real" if patch.source == "b.jpg" else patch.source.split(":")[0])
    assert sources == {"real", "procedural"}
    only_real = LesionBank([_Stand()], procedural_fraction=0.0)
    assert only_real.sample(rng, label=BENIGN, diameter_px=10).source == "a.jpg"
    with pytest.raises(ValueError):
        bank.sample(rng, label=7, diameter_px=10)


def test_bank_same_rng_same_draw() -> None:
    bank = LesionBank([_Stand()], procedural_fraction=0.5)
    a = bank.sample(np.random.default_rng(5), diameter_px=24)
    b = bank.sample(np.random.default_rng(5), diameter_px=24)
    assert a.source == b.source and np.array_equal(a.image, b.image)


def test_default_bank_uses_train_patients_only(shared_data: Path, tmp_path, monkeypatch) -> None:
    if not (shared_data / "pad-ufes20-dev" / "labels.csv").is_file():
        pytest.skip("pad-ufes20-dev not present")
    monkeypatch.setenv("LESIONVIEWER_CACHE", str(tmp_path))
    train_bank = default_lesion_bank(split="train")
    holdout_bank = default_lesion_bank(split="holdout")
    train_files = {r.path.name for r in train_bank.real[0].records}
    holdout_files = {r.path.name for r in holdout_bank.real[0].records}
    assert train_files.isdisjoint(holdout_files)
    assert len(train_files) + len(holdout_files) == 65
    assert train_bank.real_count() == len(train_files)
