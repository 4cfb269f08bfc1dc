"""More passes of the flow network on photo B pre-aligned to photo A.

Between visits the patient turns and the camera moves: displacements of a sixth of the
photo with ten degrees of rotation are common, and a network that matches features in a
local window loses some of them (the whole flow is then wrong, not just imprecise). So B is
pre-aligned to A by a few guesses of the global motion, the network runs again on each
pre-aligned B, and the flow that explains the pair best is kept. The guesses:

- the similarity (rotation, scale, shift) the network's own first flow implies, fitted by
  RANSAC so that the wrong part of that flow does not count;
- the shift that phase correlation of the two photos' local contrast finds (it sees the
  whole photo at once, silhouette and all, so it finds shifts the network's window misses);
- the similarity that SIFT matches imply (RANSAC), where hair or lesions give features;
- the similarity a coarse search finds (:func:`searched_similarity`): every rotation and
  scale of a grid spanning the viewpoint changes between visits, each with the shift that
  template matching finds. On nearly featureless skin, or when a lesion changed so much
  that the network follows it, the other guesses can all be wrong where the search, which
  compares the whole central part of the photos at once, is not.

"Explains best" is the normalised cross-correlation of A's local contrast with B's carried
back by the flow (:func:`alignment_score`), in grey and in the red-green chroma Lab a*: the
plain mean difference, used before, let a wrong flow that carried grainy skin onto smooth
background win, and grey alone mixes the skin's redness and pigment (vessels, erythema,
moles) with shading. Chosen on validation pairs,
against the first-flow guess alone with the mean difference (PCK@0.05 / lesion matching):
seed 4005 (96 pairs) 0.941 / 0.960 -> 0.974 / 0.976, seed 4002 (24) 0.966 / 0.982 -> 0.968 /
0.982, seed 4003 (48) 0.992 / 0.994 -> 0.985 / 0.991. On the held-out pairs it gained less
(see the README's model card). The searched guess with the wider score window
(:data:`SCORE_WINDOW_FRACTION`), against the three other guesses with the window of 0.03
(PCK@0.05 after refinement / lesion matching, end to end): seeds 4005-4008 (96 pairs each)
0.974 / 0.989 -> 0.982 / 0.994, 0.989 / 0.996 -> 0.993 / 0.997, 0.974 / 0.986 -> 0.982 /
0.985, 0.956 / 0.967 -> 0.973 / 0.975. On the held-out pairs (seed 777001): 0.952 / 0.976 ->
0.958 / 0.976; it rescued two lost pairs there and lost one that it had right (a mole grown
and recoloured beyond recognition, which the searched guess lined up with another).
Adding the a* plane to the score, on the candidates of the same pipeline (mean PCK@0.05
after refinement, 96 pairs a seed): seeds 4005-4008 0.982 -> 0.986 (per seed 0.982 ->
0.982, 0.993 -> 0.992, 0.983 -> 0.989, 0.972 -> 0.980), fresh seeds 4009-4010 0.976 ->
0.976 (0.972 -> 0.975, 0.979 -> 0.978); the a* plane alone 0.981, L+a*+b* 0.981 (all six
seeds). Searching with a* too found the global motion more often (the similarity alone
within 0.05 of the diagonal on 85% of the pairs against 81%) but did not change the end
result (0.982 against 0.983), so the search stays grey. On the held-out pairs (seed
777001), run once after the choice (PCK@0.05 / lesion matching): 0.958 / 0.976 -> 0.973 /
0.986.

Everything here works at the working resolution: photos uint8 (h, w, 3) RGB of one size,
flows float32 (h, w, 2), A pixel (x, y) + flow[y, x] = its position in B; x right, y down.
No torch, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from core.flow_refinement import local_contrast

#: A flow function at working resolution (see :data:`core.tracking.FlowFn`).
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: RANSAC inlier distance of the similarity fit, as a fraction of the diagonal.
FIT_TOLERANCE_FRACTION = 0.02
#: Grid step (pixels) of the flow samples the similarity is fitted to.
FIT_STEP = 4
#: Side of the window of the local contrast that phase correlation compares, as a fraction
#: of the long side: wide enough that lighting changes between visits cancel out.
CONTRAST_WINDOW_FRACTION = 0.03
#: The same for :func:`alignment_score`. Wider: with a narrow window fine grain and the
#: photo's sharpest edges dominate the score, and a wrong flow that lines those up can win
#: over one that lines up the skin's broader shading and marks. Chosen on validation pairs
#: (mean PCK@0.05 after refinement over seeds 4005-4008, 4 x 96 pairs, with the searched
#: guess): window 0.03 0.974, 0.06 0.980, 0.12 0.982, 0.22 0.982, 0.3 0.972.
SCORE_WINDOW_FRACTION = 0.12
#: Standard deviation (grey levels) of A's local contrast below which a plane is left out
#: of :func:`alignment_score`.
MIN_PLANE_CONTRAST = 0.5
#: A flow that carries less than this share of A into B is not compared (a wrong flow that
#: throws most of A out of the frame must not win by having few pixels to explain).
MIN_OVERLAP = 0.2


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def fit_similarity(flow: np.ndarray) -> np.ndarray | None:
    """float64 (2, 3) similarity S (rotation, uniform scale, shift) with p + flow(p) ~ S p,
    fitted by RANSAC to a grid of flow samples; None when no fit is found."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h:FIT_STEP, 0:w:FIT_STEP]
    source = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    target = source + flow[::FIT_STEP, ::FIT_STEP].reshape(-1, 2).astype(np.float32)
    tolerance = FIT_TOLERANCE_FRACTION * float(np.hypot(h, w))
    similarity, _ = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance
    )
    return similarity


def compose_with_similarity(residual: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """The flow A -> B of a residual flow A -> B' where B'(q) = B(S q): p -> S(p + r(p)) - p."""
    xs, ys = _grid(*residual.shape[:2])
    qx, qy = xs + residual[..., 0], ys + residual[..., 1]
    s = similarity.astype(np.float32)
    out = np.empty_like(residual, dtype=np.float32)
    out[..., 0] = s[0, 0] * qx + s[0, 1] * qy + s[0, 2] - xs
    out[..., 1] = s[1, 0] * qx + s[1, 1] * qy + s[1, 2] - ys
    return out


def _score_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The planes :func:`alignment_score` compares, uint8 (h, w) each: grey, and the
    red-green chroma Lab a* (blood and pigment: vessels, redness, moles), which grey mixes
    with shading and hair."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), np.ascontiguousarray(lab[..., 1])


def _carried_back(
    image_a: np.ndarray, image_b: np.ndarray, flow: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray] | None:
    """(per plane of :func:`_score_planes`: A's local contrast and B's carried back to A by
    ``flow``; the A pixels the flow keeps inside B), or None when fewer than
    :data:`MIN_OVERLAP` stay inside."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    inside = (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
    if inside.mean() < MIN_OVERLAP:
        return None
    window = max(5, int(SCORE_WINDOW_FRACTION * max(h, w)) | 1)
    planes = []
    for plane_a, plane_b in zip(_score_planes(image_a), _score_planes(image_b), strict=True):
        b_at_a = cv2.remap(plane_b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        planes.append((local_contrast(plane_a, window), local_contrast(b_at_a, window)))
    return planes, inside


def _normalised_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """NCC in [-1, 1] of two float arrays; None when A is flat (below
    :data:`MIN_PLANE_CONTRAST`: a plane with nothing to line up says nothing)."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    if a.std() < MIN_PLANE_CONTRAST:
        return None
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def alignment_score(image_a: np.ndarray, image_b: np.ndarray, flow: np.ndarray) -> float:
    """Mean over the planes of :func:`_score_planes` (grey and Lab a*) of the normalised
    cross-correlation of A's local contrast and B's carried back by ``flow``, over the A
    pixels the flow keeps inside B: in [-1, 1]; -inf when fewer than :data:`MIN_OVERLAP`
    stay. Planes flat in A are left out (0.0 when all are). Blind to brightness, white
    balance and contrast changes."""
    carried = _carried_back(image_a, image_b, flow)
    if carried is None:
        return float("-inf")
    planes, inside = carried
    scores = [_normalised_correlation(a[inside], b[inside]) for a, b in planes]
    scores = [s for s in scores if s is not None]
    return float(np.mean(scores)) if scores else 0.0


def phase_shift(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """float64 (2, 3) pure shift of B against A by phase correlation of local contrast."""
    h, w = image_a.shape[:2]
    window = max(5, int(CONTRAST_WINDOW_FRACTION * max(h, w)) | 1)
    contrast = [
        local_contrast(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), window).astype(np.float64)
        for image in (image_a, image_b)
    ]
    hanning = cv2.createHanningWindow((w, h), cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(contrast[0], contrast[1], hanning)
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


#: Lowe's ratio test of the SIFT matches.
SIFT_RATIO = 0.8


def sift_similarity(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray | None:
    """float64 (2, 3) similarity with B(S p) ~ A(p) from SIFT matches (ratio test, RANSAC);
    None when too few features match."""
    sift = cv2.SIFT_create()
    gray_a = cv2.cvtColor(image_a, cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(image_b, cv2.COLOR_RGB2GRAY)
    keys_a, desc_a = sift.detectAndCompute(gray_a, None)
    keys_b, desc_b = sift.detectAndCompute(gray_b, None)
    if desc_a is None or desc_b is None or len(keys_a) < 4 or len(keys_b) < 4:
        return None
    pairs = cv2.BFMatcher().knnMatch(desc_a, desc_b, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < SIFT_RATIO * m[1].distance]
    if len(good) < 4:
        return None
    source = np.float32([keys_a[m.queryIdx].pt for m in good])
    target = np.float32([keys_b[m.trainIdx].pt for m in good])
    tolerance = FIT_TOLERANCE_FRACTION * float(np.hypot(*image_a.shape[:2]))
    similarity, _ = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=tolerance
    )
    return similarity


#: Long side (pixels) of the photos the global search compares.
SEARCH_SIZE = 128
#: Window (pixels, at :data:`SEARCH_SIZE`) of the search's local contrast.
SEARCH_CONTRAST_WINDOW = 7
#: Rotations (degrees) and scales the search tries: the synthetic pairs' viewpoint changes
#: reach 12 degrees and scales 0.87-1.15 (training.synthesis.deform).
SEARCH_ANGLES_DEG = tuple(range(-12, 13, 3))
SEARCH_SCALES = (0.87, 0.93, 1.0, 1.07, 1.15)
#: Share of A's width and height that the template (A's central part) covers: the shifts
#: found reach (1 - this) / 2 of the photo's sides.
SEARCH_TEMPLATE_FRACTION = 0.6


def _read_at(
    image: np.ndarray, similarity: np.ndarray, size: tuple[int, int], border: int
) -> np.ndarray:
    """``image`` read through a (2, 3) similarity S: out(p) = image(S p) for every pixel p of
    an output of ``size`` (w, h), bilinear, ``border`` (a cv2.BORDER_* mode) outside."""
    return cv2.warpAffine(
        image, similarity, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border
    )


def _search_contrast(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(float32 local contrast of ``image`` shrunk to :data:`SEARCH_SIZE`, the factor)."""
    h, w = image.shape[:2]
    factor = SEARCH_SIZE / max(h, w)
    small = cv2.resize(
        cv2.cvtColor(image, cv2.COLOR_RGB2GRAY),
        (max(1, round(w * factor)), max(1, round(h * factor))),
        interpolation=cv2.INTER_AREA,
    )
    return local_contrast(small, SEARCH_CONTRAST_WINDOW), factor


def searched_similarity(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
    """float64 (2, 3) similarity with B(S p) ~ A(p), found by search at a coarse size
    (photos of one size).

    For every rotation and scale of :data:`SEARCH_ANGLES_DEG` x :data:`SEARCH_SCALES` (about
    the photo centre), B's local contrast is turned and scaled, and the central part of A's
    is searched in it by normalised cross-correlation (``cv2.matchTemplate``); the rotation,
    scale and shift that correlate best win (the first on ties).
    """
    contrast_a, factor = _search_contrast(image_a)
    contrast_b, _ = _search_contrast(image_b)
    h, w = contrast_a.shape
    th = max(1, int(h * SEARCH_TEMPLATE_FRACTION))
    tw = max(1, int(w * SEARCH_TEMPLATE_FRACTION))
    oy, ox = (h - th) // 2, (w - tw) // 2
    template = contrast_a[oy : oy + th, ox : ox + tw]
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    best_score, best = -np.inf, np.eye(3)
    for angle in SEARCH_ANGLES_DEG:
        for scale in SEARCH_SCALES:
            turn = cv2.getRotationMatrix2D(centre, float(angle), float(scale))
            turned_b = _read_at(contrast_b, turn, (w, h), cv2.BORDER_REFLECT)
            scores = cv2.matchTemplate(turned_b, template, cv2.TM_CCOEFF_NORMED)
            _, score, _, (x, y) = cv2.minMaxLoc(scores)
            if score > best_score:
                # A(p) ~ turned_b(p + t) = B(turn (p + t)), t the template's displacement
                shift = np.array([[1.0, 0.0, x - ox], [0.0, 1.0, y - oy], [0.0, 0.0, 1.0]])
                best_score, best = score, np.vstack([turn, [0.0, 0.0, 1.0]]) @ shift
    # from search pixels to the photo's: S = D^-1 S_search D, D the shrink
    shrink = np.diag([factor, factor, 1.0])
    return (np.linalg.inv(shrink) @ best @ shrink)[:2]


def prealigned(flow_fn: FlowFn) -> FlowFn:
    """``flow_fn`` run on (A, B), then on (A, B warped by each guess of the global motion: see
    the module docstring); returns the flow with the highest :func:`alignment_score` (the
    first one on ties)."""

    def run(image_a: np.ndarray, image_b: np.ndarray) -> np.ndarray:
        first = np.asarray(flow_fn(image_a, image_b), np.float32)
        h, w = first.shape[:2]
        guesses = (
            fit_similarity(first),
            phase_shift(image_a, image_b),
            sift_similarity(image_a, image_b),
            searched_similarity(image_a, image_b),
        )
        best, best_score = first, alignment_score(image_a, image_b, first)
        for similarity in guesses:
            if similarity is None:
                continue
            aligned_b = _read_at(image_b, similarity, (w, h), cv2.BORDER_REPLICATE)
            flow = compose_with_similarity(
                np.asarray(flow_fn(image_a, aligned_b), np.float32), similarity
            )
            score = alignment_score(image_a, image_b, flow)
            if score > best_score:
                best, best_score = flow, score
        return best

    return run
