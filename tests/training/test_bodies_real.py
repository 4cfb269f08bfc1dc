"""Real body folders: masks from files or automatic, scale, and bad input named by file."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DataError, PhotoError
from core.io import load_photo, save_rgb
from training.sources.real_bodies import (
    DEFAULT_FIELD_OF_VIEW_MM,
    RealBodyFolder,
    auto_skin_mask,
)


def _skin_scene(
    seed: int = 0, height: int = 180, width: int = 240
) -> tuple[np.ndarray, np.ndarray]:
    """Textured skin in an ellipse on a blue-grey wall, a black bar on top, a flat
    skin-coloured fill in one corner (like a masked-out area). Returns (image, true mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - width * 0.55) / (width * 0.35)) ** 2 + (
        (yy - height * 0.55) / (height * 0.38)
    ) ** 2 < 1
    image = np.empty((height, width, 3), np.float32)
    image[:] = (120, 135, 140)
    skin = np.array([205, 160, 135], np.float32) + rng.normal(0, 6, (height, width, 1))
    image[inside] = skin[inside]
    image += rng.normal(0, 2, image.shape)
    image[:12] = 0
    inside[:12] = False
    image[-40:, :40] = (200, 158, 134)  # perfectly flat, skin coloured
    inside[-40:, :40] = False
    return np.clip(image, 0, 255).astype(np.uint8), inside


def test_auto_mask_finds_textured_skin_and_rejects_background_bar_and_flat_fill():
    image, truth = _skin_scene()
    mask = auto_skin_mask(image)
    assert mask.shape == truth.shape and mask.dtype == bool
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.85
    assert not mask[:12].any()
    assert mask[-35:, :35].mean() < 0.05


def test_auto_mask_refuses_non_rgb_input():
    with pytest.raises(ValueError, match="uint8"):
        auto_skin_mask(np.zeros((10, 10), np.uint8))


def test_mask_files_beside_or_in_masks_folder_and_auto_masks(tmp_path):
    image, truth = _skin_scene()
    save_rgb(tmp_path / "a.png", image)
    save_rgb(tmp_path / "b.jpg", image)
    save_rgb(tmp_path / "c.png", image)
    own = np.zeros(truth.shape, np.uint8)
    own[50:100, 60:150] = 255
    save_rgb(tmp_path / "a_mask.png", np.repeat(own[..., None], 3, axis=2))
    (tmp_path / "masks").mkdir()
    save_rgb(tmp_path / "masks" / "b.png", np.repeat((own // 255)[..., None], 3, axis=2))
    folder = RealBodyFolder(tmp_path, region="back")
    assert len(folder) == 3  # the mask file is not a photo
    a, b, c = folder[0], folder[1], folder[2]
    assert np.array_equal(a.skin_mask, own > 0)
    assert np.array_equal(b.skin_mask, own > 0)  # 0/1 masks count as well as 0/255
    assert "a_mask.png" in a.source and "automatic" in c.source
    assert (c.skin_mask & truth).sum() / (c.skin_mask | truth).sum() > 0.85
    assert a.region == "back" and a.image.shape == image.shape
    assert a.mole_instances.shape == truth.shape and not a.mole_instances.any()


def test_scale_csv_and_estimate(tmp_path):
    image, _ = _skin_scene()
    save_rgb(tmp_path / "a.png", image)
    save_rgb(tmp_path / "b.png", image)
    (tmp_path / "scale.csv").write_text("file,mm_per_px\na.png,0.25\n")
    folder = RealBodyFolder(tmp_path)
    assert folder[0].mm_per_px == 0.25
    assert folder[1].mm_per_px == pytest.approx(DEFAULT_FIELD_OF_VIEW_MM / 240)
    assert RealBodyFolder(tmp_path, field_of_view_mm=90)[1].mm_per_px == pytest.approx(90 / 240)


def test_bad_scale_csv_is_named(tmp_path):
    image, _ = _skin_scene()
    save_rgb(tmp_path / "a.png", image)
    (tmp_path / "scale.csv").write_text("name,scale\na.png,0.25\n")
    with pytest.raises(DataError, match=r"scale\.csv: missing column"):
        RealBodyFolder(tmp_path)
    (tmp_path / "scale.csv").write_text("file,mm_per_px\na.png,big\n")
    with pytest.raises(DataError, match=r"scale\.csv: line 2"):
        RealBodyFolder(tmp_path)


def test_empty_folder_and_missing_folder_are_errors(tmp_path):
    with pytest.raises(DataError, match="no body photos"):
        RealBodyFolder(tmp_path)
    (tmp_path / "x_mask.png").write_bytes(b"")
    with pytest.raises(DataError, match="no body photos"):
        RealBodyFolder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        RealBodyFolder(tmp_path / "absent")


def test_corrupt_photo_and_bad_mask_are_named(tmp_path):
    image, _ = _skin_scene()
    save_rgb(tmp_path / "good.png", image)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9")
    folder = RealBodyFolder(tmp_path)
    broken = [i for i, p in enumerate(folder.files) if p.name == "broken.jpg"][0]
    with pytest.raises(PhotoError, match="broken.jpg"):
        folder[broken]
    save_rgb(tmp_path / "good_mask.png", np.zeros((10, 10, 3), np.uint8))
    good = [i for i, p in enumerate(folder.files) if p.name == "good.png"][0]
    with pytest.raises(DataError, match=r"good_mask\.png: mask is 10x10 px"):
        folder[good]
    (tmp_path / "good_mask.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"good_mask\.png: mask is not a readable image"):
        folder[good]


def test_auto_masks_on_real_total_body_tiles(shared_data):
    folder_path = shared_data / "itobos-tbp-dev"
    if not folder_path.is_dir():
        pytest.skip("itobos-tbp-dev not present")
    folder = RealBodyFolder(folder_path)
    assert len(folder) >= 4
    for index in range(len(folder)):
        body = folder[index]
        image = body.image
        fraction = body.skin_mask.mean()
        assert 0.5 < fraction < 0.99, (body.source, fraction)
        dark_rows = image.max(axis=(1, 2)) < 12  # black padding strips
        assert not body.skin_mask[dark_rows].any()
    tile = load_photo(folder_path / "images" / "image_0102.png")
    mask = folder[[p.name for p in folder.files].index("image_0102.png")].skin_mask
    # its corners are a flat fill of skin-like colour, not skin
    assert not mask[:20, :20].any() and not mask[-20:, -20:].any()
    assert tile.shape[:2] == mask.shape
