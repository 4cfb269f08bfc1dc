"""The tracker's optional soft-argmax of the cost volume (``soft_argmax=True``)."""

from __future__ import annotations

import pytest
import torch

from core.models.tracker import LesionTracker

SMALL = {"widths": (8, 16, 16), "depths": (1, 1, 1), "atrous_dilations": (2, 2)}


def test_off_by_default_so_older_weights_still_fit() -> None:
    plain = LesionTracker(**SMALL)
    with_soft = LesionTracker(**SMALL, soft_argmax=True)
    assert set(with_soft.state_dict()) - set(plain.state_dict()) == {"temperature"}
    with pytest.raises(ValueError, match="correlation_radius"):
        LesionTracker(**SMALL, soft_argmax=True, correlation_radius=0)


def test_update_moves_by_the_correlation_peak() -> None:
    torch.manual_seed(0)
    model = LesionTracker(**SMALL, soft_argmax=True, feature_dim=64).eval()
    with torch.no_grad():
        model.temperature.fill_(40.0)
    fa = torch.randn(1, 64, 12, 16)
    # B's features are A's moved 2 cells right and 1 cell up: A cell p is at p + (2, -1)
    fb = torch.roll(fa, shifts=(-1, 2), dims=(2, 3))
    with torch.no_grad():
        delta = model._update(0, fa, fb, None)  # the estimator's last conv starts at zero
    inner = delta[0, :, 2:-2, 3:-3]
    assert torch.allclose(inner[0], torch.full_like(inner[0], 2 * 8.0), atol=0.5)
    assert torch.allclose(inner[1], torch.full_like(inner[1], -1 * 8.0), atol=0.5)


def test_fused_network_gives_the_same_flow() -> None:
    torch.manual_seed(1)
    model = LesionTracker(**SMALL, soft_argmax=True).eval()
    a, b = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = model(a, b)
        after = model.fuse_for_inference()(a, b)
    assert torch.allclose(before, after, atol=1e-3)
