"""Hard-negative mining (training.hard_negatives) and crops centred on mined negatives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from core.types import Lesion
from training.detector_crops import CropRecipe, random_crops
from training.hard_negatives import false_positive_centroids, read_hard_negatives


def square(lesion_id: int, x: int, y: int, side: int, score: float) -> Lesion:
    contour = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.int32)
    centre = (x + side / 2, y + side / 2)
    return Lesion(lesion_id, centre, (x, y, x + side, y + side), contour, side**2, score, 0.2)


def test_only_confident_regions_off_every_lesion_are_hard_negatives() -> None:
    instances = np.zeros((100, 100), np.int32)
    instances[10:30, 10:30] = 1  # a true lesion
    found = [
        square(1, 12, 12, 15, 0.9),  # on the lesion: a true positive
        square(2, 60, 60, 10, 0.8),  # on plain skin: a hard negative
        square(3, 60, 10, 10, 0.2),  # on skin but not confident
    ]
    assert false_positive_centroids(found, instances, min_score=0.3) == [[65.0, 65.0, 0.8]]


def test_crops_centre_on_the_mined_negatives() -> None:
    image = np.full((400, 600, 3), 180, np.uint8)
    image[290:310, 490:510] = (20, 200, 20)  # the look-alike the detector got wrong
    labels = np.zeros((400, 600), np.uint8)
    labels[50:60, 50:60] = 1
    recipe = CropRecipe(
        crop_size=96,
        crops_per_image=8,
        scale_range=(1.0, 1.0),
        colour=0.0,
        noise=0.0,
        blur=0.0,
        hard_negative=1.0,
    )
    negatives = np.array([[500.0, 300.0]], np.float32)
    crops = random_crops(image, labels, np.random.default_rng(0), recipe, negatives).images
    green = (crops[..., 1] > 150) & (crops[..., 0] < 60)
    assert green.reshape(8, -1).any(axis=1).all()


def test_without_the_option_crops_are_unchanged() -> None:
    rng_image = np.random.default_rng(1)
    image = rng_image.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    labels = np.zeros((200, 300), np.uint8)
    labels[80:90, 100:110] = 2
    recipe = CropRecipe(crop_size=64, crops_per_image=4)
    negatives = np.array([[20.0, 20.0]], np.float32)
    plain = random_crops(image, labels, np.random.default_rng(5), recipe)
    given = random_crops(image, labels, np.random.default_rng(5), recipe, negatives)
    np.testing.assert_array_equal(plain[0], given[0])
    np.testing.assert_array_equal(plain[1], given[1])


def test_reading_negatives_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "neg.json"
    good.write_text(json.dumps({"negatives": {"3": [[1.5, 2.0, 0.9], [4.0, 5.0, 0.5]]}}))
    read = read_hard_negatives(good)
    assert list(read) == [3] and read[3].shape == (2, 2) and read[3][1, 0] == 4.0
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(DataError, match="bad.json"):
        read_hard_negatives(bad)
    with pytest.raises(DataError, match="not found"):
        read_hard_negatives(tmp_path / "missing.json")
