"""Overlay colours: malignant red, benign yellow, background untouched, outlines drawn."""

from __future__ import annotations

import numpy as np

from core.overlay import detection_overlay
from core.postprocess import find_lesions
from core.types import Detection, ModelInfo


def _detection() -> tuple[np.ndarray, Detection]:
    image = np.full((200, 300, 3), 128, np.uint8)
    heat = np.zeros((200, 300, 3), np.float32)
    heat[:, :, 0] = 1
    heat[60:120, 40:100] = (0.05, 0.05, 0.9)  # malignant
    heat[60:120, 180:240] = (0.05, 0.9, 0.05)  # benign
    info = ModelInfo("m", "1", "0" * 64)
    return image, Detection(heatmap=heat, lesions=find_lesions(heat), model=info)


def test_heat_colours_and_untouched_background() -> None:
    image, detection = _detection()
    out = detection_overlay(image, detection, legend=False)
    assert out.shape == image.shape and out.dtype == np.uint8
    r, g, b = out[90, 70].astype(int)
    assert r > 170 and g < 100 and b < 100  # red
    r, g, b = out[90, 210].astype(int)
    assert r > 170 and g > 150 and b < 100  # yellow
    assert (out[180, 150] == 128).all()  # far from any lesion
    assert (image == 128).all()  # input not modified


def test_outlines_and_legend_are_drawn() -> None:
    image, detection = _detection()
    plain = detection_overlay(image, detection, legend=False)
    no_outlines = Detection(heatmap=detection.heatmap, lesions=(), model=detection.model)
    heat_only = detection_overlay(image, no_outlines, legend=False)
    # the outline (red, on a black rim) runs along the malignant square's top border
    assert not np.array_equal(plain[60, 45:95], heat_only[60, 45:95])
    assert (plain[60, 50:90, 0] > 150).all() and (plain[60, 50:90, 1] < 100).all()
    with_legend = detection_overlay(image, detection)
    assert not np.array_equal(with_legend[:20, :20], plain[:20, :20])


def test_a_closeups_verdict_is_written_along_the_bottom() -> None:
    from core.overlay import closeup_caption
    from core.types import CloseupAssessment

    image, detection = _detection()
    verdict = CloseupAssessment(lesion_id=1, p_malignant=0.9, p_lesion=0.95, analysed_size=(1, 1))
    closeup = Detection(detection.heatmap, detection.lesions, detection.model, closeup=verdict)
    plain = detection_overlay(image, detection, legend=False)
    captioned = detection_overlay(image, closeup, legend=False)
    assert not np.array_equal(captioned[-15:, :100], plain[-15:, :100])
    assert np.array_equal(captioned[:150], plain[:150])  # nothing else changes
    assert closeup_caption(verdict) == "close-up: region 1, p malignant 0.90"
    blank = CloseupAssessment(lesion_id=None, p_malignant=0.43, p_lesion=0.0, analysed_size=(1, 1))
    assert closeup_caption(blank) == "close-up: no region, centre P(lesion) 0.00, p malignant 0.43"


def test_the_overlay_of_a_coarse_map_never_makes_the_whole_heatmap() -> None:
    from core.tiling import CoarseProbabilities

    rng = np.random.default_rng(3)
    values = rng.random((150, 120, 3)).astype(np.float32)
    values /= values.sum(axis=2, keepdims=True)
    coarse = CoarseProbabilities(values, 4, 597, 478)  # a strip of 512 rows, then 85
    image = rng.integers(0, 256, (597, 478, 3), dtype=np.uint8)
    info = ModelInfo("m", "1", "0" * 64)
    lazy = Detection(heatmap=coarse, lesions=(), model=info)
    out = detection_overlay(image, lazy)
    assert "heatmap" not in lazy.__dict__  # the full heatmap was never made
    full = Detection(heatmap=coarse.upsample(), lesions=(), model=info)
    np.testing.assert_array_equal(out, detection_overlay(image, full))
    np.testing.assert_array_equal(lazy.heatmap_rows(500, 597), full.heatmap[500:597])
