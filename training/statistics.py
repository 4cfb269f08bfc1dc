"""Ranking and interval statistics of the evaluations: ROC curve and AUC, average precision,
the operating point at a false-positive budget, calibration error, and bootstrap intervals
that resample groups (photos, patients, lesion photos), never single examples.

Plain numpy and scipy; :mod:`training.metrics` builds its lesion-level figures on these.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of ``scores`` separating ``labels`` (1 positive, 0 negative).

    Returns (fpr, tpr, thresholds), float64 arrays of equal length starting at (0, 0) with
    threshold +inf; a point per distinct score (ties move FPR and TPR together), so the
    trapezoid area equals the Mann-Whitney statistic with ties counted one half.
    Raises ValueError when either class is absent.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError("labels and scores differ in length")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both positive and negative examples")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count one half). NaN if a class is absent."""
    try:
        fpr, tpr, _ = roc_curve(labels, scores)
    except ValueError:
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(is_tp: np.ndarray, scores: np.ndarray, n_true: int) -> float:
    """Average precision of ranked detections: sum over recall steps of the precision there.

    ``is_tp[i]`` says whether detection i matched a true lesion, ``n_true`` is the number of
    true lesions (matched or not). Detections are ranked by decreasing score; tied scores
    form one threshold. This is the area under the step precision-recall curve (the
    scikit-learn definition, no interpolation). 0 when there are no true lesions.
    """
    is_tp = np.asarray(is_tp).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if n_true <= 0 or is_tp.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], is_tp[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(y)[last_of_tie].astype(np.float64)
    precision = tps / (last_of_tie + 1)
    recall = tps / n_true
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def operating_point(
    is_tp: np.ndarray, scores: np.ndarray, n_true: int, n_images: int, max_fp_per_image: float
) -> tuple[float, float, float]:
    """The lowest score threshold whose false positives per image stay <= ``max_fp_per_image``.

    ``is_tp``/``scores`` (n,) as for :func:`average_precision`; tied scores form one
    threshold. Returns (recall, fp_per_image, threshold) there; (0, 0, inf) when no
    threshold qualifies or there are no images or no true lesions.
    """
    is_tp = np.asarray(is_tp).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if n_images <= 0 or n_true <= 0 or scores.size == 0:
        return 0.0, 0.0, float("inf")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], is_tp[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tps = np.cumsum(y)[last_of_tie]
    fp_rate = ((last_of_tie + 1) - tps) / n_images
    # fp_rate grows with every lower threshold: the qualifying ones are a prefix
    ok = int(np.searchsorted(fp_rate, max_fp_per_image, side="right"))
    if ok == 0:
        return 0.0, 0.0, float("inf")
    return float(tps[ok - 1] / n_true), float(fp_rate[ok - 1]), float(s[last_of_tie[ok - 1]])


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """Expected calibration error: over ``bins`` equal-width bins of the predicted
    probability, the mean |mean prediction - fraction of positives|, weighted by the share
    of predictions in the bin (0 = calibrated). labels 0/1 (n,), probabilities in [0, 1]
    (n,). NaN when there are no predictions."""
    labels = np.asarray(labels, np.float64).ravel()
    probabilities = np.asarray(probabilities, np.float64).ravel()
    if probabilities.size == 0:
        return float("nan")
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    # per bin, |sum of predictions - sum of labels| = share * |mean prediction - mean label|
    sum_p = np.bincount(which, probabilities, bins)
    sum_y = np.bincount(which, labels, bins)
    return float(np.abs(sum_p - sum_y).sum() / probabilities.size)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray | float],
    n_groups: int,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """BCa bootstrap confidence interval (:func:`scipy.stats.bootstrap`) of a figure computed
    from a sample of groups (photos, patients): ``statistic(groups)`` gets an int64 array of
    group indices in [0, n_groups), with repeats, and returns one figure or a 1-D array of
    them. Resampling groups, not lesions, respects that the lesions of one photo or patient
    are not independent. Returns (low, high), arrays shaped like the statistic. Where BCa
    is undefined (every resample gives the same value, the statistic is NaN in some, or no
    resample falls below the figure, or none above: BCa's bias correction is then infinite
    and its interval collapses to a point), the bounds are the percentile interval of the
    resamples where it is defined (NaN if it is nowhere). Deterministic in ``seed``.
    """
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN percentiles
        result = stats.bootstrap(
            (np.arange(n_groups),),
            statistic,
            vectorized=False,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
        # BCa is undefined when every resample gives one value (a perfect detector): the
        # interval is then that value, which the plain percentile interval gives
        resampled = np.asarray(result.bootstrap_distribution, np.float64)
        tail = 50.0 * (1.0 - confidence)
        percentile = np.nanpercentile(resampled, [tail, 100.0 - tail], axis=-1)
        # ... and when the figure lies at an edge of its resamples (a discrete figure at
        # its least value, say): BCa's bias correction is infinite there
        figure = np.asarray(statistic(np.arange(n_groups)), np.float64)
        below = np.nanmean(resampled < figure[..., None], axis=-1)
        above = np.nanmean(resampled > figure[..., None], axis=-1)
    low, high = (np.asarray(b, np.float64) for b in result.confidence_interval)
    undefined = (below == 0) | (above == 0)
    return (
        np.where(np.isnan(low) | undefined, percentile[0], low),
        np.where(np.isnan(high) | undefined, percentile[1], high),
    )


def auc_interval(
    labels: np.ndarray, scores: np.ndarray, groups: Sequence[object], **options
) -> list[float]:
    """95 % (``confidence``) bootstrap interval of :func:`roc_auc`, resampling ``groups``
    (one key per example, e.g. its patient): [low, high]. ``options`` as for
    :func:`bootstrap_interval`; NaN bounds with fewer than two groups."""
    labels, scores = np.asarray(labels).ravel(), np.asarray(scores, np.float64).ravel()
    keys, which = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    if keys.size < 2:
        return [float("nan")] * 2
    members = [np.flatnonzero(which == k) for k in range(keys.size)]

    def auc(picked: np.ndarray) -> float:
        rows = np.concatenate([members[k] for k in picked])
        return roc_auc(labels[rows], scores[rows])

    low, high = bootstrap_interval(auc, keys.size, **options)
    return [float(low), float(high)]
