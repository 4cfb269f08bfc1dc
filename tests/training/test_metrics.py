"""Lesion-level metrics against hand-computed examples."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from core.types import Lesion
from training.metrics import (
    LesionDetectionMetric,
    instance_classes,
    lesion_contrasts,
    match_lesions_to_instances,
)
from training.statistics import (
    auc_interval,
    average_precision,
    bootstrap_interval,
    operating_point,
    roc_auc,
    roc_curve,
)


def _box_lesion(i: int, x0: int, y0: int, x1: int, y1: int, score: float, p_mal: float) -> Lesion:
    contour = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.int32)
    return Lesion(
        id=i,
        centroid=((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2),
        bbox=(x0, y0, x1, y1),
        contour=contour,
        area_px=float((x1 - x0) * (y1 - y0)),
        score=score,
        p_malignant=p_mal,
    )


def test_roc_curve_and_auc_match_hand_computation() -> None:
    labels = np.array([1, 0, 1, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.3])
    fpr, tpr, thr = roc_curve(labels, scores)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert thr[0] == math.inf and list(thr[1:]) == [0.9, 0.8, 0.7, 0.3]
    # Mann-Whitney by hand: 3 of 6 pairs ordered right, one tie counts one half.
    assert roc_auc(labels, scores) == pytest.approx(3.5 / 6)
    assert roc_auc(labels, -scores) == pytest.approx(1 - 3.5 / 6)
    assert math.isnan(roc_auc(np.ones(3), np.arange(3.0)))


def test_average_precision_matches_hand_computation() -> None:
    # ranked: TP, FP, TP, FP with 3 true lesions: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert average_precision(
        np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6]), 3
    ) == pytest.approx(5 / 9)
    assert average_precision(np.array([1, 1]), np.array([0.5, 0.4]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([], bool), np.array([]), 4) == 0.0


def _scene() -> tuple[np.ndarray, np.ndarray]:
    inst = np.zeros((60, 80), np.int32)
    cls = np.zeros((60, 80), np.uint8)
    inst[10:20, 10:20] = 1  # benign
    cls[10:20, 10:20] = 1
    inst[30:34, 50:54] = 2  # small malignant
    cls[30:34, 50:54] = 2
    inst[40:55, 5:25] = 3  # malignant, missed
    cls[40:55, 5:25] = 2
    return inst, cls


def test_matching_overlap_centroid_tolerance_and_false_positives() -> None:
    inst, cls = _scene()
    lesions = [
        _box_lesion(1, 11, 11, 21, 21, score=0.9, p_mal=0.2),  # overlaps instance 1
        _box_lesion(2, 54, 33, 57, 36, score=0.8, p_mal=0.7),  # 2 px off the small one
        _box_lesion(3, 60, 5, 70, 15, score=0.6, p_mal=0.9),  # on nothing
        _box_lesion(4, 12, 12, 18, 18, score=0.5, p_mal=0.1),  # duplicate of instance 1
    ]
    m = match_lesions_to_instances(lesions, inst, centre_tolerance_px=3)
    assert set(m.pairs) == {(0, 1), (1, 2)}
    assert set(m.false_positives) == {2, 3}
    assert m.missed == (3,)
    strict = match_lesions_to_instances(lesions, inst, centre_tolerance_px=0)
    assert (1, 2) not in strict.pairs


def test_metric_accumulates_and_resets() -> None:
    inst, cls = _scene()
    classes = instance_classes(inst, cls)
    assert classes == {1: 1, 2: 2, 3: 2}
    metric = LesionDetectionMetric(max_fp_per_image=0.5)
    lesions = [
        _box_lesion(1, 11, 11, 21, 21, score=0.9, p_mal=0.2),
        _box_lesion(2, 50, 30, 54, 34, score=0.8, p_mal=0.7),
        _box_lesion(3, 60, 5, 70, 15, score=0.6, p_mal=0.9),
    ]
    metric.update(lesions, inst, classes)
    metric.update([_box_lesion(1, 5, 40, 25, 55, score=0.95, p_mal=0.6)], inst, classes)
    out = metric.aggregate()
    assert out["n_images"] == 2 and out["n_true"] == 6 and out["n_predicted"] == 4
    assert out["recall"] == pytest.approx(3 / 6)
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["fp_per_image"] == pytest.approx(0.5)
    # the one FP has the lowest score: at FP/image <= 0.5 every prediction may be kept
    assert out["recall_at_max_fp"] == pytest.approx(0.5)
    # ranked: 0.95 TP, 0.9 TP, 0.8 TP, 0.6 FP -> AP = 3/6 * 1
    assert out["ap"] == pytest.approx(0.5)
    # matched: benign 0.2, malignant 0.7 and 0.6 -> perfectly separated
    assert out["auc_malignant"] == pytest.approx(1.0)
    assert out["n_malignant_matched"] == 2 and out["n_benign_matched"] == 1
    strict = LesionDetectionMetric(max_fp_per_image=0.0)
    strict.update(lesions, inst, classes)
    recall, fp, thr = strict.recall_at_fp_rate(0.0)
    assert (recall, fp, thr) == (pytest.approx(2 / 3), 0.0, 0.8)
    metric.reset()
    assert metric.aggregate()["n_images"] == 0


def test_small_true_lesions_are_dont_care() -> None:
    inst, cls = _scene()  # instance 2 is 4x4 px: equivalent diameter 4.5 px
    classes = instance_classes(inst, cls)
    lesions = [
        _box_lesion(1, 11, 11, 21, 21, score=0.9, p_mal=0.2),
        _box_lesion(2, 50, 30, 54, 34, score=0.8, p_mal=0.7),  # finds the small one
    ]
    metric = LesionDetectionMetric(min_diameter_px=6.0)
    metric.update(lesions, inst, classes)
    metric.update([], inst, classes)  # misses all: the small one is not counted missed
    out = metric.aggregate()
    assert out["n_true"] == 4 and out["n_predicted"] == 1 and out["fp_per_image"] == 0.0
    assert out["recall"] == pytest.approx(1 / 4)


def test_recall_by_size_band_at_a_threshold_and_at_any_score() -> None:
    inst, cls = _scene()  # equivalent diameters: 11.3 px, 4.5 px, 19.5 px
    lesions = [
        _box_lesion(1, 11, 11, 21, 21, score=0.9, p_mal=0.2),
        _box_lesion(2, 50, 30, 54, 34, score=0.4, p_mal=0.7),  # finds the small one, weakly
    ]
    metric = LesionDetectionMetric()
    metric.update(lesions, inst, instance_classes(inst, cls))
    bands = {(b["from_px"], b["to_px"]): b for b in metric.recall_by_diameter(0.5)}
    assert [b["n"] for b in bands.values()] == [0, 1, 0, 2, 0]
    assert (bands[4.0, 6.0]["recall"], bands[4.0, 6.0]["recall_any_score"]) == (0.0, 1.0)
    assert (bands[10.0, 20.0]["recall"], bands[10.0, 20.0]["recall_any_score"]) == (0.5, 0.5)
    assert bands[20.0, None]["n"] == 0
    low = {(b["from_px"], b["to_px"]): b for b in metric.recall_by_diameter(0.3)}
    assert low[4.0, 6.0]["recall"] == 1.0


def _lab(rgb: tuple[int, int, int]) -> np.ndarray:
    pixel = np.array([[rgb]], np.float32) / 255.0
    return cv2.cvtColor(pixel, cv2.COLOR_RGB2LAB)[0, 0]


def test_lesion_contrast_is_the_colour_difference_to_the_surrounding_skin() -> None:
    skin, mole, pale = (200, 160, 140), (90, 60, 50), (198, 158, 139)
    image = np.empty((60, 80, 3), np.uint8)
    image[:] = skin
    inst = np.zeros((60, 80), np.int32)
    inst[10:16, 10:16] = 1
    image[10:16, 10:16] = mole
    inst[30:34, 40:44] = 2  # nearly invisible
    image[30:34, 40:44] = pale
    inst[10:16, 16:22] = 3  # touches the mole: its ring must skip the mole's pixels
    image[10:16, 16:22] = pale
    contrast = lesion_contrasts(image, inst)
    assert set(contrast) == {1, 2, 3}
    assert contrast[1] == pytest.approx(float(np.linalg.norm(_lab(mole) - _lab(skin))), abs=1e-3)
    assert contrast[1] > 40
    assert contrast[2] == pytest.approx(float(np.linalg.norm(_lab(pale) - _lab(skin))), abs=1e-3)
    assert contrast[3] == pytest.approx(contrast[2], abs=1e-3)
    assert contrast[2] < 2


def test_lesion_contrast_without_skin_around_is_nan_and_shapes_are_checked() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    everywhere = np.ones((8, 8), np.int32)
    assert math.isnan(lesion_contrasts(image, everywhere)[1])
    with pytest.raises(ValueError, match="does not fit"):
        lesion_contrasts(image[:4], everywhere)


def test_recall_by_contrast_band_counts_only_lesions_with_a_contrast() -> None:
    inst, cls = _scene()
    lesions = [
        _box_lesion(1, 11, 11, 21, 21, score=0.9, p_mal=0.2),
        _box_lesion(2, 50, 30, 54, 34, score=0.4, p_mal=0.7),
    ]
    # lesion 1 faint, lesion 2 clear, lesion 3 (missed) of unknown contrast: in no band
    metric = LesionDetectionMetric()
    metric.update(lesions, inst, instance_classes(inst, cls), {1: 3.0, 2: 25.0})
    bands = {(b["from"], b["to"]): b for b in metric.recall_by_contrast(0.5)}
    assert [b["n"] for b in bands.values()] == [1, 0, 0, 1]
    assert (bands[0.0, 5.0]["recall"], bands[0.0, 5.0]["recall_any_score"]) == (1.0, 1.0)
    assert (bands[20.0, None]["recall"], bands[20.0, None]["recall_any_score"]) == (0.0, 1.0)
    assert bands[5.0, 10.0]["recall"] == 0.0


def test_faint_lesions_are_dont_care_when_a_minimum_contrast_is_set() -> None:
    inst, cls = _scene()
    classes = instance_classes(inst, cls)
    lesions = [_box_lesion(1, 50, 30, 54, 34, score=0.8, p_mal=0.7)]  # finds lesion 2 only
    contrasts = {1: 30.0, 2: 2.0, 3: 40.0}
    metric = LesionDetectionMetric(min_contrast=5.0)
    metric.update(lesions, inst, classes, contrasts)
    out = metric.aggregate()
    # lesion 2 is too faint to count: its finder is neither a hit nor a false positive
    assert (out["n_true"], out["n_matched"], out["fp_per_image"]) == (2, 0, 0.0)
    everything = LesionDetectionMetric()
    everything.update(lesions, inst, classes, contrasts)
    assert (everything.aggregate()["n_true"], everything.aggregate()["n_matched"]) == (3, 1)
    with pytest.raises(ValueError, match="contrasts"):
        metric.update(lesions, inst, classes)


def _brute_force_operating_point(is_tp, scores, n_true, n_images, max_fp):
    best = (0.0, 0.0, math.inf)
    for t in np.unique(scores)[::-1]:
        keep = scores >= t
        fp_rate = np.count_nonzero(keep & ~is_tp) / n_images
        if fp_rate > max_fp:
            break
        best = (np.count_nonzero(keep & is_tp) / n_true, fp_rate, float(t))
    return best


def test_operating_point_matches_a_threshold_by_threshold_search() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(0, 40))
        scores = np.round(rng.random(n), 1)  # many ties
        is_tp = rng.random(n) < 0.6
        n_true, n_images = int(is_tp.sum()) + int(rng.integers(1, 4)), int(rng.integers(1, 6))
        max_fp = float(rng.choice([0.0, 0.5, 1.0, 3.0]))
        got = operating_point(is_tp, scores, n_true, n_images, max_fp)
        want = _brute_force_operating_point(is_tp, scores, n_true, n_images, max_fp)
        assert got == pytest.approx(want)


def _metric_of_images(n_images: int, seed: int) -> LesionDetectionMetric:
    """Images with one benign and one malignant lesion each, found at noisy scores."""
    rng = np.random.default_rng(seed)
    metric = LesionDetectionMetric(max_fp_per_image=0.5)
    inst = np.zeros((40, 60), np.int32)
    inst[5:15, 5:15], inst[5:15, 30:40] = 1, 2
    classes = {1: 1, 2: 2}
    for _ in range(n_images):
        found = [
            _box_lesion(1, 5, 5, 15, 15, float(rng.random()), float(rng.random() * 0.8)),
            _box_lesion(2, 30, 5, 40, 15, float(rng.random()), float(0.2 + rng.random() * 0.8)),
        ]
        if rng.random() < 0.5:  # a false positive on some images
            found.append(_box_lesion(3, 45, 25, 55, 35, float(rng.random()), 0.5))
        metric.update(found[: int(rng.integers(1, len(found) + 1))], inst, classes)
    return metric


def test_confidence_intervals_resample_images_and_bracket_the_figures() -> None:
    small, large = _metric_of_images(20, seed=1), _metric_of_images(200, seed=1)
    for metric in (small, large):
        figures = metric.aggregate()
        intervals = metric.confidence_intervals(n_resamples=400)
        assert set(intervals) == {"recall_at_max_fp", "auc_malignant", "ap"}
        for name, (low, high) in intervals.items():
            assert low <= figures[name] <= high, name
            assert 0.0 <= low < high <= 1.0
        assert metric.confidence_intervals(n_resamples=400) == intervals  # seeded
    # ten times the images: intervals about a third as wide (1 / sqrt(10))
    for name in ("auc_malignant", "ap"):
        small_width = np.diff(small.confidence_intervals(n_resamples=400)[name])[0]
        large_width = np.diff(large.confidence_intervals(n_resamples=400)[name])[0]
        assert large_width < 0.6 * small_width, name


def test_confidence_intervals_need_two_images() -> None:
    one = _metric_of_images(1, seed=2)
    assert all(math.isnan(v) for bounds in one.confidence_intervals().values() for v in bounds)


def test_auc_interval_resamples_groups_not_examples() -> None:
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(30), np.ones(30)].astype(int)
    scores = labels * 0.6 + rng.random(60)
    point = roc_auc(labels, scores)
    low, high = auc_interval(labels, scores, groups=range(60), n_resamples=500)
    assert low < point < high and 0.5 < low and high <= 1.0
    # every photo counted 4 times: as 240 independent examples the interval would halve;
    # resampled by group (the 60 originals) it stays as wide as the one of 60
    labels4, scores4 = np.repeat(labels, 4), np.repeat(scores, 4)
    grouped = auc_interval(labels4, scores4, groups=np.repeat(np.arange(60), 4), n_resamples=500)
    naive = auc_interval(labels4, scores4, groups=range(240), n_resamples=500)
    assert np.diff(grouped)[0] == pytest.approx(high - low, rel=0.25)
    assert np.diff(naive)[0] < 0.7 * np.diff(grouped)[0]
    assert all(math.isnan(v) for v in auc_interval(labels[:2], scores[:2], groups=["a", "a"]))


def test_recall_and_false_positives_at_a_fixed_threshold() -> None:
    inst, cls = _scene()
    metric = LesionDetectionMetric()
    found = [
        _box_lesion(1, 10, 10, 20, 20, 0.9, 0.1),
        _box_lesion(2, 50, 30, 54, 34, 0.3, 0.8),
        _box_lesion(3, 60, 45, 70, 55, 0.6, 0.5),  # nowhere near a lesion
    ]
    metric.update(found, inst, instance_classes(inst, cls))
    metric.update([], inst, instance_classes(inst, cls))
    n_true = metric.aggregate()["n_true"]
    assert metric.recall_at(0.5) == pytest.approx(1 / n_true)
    assert metric.recall_at(0.2) == pytest.approx(2 / n_true)
    assert metric.fp_per_image_at(0.5) == pytest.approx(0.5)
    assert metric.fp_per_image_at(0.7) == 0.0
    assert LesionDetectionMetric().recall_at(0.5) == 0.0


def test_figures_by_origin_of_the_true_lesions() -> None:
    inst, cls = _scene()  # 1 benign, 2 small malignant, 3 malignant
    origins = {1: "photo", 2: "photo", 3: "procedural"}
    metric = LesionDetectionMetric()
    classes = instance_classes(inst, cls)
    # photo 1: both "photo" lesions found, the malignant one called more malignant;
    # photo 2: the same, the other way round; the procedural lesion found once, weakly
    metric.update(
        [_box_lesion(1, 10, 10, 20, 20, 0.9, 0.2), _box_lesion(2, 50, 30, 54, 34, 0.8, 0.7)],
        inst, classes, origins=origins,
    )  # fmt: skip
    metric.update(
        [
            _box_lesion(1, 10, 10, 20, 20, 0.9, 0.6),
            _box_lesion(2, 50, 30, 54, 34, 0.8, 0.5),
            _box_lesion(3, 5, 40, 25, 55, 0.3, 0.9),
        ],
        inst, classes, origins=origins,
    )  # fmt: skip
    metric.update([_box_lesion(1, 10, 10, 20, 20, 0.9, 0.1)], inst, classes)  # no origins
    groups = metric.by_origin(0.5)
    assert set(groups) == {"photo", "procedural"}  # the third photo's lesions: in none
    photo, procedural = groups["photo"], groups["procedural"]
    assert (photo["n"], photo["recall"], photo["recall_any_score"]) == (4, 1.0, 1.0)
    assert (procedural["n"], procedural["recall"], procedural["recall_any_score"]) == (2, 0.0, 0.5)
    assert (photo["n_malignant_matched"], photo["n_benign_matched"]) == (2, 2)
    # malignant 0.7, 0.5 against benign 0.2, 0.6: 3 of 4 pairs ranked right
    assert photo["auc_malignant"] == pytest.approx(0.75)
    low, high = photo["auc_malignant_ci95"]
    assert 0.0 <= low <= high <= 1.0
    # a malignant lesion alone: no AUC
    assert math.isnan(procedural["auc_malignant"])
    assert all(math.isnan(v) for v in procedural["auc_malignant_ci95"])
    assert LesionDetectionMetric().by_origin(0.5) == {}
    # pooled origins, and a group with none of the lesions left out
    pooled = metric.by_origin(0.5, {"both": ("photo", "procedural"), "moles": ("body_mole",)})
    assert list(pooled) == ["both"]
    assert (pooled["both"]["n"], pooled["both"]["recall"]) == (6, pytest.approx(4 / 6))
    # malignant 0.7, 0.5, 0.9 against benign 0.2, 0.6: 5 of 6 pairs ranked right
    assert pooled["both"]["auc_malignant"] == pytest.approx(5 / 6)
    assert photo["n_clusters"] == 2  # no clusters given: each image is one
    labels, scores = metric.malignant_scores(("procedural",))  # for a ROC curve of one origin
    assert labels.tolist() == [1] and scores.tolist() == [0.9]
    assert metric.malignant_scores(("photo", "procedural"))[0].size == 5
    assert metric.malignant_scores()[0].size == 6  # the third photo's lesion too


def test_auc_intervals_by_origin_resample_the_clusters() -> None:
    inst, cls = _scene()
    classes = instance_classes(inst, cls)
    rng = np.random.default_rng(5)
    benign_means, malignant_means = (0.1, 0.35, 0.55), (0.25, 0.45, 0.65)
    shared, own = LesionDetectionMetric(), LesionDetectionMetric()
    for image in range(60):
        # six lesion photos, each blended into every third image with its own look, which
        # the detector reads about the same each time
        photo = image % 3
        found = [
            _box_lesion(1, 10, 10, 20, 20, 0.9, benign_means[photo] + 0.3 * rng.random()),
            _box_lesion(2, 50, 30, 54, 34, 0.8, malignant_means[photo] + 0.3 * rng.random()),
        ]
        origins = {1: "photo", 2: "photo", 3: "photo"}
        clusters = {1: f"benign {photo}", 2: f"malignant {photo}"}
        shared.update(found, inst, classes, origins=origins, clusters=clusters)
        own.update(found, inst, classes, origins=origins)
    by_photo, by_image = shared.by_origin(0.5)["photo"], own.by_origin(0.5)["photo"]
    assert (by_photo["n_clusters"], by_image["n_clusters"]) == (6, 60)
    assert by_photo["auc_malignant"] == by_image["auc_malignant"]
    # six lesion photos say much less than sixty independent images would
    low, high = by_photo["auc_malignant_ci95"]
    image_low, image_high = by_image["auc_malignant_ci95"]
    assert low <= by_photo["auc_malignant"] <= high
    assert image_low < by_image["auc_malignant"] < image_high
    assert high - low > 3 * (image_high - image_low)
    # and so does the interval of the AUC over every lesion
    all_low, all_high = shared.confidence_intervals(n_resamples=400)["auc_malignant"]
    own_low, own_high = own.confidence_intervals(n_resamples=400)["auc_malignant"]
    assert all_high - all_low > 3 * (own_high - own_low)


def test_bootstrap_interval_where_bca_is_undefined() -> None:
    # the share of each of three kinds among the groups, summed in squares: the full sample
    # (a third each) gives the least value any resample can, so BCa's bias correction is
    # infinite and its interval would collapse to that point; the percentile interval is used
    def evenness(groups: np.ndarray) -> float:
        return float((np.bincount(groups % 3, minlength=3) ** 2).sum() / groups.size**2)

    low, high = bootstrap_interval(evenness, 60, n_resamples=500)
    assert 1 / 3 <= low < 0.34 and high > low + 0.005
    # a figure every resample gives alike: that value; an ordinary one keeps its BCa interval
    assert bootstrap_interval(lambda g: 1.0, 60, n_resamples=200) == (1.0, 1.0)
    low, high = bootstrap_interval(lambda g: float(np.mean(g)), 60, n_resamples=500)
    assert low < 29.5 < high and high - low < 15
