"""Tracking inference: working resolution, flow back to full resolution, map_points, track."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models.registry import build_model
from core.models.tracker import LesionTracker, init_from_detector, local_correlation, warp
from core.tracking import (
    estimate_flow,
    estimate_flow_with,
    flow_to_full_resolution,
    map_points,
    track,
    working_shape,
)
from core.types import Detection, ModelInfo
from tests.core.test_matching import disc_lesion, paint


def test_working_shape_keeps_aspect_in_multiples_of_32() -> None:
    assert working_shape(3000, 4000, 512) == (384, 512)
    h, w = working_shape(4000, 3000, 512)
    assert (h, w) == (512, 384)
    h, w = working_shape(100, 1000, 512)
    assert w == 512 and h % 32 == 0 and h >= 32


def test_full_resolution_flow_maps_positions_with_each_photos_scale() -> None:
    # working 64x96 for A of 300x450 and B of 600x900 (B twice as large): a zero working
    # flow means "same place" -> a point of A lands at twice its coordinates (pixel centres)
    f = flow_to_full_resolution(np.zeros((64, 96, 2), np.float32), (300, 450), (600, 900))
    assert f.shape == (300, 450, 2) and f.dtype == np.float32
    pts = np.array([[0.0, 0.0], [100.0, 50.0], [449.0, 299.0]])
    mapped = map_points(f, pts)
    np.testing.assert_allclose(mapped, (pts + 0.5) * 2 - 0.5, atol=1e-3)
    # same sizes: working vectors are scaled by the resize factor
    g = flow_to_full_resolution(np.full((64, 96, 2), 2.0, np.float32), (320, 480), (320, 480))
    np.testing.assert_allclose(g[10, 10], [10.0, 10.0], atol=1e-4)


def test_estimate_flow_with_recovers_a_shift_through_the_pipeline() -> None:
    def shift_fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        flow = np.zeros(a.shape[:2] + (2,), np.float32)
        flow[..., 0] = 4.0  # 4 working pixels right
        return flow

    a = np.zeros((1000, 1500, 3), np.uint8)
    flow = estimate_flow_with(shift_fn, a, a, working_size=480)
    np.testing.assert_allclose(flow[500, 700], [12.5, 0.0], atol=1e-3)  # 1500 / 480 * 4


def test_map_points_is_bilinear() -> None:
    flow = np.zeros((10, 10, 2), np.float32)
    flow[:, 5:, 0] = 10.0
    out = map_points(flow, [[4.5, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(out, [[14.5 - 5.0, 3.0], [2.0, 2.0]])
    assert map_points(flow, np.zeros((0, 2))).shape == (0, 2)


def test_warp_and_correlation_find_a_known_shift() -> None:
    g = torch.Generator().manual_seed(0)
    fb = torch.randn(1, 64, 16, 16, generator=g)
    fa = torch.roll(fb, shifts=(1, 2), dims=(2, 3))  # content of B at p appears in A at p+(2,1)
    corr = local_correlation(fa, fb, radius=3)
    best = corr[0, :, 8, 8].argmax().item()
    assert divmod(best, 7) == (3 - 1, 3 - 2)  # peak at (dy, dx) = (-1, -2)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0], flow[:, 1] = -2.0 * 8, -1.0 * 8  # in input pixels at stride 8
    np.testing.assert_allclose(warp(fb, flow, 8)[..., 4:12, 4:12], fa[..., 4:12, 4:12], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"correlation_radius": 0, "pyramid_levels": 1, "refinement_iterations": 0},
        {"correlation_radius": 3, "pyramid_levels": 3, "refinement_iterations": 1},
    ],
)
def test_tracker_shapes_gradients_and_registry(kwargs) -> None:
    model = build_model("lesion_tracker", **kwargs)
    assert isinstance(model, LesionTracker)
    a, b = torch.rand(2, 3, 70, 100), torch.rand(2, 3, 70, 100)
    flow = model(a, b)
    assert flow.shape == (2, 2, 70, 100)
    pyramid = model.forward_pyramid(a, b)
    assert len(pyramid) == kwargs["pyramid_levels"] + kwargs["refinement_iterations"]
    pyramid[-1].abs().mean().backward()
    assert model.stem[0].weight.grad is not None


def test_init_from_detector_copies_the_trunk() -> None:
    detector = build_model("lesion_fcn")
    model = build_model("lesion_tracker")
    keys = init_from_detector(model, detector.state_dict())
    assert "stem.0.weight" in keys and "atrous.0.0.weight" in keys
    assert torch.equal(model.atrous[0][0].weight, detector.stages[2][0][0].weight)
    assert torch.equal(model.stages[1][0][0].weight, detector.stages[1][0][0].weight)
    with pytest.raises(ValueError):
        init_from_detector(model, {"head.weight": torch.zeros(3)})


def test_track_builds_a_tracking_and_matches_on_a_still_pair() -> None:
    torch.manual_seed(0)
    model = build_model("lesion_tracker", pyramid_levels=2, refinement_iterations=0)
    lesions = [disc_lesion(1, 150, 150, 10), disc_lesion(2, 400, 250, 12)]
    image = paint(lesions)
    flow = estimate_flow(model, image, image, device="cpu", working_size=256)
    assert flow.shape == (400, 600, 2) and np.isfinite(flow).all()
    info = ModelInfo("test", "0", "0" * 64)
    det = Detection(np.zeros((400, 600, 3), np.float32), tuple(lesions), info)
    result = track(model, info, image, image, det, det, device="cpu", working_size=256)
    # an untrained net predicts a near-zero flow; the lesions stay put and match themselves
    assert [(m.a, m.b) for m in result.matches] == [(1, 1), (2, 2)]
    assert result.new_in_b == () and result.gone_from_a == ()
    with pytest.raises(ValueError):
        estimate_flow(model, image[..., 0], image, device="cpu")
