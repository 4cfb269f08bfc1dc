"""A second flow pass on photo B pre-aligned to photo A (core.prealignment)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.prealignment import (
    compose_with_similarity,
    fit_similarity,
    photometric_error,
    prealigned,
)

H, W = 192, 256


def similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """(2, 3) similarity about the photo centre, then shifted."""
    s = cv2.getRotationMatrix2D((W / 2, H / 2), angle_deg, scale)
    s[:, 2] += shift
    return s


def flow_of(s: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    flow = np.stack(
        [s[0, 0] * xs + s[0, 1] * ys + s[0, 2] - xs, s[1, 0] * xs + s[1, 1] * ys + s[1, 2] - ys],
        -1,
    )
    return flow.astype(np.float32)


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.full((H, W, 3), (200, 160, 140), np.uint8)
    for _ in range(120):
        x, y, r = rng.integers(0, W), rng.integers(0, H), rng.integers(2, 7)
        shade = int(rng.integers(40, 140))
        cv2.circle(image, (int(x), int(y)), int(r), (shade, shade // 2, shade // 3), -1)
    return cv2.GaussianBlur(image, (3, 3), 0)


TRUE = similarity(10.0, 1.05, (30.0, -20.0))


def pair() -> tuple[np.ndarray, np.ndarray]:
    """A and B with B(S p) = A(p): A's content moved by the similarity TRUE into B."""
    a = textured()
    b = cv2.warpAffine(a, TRUE, (W, H), borderMode=cv2.BORDER_REFLECT)
    return a, b


def test_fit_recovers_the_similarity_despite_a_wrong_third() -> None:
    flow = flow_of(TRUE)
    flow[:, : W // 3] = np.random.default_rng(1).normal(0, 40, flow[:, : W // 3].shape)
    fitted = fit_similarity(flow)
    assert fitted is not None
    assert np.allclose(fitted, TRUE, atol=0.05 * np.abs(TRUE).max())


def test_composing_a_zero_residual_gives_the_similarity_flow() -> None:
    composed = compose_with_similarity(np.zeros((H, W, 2), np.float32), TRUE)
    assert np.allclose(composed, flow_of(TRUE), atol=1e-3)


def test_photometric_error_prefers_the_true_flow() -> None:
    a, b = pair()
    assert photometric_error(a, b, flow_of(TRUE)) < 0.5 * photometric_error(
        a, b, np.zeros((H, W, 2), np.float32)
    )


def test_a_partly_wrong_first_pass_is_replaced_by_the_prealigned_one() -> None:
    a, b = pair()
    calls = []

    def network(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        calls.append(image_b)
        if len(calls) == 1:  # first pass: right on two thirds of the photo only
            flow = flow_of(TRUE)
            flow[:, : W // 3] = 0.0
            return flow
        return np.zeros((H, W, 2), np.float32)  # B aligned: nothing left to move

    flow = prealigned(network)(a, b)
    assert len(calls) == 2
    # the aligned B the network saw the second time is A again (inside the frame)
    inner = (slice(40, H - 40), slice(60, W - 60))
    assert np.abs(calls[1][inner].astype(int) - a[inner].astype(int)).mean() < 6
    assert np.abs(flow - flow_of(TRUE)).max() < 1.0


def test_a_worse_second_pass_leaves_the_first_flow() -> None:
    a, b = pair()
    outputs = [flow_of(TRUE), np.full((H, W, 2), 25.0, np.float32)]
    flow = prealigned(lambda image_a, image_b: outputs.pop(0))(a, b)
    assert flow == pytest.approx(flow_of(TRUE))
