"""Residual refinement of a coarse flow at a finer resolution.

The tracking network runs at a small working resolution (its flow is good to a few working
pixels, which is many full-resolution pixels), while a classic variational flow is precise to
a fraction of a pixel but only finds small displacements. Refinement combines the two: photo B
is warped back onto photo A with the network's flow, OpenCV's DIS optical flow measures the
small residual between A and the warped B, and the two are composed. A residual is kept only
where it lowers the local photometric error and stays small (DIS drifts on texture-less skin
and cannot fix a wrong coarse match), so refinement can sharpen the network's flow but never
replace it.

Both photos come at the same (h, w) (see :func:`core.tracking.resize_pair`); flows are float32
(h, w, 2), A pixel (x, y) + flow[y, x] = its position in B; x right, y down. No Qt, no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Largest correction kept, as a fraction of the image diagonal: the coarse flow must already
#: be this close; larger "corrections" are DIS locking onto look-alike texture.
MAX_CORRECTION_FRACTION = 0.04

#: A finer candidate replaces the coarse flow only where its photometric error is below this
#: share of the coarse flow's: on plain skin every candidate fits about equally well, and
#: there the coarse flow, which saw the whole photo, is the safer guess.
ERROR_MARGIN = 0.85

#: Side of the square window over which photometric errors are compared, as a fraction of the
#: image's long side (at least 5 px): large enough to judge texture, small enough to follow
#: the body's non-rigid motion.
ERROR_WINDOW_FRACTION = 0.012


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 (h, w) pixel x and y coordinates (broadcast views: no memory)."""
    xs = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    return xs, ys


def _sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def local_contrast(image: np.ndarray, window: int) -> np.ndarray:
    """float32 grey levels minus their mean over ``window``: blind to the brightness and
    white-balance shifts between visits."""
    image = image.astype(np.float32)
    return image - cv2.boxFilter(image, -1, (window, window))


def _local_error(contrast_a: np.ndarray, b_at_a: np.ndarray, window: int) -> np.ndarray:
    """Mean absolute difference over ``window`` of A's local contrast and B's (sampled at A)."""
    diff = np.abs(contrast_a - local_contrast(b_at_a, window))
    return cv2.boxFilter(diff, -1, (window, window))


def _first_argmin(errors: np.ndarray) -> np.ndarray:
    """uint8 (h, w): np.argmin(errors, axis=0) of a (k, h, w) stack (the first on ties),
    plane by plane (argmin across planes of a large stack is several times slower)."""
    choice = np.zeros(errors.shape[1:], np.uint8)
    best = errors[0].copy()
    for k in range(1, len(errors)):
        better = errors[k] < best
        choice[better] = k
        np.minimum(best, errors[k], out=best)
    return choice


def refine_flow(image_a: np.ndarray, image_b: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The coarse ``flow`` from A to B, sharpened where a finer flow explains the photos better.

    image_a, image_b: uint8 (h, w, 3) RGB of the same size; flow: float32 (h, w, 2).
    Returns float32 (h, w, 2) of the same meaning.

    Three candidates per pixel: the coarse flow, the coarse flow with its DIS residual
    composed in, and DIS run directly from A to B (right where the motion is small, which a
    coarse network blurs). A finer candidate may differ from the coarse flow by at most
    :data:`MAX_CORRECTION_FRACTION` of the diagonal and must lower the photometric error over
    a small window by :data:`ERROR_MARGIN`; the choice is median filtered so that a lone
    pixel does not switch.
    """
    if image_a.shape != image_b.shape or flow.shape[:2] != image_a.shape[:2]:
        raise ValueError(
            f"refinement needs photos and flow of one size, got {image_a.shape}, "
            f"{image_b.shape} and {flow.shape}"
        )
    h, w = flow.shape[:2]
    gray_a, gray_b = _gray(image_a), _gray(image_b)
    xs, ys = _grid(h, w)
    flow = flow.astype(np.float32)
    window = max(5, int(round(ERROR_WINDOW_FRACTION * max(h, w))) | 1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    warped_b = _sample(gray_b, xs + flow[..., 0], ys + flow[..., 1])
    residual = dis.calc(gray_a, warped_b, None)
    # A p -> warped-B p + r -> B (p + r) + flow(p + r)
    composed = residual + _sample(flow, xs + residual[..., 0], ys + residual[..., 1])
    direct = dis.calc(gray_a, gray_b, None)
    candidates = (flow, composed, direct)
    contrast_a = local_contrast(gray_a, window)
    errors = np.empty((len(candidates), h, w), np.float32)
    errors[0] = _local_error(contrast_a, warped_b, window)  # B sampled by the coarse flow
    for k in (1, 2):
        f = candidates[k]
        errors[k] = _local_error(
            contrast_a, _sample(gray_b, xs + f[..., 0], ys + f[..., 1]), window
        )
    limit = MAX_CORRECTION_FRACTION * np.hypot(h, w)
    for k in (1, 2):
        change = candidates[k] - flow
        too_far = np.hypot(change[..., 0], change[..., 1]) > limit
        np.copyto(errors[k], np.inf, where=too_far)
        errors[k] /= ERROR_MARGIN
    choice = cv2.medianBlur(_first_argmin(errors), 5)
    out = flow.copy()
    for k in (1, 2):
        # copyto with a mask: the same as boolean indexing, without gathering the pixels
        np.copyto(out, candidates[k], where=(choice == k)[..., None])
    return out
