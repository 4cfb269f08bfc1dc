"""Procedural body photos: determinism, exact skin masks, moles on skin, coverage of
regions and skin types."""

from __future__ import annotations

import numpy as np
import pytest

from training.sources.body_moles import place_moles
from training.sources.body_shapes import REGIONS, sample_layout
from training.sources.procedural_bodies import generate_body
from training.sources.skin_tones import FITZPATRICK_LAB, rgb_to_lab, sample_skin_tone

W, H = 320, 240


def _body(seed: int, **kwargs):
    return generate_body(np.random.default_rng(seed), width=W, height=H, **kwargs)


def test_same_seed_same_photo_bit_for_bit():
    a, b = _body(7), _body(7)
    assert a.image.dtype == np.uint8 and a.image.shape == (H, W, 3)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.skin_mask, b.skin_mask)
    assert np.array_equal(a.mole_instances, b.mole_instances)
    assert (a.mm_per_px, a.region, a.source) == (b.mm_per_px, b.region, b.source)


def test_different_seeds_differ():
    images = [_body(seed).image for seed in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j])


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_has_a_plausible_skin_mask_and_scale(region):
    body = _body(11, region=region)
    assert body.region == region
    assert body.skin_mask.dtype == bool and body.skin_mask.shape == (H, W)
    assert body.mole_instances.dtype == np.uint16 and body.mole_instances.shape == (H, W)
    assert body.skin_mask.mean() > 0.05
    assert 0.05 <= body.mm_per_px <= 0.65


def test_skin_pixels_have_skin_colour_and_differ_from_background():
    """Where the mask says skin, the photo has the drawn skin colour; outside it does not."""
    checked = 0
    for seed in range(40):
        body = _body(seed, fitzpatrick=3)
        inside = body.skin_mask
        if not 0.15 < inside.mean() < 0.85:
            continue
        lab = rgb_to_lab(body.image.astype(np.float32) / 255.0)
        skin = lab[inside]
        # a*, b* of skin under camera white-balance error: warm and reddish-yellow
        assert 3 < np.median(skin[:, 1]) < 25 and 7 < np.median(skin[:, 2]) < 30
        # away from the outline, the mask is homogeneous: the skin's colour spread is
        # small compared to the distance between skin and non-skin pixels
        core = np.median(skin, axis=0)
        skin_dist = np.linalg.norm(skin - core, axis=1)
        other_dist = np.linalg.norm(lab[~inside] - core, axis=1)
        assert np.median(other_dist) > np.median(skin_dist)
        checked += 1
        if checked >= 3:
            break
    assert checked >= 3


def test_moles_lie_inside_the_skin_mask_and_are_darker():
    found = 0
    for seed in range(30):
        body = generate_body(np.random.default_rng(seed), width=480, height=360)
        ids = np.unique(body.mole_instances)
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        assert body.skin_mask[body.mole_instances > 0].all()
        # numbered 1..n without gaps
        assert ids.tolist() == list(range(1, ids.size + 1))
        found += ids.size
    assert found > 10


def test_place_moles_respects_the_allowed_region_and_darkens_skin():
    rng = np.random.default_rng(3)
    tone = sample_skin_tone(rng, 2)
    albedo = np.ones((3, 200, 200), np.float32) * np.asarray(tone.rgb, np.float32)[:, None, None]
    allowed = np.zeros((200, 200), bool)
    allowed[40:160, 60:140] = True
    before = albedo.copy()
    instances, count = place_moles(
        np.random.default_rng(5), albedo, allowed, tone, mm_per_px=0.3, count=6
    )
    assert count == 6
    assert np.unique(instances).tolist() == list(range(7))
    assert allowed[instances > 0].all()
    changed = np.abs(albedo - before).max(axis=0) > 1e-4
    assert not changed[~allowed].any()
    assert (albedo.sum(axis=0)[instances > 0] < before.sum(axis=0)[instances > 0]).all()


def test_all_regions_and_fitzpatrick_types_are_reachable():
    regions = {sample_layout(np.random.default_rng(s), None, W, H).region for s in range(60)}
    assert regions == set(REGIONS)
    types = {sample_skin_tone(np.random.default_rng(s)).fitzpatrick for s in range(120)}
    assert types == set(FITZPATRICK_LAB)


def test_skin_tone_follows_the_fitzpatrick_scale():
    lightness = [sample_skin_tone(np.random.default_rng(0), t).lab[0] for t in range(1, 7)]
    assert lightness == sorted(lightness, reverse=True)
    ita = [sample_skin_tone(np.random.default_rng(0), t).ita_degrees for t in (1, 6)]
    assert ita[0] > 41 and ita[1] < -30


def test_fitzpatrick_type_shows_in_the_photo():
    def median_lightness(fitz):
        values = []
        for seed in range(3):
            body = _body(100 + seed, fitzpatrick=fitz, region="back")
            lab = rgb_to_lab(body.image.astype(np.float32) / 255.0)
            values.append(np.median(lab[body.skin_mask][:, 0]))
        return float(np.median(values))

    assert median_lightness(1) > median_lightness(4) + 10 > median_lightness(6) + 20
    assert "fitzpatrick-VI" in _body(1, fitzpatrick=6).source


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="region"):
        _body(0, region="elbow")
    with pytest.raises(ValueError, match="Fitzpatrick"):
        _body(0, fitzpatrick=7)
    with pytest.raises(ValueError, match="32x32"):
        generate_body(np.random.default_rng(0), width=16, height=16)
