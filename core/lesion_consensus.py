"""Correcting where the flow carries lesions by the agreement of their neighbours.

The flow between two visits is good almost everywhere but can be off by a few percent of the
photo over a whole region (plain skin gives it nothing to hold on to). There a carried lesion
misses its partner by more than the matching gate, and the clinician is told of one lesion
gone and one new where nothing happened. Lesions are the best landmarks skin has, and a
regional error moves a lesion's neighbours the same way: if one shift t lines up several of a
lesion's neighbours with lesions of photo B that the flow alone does not line up, t is the
flow's local error and the lesion is moved by it. One lesion alone can never move itself (a
shift needs :data:`MIN_SUPPORT` lesions), so a lone new lesion cannot be pulled onto an old one.

Coordinates: (x, y) pixels of photo B for carried and B positions, of photo A for A positions.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Neighbours of a lesion: its NEIGHBOURS nearest A lesions (itself included) that lie within
#: this fraction of B's diagonal of it (in A); the count bounds the work on crowded backs.
NEIGHBOURHOOD_FRACTION = 0.25
NEIGHBOURS = 16
#: Largest local flow error looked for, as a fraction of B's diagonal; each neighbour proposes
#: the shifts to its CANDIDATES_PER_NEIGHBOUR nearest B lesions within it. The flow fails
#: worst along a featureless limb, by up to the motion itself (a fifth of the photo).
SEARCH_FRACTION = 0.2
CANDIDATES_PER_NEIGHBOUR = 6
#: A shift must line up at least this many neighbours (the lesion itself included) ...
#: (3 let chance alignments among many moles move lesions the flow had right: on the 216
#: validation pairs of seeds 4002, 4003, 4005 and 4006, 4 raised matching on seed 4005 from
#: 0.976 to 0.984 and changed nothing on the others)
MIN_SUPPORT = 4
#: ... and this many more than the flow as it is, to replace it.
SUPPORT_MARGIN = 2


def consensus_shifts(
    points_a: np.ndarray,
    carried: np.ndarray,
    points_b: np.ndarray,
    gate: np.ndarray,
    diagonal_b: float,
) -> np.ndarray:
    """Per A lesion, the correction to add to its carried position (0 where none is agreed).

    points_a: float (N, 2) lesion centroids in A; carried: float (N, 2) the same lesions
    carried into B by the flow; points_b: float (M, 2) B's lesion centroids; gate: float
    (N, M) the matching gate of each pair (pixels of B); diagonal_b: B's diagonal in pixels.
    Returns float64 (N, 2).

    For lesion i, every shift that lines a neighbour k up with a B lesion within the search
    radius is a candidate; a candidate's support is the number of distinct B lesions it
    brings a neighbour within the gate of (one neighbour per B lesion: matching is
    one-to-one). The best candidate replaces the zero shift when its support
    reaches :data:`MIN_SUPPORT` and beats the zero shift's by :data:`SUPPORT_MARGIN`; the
    correction is then the median offset of the neighbours it lines up.
    """
    points_a = np.asarray(points_a, np.float64).reshape(-1, 2)
    carried = np.asarray(carried, np.float64).reshape(-1, 2)
    points_b = np.asarray(points_b, np.float64).reshape(-1, 2)
    shifts = np.zeros_like(carried)
    if len(points_a) < MIN_SUPPORT or len(points_b) < MIN_SUPPORT:
        return shifts
    tree_a, tree_b = cKDTree(points_a), cKDTree(points_b)
    search = SEARCH_FRACTION * diagonal_b

    k_nearest = min(NEIGHBOURS, len(points_a))
    radius = NEIGHBOURHOOD_FRACTION * diagonal_b
    # every lesion's neighbours, and every carried lesion's nearby B lesions, in two queries
    distance_a, neighbours_a = tree_a.query(points_a, k_nearest, distance_upper_bound=radius)
    distance_a, neighbours_a = (
        distance_a.reshape(len(points_a), -1),
        neighbours_a.reshape(len(points_a), -1),
    )
    gap_b, near_b = tree_b.query(
        carried, min(CANDIDATES_PER_NEIGHBOUR, len(points_b)), distance_upper_bound=search
    )
    gap_b, near_b = gap_b.reshape(len(carried), -1), near_b.reshape(len(carried), -1)
    for i in range(len(points_a)):
        neighbours = neighbours_a[i][np.isfinite(distance_a[i])]
        if len(neighbours) < MIN_SUPPORT:
            continue
        found = np.isfinite(gap_b[neighbours])
        proposals = points_b[near_b[neighbours][found]]
        from_neighbour = np.repeat(neighbours, found.sum(1))
        candidates = np.concatenate([np.zeros((1, 2)), proposals - carried[from_neighbour]])
        # every candidate shift applied to every neighbour, in one query
        moved = carried[neighbours][None] + candidates[:, None]
        gap, nearest = tree_b.query(moved.reshape(-1, 2))
        gap, nearest = gap.reshape(moved.shape[:2]), nearest.reshape(moved.shape[:2])
        hits = _one_to_one(gap <= gate[neighbours[None], nearest], gap, nearest)
        support = hits.sum(1)
        # the smallest shift wins a tie: the flow is trusted until outvoted
        best = int(np.argmax(support - 1e-9 * np.hypot(candidates[:, 0], candidates[:, 1])))
        if support[best] < MIN_SUPPORT or support[best] < support[0] + SUPPORT_MARGIN:
            continue
        ok = hits[best]
        shifts[i] = np.median(points_b[nearest[best][ok]] - carried[neighbours[ok]], axis=0)
    return shifts


def _one_to_one(hits: np.ndarray, gap: np.ndarray, nearest: np.ndarray) -> np.ndarray:
    """Keep, per candidate shift (row) and B lesion, only the nearest neighbour that hits it.

    hits, gap, nearest: (C, K) over candidate shifts x neighbours. Two lesions of A cannot
    both be one lesion of B: without this, two neighbours landing on one large B lesion
    counted twice, and a shift that moved a lesion off the partner the flow had put it on
    (0.3 px away) won with "4" supporters that were 3 B lesions.
    """
    kept = np.zeros_like(hits)
    rows, cols = np.nonzero(hits)
    # nearest first: np.unique then keeps each (row, B lesion)'s nearest neighbour
    order = np.argsort(gap[rows, cols], kind="stable")
    rows, cols = rows[order], cols[order]
    key = rows * (int(nearest.max()) + 1) + nearest[rows, cols]
    _, first = np.unique(key, return_index=True)
    kept[rows[first], cols[first]] = True
    return kept
