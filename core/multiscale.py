"""Multi-scale analysis of small photos: which enlargements, and how their maps are fused.

The detector's output has stride 4, so on a photo of a few hundred pixels per body region
a 2 mm mole spans one output pixel or less and is lost. A small photo is therefore also
analysed enlarged (cubic interpolation) by each factor of the detector's
``inference.scales`` whose enlarged long side stays within
``inference.max_enlarged_side_px``: with scales (2, 4) and 4096 as shipped, a 1024 x 768
photo at 2 and 4 times its size, a 2048 px photo at twice, a phone's 12 MP photo (4000 px)
only as it is, since its small moles are already large enough for the network.

The photo is always analysed as it is too: enlarged, a large mole grows past what the
network recognises. For the same reason a large photo is also analysed reduced, by each
divisor of ``inference.reductions`` when its long side is at least
``inference.reduce_from_px``: with (4,) and 1536 as shipped, a phone's 12 MP photo also at
a quarter of its size, where a mole 80-160 px across is the 20-40 px the network was trained
on (as it is, the demo leg's 40 px mole enlarged 1.5-3.9x was lost at every size). On 24
synthetic photos of seed 4242 (no training seed), at 4000 x 3000: recall of lesions 20 px and
more 0.907 -> 0.967, recall at <= 0.5 false positives per photo 0.928 -> 0.963; at
2000 x 1500: 0.701 -> 0.763 and 0.849 -> 0.868. The reduced pass is not mirrored (the
Analyzer's choice: mirrored, the recall was the same). Checked once on 100 held-out
photos of 4000 x 3000 (seed 12121): recall at <= 0.5 false positives per photo 0.866 ->
0.909, lesions of 20 px and more 0.848 -> 0.908, malignant AUC 0.917 -> 0.935. The bench's
12 MP photo takes 9 % longer with it (14 % before :func:`fuse_scales` worked per plane).
The maps are brought to one grid of photo pixels; per pixel, the
lesion probability is that of the map surest of a lesion (lowest p background), split
between benign and malignant as all the maps together split it (:func:`fuse_scales`).

How the scales were chosen (validation photos only: synthetic seeds 3003 and 3005, 120
photos, detector weights of 1.5.0, ``postprocess`` high 0.9 and min_area_px 6; recall of
every true lesion at <= 0.5 false positives per photo, both seeds pooled; the cost in
units of the photo's pixel count analysed once, mirrored analysis counting twice):

===========================================  ======  =====
scales (m: mirrored)                         recall  cost
===========================================  ======  =====
1m, 2m (before; high 0.8, min_area_px 12)    0.748   10
1m, 2m, 3m                                   0.793   28
1m, 2m, 4m                                   0.836   42
1m, 2m, 3m, 4m                               0.843   60
1m, 2m, 3, 4                                 0.842   35
**1m, 2m, 4** (shipped)                      0.837   26
===========================================  ======  =====

Checked again with the verifier (1.7.5, mirroring up to 1024 px; the same 120 validation
photos): scales (2, 4) recall 0.909, AUC 0.952, 0.64 s a photo; (4,) 0.906, 0.949, 0.52 s;
(2, 3) 0.903, 0.949, 0.44 s; (3,) 0.902, 0.950, 0.34 s. At 12 MP (tuning seeds 5151 and
4242, 48 photos of 4000 x 3000) the full-size pass finds the small lesions and most false
regions (hairs, several pixels wide there): reduced to 0.75, 0.6 or 0.5 instead, with the
quarter-size pass, 4.9, 2.7 and about 2 unmatched regions per photo instead of 8.2, but
recall at <= 0.5 false positives per photo 0.944, 0.935 and about 0.92 instead of 0.959.

Averaging the maps instead of keeping the surest lost lesions (0.59 on seed 3003 with
scales 1, 2, 3): a lesion seen at one scale only is diluted by the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from core.tiling import CoarseProbabilities

#: a scale factor (above 1 enlarged, below 1 reduced) and the map of the photo so scaled
ScaledMap = tuple[float, CoarseProbabilities]


def analysis_scales(
    height: int,
    width: int,
    scales: Sequence[int],
    max_enlarged_side_px: int,
    reductions: Sequence[int] = (),
    reduce_from_px: int = 0,
) -> tuple[float, ...]:
    """Scale factors a photo is analysed at: 1, then every factor > 1 of ``scales`` (in the
    given order) whose enlarged long side is at most ``max_enlarged_side_px``, then 1 / r
    for every divisor r > 1 of ``reductions`` when the long side is at least
    ``reduce_from_px``.

    ``scales``, ``max_enlarged_side_px``, ``reductions`` and ``reduce_from_px`` are the
    detector's model.json ``inference`` entries of those names (empty / 0: never).
    """
    long_side = max(height, width)
    enlargements = [
        int(k) for k in scales if int(k) > 1 and long_side * int(k) <= max_enlarged_side_px
    ]
    reduced = []
    if reduce_from_px > 0 and long_side >= reduce_from_px:
        reduced = [1.0 / int(r) for r in reductions if int(r) > 1]
    return (1, *dict.fromkeys(enlargements), *dict.fromkeys(reduced))


def fusion_stride(factors: Sequence[float], output_stride: int) -> int:
    """Stride (photo pixels per grid pixel) of the grid the maps are fused on: the output
    stride over the largest factor when that is a whole number (factors 1 and 2 of a
    stride-4 network fuse at stride 2, where the enlarged map needs no resampling), else 1.
    Reduced maps (factors below 1) are read on that grid too.
    """
    largest = max(factors)
    if largest != int(largest) or output_stride % int(largest):
        return 1
    return output_stride // int(largest)


def _resampled(source: ScaledMap, stride: int, height: int, width: int) -> np.ndarray:
    """float32 (ceil(height / stride), ceil(width / stride), C): the map of a photo
    scaled ``factor`` times (enlarged or reduced), bilinearly read at the centres of a
    ``stride`` grid of the photo (grid pixel j centred on photo pixel
    stride * j + (stride - 1) / 2).

    The scaled photo's pixel centre u = (x + 0.5) * factor - 0.5 (cv2's convention for
    the resize that made it); its map pixel j is centred on scaled pixel
    s * j + (s - 1) / 2 (s: the map's stride).
    """
    factor, coarse = source
    s = coarse.stride
    rows, cols = math.ceil(height / stride), math.ceil(width / stride)
    if factor == 1 and s == stride:
        # the map's own grid: nothing to interpolate (the photo's map, at most scales)
        return np.array(coarse.values[:rows, :cols], dtype=np.float32)

    def coordinates(count: int) -> np.ndarray:
        photo = stride * np.arange(count, dtype=np.float64) + (stride - 1) / 2
        enlarged = (photo + 0.5) * factor - 0.5
        return ((enlarged - (s - 1) / 2) / s).astype(np.float32)

    map_x, map_y = np.meshgrid(coordinates(cols), coordinates(rows))
    values = coarse.values.astype(np.float32, copy=False)
    out = cv2.remap(values, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows, cols, -1)  # cv2 drops a single channel axis


def fuse_scales(maps: Sequence[ScaledMap], height: int, width: int) -> CoarseProbabilities:
    """One map of a ``height`` x ``width`` photo from its maps at several enlargements.

    maps: (factor, map of the photo scaled ``factor`` times), factor 1 among them; their
    channel 0 is p background, the others the lesion classes.
    Where a lesion is: per grid pixel, the lowest p background of the maps (the scale
    surest of a lesion; the first of ``maps`` on ties). What it is: that lesion
    probability split between the lesion classes in the proportions of their sums over
    all maps (every scale's opinion: on the validation photos, scales 1-4 with the
    region-wide mean p_malignant of the time, this raised the malignant AUC from 0.942 to
    0.944; the surest scale's own split is noisier). Each pixel's
    values still sum to 1. A single map at factor 1 is returned as it is. The grid's
    stride: :func:`fusion_stride` of the network's output stride (that of the maps).
    """
    if len(maps) == 1 and maps[0][0] == 1:
        return maps[0][1]
    output_stride = maps[0][1].stride
    stride = fusion_stride([factor for factor, _ in maps], output_stride)
    # per channel plane (cv2.split / merge): operations on the interleaved (h, w, C) array
    # touch every C-th float; on the bench's 12 MP photo (a 1000 x 750 grid) the fusion
    # took 40 ms that way, 8 ms so (medians of 7, the same result within 1.2e-7)
    planes = cv2.split(_resampled(maps[0], stride, height, width))
    class_sums = [plane.copy() for plane in planes[1:]]
    for source in maps[1:]:
        candidate = cv2.split(_resampled(source, stride, height, width))
        surer = candidate[0] < planes[0]
        for plane, new_plane in zip(planes, candidate, strict=True):
            np.copyto(plane, new_plane, where=surer)
        for class_sum, new_plane in zip(class_sums, candidate[1:], strict=True):
            class_sum += new_plane
    total = sum(class_sums[1:], class_sums[0].copy())
    # each class's share of the surest lesion probability: 0 where no map saw any class
    scale = np.zeros_like(total)
    np.divide(1.0 - planes[0], total, out=scale, where=total > 0)
    fused = cv2.merge([planes[0], *(class_sum * scale for class_sum in class_sums)])
    fused = fused.reshape(planes[0].shape + (len(planes),))  # cv2 drops a single channel
    return CoarseProbabilities(fused, stride, height, width)


def rescaled(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (H, W, 3) uint8 scaled by ``factor``: a whole factor > 1 enlarges it by
    cubic interpolation to (H * factor, W * factor); a factor below 1 reduces it by pixel
    area averaging to (round(H * factor), round(W * factor)) (the reduced maps are read
    with ``factor`` itself, so a side that is no multiple of 1 / factor shifts them by
    under half a reduced pixel)."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    if factor < 1:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    k = int(factor)
    return cv2.resize(image, (width * k, height * k), interpolation=cv2.INTER_CUBIC)


def multiscale_probabilities(
    image: np.ndarray,
    factors: Sequence[float],
    analyse: Callable[[np.ndarray, float, float], CoarseProbabilities],
) -> CoarseProbabilities:
    """Analyse ``image`` at each factor and fuse (see :func:`fuse_scales`).

    analyse(image, start, end): the map of one (scaled) image; start / end is the part
    of the whole work it covers (for progress), in proportion to its pixel count.
    """
    height, width = image.shape[:2]
    total = float(sum(k * k for k in factors))
    done = 0.0
    maps: list[ScaledMap] = []
    for factor in factors:
        share = factor * factor / total
        maps.append((factor, analyse(rescaled(image, factor), done, done + share)))
        done += share
    return fuse_scales(maps, height, width)
