"""Lesion-level detection metrics that accumulate over images (MONAI style).

``LesionDetectionMetric`` matches the predicted lesion regions of each image to the
ground-truth lesion instances, keeps one record per prediction (score, matched or not)
and per matched true lesion (true class, predicted ``p_malignant``), and aggregates them
into recall, precision, false positives per image, average precision over score
thresholds and the malignant-vs-benign ROC curve.

Everything is plain numpy; the ranking and interval statistics it uses (ROC, AP, the
operating point, bootstrap intervals over photos, patients or lesion photos, never over
lesions) are :mod:`training.statistics`. Coordinates: x right, y down, pixel centres at
integer coordinates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from core.types import Lesion
from training.statistics import (
    auc_interval,
    average_precision,
    bootstrap_interval,
    expected_calibration_error,
    operating_point,
    roc_auc,
)

BENIGN, MALIGNANT = 1, 2
#: True lesions smaller than this (equivalent diameter, px) are "don't care" in evaluation:
#: the detector is specified for lesions of ~6 to ~200 px.
MIN_DIAMETER_PX = 6.0
#: edges of the size bands of the recall breakdown (equivalent-circle diameter, px): the
#: network's output is at stride 4, so lesions under ~4 px are below what it resolves
DIAMETER_BANDS_PX = (0.0, 4.0, 6.0, 10.0, 20.0, float("inf"))
#: edges of the contrast bands of the recall breakdown (CIE76 colour difference ΔE*ab
#: between a lesion and the skin around it, see :func:`lesion_contrasts`). A difference of
#: about 2.3 is just noticeable between two large flat patches; a spot of a few pixels on
#: textured skin needs several times that to be seen at all
CONTRAST_BANDS = (0.0, 5.0, 10.0, 20.0, float("inf"))
#: width (px) of the ring of skin a lesion's colour is compared with
CONTRAST_RING_PX = 4


def rasterise(lesion: Lesion, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of the lesion's contour polygon (filled), clipped to ``shape``."""
    mask = np.zeros(shape, np.uint8)
    contour = np.asarray(lesion.contour, dtype=np.int32).reshape(-1, 1, 2)
    if contour.shape[0] > 0:
        cv2.fillPoly(mask, [contour], 1)
    if not mask.any():  # degenerate outline: fall back to the centroid pixel
        x = int(np.clip(round(lesion.centroid[0]), 0, shape[1] - 1))
        y = int(np.clip(round(lesion.centroid[1]), 0, shape[0] - 1))
        mask[y, x] = 1
    return mask.astype(bool)


@dataclass(frozen=True)
class ImageMatch:
    """Matching of one image's predictions to its true lesions.

    pairs: (prediction index, true instance id) of the matches.
    false_positives: prediction indices that match no true lesion.
    missed: true instance ids no prediction matched.
    """

    pairs: tuple[tuple[int, int], ...]
    false_positives: tuple[int, ...]
    missed: tuple[int, ...]


def match_lesions_to_instances(
    lesions: Sequence[Lesion],
    instance_map: np.ndarray,
    *,
    min_iou: float = 0.1,
    centre_tolerance_px: float = 3.0,
) -> ImageMatch:
    """Greedy one-to-one matching of predicted regions to true instances.

    A prediction may match instance k when their IoU is >= ``min_iou`` or when the
    prediction's centroid lies inside instance k (dilated by ``centre_tolerance_px``,
    which forgives outlines of very small lesions that are off by a pixel or two).
    Predictions are taken in order of decreasing score; each takes the free candidate
    with the highest IoU. ``instance_map``: (H, W) integer, 0 = no lesion.
    """
    instance_map = np.asarray(instance_map)
    shape = instance_map.shape[:2]
    ids = [int(v) for v in np.unique(instance_map) if v != 0]
    order = sorted(range(len(lesions)), key=lambda i: -float(lesions[i].score))
    taken: set[int] = set()
    pairs: list[tuple[int, int]] = []
    false_pos: list[int] = []
    radius = max(0, int(round(centre_tolerance_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2) if radius else None
    for i in order:
        lesion = lesions[i]
        best, best_iou = None, -1.0
        if ids:
            mask = rasterise(lesion, shape)
            hit_ids = np.unique(instance_map[mask])
            cand = {int(v) for v in hit_ids if v != 0}
            cx = int(np.clip(round(lesion.centroid[0]), 0, shape[1] - 1))
            cy = int(np.clip(round(lesion.centroid[1]), 0, shape[0] - 1))
            y0, y1 = max(0, cy - radius), min(shape[0], cy + radius + 1)
            x0, x1 = max(0, cx - radius), min(shape[1], cx + radius + 1)
            cand.update(int(v) for v in np.unique(instance_map[y0:y1, x0:x1]) if v != 0)
            for k in sorted(cand - taken):
                inst = instance_map == k
                inter = float(np.count_nonzero(inst & mask))
                union = float(np.count_nonzero(inst | mask))
                iou = inter / union if union else 0.0
                near = inst[cy, cx]
                if not near and kernel is not None:
                    window = inst[y0:y1, x0:x1].astype(np.uint8)
                    near = bool(cv2.dilate(window, kernel)[cy - y0, cx - x0])
                if (iou >= min_iou or near) and iou > best_iou:
                    best, best_iou = k, iou
        if best is None:
            false_pos.append(i)
        else:
            taken.add(best)
            pairs.append((i, best))
    missed = tuple(k for k in ids if k not in taken)
    return ImageMatch(tuple(pairs), tuple(false_pos), missed)


def instance_classes(instance_map: np.ndarray, class_map: np.ndarray) -> dict[int, int]:
    """True class (1 benign, 2 malignant) of each instance: the majority class under it."""
    out: dict[int, int] = {}
    for k in np.unique(instance_map):
        if k == 0:
            continue
        values = class_map[instance_map == k]
        values = values[values > 0]
        out[int(k)] = int(np.bincount(values).argmax()) if values.size else BENIGN
    return out


def equivalent_diameters(instance_map: np.ndarray) -> dict[int, float]:
    """{instance id: diameter (px) of the circle of the instance's area} for ids > 0."""
    ids, areas = np.unique(instance_map[instance_map > 0], return_counts=True)
    diameters = 2.0 * np.sqrt(areas / np.pi)
    return {int(k): float(d) for k, d in zip(ids, diameters, strict=True)}


def lesion_contrasts(
    image: np.ndarray, instance_map: np.ndarray, ring_px: int = CONTRAST_RING_PX
) -> dict[int, float]:
    """{instance id: how visible the lesion is in the rendered photo} for ids > 0.

    The visibility is the CIE76 colour difference ΔE*ab between the mean CIELAB colour of
    the lesion's pixels and that of the skin in a ring ``ring_px`` wide around it (pixels
    of other lesions left out); NaN when the ring is empty. Synthesis blends real lesions
    into the skin's gradients, so a small, pale source can come out next to invisible: this
    tells the misses no detector could find from those it should.

    image: uint8 (H, W, 3) RGB; instance_map: (H, W) int, 0 = no lesion.
    """
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != np.shape(instance_map)[:2]:
        raise ValueError(f"image {rgb.shape} does not fit instance_map {np.shape(instance_map)}")
    lab = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2LAB)
    instances = np.asarray(instance_map)
    height, width = instances.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1,) * 2)
    out: dict[int, float] = {}
    for index, box in enumerate(ndimage.find_objects(instances)):
        if box is None:
            continue
        k = index + 1
        rows = slice(max(0, box[0].start - ring_px), min(height, box[0].stop + ring_px))
        cols = slice(max(0, box[1].start - ring_px), min(width, box[1].stop + ring_px))
        window = instances[rows, cols]
        inside = window == k
        ring = cv2.dilate(inside.astype(np.uint8), kernel).astype(bool) & (window == 0)
        if not ring.any():
            out[k] = float("nan")
            continue
        colours = lab[rows, cols]
        difference = colours[inside].mean(axis=0) - colours[ring].mean(axis=0)
        out[k] = float(np.linalg.norm(difference))
    return out


def _drop_dont_care(match: ImageMatch, dont_care: set[int]) -> ImageMatch:
    """Forget the true instances ``dont_care`` and the predictions matched to them (neither
    hits nor false positives)."""
    if not dont_care:
        return match
    return ImageMatch(
        pairs=tuple(p for p in match.pairs if p[1] not in dont_care),
        false_positives=match.false_positives,
        missed=tuple(k for k in match.missed if k not in dont_care),
    )


class LesionDetectionMetric:
    """Accumulates lesion-level results over images: ``update`` per image, ``aggregate``, ``reset``.

    True lesions with an equivalent-circle diameter below ``min_diameter_px``, or a contrast
    below ``min_contrast`` (ΔE*ab, :func:`lesion_contrasts`; ``update`` must be given the
    contrasts then, and a lesion of unknown contrast counts), are "don't care": not counted
    as missed when no prediction finds them, and a prediction matched to one is not counted
    at all (neither a hit nor a false positive).

    ``update(lesions, instance_map, classes, contrasts=None)``: ``lesions`` the predicted
    regions of one image, ``instance_map`` (H, W) int with 0 = no lesion, ``classes`` the
    true class of each instance id (1 benign, 2 malignant), e.g. from ``instance_classes``;
    ``contrasts`` optionally each instance's visibility (:func:`lesion_contrasts`), for
    :meth:`recall_by_contrast`; ``origins`` optionally where each instance came from (any
    name, e.g. ``training.synthesis.detection.LESION_ORIGINS``), for :meth:`by_origin`;
    ``clusters`` optionally what an instance shares with instances of other images (the
    lesion photo a synthetic lesion was made from): the AUC intervals resample those, and
    an instance of none counts with its own image.
    """

    def __init__(
        self,
        *,
        max_fp_per_image: float = 0.5,
        min_iou: float = 0.1,
        min_diameter_px: float = 0.0,
        min_contrast: float = 0.0,
    ) -> None:
        self.max_fp_per_image = max_fp_per_image
        self.min_iou = min_iou
        self.min_diameter_px = min_diameter_px
        self.min_contrast = min_contrast
        self.reset()

    def reset(self) -> None:
        self._scores: list[float] = []
        self._is_tp: list[bool] = []
        self._mal_labels: list[int] = []
        self._mal_scores: list[float] = []
        self._n_true = 0
        self._n_images = 0
        # which image each prediction came from, and each image's number of counted true
        # lesions: what a bootstrap over images resamples
        self._score_image: list[int] = []
        self._true_per_image: list[int] = []
        # per counted true lesion: equivalent diameter (px), contrast (NaN when not given)
        # and the score of the prediction that found it (-inf when none did)
        self._true_diameters: list[float] = []
        self._true_contrasts: list[float] = []
        self._true_found_at: list[float] = []
        # origin of each counted true lesion and of each matched one ("" when not given)
        self._true_origins: list[str] = []
        self._mal_origins: list[str] = []
        # the unit each matched lesion's malignancy is independent in (a lesion photo that
        # many synthetic photos blend, or else its own image)
        self._mal_clusters: list[str] = []

    def update(
        self,
        lesions: Sequence[Lesion],
        instance_map: np.ndarray,
        classes: Mapping[int, int],
        contrasts: Mapping[int, float] | None = None,
        origins: Mapping[int, str] | None = None,
        clusters: Mapping[int, str] | None = None,
    ) -> ImageMatch:
        """Match one image's predictions and record the outcome; returns the matching."""
        match = match_lesions_to_instances(lesions, instance_map, min_iou=self.min_iou)
        diameter = equivalent_diameters(instance_map)
        contrasts = contrasts or {}
        origins, clusters = origins or {}, clusters or {}
        if self.min_contrast > 0 and diameter and not contrasts:
            raise ValueError("min_contrast needs the lesions' contrasts")
        faint = {k for k, c in contrasts.items() if c < self.min_contrast}  # NaN: not faint
        small = {k for k, d in diameter.items() if d < self.min_diameter_px}
        match = _drop_dont_care(match, small | faint)
        image = self._n_images
        self._n_images += 1
        self._n_true += len(match.pairs) + len(match.missed)
        self._true_per_image.append(len(match.pairs) + len(match.missed))
        self._score_image.extend([image] * (len(match.pairs) + len(match.false_positives)))

        def record_true(k: int, found_at: float) -> None:
            self._true_diameters.append(diameter[k])
            self._true_contrasts.append(float(contrasts.get(k, float("nan"))))
            self._true_found_at.append(found_at)
            self._true_origins.append(origins.get(k, ""))

        for k in match.missed:
            record_true(k, float("-inf"))
        for i, k in match.pairs:
            record_true(k, float(lesions[i].score))
            self._scores.append(float(lesions[i].score))
            self._is_tp.append(True)
            self._mal_labels.append(1 if classes.get(k, BENIGN) == MALIGNANT else 0)
            self._mal_scores.append(float(lesions[i].p_malignant))
            self._mal_origins.append(origins.get(k, ""))
            self._mal_clusters.append(clusters.get(k, f"image {image}"))
        for i in match.false_positives:
            self._scores.append(float(lesions[i].score))
            self._is_tp.append(False)
        return match

    @property
    def n_images(self) -> int:
        return self._n_images

    def malignant_scores(
        self, origins: Collection[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(labels 0/1, p_malignant) over matched true lesions, for ROC plots; only those of
        ``origins`` (as given to ``update``) when given."""
        labels = np.asarray(self._mal_labels, np.int64)
        scores = np.asarray(self._mal_scores, np.float64)
        if origins is None:
            return labels, scores
        kept = np.isin(np.asarray(self._mal_origins, dtype=object), list(origins))
        return labels[kept], scores[kept]

    def recall_at_fp_rate(self, max_fp_per_image: float) -> tuple[float, float, float]:
        """(recall, fp_per_image, score threshold) at the lowest threshold whose FP/image
        stays <= ``max_fp_per_image`` (:func:`operating_point`). Recall 0 and threshold inf
        when none does."""
        return operating_point(
            np.asarray(self._is_tp, bool),
            np.asarray(self._scores, np.float64),
            self._n_true,
            self._n_images,
            max_fp_per_image,
        )

    def recall_at(self, threshold: float) -> float:
        """Share of the counted true lesions found by a prediction scoring ``threshold`` or
        more (0 when there are none): a fixed operating point, e.g. one chosen on all photos
        and read on a subgroup of them."""
        found_at = np.asarray(self._true_found_at, np.float64)
        return float(np.mean(found_at >= threshold)) if found_at.size else 0.0

    def fp_per_image_at(self, threshold: float) -> float:
        """False positives per image among predictions scoring ``threshold`` or more."""
        if self._n_images == 0:
            return 0.0
        scores = np.asarray(self._scores, np.float64)
        false = ~np.asarray(self._is_tp, bool)
        return float(np.count_nonzero(false & (scores >= threshold))) / self._n_images

    def recall_by_diameter(self, threshold: float) -> list[dict[str, float | int | None]]:
        """Recall of true lesions per size band (:data:`DIAMETER_BANDS_PX`) when predictions
        scoring ``threshold`` or more count, and the ceiling: found at any score.

        Returns one {"from_px", "to_px", "n", "recall", "recall_any_score"} per band.
        """
        return self._recall_by_band(self._true_diameters, DIAMETER_BANDS_PX, threshold, "_px")

    def recall_by_contrast(self, threshold: float) -> list[dict[str, float | int | None]]:
        """As :meth:`recall_by_diameter`, per contrast band (:data:`CONTRAST_BANDS`, ΔE*ab;
        keys "from", "to", ...) of the lesions whose contrast ``update`` was given."""
        return self._recall_by_band(self._true_contrasts, CONTRAST_BANDS, threshold, "")

    def _recall_by_band(
        self, values: list[float], edges: Sequence[float], threshold: float, unit: str
    ) -> list[dict[str, float | int | None]]:
        value = np.asarray(values, np.float64)
        found_at = np.asarray(self._true_found_at, np.float64)
        bands = []
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            inside = (value >= low) & (value < high)  # NaN (unknown) is in no band
            n = int(inside.sum())
            bands.append(
                {
                    f"from{unit}": low,
                    f"to{unit}": high if np.isfinite(high) else None,
                    "n": n,
                    "recall": float(np.mean(found_at[inside] >= threshold)) if n else 0.0,
                    "recall_any_score": float(np.mean(np.isfinite(found_at[inside]))) if n else 0.0,
                }
            )
        return bands

    def by_origin(
        self, threshold: float, groups: Mapping[str, Collection[str]] | None = None, seed: int = 0
    ) -> dict[str, dict]:
        """Figures per origin of the true lesions (the ``origins`` given to ``update``): where
        the misses are, and how well p_malignant separates malignant from benign lesions of
        those origins alone.

        groups: {name: the origins it pools}; None: each origin seen on its own, in the order
        their first lesion was recorded. Lesions of no origin are in no group, and a group
        with none of the lesions is left out.
        Returns {name: {"n", "recall" (predictions scoring ``threshold`` or more),
        "recall_any_score", "n_malignant_matched", "n_benign_matched", "auc_malignant"
        (NaN when one class was not matched), "auc_malignant_ci95" [low, high] (bootstrap
        over the ``clusters`` given to ``update`` and the images, :func:`auc_interval`),
        "n_clusters" (how many units that interval resamples)}}.
        """
        origins = np.asarray(self._true_origins, dtype=object)
        found_at = np.asarray(self._true_found_at, np.float64)
        mal_origins = np.asarray(self._mal_origins, dtype=object)
        labels, scores = self.malignant_scores()
        clusters = np.asarray(self._mal_clusters, dtype=object)
        if groups is None:
            groups = {origin: (origin,) for origin in dict.fromkeys(self._true_origins) if origin}
        out: dict[str, dict] = {}
        for name, members in groups.items():
            own = np.isin(origins, list(members))
            if not own.any():
                continue
            matched = np.isin(mal_origins, list(members))
            own_labels, own_scores = labels[matched], scores[matched]
            auc = roc_auc(own_labels, own_scores)
            bounds = (
                auc_interval(own_labels, own_scores, groups=clusters[matched], seed=seed)
                if np.isfinite(auc)
                else [float("nan")] * 2
            )
            out[name] = {
                "n": int(own.sum()),
                "recall": float(np.mean(found_at[own] >= threshold)),
                "recall_any_score": float(np.mean(np.isfinite(found_at[own]))),
                "n_malignant_matched": int(own_labels.sum()),
                "n_benign_matched": int(own_labels.size - own_labels.sum()),
                "auc_malignant": auc,
                "auc_malignant_ci95": bounds,
                "n_clusters": len(set(clusters[matched])),
            }
        return out

    def aggregate(self) -> dict[str, float | int]:
        """Figures over everything seen since the last ``reset``.

        recall, precision, fp_per_image: over all predictions as given (the post-processing
        threshold); ap: average precision over score thresholds; score_ece: expected
        calibration error of the scores, a prediction being right when it matched;
        recall_at_max_fp / fp_per_image_at / score_threshold_at: the operating point with
        FP/image <= ``max_fp_per_image``; auc_malignant: ROC AUC of p_malignant over matched
        true lesions (NaN when only one class was matched); counts.
        """
        scores = np.asarray(self._scores, np.float64)
        is_tp = np.asarray(self._is_tp, bool)
        n_tp = int(is_tp.sum())
        n_fp = int(is_tp.size - n_tp)
        recall_op, fp_op, thr_op = self.recall_at_fp_rate(self.max_fp_per_image)
        labels, mal = self.malignant_scores()
        return {
            "n_images": self._n_images,
            "n_true": self._n_true,
            "n_predicted": int(is_tp.size),
            "n_matched": n_tp,
            "recall": n_tp / self._n_true if self._n_true else 0.0,
            "precision": n_tp / is_tp.size if is_tp.size else 0.0,
            "fp_per_image": n_fp / self._n_images if self._n_images else 0.0,
            "ap": average_precision(is_tp, scores, self._n_true),
            # does a score of s mean "a true lesion" s of the time? (over the predictions)
            "score_ece": expected_calibration_error(is_tp, scores),
            "max_fp_per_image": self.max_fp_per_image,
            "recall_at_max_fp": recall_op,
            "fp_per_image_at": fp_op,
            "score_threshold_at": thr_op,
            "auc_malignant": roc_auc(labels, mal),
            "n_malignant_matched": int(labels.sum()),
            "n_benign_matched": int(labels.size - labels.sum()),
        }

    def confidence_intervals(
        self, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
    ) -> dict[str, list[float]]:
        """Bootstrap confidence intervals of ``recall_at_max_fp``, ``auc_malignant`` and
        ``ap`` (BCa, :func:`scipy.stats.bootstrap`), resampling whole images: the lesions of
        one photo share its body, light and camera, so they are not independent samples.
        The operating point is chosen anew in every resample, as ``aggregate`` chooses it.
        The AUC's interval resamples the matched lesions' ``clusters`` (as given to
        ``update``; a lesion of none is in its image's): a lesion photo that many synthetic
        images blend is one sample of malignancy, however many images show it.

        Returns {figure: [low, high]}; NaN bounds when fewer than two images were seen (or,
        for the AUC, when a class is missing). Deterministic in ``seed``.
        """
        if self._n_images < 2:
            return {
                name: [float("nan")] * 2 for name in ("recall_at_max_fp", "auc_malignant", "ap")
            }
        tp_per_image, scores_per_image = self._per_image_arrays()
        true_per_image = np.asarray(self._true_per_image, np.int64)

        def figures(images: np.ndarray) -> np.ndarray:
            tp = np.concatenate([tp_per_image[i] for i in images])
            scores = np.concatenate([scores_per_image[i] for i in images])
            n_true = int(true_per_image[images].sum())
            recall = operating_point(tp, scores, n_true, images.size, self.max_fp_per_image)[0]
            return np.array([recall, average_precision(tp, scores, n_true)])

        low, high = bootstrap_interval(
            figures, self._n_images, confidence=confidence, n_resamples=n_resamples, seed=seed
        )
        labels, mal = self.malignant_scores()
        auc = auc_interval(
            labels,
            mal,
            self._mal_clusters,
            confidence=confidence,
            n_resamples=n_resamples,
            seed=seed,
        )
        return {
            "recall_at_max_fp": [float(low[0]), float(high[0])],
            "auc_malignant": auc,
            "ap": [float(low[1]), float(high[1])],
        }

    def _per_image_arrays(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per image: is_tp and scores of its predictions (lists of arrays)."""

        def split(values: list, images: list[int], dtype) -> list[np.ndarray]:
            edges = np.searchsorted(np.asarray(images, np.int64), np.arange(self._n_images + 1))
            array = np.asarray(values, dtype)
            return [array[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]

        return (
            split(self._is_tp, self._score_image, bool),
            split(self._scores, self._score_image, np.float64),
        )
