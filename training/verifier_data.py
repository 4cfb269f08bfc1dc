"""Training data of the candidate verifier: a detector's candidates on synthetic photos.

For each photo the detector runs as the app runs it (multi-scale, tiled: the Analyzer),
:func:`core.postprocess.find_lesions` takes its regions at the verifier's low candidate
thresholds, and each candidate is labelled by the same greedy matching as the evaluation
(:func:`training.metrics.match_lesions_to_instances`): 1 when it found a true lesion, 0 for
a false positive (and for a second region on an already found lesion). The inputs are made
by :func:`core.verification.candidate_inputs`, the very function the Analyzer uses.

Photos of the detector's own training pool would teach the verifier the detector's
over-confidence on what it has memorised: mine a pool the detector never saw.

Each photo's candidates are cached in one ``.npz`` file (crops, scalars, labels, the
regions and the photo's label maps), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.postprocess import PostprocessConfig, find_lesions
from core.types import Lesion
from core.verification import candidate_inputs
from training.metrics import instance_classes, match_lesions_to_instances


@dataclass(frozen=True)
class PhotoCandidates:
    """One photo's candidates. crops uint8 (N, 7, S, S), scalars float32 (N, 4), label int8
    (N,) 1 = true lesion, lesions the N regions (detector scores), instance_map / class_map
    the photo's truth (for the evaluation metric)."""

    crops: np.ndarray
    scalars: np.ndarray
    label: np.ndarray
    lesions: tuple[Lesion, ...]
    instance_map: np.ndarray
    class_map: np.ndarray
    mm_per_px: float


def photo_candidates(
    probabilities: Callable[[np.ndarray], object],
    image: np.ndarray,
    instance_map: np.ndarray,
    class_map: np.ndarray,
    config: PostprocessConfig,
    mm_per_px: float = 0.0,
) -> PhotoCandidates:
    """Candidates of one photo. ``probabilities(image)`` is the detector's map (a
    :class:`core.tiling.CoarseProbabilities` or a full heatmap)."""
    heatmap = probabilities(image)
    lesions = find_lesions(heatmap, config)
    crops, scalars = candidate_inputs(image, heatmap, lesions)
    label = np.zeros(len(lesions), np.int8)
    for index, _ in match_lesions_to_instances(lesions, instance_map).pairs:
        label[index] = 1
    return PhotoCandidates(
        crops, scalars, label, lesions, instance_map.astype(np.int32), class_map, mm_per_px
    )


def save_candidates(path: Path, item: PhotoCandidates) -> None:
    """Write one photo's candidates (atomically: a half-written file is never read)."""
    lesions = item.lesions
    contours = [np.asarray(lesion.contour, np.int32).reshape(-1, 2) for lesion in lesions]
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        crops=item.crops,
        scalars=item.scalars,
        label=item.label,
        centroid=np.array([lesion.centroid for lesion in lesions], np.float64).reshape(-1, 2),
        bbox=np.array([lesion.bbox for lesion in lesions], np.int64).reshape(-1, 4),
        area=np.array([lesion.area_px for lesion in lesions], np.float64),
        score=np.array([lesion.score for lesion in lesions], np.float64),
        p_malignant=np.array([lesion.p_malignant for lesion in lesions], np.float64),
        contour_points=np.concatenate(contours) if contours else np.zeros((0, 2), np.int32),
        contour_lengths=np.array([len(c) for c in contours], np.int64),
        instance_map=item.instance_map,
        class_map=item.class_map,
        mm_per_px=np.float64(item.mm_per_px),
    )
    tmp.replace(path)


def load_candidates(path: Path) -> PhotoCandidates:
    with np.load(path) as data:
        ends = np.cumsum(data["contour_lengths"])
        contours = np.split(data["contour_points"], ends[:-1]) if len(ends) else []
        lesions = tuple(
            Lesion(
                id=index + 1,
                centroid=(float(c[0]), float(c[1])),
                bbox=tuple(int(v) for v in b),
                contour=contour,
                area_px=float(a),
                score=float(s),
                p_malignant=float(p),
            )
            for index, (c, b, a, s, p, contour) in enumerate(
                zip(
                    data["centroid"],
                    data["bbox"],
                    data["area"],
                    data["score"],
                    data["p_malignant"],
                    contours,
                    strict=True,
                )
            )
        )
        return PhotoCandidates(
            data["crops"],
            data["scalars"],
            data["label"],
            lesions,
            data["instance_map"],
            data["class_map"],
            float(data["mm_per_px"]),
        )


def mine(
    photos: Iterable[tuple[int, Callable[[], dict]]],
    probabilities: Callable[[np.ndarray], object],
    config: PostprocessConfig,
    cache: Path,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> list[PhotoCandidates]:
    """Candidates of every photo, from ``cache`` (one ``{index:05d}.npz`` per photo) or mined
    and cached. ``photos``: (index, load) with ``load()`` giving a dataset item ("image"
    float (3, H, W) or uint8, "instance_map", "class_map", optional "mm_per_px")."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for index, load in progress(list(photos)):
        path = cache / f"{index:05d}.npz"
        if not path.is_file():
            item = load()
            image = np.ascontiguousarray(np.asarray(item["image"].permute(1, 2, 0)), np.uint8)
            save_candidates(
                path,
                photo_candidates(
                    probabilities,
                    image,
                    np.asarray(item["instance_map"], np.int32),
                    np.asarray(item["class_map"], np.uint8),
                    config,
                    float(item.get("mm_per_px", 0.0)),
                ),
            )
        out.append(load_candidates(path))
    return out


def photo_truth_classes(item: PhotoCandidates) -> dict[int, int]:
    """{instance id: class} of a photo's true lesions."""
    return instance_classes(item.instance_map, item.class_map)
