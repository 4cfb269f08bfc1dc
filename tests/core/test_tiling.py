"""Tiled inference: grid planning, blending weights, equality with a whole-image pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.errors import Cancelled
from core.tiling import (
    CPU_BATCH_PIXELS,
    CUDA_BATCH_SIZE,
    CoarseProbabilities,
    axis_weights,
    default_batch_size,
    mirror_averaged,
    plan_axis,
    plan_tiles,
    tiled_heatmap,
    tiled_probabilities,
    upsample_probabilities,
)


class LocalModel(torch.nn.Module):
    """Stride-4 logits that depend only on each 4x4 block: tiling must not change them."""

    output_stride = 4

    def logits_lowres(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 4)
        return torch.stack(
            [4 * pooled[:, 0] - 2, 3 * pooled[:, 1], 5 * pooled[:, 2] * pooled[:, 0]], dim=1
        )


def _reference(image: np.ndarray) -> np.ndarray:
    """Whole-image pass of LocalModel at stride 4 on the photo padded (edge) to a multiple
    of 32, as the detector pads a photo, upsampled like the tiler does."""
    h, w = image.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
    probs = LocalModel().logits_lowres(x).softmax(1)[0].permute(1, 2, 0).numpy()
    return CoarseProbabilities(np.ascontiguousarray(probs), 4, h, w).upsample()


@pytest.mark.parametrize("length", [1, 31, 100, 128, 129, 500, 1001, 3000, 4000, 6000])
@pytest.mark.parametrize(("tile", "overlap"), [(128, 32), (2048, 64), (2048, 96), (1024, 96)])
def test_plan_axis_covers_the_axis_with_overlap(length: int, tile: int, overlap: int) -> None:
    grid = plan_axis(length, tile_size=tile, overlap=overlap)
    assert grid.padded == -(-length // 32) * 32  # what a whole-photo pass analyses
    assert grid.size % 32 == 0 and grid.size <= max(tile, grid.padded)
    assert grid.starts[0] == 0 and grid.starts[-1] + grid.size == grid.padded
    assert all(s % 32 == 0 for s in grid.starts)  # in phase with a whole-photo pass
    for a, b in zip(grid.starts, grid.starts[1:], strict=False):
        assert a + grid.size - b >= overlap  # at least the requested overlap


def test_cpu_tiles_are_capped_at_a_pixel_budget_with_the_fewest_pixels() -> None:
    options = {"tile_size": 2048, "overlap": 64}
    # a 12 MP photo's tiles fit: the plain plan
    assert plan_tiles(4000, 3000, max_pixels=CPU_BATCH_PIXELS, **options) == (
        plan_axis(4000, **options),
        plan_axis(3000, **options),
    )
    # a 24 MP photo's 2048 x 2048 tiles do not: 9 of 2048 x 1376, not 6 of 2048 x 2048
    gx, gy = plan_tiles(6000, 4000, max_pixels=CPU_BATCH_PIXELS, **options)
    assert gx.size * gy.size <= CPU_BATCH_PIXELS and (gx.size, gy.size) == (2048, 1376)
    for grid, length in ((gx, 6000), (gy, 4000)):
        assert grid.starts[-1] + grid.size == grid.padded >= length
        pairs = zip(grid.starts, grid.starts[1:], strict=False)
        assert all(a + grid.size - b >= 64 for a, b in pairs)
    assert len(gx.starts) * len(gy.starts) == 9
    # without a budget (a GPU) the plain plan stays
    assert plan_tiles(6000, 4000, **options) == (
        plan_axis(6000, **options),
        plan_axis(4000, **options),
    )


class CoarsePhaseModel(torch.nn.Module):
    """Logits made of 32x32 block means: like the detector's deepest stage, they depend on
    where the 32-pixel grid falls, so only tiles in phase with the photo reproduce them."""

    output_stride = 4

    def logits_lowres(self, x: torch.Tensor) -> torch.Tensor:
        blocks = F.interpolate(F.avg_pool2d(x, 32), scale_factor=8, mode="nearest")
        return torch.stack([4 * blocks[:, 0] - 2, 3 * blocks[:, 1], 2 * blocks[:, 2]], dim=1)


def test_tiles_in_phase_give_the_whole_photo_pass() -> None:
    rng = np.random.default_rng(8)
    image = rng.integers(0, 256, (301, 450, 3), dtype=np.uint8)
    model = CoarsePhaseModel()
    options = {"device": torch.device("cpu"), "tile_size": 128, "overlap": 32}
    tiled = tiled_probabilities(model, image, **options).values
    whole = tiled_probabilities(model, image, **{**options, "tile_size": 512}).values
    assert plan_axis(301, tile_size=128, overlap=32).starts != (0,)  # really tiled
    np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_weights_form_a_partition_of_unity() -> None:
    grid = plan_axis(1001, tile_size=128, overlap=32)
    total = np.zeros(grid.padded // 4)
    for start, w in zip(grid.starts, axis_weights(grid), strict=True):
        assert w.min() > 0 and w.max() <= 1
        total[start // 4 : start // 4 + len(w)] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_work_grows_linearly_with_pixels() -> None:
    def work(w: int, h: int) -> int:
        gx = plan_axis(w, tile_size=768, overlap=96)
        gy = plan_axis(h, tile_size=768, overlap=96)
        return len(gx.starts) * len(gy.starts) * gx.size * gy.size

    assert 3.5 <= work(6000, 4000) / work(3000, 2000) <= 4.5


def test_cpu_batches_stay_within_a_pixel_budget() -> None:
    # a 12 MP photo's tiles: 1408 x 1088 two at a time, 2048 x 1568 one at a time
    assert default_batch_size(False, 1088, 1408) == 2
    assert default_batch_size(False, 1568, 2048) == 1
    assert default_batch_size(False, 4000, 4000) == 1  # never none
    assert default_batch_size(False, 256, 256) * 256 * 256 <= CPU_BATCH_PIXELS
    assert default_batch_size(True, 1568, 2048) == CUDA_BATCH_SIZE


def test_default_batches_give_the_same_map_as_single_tiles() -> None:
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (200, 330, 3), dtype=np.uint8)
    options = {"device": torch.device("cpu"), "tile_size": 96, "overlap": 32}
    np.testing.assert_allclose(
        tiled_heatmap(LocalModel(), image, **options),
        tiled_heatmap(LocalModel(), image, batch_size=1, **options),
        atol=1e-6,
    )


@pytest.mark.parametrize("shape", [(37, 53), (200, 330), (301, 129)])
def test_tiling_equals_whole_image_pass_for_a_local_model(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    heatmap = tiled_heatmap(
        LocalModel(), image, device=torch.device("cpu"), tile_size=96, overlap=32, batch_size=3
    )
    assert heatmap.shape == (*shape, 3) and heatmap.dtype == np.float32
    np.testing.assert_allclose(heatmap.sum(axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(heatmap, _reference(image), atol=1e-5)


def test_mirror_averaging_keeps_a_symmetric_model_and_evens_out_a_sided_one() -> None:
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (200, 330, 3), dtype=np.uint8)
    options = {"device": torch.device("cpu"), "tile_size": 96, "overlap": 32, "batch_size": 3}
    # LocalModel sees 4x4 block means, which mirroring does not change
    np.testing.assert_allclose(
        tiled_heatmap(LocalModel(), image, mirror=True, **options),
        tiled_heatmap(LocalModel(), image, **options),
        atol=1e-5,
    )

    def sided(tiles: np.ndarray) -> np.ndarray:
        """P(benign) rising from the left of each tile to its right, whatever it shows."""
        b, h, w = tiles.shape[:3]
        probs = np.zeros((b, h // 4, w // 4, 3), np.float32)
        probs[..., 1] = np.linspace(0.0, 1.0, w // 4, dtype=np.float32)
        probs[..., 0] = 1.0 - probs[..., 1]
        return probs

    tiles = rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    averaged = mirror_averaged(sided)(tiles)
    assert averaged.shape == (2, 8, 16, 3)
    np.testing.assert_allclose(averaged[..., 1], 0.5, atol=1e-6)


def test_progress_and_cancel() -> None:
    image = np.zeros((300, 300, 3), np.uint8)
    seen: list[float] = []
    tiled_heatmap(
        LocalModel(),
        image,
        device=torch.device("cpu"),
        tile_size=96,
        overlap=32,
        batch_size=2,
        progress=seen.append,
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 2
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        tiled_heatmap(
            LocalModel(),
            image,
            device=torch.device("cpu"),
            tile_size=96,
            overlap=32,
            batch_size=2,
            cancel=cancel,
        )
    assert len(calls) == 3


def test_upsampling_puts_block_centres_in_place() -> None:
    low = np.zeros((4, 4, 1), np.float32)
    low[1, 2, 0] = 1.0
    up = upsample_probabilities(low, 16, 16, 4)
    # block (row 1, col 2) covers x 8..11, y 4..7; its centre (9.5, 5.5) is the peak
    ys, xs = np.nonzero(up[:, :, 0] == up[:, :, 0].max())
    assert set(xs) <= {9, 10} and set(ys) <= {5, 6}
    odd = upsample_probabilities(low, 15, 14, 4)  # not a multiple of 4: same alignment
    np.testing.assert_allclose(odd[:, :, 0], up[:15, :14, 0], atol=0.04)


def test_an_upsampled_window_is_the_same_pixels_of_the_whole_map() -> None:
    rng = np.random.default_rng(3)
    for shape, (height, width) in (((20, 30), (80, 120)), ((21, 33), (81, 127))):
        coarse = CoarseProbabilities(rng.random((*shape, 3), dtype=np.float32), 4, height, width)
        whole = coarse.upsample()
        assert whole.shape == (height, width, 3)
        for x0, y0, w, h in ((0, 0, width, height), (0, 0, 9, 7), (37, 5, 40, 60), (13, 50, 1, 1),
                             (width - 11, height - 6, 11, 6)):  # fmt: skip
            np.testing.assert_array_equal(
                coarse.window(x0, y0, w, h), whole[y0 : y0 + h, x0 : x0 + w]
            )
