"""Detection synthesis: labels on skin and over blended pixels, placement, determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.training.synth_standins import STANDINS, standin_body, standin_lesion
from training.sources.base import BENIGN, MALIGNANT
from training.sources.skin_tones import fitzpatrick_of_source
from training.synthesis.blend import blend_lesion, poisson_solve
from training.synthesis.detection import (
    LESION_ORIGINS,
    SynthConfig,
    lesion_origin,
    make_detection_sample,
)
from training.synthesis.placement import body_features, choose_position, ring_descriptor
from training.synthesis.sources import SynthSources

SMALL = SynthConfig(width=320, height=240, lesions_per_image=(4, 6))


def _recording_sources():
    bodies = []

    def body(rng, width, height):
        b = standin_body(rng, width, height)
        bodies.append(b)
        return b

    return SynthSources(body=body, lesion=standin_lesion), bodies


@pytest.mark.parametrize("index", [0, 1, 2])
def test_blended_labels_lie_on_skin_and_on_changed_pixels(index: int) -> None:
    sources, bodies = _recording_sources()
    config = replace(SMALL, augment=0.0, body_pool=0)  # image = body + blends, nothing else
    s = make_detection_sample(index, 5, config, sources=sources)
    body = bodies[-1]
    changed = np.abs(s.image.astype(int) - body.image.astype(int)).max(axis=2) >= 2
    blended = [r for r in s.lesions if not r.source.startswith("standin-body")]
    assert blended, "no lesion was blended"
    for r in blended:
        label = s.instance_map == r.id
        assert label.sum() > 0
        assert s.skin_mask[label].all()
        assert changed[label].mean() >= 0.9
        # the lesion is darker than the skin right around it (it is actually visible)
        x0, y0, x1, y1 = r.bbox
        ring = np.zeros_like(label)
        ring[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = True
        ring &= (s.instance_map == 0) & s.skin_mask
        assert s.image[label].mean() < s.image[ring].mean() - 10
    # nothing outside the blended lesions' neighbourhoods changed
    near = np.zeros_like(changed)
    for r in blended:
        x0, y0, x1, y1 = r.bbox
        pad = max(x1 - x0, y1 - y0)
        near[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = True
    assert not changed[~near].any()


def test_sample_shapes_classes_records_and_sizes() -> None:
    s = make_detection_sample(3, 0, SMALL, sources=STANDINS)
    assert s.image.shape == (240, 320, 3) and s.image.dtype == np.uint8
    assert s.class_map.dtype == np.uint8 and s.instance_map.dtype == np.uint16
    assert set(np.unique(s.class_map)) <= {0, BENIGN, MALIGNANT}
    ids = set(np.unique(s.instance_map)) - {0}
    assert ids == {r.id for r in s.lesions}
    for r in s.lesions:
        ys, xs = np.nonzero(s.instance_map == r.id)
        assert r.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert abs(r.centroid[0] - xs.mean()) < 1e-6
        assert (s.class_map[ys, xs] == r.label).all()
        if not r.source.startswith("standin-body"):
            assert 2.0 <= r.diameter_mm <= 20.0
            measured_mm = 2 * np.sqrt(len(ys) / np.pi) * s.mm_per_px
            assert 0.5 * r.diameter_mm <= measured_mm <= 1.6 * r.diameter_mm
    # the body's two moles are benign instances
    assert sum(r.source.startswith("standin-body") for r in s.lesions) == 2


def test_same_seed_identical_other_index_different() -> None:
    a = make_detection_sample(7, 11, SMALL, sources=STANDINS)
    b = make_detection_sample(7, 11, SMALL, sources=STANDINS)
    c = make_detection_sample(8, 11, SMALL, sources=STANDINS)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instance_map, b.instance_map)
    assert a.lesions == b.lesions
    assert not np.array_equal(a.image, c.image)


def test_placement_matches_surrounding_skin_colour() -> None:
    # left half pale skin, right half dark skin: a lesion cut from dark skin goes right
    h, w = 120, 200
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (225, 185, 165)
    image[:, w // 2 :] = (110, 70, 50)
    skin = np.ones((h, w), bool)
    features = body_features(image, skin)
    rng = np.random.default_rng(0)
    lesion = standin_lesion(rng, BENIGN, 16)
    patch = np.where(lesion.mask[..., None], lesion.image, np.uint8([112, 72, 52]))
    desc = ring_descriptor(patch, lesion.mask)
    occupied = np.zeros((h, w), bool)
    for _ in range(10):
        x, y = choose_position(features, desc, 10.0, occupied, rng)
        assert x >= w // 2 + 8


def test_placement_respects_skin_margin_and_occupied() -> None:
    rng = np.random.default_rng(1)
    body = standin_body(rng, 200, 160)
    features = body_features(body.image, body.skin_mask)
    occupied = np.zeros(body.skin_mask.shape, bool)
    occupied[:, :100] = True
    desc = np.array([60, 15, 15, 2, 1], np.float32)
    for _ in range(10):
        pos = choose_position(features, desc, 12.0, occupied, rng)
        assert pos is not None
        x, y = pos
        assert x >= 100 + 12
        yy, xx = np.ogrid[:160, :200]
        disk = (xx - x) ** 2 + (yy - y) ** 2 <= 12**2
        assert body.skin_mask[disk].all()
    occupied[:] = True
    assert choose_position(features, desc, 12.0, occupied, rng) is None


def test_poisson_keeps_target_outside_and_source_gradients_inside() -> None:
    rng = np.random.default_rng(2)
    target = rng.uniform(0, 1, (20, 24, 3)).astype(np.float32)
    source = target + 0.5  # same gradients: the solution is the target itself
    region = np.zeros((20, 24), bool)
    region[5:15, 6:18] = True
    out = poisson_solve(target, source, region)
    assert np.allclose(out, target, atol=1e-4)
    with pytest.raises(ValueError):
        poisson_solve(target, source, np.ones((20, 24), bool))


def test_invisible_lesion_is_dropped() -> None:
    body = standin_body(np.random.default_rng(3), 160, 120)
    flat = np.full((30, 30, 3), 180, np.uint8)
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True
    assert blend_lesion(body.image, body.skin_mask, flat, mask, (80, 60)) is None
    dark = flat.copy()
    dark[mask] = (90, 60, 50)
    stamp = blend_lesion(body.image, body.skin_mask, dark, mask, (80, 60))
    assert stamp is not None and stamp.label.sum() == 100
    x0, y0, x1, y1 = stamp.box
    ys, xs = np.nonzero(stamp.label)
    assert abs(xs.mean() + x0 - 80) <= 1 and abs(ys.mean() + y0 - 60) <= 1


def test_a_sample_says_the_skin_type_of_its_body() -> None:
    assert fitzpatrick_of_source("procedural:back:fitzpatrick-V:mole1") == 5
    assert fitzpatrick_of_source("procedural:leg:fitzpatrick-II") == 2
    assert fitzpatrick_of_source("images/PAT_1.jpg") == 0  # a real photo: unknown
    assert make_detection_sample(3, 0, SMALL, sources=STANDINS).skin_type == 0
    procedural = SynthConfig(width=320, height=240, lesion_source="procedural", body_pool=0)
    types = set()
    for index in range(4):
        s = make_detection_sample(index, 5, procedural)
        assert 1 <= s.skin_type <= 6
        types.add(s.skin_type)
        for mole in (r for r in s.lesions if ":mole" in r.source):
            assert fitzpatrick_of_source(mole.source) == s.skin_type
    assert len(types) > 1


def test_each_lesion_says_where_it_came_from() -> None:
    assert lesion_origin("procedural:back:fitzpatrick-V:mole12") == "body_mole"
    assert lesion_origin("bodies/IMG_3.jpg:mole2") == "body_mole"  # a real body's mole
    assert lesion_origin("procedural:melanoma") == "procedural"
    assert lesion_origin("images/PAT_1805_3477_772.jpg") == "photo"
    assert lesion_origin("images/mole12.jpg") == "photo"  # a photo named so: no ":mole<id>"
    s = make_detection_sample(3, 0, SMALL, sources=STANDINS)
    origins = [r.origin for r in s.lesions]
    assert set(origins) <= set(LESION_ORIGINS)
    # the stand-in body's two moles; the stand-in lesions are photos ("standin:<d>")
    assert origins.count("body_mole") == 2 and "photo" in origins
    procedural = SynthConfig(width=320, height=240, lesion_source="procedural", body_pool=0)
    made = make_detection_sample(1, 5, procedural)
    assert {r.origin for r in made.lesions} == {"body_mole", "procedural"}
