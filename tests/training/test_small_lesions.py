"""Training for small lesions: crops centred per lesion, and the loss weighting that lifts
lesions a few pixels across."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.detector_crops import CropDataset, CropRecipe, random_crops
from training.train_detector import DetectorLoss, small_lesion_weights


def _photo_with_big_and_small_lesion() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 400x600 photo: lesion 1 a 60x60 square at the left, lesion 2 a 3x3 speck right."""
    image = np.full((400, 600, 3), 180, np.uint8)
    class_map = np.zeros((400, 600), np.uint8)
    instance_map = np.zeros((400, 600), np.int32)
    class_map[100:160, 50:110] = 1
    instance_map[100:160, 50:110] = 1
    class_map[300:303, 500:503] = 2
    instance_map[300:303, 500:503] = 2
    return image, class_map, instance_map


def _crops_showing_the_speck(centre_on: str) -> int:
    image, class_map, instance_map = _photo_with_big_and_small_lesion()
    recipe = CropRecipe(
        crop_size=64, crops_per_image=200, scale_range=(1.0, 1.0), lesion_centred=1.0,
        colour=0.0, noise=0.0, blur=0.0, centre_on=centre_on,
    )  # fmt: skip
    crops = random_crops(image, class_map, np.random.default_rng(3), recipe, None, instance_map)
    assert crops.instances is not None
    return int(((crops.instances == 2).reshape(200, -1).any(axis=1)).sum())


def test_centring_per_lesion_shows_a_speck_as_often_as_a_large_lesion() -> None:
    # by pixel the speck is 9 of 3609 lesion pixels: almost never a centre
    assert _crops_showing_the_speck("pixel") < 10
    # by lesion it is one of two lesions: about half the crops
    assert 70 < _crops_showing_the_speck("lesion") < 130


def test_lesion_centring_needs_instances_and_a_known_mode() -> None:
    image, class_map, _ = _photo_with_big_and_small_lesion()
    recipe = CropRecipe(crop_size=32, crops_per_image=2, lesion_centred=1.0, centre_on="lesion")
    with pytest.raises(ValueError, match="instance map"):
        random_crops(image, class_map, np.random.default_rng(0), recipe)
    with pytest.raises(ValueError, match="centre_on"):
        CropRecipe(centre_on="middle")


def test_instance_crops_follow_the_labels() -> None:
    image, class_map, instance_map = _photo_with_big_and_small_lesion()
    recipe = CropRecipe(crop_size=96, crops_per_image=16, border_bars=0.5, centre_on="lesion")
    crops = random_crops(image, class_map, np.random.default_rng(1), recipe, None, instance_map)
    assert crops.instances is not None and crops.instances.dtype == np.uint16
    np.testing.assert_array_equal(crops.instances > 0, crops.labels > 0)
    assert set(np.unique(crops.instances)) <= {0, 1, 2}


def test_crop_dataset_passes_instance_maps_on() -> None:
    image, class_map, instance_map = _photo_with_big_and_small_lesion()
    base = [
        {
            "image": torch.from_numpy(image).permute(2, 0, 1),
            "class_map": torch.from_numpy(class_map.astype(np.int64)),
            "instance_map": torch.from_numpy(instance_map),
        }
    ]
    crops = CropDataset(
        base,
        CropRecipe(crop_size=48, crops_per_image=3),
        photos_per_epoch=1,
        epochs=1,
        seed=0,
        instances=True,
    )
    item = crops[0]
    assert item["instance_map"].shape == (3, 48, 48)
    assert torch.equal(item["instance_map"] > 0, item["class_map"] > 0)
    without = CropDataset(
        [{k: v for k, v in base[0].items() if k != "instance_map"}],
        CropRecipe(crop_size=48, crops_per_image=3),
        photos_per_epoch=1,
        epochs=1,
        seed=0,
    )
    assert "instance_map" not in without[0]
    # the instance maps change nothing else
    assert torch.equal(without[0]["image"], item["image"])
    asking = CropDataset(
        without.base, without.recipe, photos_per_epoch=1, epochs=1, seed=0, instances=True
    )
    with pytest.raises(ValueError, match="photo 0 has no instance map"):
        asking[0]


def test_small_lesion_weights_follow_the_equivalent_diameter() -> None:
    ids = torch.zeros(2, 40, 40, dtype=torch.int64)
    ids[0, 0:3, 0:3] = 1  # 9 px: d = 3.39
    ids[0, 10:30, 10:30] = 2  # 400 px: d = 22.6
    ids[1, 0:6, 0:6] = 1  # same id in another crop, 36 px: d = 6.77
    w = small_lesion_weights(ids, diameter_px=12.0, max_weight=3.0)
    assert w.dtype == torch.float32 and w.shape == ids.shape
    assert float(w[0, 1, 1]) == pytest.approx(3.0)  # 12 / 3.39 = 3.5, capped
    assert float(w[0, 20, 20]) == pytest.approx(1.0)
    assert float(w[1, 2, 2]) == pytest.approx(12.0 / (2 * math.sqrt(36 / math.pi)), rel=1e-5)
    assert float(w[0, 35, 35]) == 1.0 and float(w[1, 20, 20]) == 1.0


def test_weighted_loss_equals_plain_for_large_lesions_and_lifts_small_ones() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 32, 32)
    target = torch.zeros(2, 32, 32, dtype=torch.int64)
    ids = torch.zeros(2, 32, 32, dtype=torch.int64)
    target[:, 4:28, 4:28] = 1
    ids[:, 4:28, 4:28] = 1  # 24 px across: weight 1 at diameter_px 12
    plain = DetectorLoss([1.0, 3.0, 3.0], 1.0)
    weighted = DetectorLoss([1.0, 3.0, 3.0], 1.0, {"diameter_px": 12, "max_weight": 4})
    assert float(weighted(logits, target, ids)) == pytest.approx(float(plain(logits, target)))
    # a 2x2 lesion the logits miss costs more when weighted
    target[:] = 0
    ids[:] = 0
    target[0, 10:12, 10:12] = 2
    ids[0, 10:12, 10:12] = 1
    miss = torch.full((2, 3, 32, 32), -4.0)
    miss[:, 0] = 4.0
    ce_plain = DetectorLoss([1.0, 3.0, 3.0], 0.0)
    ce_weighted = DetectorLoss([1.0, 3.0, 3.0], 0.0, {"diameter_px": 12, "max_weight": 4})
    assert float(ce_weighted(miss, target, ids)) > 3.0 * float(ce_plain(miss, target))
    with pytest.raises(ValueError, match="instance maps"):
        weighted(miss, target)
