"""Flow baselines: the SIFT + RANSAC homography refuses folded or exploded fits."""

from __future__ import annotations

import numpy as np

from training.baselines.flow_baselines import homography_flow, plausible_homography

SHAPE = (240, 320)


def test_camera_like_homographies_are_plausible() -> None:
    shift = np.array([[1, 0, 30], [0, 1, -12], [0, 0, 1]], np.float64)
    zoom_turn = np.array([[1.1, -0.1, 5], [0.1, 1.1, 3], [1e-4, 0, 1]], np.float64)
    assert plausible_homography(shift, SHAPE) and plausible_homography(zoom_turn, SHAPE)
    flow = homography_flow(shift, SHAPE)
    np.testing.assert_allclose(flow[100, 100], [30, -12], atol=1e-4)


def test_folded_or_exploded_homographies_are_refused() -> None:
    behind_camera = np.array([[1, 0, 0], [0, 1, 0], [-0.01, 0, 1]], np.float64)  # x > 100
    exploded = np.diag([40.0, 40.0, 1.0])
    mirrored = np.diag([-1.0, 1.0, 1.0])  # a camera cannot mirror the body
    assert not plausible_homography(behind_camera, SHAPE)
    assert not plausible_homography(exploded, SHAPE)
    assert not plausible_homography(np.diag([0.05, 0.05, 1.0]), SHAPE)
    assert not plausible_homography(mirrored, SHAPE)
