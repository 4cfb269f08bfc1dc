"""Lesion matching, change figures and visit chains (core.matching)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.matching import (
    AREA_RATIO_SHRINK,
    CHANGE_RULE,
    chain_identities,
    ciede2000,
    colour_change,
    field_of_view,
    is_changed,
    match_lesions,
    split_by_field_of_view,
    touches_edge,
)
from core.types import Lesion, LesionMatch

SKIN = (200, 160, 140)
MOLE = (90, 50, 40)


def disc_lesion(lesion_id: int, cx: float, cy: float, r: float, p_mal: float = 0.1) -> Lesion:
    mask = np.zeros((400, 600), np.uint8)
    cv2.circle(mask, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = contours[0].reshape(-1, 2).astype(np.int32)
    x, y, w, h = cv2.boundingRect(contour)
    return Lesion(lesion_id, (cx, cy), (x, y, x + w, y + h), contour, float(mask.sum()), 0.9, p_mal)


def paint(lesions: list[Lesion], colour=MOLE, skin=SKIN, shape=(400, 600)) -> np.ndarray:
    image = np.empty(shape + (3,), np.uint8)
    image[:] = skin
    for le in lesions:
        cv2.fillPoly(image, [le.contour.reshape(-1, 1, 2)], colour)
    return image


def translation(shape, dx, dy) -> np.ndarray:
    flow = np.zeros(shape + (2,), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_translation_matches_new_and_gone() -> None:
    a = [disc_lesion(1, 100, 100, 8), disc_lesion(2, 300, 200, 10), disc_lesion(3, 500, 300, 6)]
    # the flow moves everything by (+60, +20); lesion 3 has gone, a new lesion 9 appears
    b = [disc_lesion(7, 360, 220, 10), disc_lesion(5, 160, 120, 8), disc_lesion(9, 100, 350, 7)]
    img_a, img_b = paint(a), paint(b)
    matches, new, gone = match_lesions(a, b, translation((400, 600), 60, 20), img_a, img_b)
    assert [(m.a, m.b) for m in matches] == [(1, 5), (2, 7)]
    assert new == (9,) and gone == (3,)
    for m in matches:
        assert 0.9 < m.confidence <= 1.0
        assert 0.85 < m.area_ratio < 1.15
        assert m.delta_e < 2.0 and not m.changed


def test_flow_decides_over_raw_proximity() -> None:
    # two lesions 40 px apart; the body moved by 40 px: without the flow each would pair with
    # the other's successor. The flow carries them right.
    a = [disc_lesion(1, 200, 200, 6), disc_lesion(2, 240, 200, 6)]
    b = [disc_lesion(1, 240, 200, 6), disc_lesion(2, 280, 200, 6)]
    img_a, img_b = paint(a), paint(b)
    matches, new, gone = match_lesions(a, b, translation((400, 600), 40, 0), img_a, img_b)
    assert [(m.a, m.b) for m in matches] == [(1, 1), (2, 2)]
    matches0, _, _ = match_lesions(a, b, translation((400, 600), 0, 0), img_a, img_b)
    assert (2, 1) in [(m.a, m.b) for m in matches0]  # no flow -> the wrong pairing


def test_far_lesion_is_gated_out() -> None:
    a = [disc_lesion(1, 100, 100, 5)]
    b = [disc_lesion(1, 180, 100, 5)]
    matches, new, gone = match_lesions(a, b, translation((400, 600), 0, 0), paint(a), paint(b))
    assert matches == () and new == (1,) and gone == (1,)


def test_near_miss_of_a_like_sized_lesion_is_matched_with_low_confidence() -> None:
    # the flow left a small lesion 30 px short of its partner: beyond the gate (2 radii + 2 %
    # of the diagonal = 20 px), within the second look's (2 radii + 3.5 % = 31 px)
    a = [disc_lesion(1, 100, 100, 3), disc_lesion(2, 400, 300, 3)]
    b = [disc_lesion(1, 130, 100, 3), disc_lesion(2, 430, 300, 6)]  # lesion 2: 4x the area
    flow = translation((400, 600), 0, 0)
    matches, new, gone = match_lesions(a, b, flow, paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(1, 1)]
    assert matches[0].confidence < 0.05
    assert new == (2,) and gone == (2,)  # sizes disagree: a gone lesion and a new one
    plain, new, gone = match_lesions(a, b, flow, paint(a), paint(b), near_miss=False)
    assert plain == () and new == (1, 2) and gone == (1, 2)


def test_near_miss_is_not_taken_where_the_flow_lines_up_the_surroundings() -> None:
    # the same geometry on textured skin that the (right) flow lines up: the A lesion is gone
    # and a like-sized lesion is new 30 px away, not a lesion the flow misplaced
    a = [disc_lesion(1, 300, 200, 3)]
    b = [disc_lesion(1, 330, 200, 3)]
    grain = np.random.default_rng(3).normal(0, 25, (400, 600, 1))
    skin = cv2.GaussianBlur(grain, (0, 0), 2)[..., None] + np.array(SKIN, np.float64)
    skin = np.clip(skin, 0, 255).astype(np.uint8)

    def on_skin(lesions: list[Lesion]) -> np.ndarray:
        image = skin.copy()
        for le in lesions:
            cv2.fillPoly(image, [le.contour.reshape(-1, 1, 2)], MOLE)
        return image

    flow = translation((400, 600), 0, 0)
    matches, new, gone = match_lesions(a, b, flow, on_skin(a), on_skin(b))
    assert matches == () and new == (1,) and gone == (1,)
    # on plain skin the flow cannot be trusted there, and the pair is taken
    matches, _, _ = match_lesions(a, b, flow, paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(1, 1)]


def test_near_miss_leaves_gated_matches_alone() -> None:
    # A's lesion 1 lies within the gate of B's 1 and within the second look's of B's 2: the
    # gated match is kept, and B's 2 does not take a lesion already matched
    a = [disc_lesion(1, 100, 100, 3)]
    b = [disc_lesion(1, 110, 100, 3), disc_lesion(2, 75, 100, 3)]
    matches, new, gone = match_lesions(a, b, translation((400, 600), 0, 0), paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(1, 1)] and new == (2,) and gone == ()


def zoom_flow(shape, factor, centre) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    flow = np.stack([(xs - centre[0]) * (factor - 1), (ys - centre[1]) * (factor - 1)], -1)
    return flow.astype(np.float32)


def test_area_ratio_is_corrected_for_zoom_and_growth_flags_change() -> None:
    c = (300.0, 200.0)
    a = [disc_lesion(1, 200, 150, 10), disc_lesion(2, 400, 250, 10)]
    # camera 1.5x closer: both lesions appear 1.5x larger; lesion 2 also grew (radius x1.4)
    b = [disc_lesion(1, 150, 125, 15), disc_lesion(2, 450, 275, 21)]
    flow = zoom_flow((400, 600), 1.5, c)
    matches, _, _ = match_lesions(a, b, flow, paint(a), paint(b))
    by_a = {m.a: m for m in matches}
    assert 0.85 < by_a[1].area_ratio < 1.15 and not by_a[1].changed
    assert by_a[2].area_ratio > 1.6 and by_a[2].changed
    raw_ratio = b[0].area_px / a[0].area_px
    assert raw_ratio > 2.0  # the uncorrected ratio would have flagged lesion 1


def test_colour_change_ignores_light_but_sees_darkening() -> None:
    a = [disc_lesion(1, 300, 200, 20)]
    img_a = paint(a)
    brighter = np.clip(img_a.astype(np.float32) * np.array([1.15, 1.1, 1.2]), 0, 255).astype(
        np.uint8
    )
    darker = paint(a, colour=(40, 20, 20))
    mask = np.zeros((400, 600), bool)
    cv2.circle(mask.view(np.uint8), (300, 200), 20, 1, -1)
    assert colour_change(img_a, mask, brighter, mask) < 3.0
    assert colour_change(img_a, mask, darker, mask) > 10.0
    m, _, _ = match_lesions(a, a, translation((400, 600), 0, 0), img_a, darker)
    assert m[0].changed and "10" in CHANGE_RULE


def test_p_malignant_change_flags() -> None:
    a = [disc_lesion(1, 300, 200, 10, p_mal=0.1)]
    b = [disc_lesion(1, 300, 200, 10, p_mal=0.5)]
    m, _, _ = match_lesions(a, b, translation((400, 600), 0, 0), paint(a), paint(b))
    assert m[0].p_malignant_change == pytest.approx(0.4) and m[0].changed


@pytest.mark.parametrize(
    "lab1, lab2, expected",
    [  # reference pairs of Sharma, Wu, Dalal (2005), the CIEDE2000 test data
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
    ],
)
def test_ciede2000_reference_values(lab1, lab2, expected) -> None:
    assert ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_empty_inputs() -> None:
    a = [disc_lesion(1, 100, 100, 5)]
    img = paint(a)
    assert match_lesions(a, [], translation((400, 600), 0, 0), img, img) == ((), (), (1,))
    assert match_lesions([], a, translation((400, 600), 0, 0), img, img) == ((), (1,), ())


def lm(a: int, b: int) -> LesionMatch:
    return LesionMatch(a, b, 1.0, 1.0, 0.0, 0.0, False)


def test_chain_keeps_one_identity_per_lesion() -> None:
    # visit 1: lesions 1, 2, 3; visit 2: 4 (=1), 5 (=2), 6 new; visit 3: 7 (=1), 8 (=6)
    pairs = [[lm(1, 4), (2, 5)], [(4, 7), lm(6, 8)]]
    tracks = chain_identities(pairs, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    members = {t.members for t in tracks}
    assert members == {(1, 4, 7), (2, 5, None), (3, None, None), (None, 6, 8), (None, None, 9)}
    assert [t.track_id for t in tracks] == [1, 2, 3, 4, 5]
    assert tracks[0].members == (1, 4, 7) and tracks[3].first_visit == 1
    # every lesion of every visit belongs to exactly one track
    for k, ids in enumerate([[1, 2, 3], [4, 5, 6], [7, 8, 9]]):
        seen = [t.members[k] for t in tracks if t.members[k] is not None]
        assert sorted(seen) == ids


def test_chain_rejects_many_to_one() -> None:
    with pytest.raises(ValueError):
        chain_identities([[(1, 4), (2, 4)]])


def test_lesions_the_other_photo_cannot_show_are_neither_new_nor_gone() -> None:
    # the camera moved: A's content appears 200 px further right in B, so B's left 200
    # columns show skin A never saw, and A's right 200 columns leave B's frame
    flow = translation((400, 600), 200, 0)
    a = [disc_lesion(1, 300, 200, 8), disc_lesion(2, 100, 100, 8), disc_lesion(3, 520, 300, 8)]
    b = [disc_lesion(5, 500, 200, 8), disc_lesion(6, 400, 300, 8), disc_lesion(7, 60, 150, 8)]
    matches, new, gone = match_lesions(a, b, flow, paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(1, 5)]
    assert new == (6, 7) and gone == (2, 3)
    new, gone, outside_a, outside_b = split_by_field_of_view(new, gone, a, b, flow, (400, 600))
    assert new == (6,) and outside_a == (7,)  # 7 lies where A never looked
    assert gone == (2,) and outside_b == (3,)  # 3 is carried to x = 720, past B's edge


def test_field_of_view_is_the_carried_frame() -> None:
    polygon = field_of_view(translation((400, 600), 200, -50))
    assert polygon.min(axis=0) == pytest.approx([200, -50])
    assert polygon.max(axis=0) == pytest.approx([799, 349])


def test_a_new_lesion_is_new_where_the_earlier_photo_showed_its_centre() -> None:
    # A's frame starts at x = 200 in B: a lesion centred 3 px inside it is new (its left
    # part was off photo A), one centred 3 px outside it is outside A's view
    flow = translation((400, 600), 200, 0)
    b = [disc_lesion(8, 203, 200, 6), disc_lesion(9, 197, 300, 6)]
    new, _, outside_a, _ = split_by_field_of_view((8, 9), (), [], b, flow, (400, 600))
    assert new == (8,) and outside_a == (9,)


def test_a_gone_lesion_is_one_carried_inside_the_later_photo() -> None:
    flow = translation((400, 600), -100, 0)  # A's x = 100 is B's left edge
    a = [disc_lesion(1, 96, 200, 6), disc_lesion(2, 104, 300, 6)]
    _, gone, _, outside_b = split_by_field_of_view((), (1, 2), a, [], flow, (400, 600))
    assert gone == (2,) and outside_b == (1,)


def test_the_view_follows_a_bent_outline_not_its_hull() -> None:
    # the middle of A's top edge is carried 80 px down into B: skin above it, which the
    # convex hull of the outline would include, was never on photo A
    ys, xs = np.mgrid[0:400, 0:600].astype(np.float32)
    flow = np.zeros((400, 600, 2), np.float32)
    flow[..., 1] = 80.0 * np.exp(-(((xs - 300) / 60) ** 2)) * (1 - ys / 400)
    b = [disc_lesion(4, 300, 30, 5), disc_lesion(5, 300, 200, 5)]
    new, _, outside_a, _ = split_by_field_of_view((4, 5), (), [], b, flow, (400, 600))
    assert new == (5,) and outside_a == (4,)


def test_the_nearer_lesion_wins_a_partner_two_lesions_can_reach() -> None:
    # a large A lesion carried to (300, 15) and a small one to (300, 36): both gates reach
    # the small B lesion at (300, 30), 15 px from the large one and 6 px from the small one;
    # the small one is its partner (distance over the gate, 0.30 against 0.33, would have
    # given it to the large one, whose gate is wider)
    a = [disc_lesion(1, 300, 15, 18), disc_lesion(2, 300, 36, 2)]
    b = [disc_lesion(7, 300, 30, 2)]
    flow = np.zeros((400, 600, 2), np.float32)
    matches, new, gone = match_lesions(a, b, flow, paint(a), paint(b), use_consensus=False)
    assert [(m.a, m.b) for m in matches] == [(2, 7)]
    assert new == () and gone == (1,)


def test_a_lesion_the_frame_cuts_is_not_changed_by_its_area() -> None:
    # a mole at the bottom edge; the next photo was framed 10 px higher, so it cuts more of it
    a = [disc_lesion(1, 300, 385, 20)]
    b = [disc_lesion(1, 300, 395, 20)]
    assert touches_edge(a[0].bbox, (400, 600)) and touches_edge(b[0].bbox, (400, 600, 3))
    assert not touches_edge(disc_lesion(2, 300, 200, 20).bbox, (400, 600))
    flow = translation((400, 600), 0, 10)
    m, _, _ = match_lesions(a, b, flow, paint(a), paint(b))
    assert m[0].area_ratio < AREA_RATIO_SHRINK  # the part still in view shrank...
    assert not m[0].changed  # ...which says nothing of the lesion
    # its colour and p_malignant still count
    darker = paint(b, colour=(40, 20, 20))
    assert match_lesions(a, b, flow, paint(a), darker)[0][0].changed
    assert is_changed(0.5, 0.0, 0.0) and not is_changed(0.5, 0.0, 0.0, whole=False)
    assert is_changed(0.5, 0.0, 0.3, whole=False)
