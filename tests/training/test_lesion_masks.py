"""Automatic lesion masks on synthetic close-ups: pen circles, hair, dilation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.sources.lesion_masks import segment_lesion


def _close_up(
    pen: tuple[int, int, int] | None,
    hairs: int,
    seed: int = 0,
    edge: float = 3.0,
    width: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """240x240 skin with a pink central lesion, an optional pen ellipse and dark hairs."""
    rng = np.random.default_rng(seed)
    size = 240
    image = np.zeros((size, size, 3), np.float32)
    image[:] = (196, 158, 136)
    image += rng.normal(0, 3, image.shape)
    lesion = np.zeros((size, size), np.uint8)
    cv2.ellipse(lesion, (122, 118), (30, 24), 20, 0, 360, 1, -1)
    soft = cv2.GaussianBlur(lesion.astype(np.float32), (0, 0), edge)[..., None]
    image = image * (1 - soft) + np.array([176, 108, 104], np.float32) * soft
    if pen is not None:
        cv2.ellipse(image, (120, 120), (38 + width, 32 + width), -10, 0, 330, pen, width)
    for _ in range(hairs):
        x0, y0 = rng.integers(0, size, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(40, 110)
        x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        cv2.line(image, (int(x0), int(y0)), (int(x1), int(y1)), (60, 45, 40), 1, cv2.LINE_AA)
    return np.clip(image, 0, 255).astype(np.uint8), soft[..., 0] > 0.5


@pytest.mark.parametrize(
    ("pen", "width"), [((40, 50, 120), 5), ((110, 50, 110), 5), ((35, 45, 95), 12)]
)
def test_mask_is_the_central_blob_not_the_pen_ring(pen, width) -> None:
    image, truth = _close_up(pen, hairs=25, width=width)
    mask = segment_lesion(image)
    inter = (mask & truth).sum()
    iou = inter / (mask | truth).sum()
    assert iou > 0.6, f"IoU {iou:.2f} with the central lesion"
    ring = np.zeros(truth.shape, np.uint8)
    cv2.ellipse(ring, (120, 120), (38 + width, 32 + width), -10, 0, 330, 1, width)
    assert (mask & ring.astype(bool)).sum() < 0.02 * ring.sum()


def test_mask_covers_the_whole_lesion_with_a_margin() -> None:
    image, truth = _close_up(None, hairs=0, edge=6.0)
    visible = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 6.0) > 0.12
    mask = segment_lesion(image)
    assert (visible & ~mask).sum() < 0.03 * visible.sum()  # no halo of lesion outside
    assert mask.sum() < 1.8 * truth.sum()  # but only slightly grown
