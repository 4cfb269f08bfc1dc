"""`lesion-train malignancy`: the true candidates, training, the mixing weight, the folder."""

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
from tests.core.detector_fixtures import make_model_folder
from tests.training.test_train_verifier import CANDIDATES, map_of_the_spots
from training import train_malignancy
from training.cli import main as lesion_train
from training.verifier_data import photo_candidates

BROWN, RED = (70, 45, 35), (150, 20, 40)


def toy_item(seed: int) -> dict:
    """A grey photo with four moles: two brown (benign, class 1), two red (malignant, 2)."""
    rng = np.random.default_rng(seed)
    image = np.full((96, 128, 3), 180, np.uint8)
    instances = np.zeros((96, 128), np.int32)
    classes = np.zeros((96, 128), np.uint8)
    for index in range(4):
        x, y = 20 + 28 * index + int(rng.integers(-3, 4)), int(rng.integers(15, 80))
        malignant = index % 2 == 1
        cv2.circle(image, (x, y), 5, RED if malignant else BROWN, -1)
        cv2.circle(instances, (x, y), 5, index + 1, -1)
        cv2.circle(classes, (x, y), 5, 2 if malignant else 1, -1)
    return {
        "image": torch.from_numpy(image).permute(2, 0, 1),
        "instance_map": torch.from_numpy(instances),
        "class_map": torch.from_numpy(classes),
    }


def _recipe(tmp_path: Path, **changes: object) -> Path:
    recipe = {
        "schema": 1,
        "version": "9.9.9",
        "seed": 5,
        "model": {"widths": [8, 8, 8], "hidden": 8},
        "data": {"pools": [{"folder": "toy", "photos": 10}], "val_seeds": [1], "val_photos": 4},
        "train": {"epochs": 12, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0},
        "weights": [0.0, 0.5, 1.0],
        **changes,
    }
    path = tmp_path / "malignancy.json"
    path.write_text(json.dumps(recipe))
    return path


def _verified_detector(folder: Path) -> Path:
    """A tiny detector whose verifier keeps every candidate."""
    meta = {"verifier": {"candidates": CANDIDATES, "min_score": 0.5}}
    make_model_folder(folder, seed=3, meta=meta, verifier_bias=1e6)
    return folder


def test_true_candidates_are_labelled_by_their_lesion() -> None:
    item = toy_item(0)
    image = item["image"].permute(1, 2, 0).numpy().copy()
    found = photo_candidates(
        map_of_the_spots,
        image,
        item["instance_map"].numpy(),
        item["class_map"].numpy(),
        PostprocessConfig(**CANDIDATES),
    )
    crops, labels = train_malignancy.true_candidates([found])
    assert crops.shape == (4, 3, 32, 32) and crops.dtype == torch.uint8
    assert sorted(labels.tolist()) == [0.0, 0.0, 1.0, 1.0]
    # a red crop is malignant: its centre is red
    centre = crops[:, :, 16, 16].float()
    assert torch.equal(labels == 1, centre[:, 0] - centre[:, 1] > 60)


def test_the_command_adds_a_classifier_that_tells_the_moles_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = _verified_detector(tmp_path / "detector")
    monkeypatch.setattr(
        train_malignancy,
        "_pool_photos",
        lambda folder, count: [(i, lambda i=i: toy_item(100 + i)) for i in range(count)],
    )
    monkeypatch.setattr(
        train_malignancy,
        "_val_photos",
        lambda seed, count, data: [(i, lambda i=i: toy_item(900 + i)) for i in range(count)],
    )
    # a map that finds every mole and calls them all a third malignant: no ranking at all
    monkeypatch.setattr(
        Analyzer, "_coarse_probabilities", lambda self, image, **_: map_of_the_spots(image)
    )
    out = tmp_path / "third"
    args = ["malignancy", "--config", str(_recipe(tmp_path)), "--detector", str(detector)]
    args += ["--out", str(out), "--work-dir", str(tmp_path / "work"), "--threads", "1"]
    assert lesion_train(args) == 0
    assert len(list((tmp_path / "work" / "pool-toy").glob("*.npz"))) == 10  # the shared cache

    meta = json.loads((out / "model.json").read_text())
    section = meta["malignancy"]
    assert meta["version"] == "9.9.9" and "metrics" not in meta
    figures = section["metrics"]["validation"]
    assert figures["auc_malignant_detector_alone"] == 0.5
    assert figures["auc_malignant_by_weight"]["0"] == 0.5
    assert figures["auc_malignant"] == max(figures["auc_malignant_by_weight"].values()) > 0.95
    assert section["weight"] in (0.5, 1.0)
    training = section["training"]
    assert training["seed"] == 5 and len(training["history"]) == 12
    assert training["data"]["true_candidates"] == 40 and training["data"]["malignant"] == 20

    verified, _ = load_model_folder(detector)
    third, _ = load_model_folder(out)
    for key, tensor in verified.state_dict().items():
        assert torch.equal(third.state_dict()[key], tensor), key  # map and verifier unchanged
    analyzer = Analyzer.load("cpu", detector=out)
    photo = toy_item(5000)["image"].permute(1, 2, 0).numpy().copy()
    found = analyzer.detect(photo).lesions
    assert len(found) == 4
    red = [f.p_malignant for f in found if photo[int(f.centroid[1]), int(f.centroid[0]), 0] > 120]
    brown = [f.p_malignant for f in found if photo[int(f.centroid[1]), int(f.centroid[0]), 0] < 120]
    assert len(red) == len(brown) == 2 and min(red) > max(brown)

    again = ["malignancy", "--config", str(_recipe(tmp_path)), "--detector", str(out)]
    again += ["--out", str(tmp_path / "twice"), "--work-dir", str(tmp_path / "work")]
    assert lesion_train(again) == 2  # a detector that already has a classifier is refused
    plain = tmp_path / "plain"
    make_model_folder(plain, seed=3)
    alone = ["malignancy", "--config", str(_recipe(tmp_path)), "--detector", str(plain)]
    alone += ["--out", str(tmp_path / "alone"), "--work-dir", str(tmp_path / "work3")]
    assert lesion_train(alone) == 2  # the classifier reads the verifier's crops: none here


def test_training_is_seeded() -> None:
    crops = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    label = (torch.arange(24) % 3 == 0).float()
    cfg = json.loads(json.dumps({"seed": 1, "model": {"widths": [8, 8, 8], "hidden": 8}}))
    cfg["train"] = {"epochs": 2, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0}
    first, _ = train_malignancy.train(cfg, crops, label, lambda net: {})
    second, _ = train_malignancy.train(cfg, crops, label, lambda net: {})
    for key, tensor in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], tensor), key


def test_a_recipe_without_its_keys_or_with_bad_weights_is_refused(tmp_path: Path) -> None:
    assert train_malignancy.read_config(_recipe(tmp_path))["weights"] == [0.0, 0.5, 1.0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seed": 1, "version": "1", "model": {}}))
    with pytest.raises(DataError, match="bad.json"):
        train_malignancy.read_config(bad)
    for weights in ([], [0.5, 1.5], "all", [True]):
        with pytest.raises(DataError, match="weights"):
            train_malignancy.read_config(_recipe(tmp_path, weights=weights))
    recipe = json.loads(_recipe(tmp_path).read_text())
    recipe["data"]["pools"] = [{"folder": "x"}]
    bad.write_text(json.dumps(recipe))
    with pytest.raises(DataError, match="lacks folder or photos"):
        train_malignancy.read_config(bad)
