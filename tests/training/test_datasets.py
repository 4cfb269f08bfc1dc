"""Synthetic datasets and `lesion-train synth`: tensors, crops, folders, bit-identical output."""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import DataError
from tests.training.synth_standins import STANDINS
from training.synthesis import cli
from training.synthesis.datasets import (
    DetectionDataset,
    FolderDetectionDataset,
    FolderPairDataset,
    PairDataset,
)
from training.synthesis.detection import SynthConfig
from training.synthesis.sources import default_sources

SMALL = SynthConfig(width=160, height=128, lesions_per_image=(2, 3))


def test_detection_dataset_items_and_crop() -> None:
    ds = DetectionDataset(4, 1, SMALL, sources=STANDINS)
    item = ds[2]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 128, 160)
    assert item["class_map"].dtype == torch.int64 and item["instance_map"].dtype == torch.int32
    assert torch.equal(ds[2]["image"], item["image"])
    assert not torch.equal(ds[1]["image"], item["image"])
    cropped = DetectionDataset(4, 1, SMALL, crop=(64, 96), sources=STANDINS)[2]
    assert cropped["image"].shape == (3, 64, 96) and cropped["class_map"].shape == (64, 96)
    with pytest.raises(IndexError):
        ds[4]


def test_detection_dataset_gives_the_whole_sample_of_an_item() -> None:
    ds = DetectionDataset(4, 1, SMALL, sources=STANDINS)
    item = ds[2]
    sample = ds.sample(2)
    assert ds.sample(2) is sample  # kept: dataset[i] then sample(i) synthesises once
    assert np.array_equal(item["image"].permute(1, 2, 0).numpy(), sample.image)
    ids = set(np.unique(item["instance_map"].numpy())) - {0}
    assert ids == {record.id for record in sample.lesions}
    other = DetectionDataset(4, 1, SMALL, sources=STANDINS).sample(2)  # made afresh: the same
    assert np.array_equal(other.image, sample.image) and other.lesions == sample.lesions
    with pytest.raises(IndexError):
        ds.sample(4)


def test_pair_dataset_crop_keeps_flow_consistent() -> None:
    full = PairDataset(2, 3, SMALL, sources=STANDINS)[0]
    assert full["flow"].shape == (2, 128, 160) and full["valid"].dtype == torch.bool
    crop = PairDataset(2, 3, SMALL, crop=(64, 64), sources=STANDINS)[0]
    assert crop["image_a"].shape == (3, 64, 64)
    flow = crop["flow"].numpy()
    ys, xs = np.nonzero(crop["valid"].numpy())
    bx, by = xs + flow[0, ys, xs], ys + flow[1, ys, xs]
    assert (bx >= 0).all() and (bx <= 63).all() and (by >= 0).all() and (by <= 63).all()


def _synth(tmp: Path, kind: str, monkeypatch, *extra: str) -> Path:
    # the CLI builds sources from the config; route them to the stand-ins
    monkeypatch.setattr(
        "training.synthesis.detection.default_sources", lambda *a, **k: STANDINS, raising=True
    )
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(
        [
            "--kind",
            kind,
            "--n",
            "3",
            "--seed",
            "5",
            "--out",
            str(tmp),
            "--width",
            "160",
            "--height",
            "128",
            *extra,
        ]
    )
    assert cli.run(args) == 0
    return tmp


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synth_cli_detection_is_bit_identical_and_readable(tmp_path, monkeypatch, capsys) -> None:
    a = _synth(tmp_path / "a", "detection", monkeypatch)
    b = _synth(tmp_path / "b", "detection", monkeypatch)
    assert _digest(a) == _digest(b)
    assert "per second" in capsys.readouterr().out
    assert (a / "contact_sheet.png").is_file()
    ds = FolderDetectionDataset(a)
    assert len(ds) == 3
    item = ds[1]
    direct = DetectionDataset(
        3, 5, replace(SynthConfig(), width=160, height=128), sources=STANDINS
    )[1]
    assert torch.equal(item["image"], direct["image"])
    assert torch.equal(item["instance_map"], direct["instance_map"])
    manifest = json.loads((a / "manifest.json").read_text())
    ids = set(np.unique(item["instance_map"].numpy())) - {0}
    assert ids == {les["id"] for les in manifest["samples"][1]["lesions"]}


def test_synth_cli_body_pool_zero_gives_a_new_body_per_photo(tmp_path, monkeypatch) -> None:
    out = _synth(tmp_path / "fresh", "detection", monkeypatch, "--body-pool", "0")
    assert json.loads((out / "manifest.json").read_text())["config"]["body_pool"] == 0
    item = FolderDetectionDataset(out)[2]
    direct = DetectionDataset(
        3, 5, replace(SynthConfig(), width=160, height=128, body_pool=0), sources=STANDINS
    )[2]
    assert torch.equal(item["image"], direct["image"])


def test_synth_cli_pairs_round_trip(tmp_path, monkeypatch) -> None:
    out = _synth(tmp_path / "p", "pairs", monkeypatch)
    ds = FolderPairDataset(out)
    item = ds[0]
    direct = PairDataset(3, 5, replace(SynthConfig(), width=160, height=128), sources=STANDINS)[0]
    for key in ("image_a", "image_b", "flow", "valid", "instance_map_b"):
        assert torch.equal(item[key], direct[key]), key
    with pytest.raises(DataError, match="pairs"):
        FolderDetectionDataset(out)


def test_folder_dataset_rejects_bad_folders(tmp_path) -> None:
    with pytest.raises(DataError, match="manifest.json"):
        FolderDetectionDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "kind": "detection",
                "samples": [
                    {"image": "images/x.png", "class_map": "c.png", "instance_map": "i.png"}
                ],
            }
        )
    )
    with pytest.raises(DataError, match="x.png"):
        FolderDetectionDataset(tmp_path)[0]


def test_default_sources_are_cached_per_process() -> None:
    assert default_sources("procedural", "procedural") is default_sources(
        "procedural", "procedural"
    )


def test_the_held_out_patients_lesions_are_for_evaluation_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """lesion_source "holdout" takes the default bank's held-out split (the real close-up
    test's patients); the detector's and the tracker's training recipes and `lesion-train
    synth` (whose folders are training pools) refuse it."""
    import training.sources.bank as bank
    from training.cli import main as lesion_train
    from training.detector_data import detection_dataset
    from training.tracker_data import tracker_dataset

    default_sources.cache_clear()
    splits = []
    monkeypatch.setattr(
        bank, "default_lesion_bank", lambda *, split="train", **_: splits.append(split) or None
    )
    default_sources("procedural", "holdout")
    default_sources("procedural", "default")
    assert splits == ["holdout", "train"]
    default_sources.cache_clear()
    recipe = {"source": "synthetic", "train_seed": 1, "synth_config": {"lesion_source": "holdout"}}
    with pytest.raises(DataError, match="evaluation only"):
        detection_dataset(recipe, length=2)
    pairs = {"source": "synth_pairs", "width": 64, "height": 64}
    pairs["synth_config"] = {"lesion_source": "holdout"}
    with pytest.raises(DataError, match="evaluation only"):
        tracker_dataset(pairs, length=2, seed=1)
    out = tmp_path / "pool"
    assert (
        lesion_train(
            ["synth", "--kind", "detection", "--n", "1", "--lesions", "holdout", "--out", str(out)]
        )
        == 2
    )
    assert not out.exists()
