"""Residual flow refinement (core.flow_refinement) and its place in estimate_flow_with."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.flow_refinement import refine_flow
from core.tracking import estimate_flow_with


def skin_texture(seed: int, shape=(240, 320)) -> np.ndarray:
    """Smooth random blotches (pores, freckles) in skin colours, uint8 RGB."""
    rng = np.random.default_rng(seed)
    noise = rng.random((shape[0] // 6, shape[1] // 6)).astype(np.float32)
    base = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 1.2)
    lum = np.clip(0.55 * base + 0.45 * fine, 0, 1)
    skin = np.array([205, 160, 135], np.float32)
    return np.clip(skin[None, None] * (0.6 + 0.5 * lum[..., None]), 0, 255).astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """B = A moved by (dx, dy): A pixel p appears at p + (dx, dy) in B."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)


def constant_flow(shape, dx: float, dy: float) -> np.ndarray:
    flow = np.empty((*shape[:2], 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def centre_error(flow: np.ndarray, dx: float, dy: float) -> float:
    h, w = flow.shape[:2]
    inner = flow[h // 5 : -h // 5, w // 5 : -w // 5].reshape(-1, 2)
    return float(np.median(np.hypot(inner[:, 0] - dx, inner[:, 1] - dy)))


def test_a_coarse_flow_off_by_pixels_is_sharpened() -> None:
    a = skin_texture(0)
    b = shifted(a, 14.4, -6.3)
    coarse = constant_flow(a.shape, 11.0, -4.0)  # what a coarse network gives: 4 px off
    refined = refine_flow(a, b, coarse)
    assert centre_error(coarse, 14.4, -6.3) > 3.5
    assert centre_error(refined, 14.4, -6.3) < 0.5


def test_a_right_flow_stays_right() -> None:
    a = skin_texture(1)
    b = shifted(a, 40.0, 25.0)  # too far for DIS alone from scratch on this texture
    exact = constant_flow(a.shape, 40.0, 25.0)
    assert centre_error(refine_flow(a, b, exact), 40.0, 25.0) < 0.5


def test_refinement_is_blind_to_a_brightness_change_between_visits() -> None:
    a = skin_texture(2)
    b = np.clip(shifted(a, 5.5, 3.0).astype(np.float32) * 0.8 + 12, 0, 255).astype(np.uint8)
    refined = refine_flow(a, b, constant_flow(a.shape, 4.0, 2.0))
    assert centre_error(refined, 5.5, 3.0) < 0.6


def test_sizes_must_agree() -> None:
    a = skin_texture(3)
    with pytest.raises(ValueError, match="one size"):
        refine_flow(a, a[:100], constant_flow(a.shape, 0, 0))


def test_estimate_flow_with_refines_above_the_working_resolution() -> None:
    a = skin_texture(4, (480, 640))
    b = shifted(a, 9.3, -4.6)

    def coarse(wa: np.ndarray, wb: np.ndarray) -> np.ndarray:  # a flow good to ~1 working px
        scale = wa.shape[1] / 640
        return constant_flow(wa.shape, round(9.3 * scale), round(-4.6 * scale))

    plain = estimate_flow_with(coarse, a, b, working_size=128)
    refined = estimate_flow_with(coarse, a, b, working_size=128, refine_size=640)
    assert centre_error(plain, 9.3, -4.6) > 0.7  # whole working pixels: 5 px steps here
    assert centre_error(refined, 9.3, -4.6) < 0.5
    # refine_size at or below the working size changes nothing
    np.testing.assert_array_equal(
        estimate_flow_with(coarse, a, b, working_size=128, refine_size=128), plain
    )
