"""Carried lesion positions corrected by their neighbours (core.lesion_consensus)."""

from __future__ import annotations

import numpy as np

from core.lesion_consensus import MIN_SUPPORT, consensus_shifts
from core.matching import match_lesions
from tests.core.test_matching import disc_lesion, paint, translation

CLUSTER = [(120, 120), (180, 100), (240, 150), (150, 200), (210, 230), (270, 90), (300, 200)]


def _gate(n_a: int, n_b: int, pixels: float = 20.0) -> np.ndarray:
    return np.full((n_a, n_b), pixels)


def test_a_regional_flow_error_is_outvoted_by_the_neighbours() -> None:
    # the skin moved 40 px right, but the flow (zero) missed it: every lesion of the cluster
    # lands 40 px short of its partner, twice the gate
    a = [disc_lesion(i + 1, x, y, 6) for i, (x, y) in enumerate(CLUSTER)]
    b = [disc_lesion(i + 11, x + 40, y, 6) for i, (x, y) in enumerate(CLUSTER)]
    flow = translation((400, 600), 0, 0)
    plain, new, gone = match_lesions(
        a, b, flow, paint(a), paint(b), use_consensus=False, near_miss=False
    )
    assert plain == () and len(new) == len(gone) == len(CLUSTER)
    matches, new, gone = match_lesions(a, b, flow, paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(i + 1, i + 11) for i in range(len(CLUSTER))]
    assert new == () and gone == ()


def test_a_lone_lesion_cannot_move_itself() -> None:
    a = [disc_lesion(1, 100, 100, 6)]
    b = [disc_lesion(2, 140, 100, 6)]
    matches, new, gone = match_lesions(a, b, translation((400, 600), 0, 0), paint(a), paint(b))
    assert matches == () and new == (2,) and gone == (1,)


def test_a_new_lesion_beside_a_well_tracked_cluster_stays_new() -> None:
    # the flow is right; a new lesion appears 40 px right of one old lesion, and one old
    # lesion is gone: no shift lines up more neighbours than the flow already does
    a = [disc_lesion(i + 1, x, y, 6) for i, (x, y) in enumerate(CLUSTER)]
    b = [disc_lesion(i + 11, x, y, 6) for i, (x, y) in enumerate(CLUSTER[:-1])]
    b.append(disc_lesion(30, CLUSTER[0][0] + 40, CLUSTER[0][1], 6))
    matches, new, gone = match_lesions(a, b, translation((400, 600), 0, 0), paint(a), paint(b))
    assert [(m.a, m.b) for m in matches] == [(i + 1, i + 11) for i in range(len(CLUSTER) - 1)]
    assert new == (30,) and gone == (len(CLUSTER),)


def test_shifts_are_zero_when_the_flow_is_right_and_median_of_the_agreeing_offsets() -> None:
    points = np.array(CLUSTER, np.float64)
    right = consensus_shifts(points, points, points, _gate(7, 7), 721.0)
    assert np.array_equal(right, np.zeros_like(points))
    # B is A moved by (40, -10) with a little noise; the flow carried nothing
    noise = np.random.default_rng(0).normal(0.0, 1.0, points.shape)
    shifts = consensus_shifts(points, points, points + (40.0, -10.0) + noise, _gate(7, 7), 721.0)
    assert np.allclose(shifts, (40.0, -10.0), atol=2.0)


def test_too_few_lesions_are_left_alone() -> None:
    points = np.array(CLUSTER[: MIN_SUPPORT - 1], np.float64)
    n = len(points)
    shifts = consensus_shifts(points, points, points + 40.0, _gate(n, n), 721.0)
    assert np.array_equal(shifts, np.zeros_like(points))


def test_two_neighbours_on_one_b_lesion_count_once() -> None:
    # a validation pair: lesion 3 (a large mole, 664 px) is carried 0.3 px from its partner
    # B 3. Shifting it 100 px left puts it on a new lesion (B 5) and two of its neighbours
    # (one of them gone) both on B 3: "4 supporters" for only 3 lesions of B. Matching is
    # one-to-one, so that support is 3 and the flow, right here, stays.
    points_a = np.array(
        [[294.7, 132.2], [345.4, 245.2], [396.0, 127.9], [240.5, 314.2],
         [366.3, 363.8], [332.8, 294.8], [447.0, 297.7]]
    )  # fmt: skip
    carried = np.array(
        [[239.1, 194.9], [266.9, 303.1], [326.5, 208.3], [166.7, 361.0],
         [281.9, 415.5], [251.6, 349.4], [358.3, 357.2]]
    )  # fmt: skip
    points_b = np.array(
        [[239.2, 195.2], [267.4, 303.2], [326.6, 208.6], [167.0, 361.1],
         [360.9, 358.6], [29.2, 341.6], [165.4, 289.1]]
    )  # fmt: skip
    gate = np.array(
        [[17.0, 17.0, 17.5, 37.1, 35.8, 29.1, 17.0], [16.9, 16.7, 17.5, 37.1, 35.8, 29.1, 16.5],
         [17.8, 17.8, 17.8, 37.1, 35.8, 29.1, 17.8], [38.0] * 7, [42.6] * 7,
         [18.7, 18.7, 18.7, 37.1, 35.8, 29.1, 18.7], [29.2, 29.2, 29.2, 37.1, 35.8, 29.2, 29.2]]
    )  # fmt: skip
    shifts = consensus_shifts(points_a, carried, points_b, gate, 640.0)
    assert np.array_equal(shifts, np.zeros_like(carried))
