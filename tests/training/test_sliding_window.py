"""The sliding-window baseline: window geometry, patch sampling and a short training run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.model_folder import load_model_folder
from tests.training.detector_standins import ToyDetectionDataset, toy_photo
from training.baselines import sliding_window as sw
from training.detector_crops import CropRecipe


class CentrePixelDark(torch.nn.Module):
    """Calls a patch "malignant" when its centre pixel is dark, else background."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.shape[-1]
        centre = x[:, :, p // 2 - 1 : p // 2 + 1, p // 2 - 1 : p // 2 + 1].mean(dim=(1, 2, 3))
        dark = (centre < 0.3).float() * 20 - 10
        return torch.stack([-dark, torch.full_like(dark, -10.0), dark], dim=1)


def test_heatmap_follows_window_centres() -> None:
    image = np.full((40, 56, 3), 220, np.uint8)
    image[16:24, 24:40] = 10  # a dark box
    heat = sw.sliding_window_heatmap(
        CentrePixelDark(), image, patch_size=16, stride=8, device=torch.device("cpu")
    )
    assert heat.shape == (40, 56, 3) and heat.dtype == np.float32
    np.testing.assert_allclose(heat.sum(axis=2), 1.0, atol=1e-5)
    # window centres at 8k + 3.5 inside the box -> malignant there, background far away
    assert heat[20, 28, 2] > 0.9 and heat[20, 35, 2] > 0.9
    assert heat[4, 4, 0] > 0.99 and heat[36, 52, 0] > 0.99


def test_patches_are_class_balanced_and_labelled_by_centre() -> None:
    image, class_map, _ = toy_photo(0, 3)
    recipe = sw.PatchRecipe(patch_size=16, patches_per_photo=200)
    crops = CropRecipe(scale_range=(1.0, 1.0), colour=0.0, noise=0.0, blur=0.0)
    patches, labels = sw.sample_patches(image, class_map, np.random.default_rng(0), recipe, crops)
    assert patches.shape == (200, 16, 16, 3) and labels.shape == (200,)
    assert 0.3 < np.mean(labels == 0) < 0.7 and np.mean(labels > 0) > 0.3
    # the labelled pixel lands at the patch centre (7.5, 7.5): lesions are dark there
    centre = patches[:, 7:9, 7:9].reshape(len(patches), -1).mean(axis=1)
    agree = (centre < 125) == (labels > 0)  # skin ~165, lesions ~65
    assert agree.mean() > 0.9  # the rest are lesion-edge pixels, blurred by interpolation


def test_training_writes_a_loadable_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.detector_data as dd

    monkeypatch.setattr(
        dd, "detection_dataset", lambda cfg, *, length: ToyDetectionDataset(length, 1)
    )
    config = json.loads(Path("training/configs/sliding_window.json").read_text())
    config["model"]["kwargs"] = {"patch_size": 32, "widths": [8, 8], "num_classes": 3}
    config["patches"].update(patch_size=32, patches_per_photo=8)
    config["train"].update(photos=4, photos_per_batch=2, workers=0)
    (tmp_path / "sw.json").write_text(json.dumps(config))
    argv = ["--config", str(tmp_path / "sw.json"), "--out", str(tmp_path / "sw"), "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", ["lesion-train", "sliding-window", *argv])
    parser = argparse.ArgumentParser()
    sw.configure(parser)
    assert sw.run(parser.parse_args(argv)) == 0
    model, meta = load_model_folder(tmp_path / "sw")
    assert meta["architecture"] == "patch_cnn" and meta["patch_size"] == 32
    assert meta["training"]["patches_seen"] == 4 * 8
    assert meta["training"]["command"].startswith("lesion-train sliding-window")
    detector = sw.SlidingWindowDetector(model, meta, torch.device("cpu"))
    image, _, _ = toy_photo(5, 1)
    detection = detector.detect(image)
    assert detection.heatmap.shape == image.shape and detection.model.name == "sliding_window"
