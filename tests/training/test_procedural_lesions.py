"""Procedural lesions: determinism, variety, masks, labels, sizes."""

from __future__ import annotations

import numpy as np
import pytest

from training.sources.base import BENIGN, DIAGNOSIS_CLASS, MALIGNANT
from training.sources.procedural_lesions import KINDS, MALIGNANT_KINDS, generate_lesion


@pytest.mark.parametrize("kind", KINDS)
def test_label_mask_and_shape(kind: str) -> None:
    patch = generate_lesion(np.random.default_rng(3), kind=kind, diameter_px=40)
    assert patch.image.shape == (80, 80, 3) and patch.image.dtype == np.uint8
    assert patch.mask.shape == (80, 80) and patch.mask.dtype == bool
    assert patch.label == (MALIGNANT if kind in MALIGNANT_KINDS else BENIGN)
    assert DIAGNOSIS_CLASS[patch.diagnosis] == patch.label
    # lesion about 40 px across, centred, with skin all around
    ys, xs = np.nonzero(patch.mask)
    assert 0.08 < patch.mask.mean() < 0.4
    assert 20 < xs.max() - xs.min() < 64 and abs(xs.mean() - 40) < 8 and abs(ys.mean() - 40) < 8
    assert not patch.mask[0].any() and not patch.mask[:, -1].any()
    # the lesion differs from the surrounding skin
    inside = patch.image[patch.mask].astype(float).mean(0)
    outside = patch.image[~patch.mask].astype(float).mean(0)
    assert np.abs(inside - outside).max() > 8


def test_same_seed_same_lesion_other_seed_differs() -> None:
    a = generate_lesion(np.random.default_rng(11), diameter_px=32)
    b = generate_lesion(np.random.default_rng(11), diameter_px=32)
    c = generate_lesion(np.random.default_rng(12), diameter_px=32)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.diagnosis == b.diagnosis
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_any_resolution() -> None:
    small = generate_lesion(np.random.default_rng(0), kind="melanoma", diameter_px=8)
    large = generate_lesion(np.random.default_rng(0), kind="melanoma", diameter_px=160)
    assert small.image.shape == (16, 16, 3) and small.mask.any()
    assert large.image.shape == (320, 320, 3) and large.mask.any()


def test_melanoma_is_larger_and_more_varied_than_nevus() -> None:
    mel = [generate_lesion(np.random.default_rng(s), kind="melanoma") for s in range(6)]
    nev = [generate_lesion(np.random.default_rng(s), kind="nevus") for s in range(6)]
    assert np.mean([p.diameter_mm for p in mel]) > np.mean([p.diameter_mm for p in nev])

    def spread(p):
        return p.image[p.mask].astype(float).std(0).mean()

    assert np.mean([spread(p) for p in mel]) > np.mean([spread(p) for p in nev])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown lesion kind"):
        generate_lesion(np.random.default_rng(0), kind="wart")
    with pytest.raises(ValueError):
        generate_lesion(np.random.default_rng(0), diameter_px=2)


def _saturation_contrast(kind: str, seed: int) -> float:
    """Mean HSV saturation of the lesion minus that of the skin around it (0-255 scale)."""
    import cv2

    patch = generate_lesion(np.random.default_rng([seed, 99]), kind=kind, diameter_px=48)
    sat = cv2.cvtColor(patch.image, cv2.COLOR_RGB2HSV)[..., 1].astype(float)
    return float(sat[patch.mask].mean() - sat[~patch.mask].mean())


def test_malignant_not_readable_from_saturation() -> None:
    # real BCC/SCC are mostly subtle pink patches, as saturated as benign keratoses:
    # most malignant non-melanoma lesions must fall inside the benign keratoses' range
    benign = [
        _saturation_contrast(k, s) for k in ("actinic_keratosis", "angioma") for s in range(12)
    ]
    malignant = [_saturation_contrast(k, s) for k in ("bcc", "scc") for s in range(12)]
    lo, hi = np.percentile(benign, [10, 90])
    inside = np.mean([lo <= m <= hi for m in malignant])
    assert inside >= 0.6, (
        f"only {inside:.0%} of BCC/SCC inside the benign range [{lo:.0f}, {hi:.0f}]"
    )
