"""Tracking pairs: exact flow, correspondences, new/gone lesions, determinism."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from tests.training.synth_standins import STANDINS
from training.synthesis.deform import random_deformation
from training.synthesis.detection import PairOptions, SynthConfig
from training.synthesis.pairs import make_pair_sample

GEOMETRY_ONLY = SynthConfig(
    width=320,
    height=240,
    lesions_per_image=(4, 6),
    pairs=PairOptions(photometric=False, new_range=(1, 2), gone_range=(1, 1)),
)


def _warp_b_to_a(s) -> np.ndarray:
    h, w = s.valid.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(s.image_b, xs + s.flow[..., 0], ys + s.flow[..., 1], cv2.INTER_LINEAR)


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


@pytest.mark.parametrize("index", [0, 1, 2])
def test_flow_maps_a_onto_b_outside_changed_lesions(index: int) -> None:
    s = make_pair_sample(index, 3, GEOMETRY_ONLY, sources=STANDINS)
    warped = _warp_b_to_a(s)
    h, w = s.valid.shape
    # pixels whose content legitimately differs: changed/gone lesions in A, new/changed in B
    excluded = np.zeros((h, w), bool)
    for k in (*s.changed, *s.gone_from_a):
        excluded |= _grow(s.instance_map_a == k, 8)
    changed_b = {b for a, b in s.correspondences if a in s.changed} | set(s.new_in_b)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    lands = cv2.remap(
        np.isin(s.instance_map_b, list(changed_b)).astype(np.uint8),
        xs + s.flow[..., 0],
        ys + s.flow[..., 1],
        cv2.INTER_NEAREST,
    )
    excluded |= _grow(lands > 0, 8)
    keep = s.valid & ~excluded & ~_grow(~s.valid, 2)
    diff = np.abs(warped.astype(int) - s.image_a.astype(int)).max(axis=2)[keep]
    assert keep.mean() > 0.4
    assert np.median(diff) <= 1.0
    assert np.percentile(diff, 99) <= 12
    # and the flow is not trivial: the view really moved
    assert np.abs(s.flow[s.valid]).max() > 5


def test_correspondences_follow_the_flow() -> None:
    for index in range(3):
        s = make_pair_sample(index, 4, GEOMETRY_ONLY, sources=STANDINS)
        h, w = s.valid.shape
        records_a = {r.id: r for r in s.lesions_a}
        records_b = {r.id: r for r in s.lesions_b}
        checked = 0
        for ia, ib in s.correspondences:
            ra = records_a[ia]
            x0, y0, x1, y1 = ra.bbox
            if x0 == 0 or y0 == 0 or x1 == w or y1 == h:
                continue  # cut by A's frame: its centroid is not the lesion's
            if records_b[ib].bbox[0] == 0 or records_b[ib].bbox[2] == w:
                continue
            x, y = round(ra.centroid[0]), round(ra.centroid[1])
            if s.instance_map_a[y, x] != ia:
                continue  # ring-shaped lesion: centroid outside it
            bx, by = np.array([x, y]) + s.flow[y, x]
            near = s.instance_map_b[
                max(0, round(by) - 1) : round(by) + 2, max(0, round(bx) - 1) : round(bx) + 2
            ]
            assert ib in near, (ia, ib)
            checked += 1
        assert checked >= 2


def test_new_and_gone_lesions_are_absent_from_the_other_photo() -> None:
    seen_new = seen_gone = 0
    for index in range(3):
        s = make_pair_sample(index, 6, GEOMETRY_ONLY, sources=STANDINS)
        h, w = s.valid.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        bx, by = xs + s.flow[..., 0], ys + s.flow[..., 1]
        for ia in s.gone_from_a:
            m = (s.instance_map_a == ia) & s.valid
            px = np.clip(np.rint(bx[m]).astype(int), 0, w - 1)
            py = np.clip(np.rint(by[m]).astype(int), 0, h - 1)
            assert (s.instance_map_b[py, px] == 0).all()
            assert ia not in {a for a, _ in s.correspondences}
            seen_gone += 1
        for ib in s.new_in_b:
            lands = (
                s.instance_map_b[
                    np.clip(np.rint(by).astype(int), 0, h - 1),
                    np.clip(np.rint(bx).astype(int), 0, w - 1),
                ]
                == ib
            ) & s.valid
            assert lands.any()  # new lesions appear where A shows skin
            assert (s.instance_map_a[lands] == 0).all()
            assert ib not in {b for _, b in s.correspondences}
            seen_new += 1
        assert set(s.changed) <= {a for a, _ in s.correspondences}
    assert seen_new >= 1 and seen_gone >= 1


def test_pairs_are_deterministic_and_photometric_change_applies() -> None:
    config = replace(GEOMETRY_ONLY, pairs=PairOptions())
    a = make_pair_sample(1, 9, config, sources=STANDINS)
    b = make_pair_sample(1, 9, config, sources=STANDINS)
    for name in ("image_a", "image_b", "flow", "valid", "instance_map_a", "instance_map_b"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.correspondences == b.correspondences
    c = make_pair_sample(2, 9, config, sources=STANDINS)
    assert not np.array_equal(a.image_a, c.image_a)
    assert a.flow.dtype == np.float32 and a.flow.shape == (240, 320, 2)


def test_deformation_is_invertible_and_reaches_large_shifts() -> None:
    w, h, m = 400, 300, 100
    largest = 0.0
    for seed in range(12):
        d = random_deformation(np.random.default_rng(seed), (w + 2 * m, h + 2 * m), (m, m), (w, h))
        q = np.stack(np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 7)), -1)
        back = d.inverse(q)
        assert np.abs(d.forward(back) - q).max() < 0.01
        assert back[..., 0].min() >= 0 and back[..., 0].max() <= w + 2 * m - 1
        flow, valid = d.flow()
        largest = max(largest, float(np.abs(flow[valid]).max()))
    assert 0.12 * w < largest < 0.5 * w
