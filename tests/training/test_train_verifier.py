"""`lesion-train verifier`: candidate mining, the cache, training and the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.analyzer import Analyzer
from core.errors import DataError
from core.model_folder import load_model_folder
from core.postprocess import PostprocessConfig
from core.tiling import CoarseProbabilities
from tests.core.detector_fixtures import make_model_folder
from training import train_verifier
from training.cli import main as lesion_train
from training.verifier_data import load_candidates, photo_candidates, save_candidates

CANDIDATES = {"high": 0.5, "low": 0.3, "min_area_px": 1, "merge_px": 1}


def toy_item(seed: int) -> dict:
    """A grey photo with two dark moles (the true lesions) and two blue blots (not lesions)."""
    rng = np.random.default_rng(seed)
    image = np.full((96, 128, 3), 180, np.uint8)
    instances = np.zeros((96, 128), np.int32)
    spots = [(20 + 28 * k + int(rng.integers(-3, 4)), int(rng.integers(15, 80))) for k in range(4)]
    for index, (x, y) in enumerate(spots):
        if index % 2 == 0:
            cv2.circle(image, (x, y), 5, (70, 45, 35), -1)
            cv2.circle(instances, (x, y), 5, index // 2 + 1, -1)
        else:
            cv2.circle(image, (x, y), 5, (60, 90, 200), -1)
    return {
        "image": torch.from_numpy(image).permute(2, 0, 1),
        "instance_map": torch.from_numpy(instances),
        "class_map": torch.from_numpy((instances > 0).astype(np.uint8)),
    }


def map_of_the_spots(image: np.ndarray, **_: object) -> CoarseProbabilities:
    """A stride-4 map that finds every spot, moles and blots alike (the detector's mistake
    that the verifier is to learn to undo)."""
    spot = (np.abs(image.astype(int) - 180).sum(axis=2) > 60).astype(np.uint8)
    h, w = image.shape[:2]
    coarse = spot.reshape(h // 4, 4, w // 4, 4).max(axis=(1, 3)).astype(bool)
    values = np.zeros((h // 4, w // 4, 3), np.float32)
    values[...] = (0.95, 0.04, 0.01)
    values[coarse] = (0.1, 0.6, 0.3)
    return CoarseProbabilities(values, 4, h, w)


def test_candidates_are_labelled_by_the_truth_and_survive_the_cache(tmp_path: Path) -> None:
    item = toy_item(0)
    image = item["image"].permute(1, 2, 0).numpy().copy()
    found = photo_candidates(
        map_of_the_spots,
        image,
        item["instance_map"].numpy(),
        item["class_map"].numpy(),
        PostprocessConfig(**CANDIDATES),
    )
    assert len(found.lesions) == 4 and sorted(found.label.tolist()) == [0, 0, 1, 1]
    for lesion, label in zip(found.lesions, found.label, strict=True):
        x, y = (int(round(v)) for v in lesion.centroid)
        assert label == (image[y, x, 2] < 100)  # the dark moles, not the blue blots
    save_candidates(tmp_path / "00000.npz", found)
    again = load_candidates(tmp_path / "00000.npz")
    np.testing.assert_array_equal(again.crops, found.crops)
    np.testing.assert_array_equal(again.label, found.label)
    assert [(a.bbox, a.score, a.area_px) for a in again.lesions] == [
        (b.bbox, b.score, b.area_px) for b in found.lesions
    ]
    pairs = zip(again.lesions, found.lesions, strict=True)
    assert all(np.array_equal(a.contour, b.contour) for a, b in pairs)


def _recipe(tmp_path: Path, **train: object) -> Path:
    recipe = {
        "seed": 5,
        "version": "9.9.9",
        "model": {"widths": [8, 8, 8], "hidden": 8},
        "candidates": CANDIDATES,
        "min_score": {"max_val_fp_per_photo": 0.5},
        "calibration": "platt",
        "tile": {"size": 192},
        "data": {
            "pools": [{"folder": "toy", "photos": 10}, {"folder": "toy2", "photos": 6}],
            "val_seeds": [1],
            "val_photos": 6,
        },
        "train": {"epochs": 25, "batch_size": 16, "lr": 0.01, "weight_decay": 0.0, **train},
    }
    path = tmp_path / "verifier.json"
    path.write_text(json.dumps(recipe))
    return path


def test_the_command_trains_a_verifier_into_a_new_detector_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = tmp_path / "detector"
    make_model_folder(detector, seed=3)
    # toy photos instead of a synthetic pool, and a map that finds every spot
    monkeypatch.setattr(
        train_verifier,
        "_pool_photos",
        lambda folder, count: [
            (i, lambda i=i: toy_item(100 + len(folder.name) * 50 + i)) for i in range(count)
        ],
    )
    monkeypatch.setattr(
        train_verifier,
        "_val_photos",
        lambda seed, count, data: [(i, lambda i=i: toy_item(900 + i)) for i in range(count)],
    )
    monkeypatch.setattr(
        Analyzer, "_coarse_probabilities", lambda self, image, **_: map_of_the_spots(image)
    )
    out = tmp_path / "verified"
    args = ["verifier", "--config", str(_recipe(tmp_path)), "--detector", str(detector)]
    args += ["--out", str(out), "--work-dir", str(tmp_path / "work"), "--threads", "1"]
    assert lesion_train(args) == 0
    for name, count in (("pool-toy", 10), ("pool-toy2", 6)):  # the cache, one per pool
        assert len(list((tmp_path / "work" / name).glob("*.npz"))) == count

    meta = json.loads((out / "model.json").read_text())
    section = meta["verifier"]
    assert meta["version"] == "9.9.9" and section["min_score_rule"]["max_val_fp_per_photo"] == 0.5
    # chosen on the validation photos: the lowest threshold with <= 0.5 false positives each
    assert 0.01 <= section["min_score"] < 0.99 and section["fp_per_photo_at_min_score"] <= 0.5
    assert section["candidates"]["high"] == 0.5
    assert meta["tile"]["size"] == 192  # the recipe's tile size replaces the detector's
    assert section["training"]["seed"] == 5
    assert section["training"]["command"]  # (sys.argv: here pytest's)
    assert section["training"]["data"]["candidates"] == 64
    assert len(section["training"]["history"]) == 25
    # the detector alone ranks moles and blots alike; the verifier tells them apart
    assert section["metrics"]["validation_detector_alone"]["ap"] < 0.8
    assert section["metrics"]["validation"]["ap"] > 0.95
    assert section["metrics"]["validation"]["recall_at_max_fp"] == 1.0
    # Platt-scaled before min_score was chosen: a positive scale keeps the ranking
    assert section["calibration"]["a"] > 0
    assert {"val_ece_before", "val_ece_after"} <= set(section["calibration"])

    plain, _ = load_model_folder(detector)
    verified, _ = load_model_folder(out)
    for key, tensor in plain.state_dict().items():
        assert torch.equal(verified.state_dict()[key], tensor), key  # the map is unchanged
    analyzer = Analyzer.load("cpu", detector=out)
    photo = toy_item(5000)["image"].permute(1, 2, 0).numpy().copy()
    found = analyzer.detect(photo).lesions
    assert len(found) == 2
    assert all(photo[int(f.centroid[1]), int(f.centroid[0]), 2] < 100 for f in found)

    again = ["verifier", "--config", str(_recipe(tmp_path)), "--detector", str(out)]
    again += ["--out", str(tmp_path / "twice"), "--work-dir", str(tmp_path / "work2")]
    assert lesion_train(again) == 2  # a detector that already has a verifier is refused


def test_training_is_seeded() -> None:
    pool = [
        photo_candidates(
            map_of_the_spots,
            toy_item(i)["image"].permute(1, 2, 0).numpy().copy(),
            toy_item(i)["instance_map"].numpy(),
            toy_item(i)["class_map"].numpy(),
            PostprocessConfig(**CANDIDATES),
        )
        for i in range(4)
    ]
    cfg = {
        "seed": 1,
        "model": {"widths": [8, 8, 8], "hidden": 8},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "weight_decay": 0.0},
    }
    first, _ = train_verifier.train(cfg, pool, [])
    second, _ = train_verifier.train(cfg, pool, [])
    for key, tensor in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], tensor), key


def test_a_recipe_without_its_keys_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1, "version": "1", "candidates": {}, "min_score": 0.5}))
    with pytest.raises(DataError, match="bad.json"):
        train_verifier.read_config(bad)
    recipe = json.loads(_recipe(tmp_path).read_text())
    recipe["data"]["pools"] = [{"folder": "x"}]
    bad.write_text(json.dumps(recipe))
    with pytest.raises(DataError, match="lacks folder or photos"):
        train_verifier.read_config(bad)
    recipe = json.loads(_recipe(tmp_path).read_text())
    recipe["calibration"] = "isotonic"
    bad.write_text(json.dumps(recipe))
    with pytest.raises(DataError, match="the one method is 'platt'"):
        train_verifier.read_config(bad)
    for tile in (1536, {"size": "big"}, {"stride": 4}):
        recipe = json.loads(_recipe(tmp_path).read_text())
        recipe["tile"] = tile
        bad.write_text(json.dumps(recipe))
        with pytest.raises(DataError, match="whole numbers of pixels"):
            train_verifier.read_config(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a readable JSON"):
        train_verifier.read_config(bad)
