"""The second look at unmatched lesions (core.near_miss)."""

from __future__ import annotations

import cv2
import numpy as np

from core.near_miss import MAX_SURROUNDINGS_NCC, near_miss_allowed, surroundings_agreement


def textured(seed: int, shape=(300, 400)) -> np.ndarray:
    grain = np.random.default_rng(seed).normal(0, 30, shape).astype(np.float32)
    grey = np.clip(cv2.GaussianBlur(grain, (0, 0), 2) + 150, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_surroundings_agree_under_the_right_flow_only() -> None:
    a = textured(1)
    b = np.roll(a, 12, axis=1)  # B = A moved 12 px right
    right = np.zeros(a.shape[:2] + (2,), np.float32)
    right[..., 0] = 12.0
    wrong = np.zeros_like(right)  # the flow missed the move
    args = ((200.0, 150.0), 3.0, (25.0, 0.0))
    assert surroundings_agreement(a, b, right, *args) > 0.9
    assert surroundings_agreement(a, b, wrong, *args) < MAX_SURROUNDINGS_NCC
    # a photo 4x larger is read in blocks, with the same verdicts
    big_a, big_b = (cv2.resize(x, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for x in (a, b))
    big_args = ((800.0, 600.0), 12.0, (100.0, 0.0))
    assert (
        surroundings_agreement(big_a, big_b, cv2.resize(right, None, fx=4, fy=4) * 4, *big_args)
        > 0.9
    )
    assert (
        surroundings_agreement(big_a, big_b, np.zeros((1200, 1600, 2), np.float32), *big_args) < 0.4
    )
    # nothing to correlate on plain skin: no evidence for the flow
    plain = np.full_like(a, 150)
    assert surroundings_agreement(plain, plain, right, *args) == 0.0


def test_allowed_needs_distance_size_unmatched_and_doubtful_surroundings() -> None:
    distance = np.array([[10.0, 10.0, 50.0, 10.0]])
    wide_gate = np.full((1, 4), 20.0)
    area_a = np.array([30.0])
    area_b = np.array([40.0, 100.0, 30.0, 30.0])  # B 1: 3.3x the area; B 2: too far
    unmatched_b = np.array([True, True, True, False])  # B 3: already matched
    asked = []

    def surroundings(i: int, j: int) -> float:
        asked.append(j)
        return 0.1

    allowed = near_miss_allowed(
        distance, wide_gate, area_a, area_b, np.array([True]), unmatched_b, surroundings
    )
    assert allowed.tolist() == [[True, False, False, False]] and asked == [0]
    lined_up = near_miss_allowed(
        distance, wide_gate, area_a, area_b, np.array([True]), unmatched_b, lambda i, j: 0.9
    )
    assert not lined_up.any()
