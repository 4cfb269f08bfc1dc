"""A second flow pass on photo B pre-aligned to photo A (core.prealignment)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.prealignment import (
    alignment_score,
    compose_with_similarity,
    fit_similarity,
    phase_shift,
    prealigned,
    searched_similarity,
    sift_similarity,
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


def test_alignment_score_prefers_the_true_flow_and_needs_overlap() -> None:
    a, b = pair()
    true_score = alignment_score(a, b, flow_of(TRUE))
    assert true_score > 0.8
    assert true_score > alignment_score(a, b, np.zeros((H, W, 2), np.float32)) + 0.5
    # brightness and contrast changes of B do not matter
    dimmer = np.clip(b.astype(np.float32) * 0.7 + 20, 0, 255).astype(np.uint8)
    assert alignment_score(a, dimmer, flow_of(TRUE)) > 0.8
    away = np.full((H, W, 2), float(W), np.float32)  # carries all of A out of B
    assert alignment_score(a, b, away) == float("-inf")


def test_alignment_score_reads_marks_that_only_the_red_green_chroma_shows() -> None:
    # Red and green blotches of one grey level: redness (vessels, erythema) that grey misses.
    rng = np.random.default_rng(3)
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, (H, W)).astype(np.float32), (0, 0), 4)
    field *= 40.0 / float(np.abs(field).max())
    red = 150.0 + field
    green = 150.0 - field * (0.299 / 0.587)
    a = np.clip(np.stack([red, green, np.full_like(red, 140.0)], -1), 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    assert grey.std() < 0.6  # nothing to line up in grey
    b = cv2.warpAffine(a, TRUE, (W, H), borderMode=cv2.BORDER_REFLECT)
    true_score = alignment_score(a, b, flow_of(TRUE))
    assert true_score > 0.8
    assert true_score > alignment_score(a, b, np.zeros((H, W, 2), np.float32)) + 0.5


def test_phase_correlation_and_sift_find_the_global_motion() -> None:
    a = textured(3)
    shifted = cv2.warpAffine(a, np.float64([[1, 0, -37], [0, 1, 21]]), (W, H))
    assert np.allclose(phase_shift(a, shifted)[:, 2], (-37, 21), atol=1.0)
    a, b = pair()
    found = sift_similarity(a, b)
    assert found is not None
    assert np.abs(flow_of(found) - flow_of(TRUE)).max() < 2.0
    assert sift_similarity(a, np.full_like(a, 128)) is None  # nothing to match


def test_a_partly_wrong_first_pass_is_replaced_by_a_prealigned_one() -> None:
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
    assert len(calls) == 5  # the first pass, then one per guess
    # the aligned B the network saw the second time (by the first flow's fit) is A again
    inner = (slice(40, H - 40), slice(60, W - 60))
    assert np.abs(calls[1][inner].astype(int) - a[inner].astype(int)).mean() < 6
    assert np.abs(flow - flow_of(TRUE)).max() < 1.0


def test_a_network_blind_to_the_motion_is_rescued_by_the_global_guesses() -> None:
    a, b = pair()
    # the network finds no motion at all: only phase correlation and SIFT know better
    flow = prealigned(lambda image_a, image_b: np.zeros((H, W, 2), np.float32))(a, b)
    assert np.abs(flow - flow_of(TRUE)).max() < 2.0


def test_worse_prealigned_passes_leave_the_first_flow() -> None:
    a, b = pair()
    calls = []

    def network(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        calls.append(1)
        return flow_of(TRUE) if len(calls) == 1 else np.full((H, W, 2), 25.0, np.float32)

    flow = prealigned(network)(a, b)
    assert flow == pytest.approx(flow_of(TRUE))


def test_the_search_finds_a_rotation_scale_and_shift_of_its_grid() -> None:
    a = textured(5)
    moved = similarity(9.0, 1.07, (24.0, -16.0))
    b = cv2.warpAffine(a, moved, (W, H), borderMode=cv2.BORDER_REFLECT)
    found = searched_similarity(a, b)
    # within the search's pixel (2 photo pixels here) of the truth, over the whole photo
    assert np.abs(flow_of(found) - flow_of(moved)).max() < 4.0


def test_the_searched_guess_rescues_a_pair_the_other_guesses_miss(monkeypatch) -> None:
    import core.prealignment as prealignment

    a, b = pair()
    # no features, no phase peak: only the search knows the motion
    monkeypatch.setattr(prealignment, "sift_similarity", lambda image_a, image_b: None)
    monkeypatch.setattr(
        prealignment, "phase_shift", lambda image_a, image_b: np.float64([[1, 0, 0], [0, 1, 0]])
    )
    flow = prealigned(lambda image_a, image_b: np.zeros((H, W, 2), np.float32))(a, b)
    # the network adds nothing to the guess: the flow is the searched similarity's
    assert np.abs(flow - flow_of(TRUE)).max() < 0.03 * np.hypot(H, W)
