"""`lesion-train evaluate-detector`: lesion-level figures of a detector and its baseline.

1. Held-out synthetic photos (``--n`` photos from ``--seed``, a seed the training never
   used; refused if it equals the model's training or validation seed): lesion recall,
   precision, false positives per photo, average precision, the recall at <= 0.5 false
   positives per photo, and the ROC/AUC of p_malignant over matched true lesions; once
   over every true lesion, once over the lesions of 2 mm and more
   (:data:`CLINICAL_MIN_DIAMETER_MM`) and once over the lesions visible in the photo
   (:data:`VISIBLE_MIN_CONTRAST`); recall by size and by contrast band; and by the body's
   skin type (:data:`SKIN_TYPE_GROUPS`), at the operating point of all photos. The sliding-window
   baseline (``--baseline``) is evaluated on the first ``--baseline-n`` of the same photos,
   the same way, and both are timed on those photos in this run.
2. Real close-ups: the PAD-UFES-20 patients held out of synthesis
   (``training.sources.splits``). Each close-up is resized so that its longer side is
   ``--closeup-side`` pixels (the photos frame one lesion filling ~20-60 % of the side).
   The default, ``auto``, picks per detector the side of ``CLOSEUP_SIDES`` with the best
   AUC on the *training* patients' close-ups, so that the held-out AUC is not tuned on
   the held-out patients (synthetic lesions are mostly 4-60 px wide, far smaller than a
   close-up's lesion at full size); the lesion is the
   detected region that contains the photo centre (the largest if several), else the
   region nearest the centre; with no region at all, p_malignant is read from the heatmap
   in the central third (counted as ``n_fallback``). Reported: malignant AUC with n.
3. Total-body-photography tiles (``itobos-tbp-dev``): detections counted and overlays
   written (look at them: hair, clothing and background detections are failures).

The held-out photos are the training recipe's size (1024 x 768) unless ``--width`` and
``--height`` say otherwise: a phone's 12 MP photo (4000 x 3000) shows the same body region
with lesions four times as wide, and the Analyzer treats it differently (no enlargements,
a quarter-size pass: see core.multiscale). Such a run evaluates the synthetic photos only
(1), since the real photos of 2 and 3 do not depend on that size.

Writes ``metrics.json``, ``roc.png`` and overlays into ``--out``; ``--update-model-json``
stores the figures in the model folder's model.json, under "metrics" "evaluation" (the
recipe's size) or "evaluation_<W>x<H>" (another size), keeping the other figures of the
same weights, and re-checks that the weights still match their SHA-256.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from core.closeup import assess, resize_longer_side
from core.errors import DataError
from core.types import Detection
from training.detector_data import SHARED_DATA, synth_config
from training.metrics import LesionDetectionMetric, instance_classes, lesion_contrasts
from training.sources.bank import PAD_UFES_DEV, real_lesions_present
from training.statistics import auc_interval, roc_auc, roc_curve

DetectFn = Callable[[np.ndarray], Detection]

#: Naevus counts in dermatology count lesions from 2 mm across; synthetic bodies carry
#: pre-existing moles down to 1 mm (a pixel or two at total-body scale). The held-out
#: figures are reported twice: over every true lesion, and ("lesions_from_2mm") with the
#: smaller ones as "don't care" (neither missed nor false positives when found).
CLINICAL_MIN_DIAMETER_MM = 2.0
#: ... and a third time ("visible_lesions") with the lesions the synthesis left next to
#: invisible as "don't care": contrast with the skin around them (ΔE*ab, see
#: training.metrics.lesion_contrasts) under 5, about twice what tells two large flat
#: patches apart. Set on the validation photos (seeds 3003 and 3005), never on held-out ones.
VISIBLE_MIN_CONTRAST = 5.0


def _side(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from exc


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("resources/models/detector"))
    parser.add_argument("--baseline", type=Path, default=None, help="sliding-window model")
    parser.add_argument(
        "--n",
        type=int,
        default=300,
        help="held-out synthetic photos (300: the AUC's 95 %% interval about +-0.01)",
    )
    parser.add_argument("--seed", type=int, default=9999, help="seed of the held-out photos")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="width of the held-out photos (default: the training recipe's; another size "
        "evaluates the synthetic photos only)",
    )
    parser.add_argument(
        "--height", type=int, default=None, help="height of the held-out photos (as --width)"
    )
    parser.add_argument(
        "--unseen-lesions",
        type=int,
        default=100,
        help="more held-out photos (same seed) whose real lesions are the held-out patients' "
        "(lesions no training photo blended; 0: none)",
    )
    parser.add_argument(
        "--baseline-n", type=int, default=20, help="photos the (slow) baseline runs on"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate-detector"))
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="real photos folder")
    parser.add_argument(
        "--closeup-side",
        type=_side,
        default="auto",
        help="longer side (px) the close-ups are resized to, or 'auto': per detector, the "
        "side with the best AUC on the training patients' close-ups",
    )
    parser.add_argument("--update-model-json", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),
        default="float32",
        help="the detector network's number format on a CPU (model.json's figures: float32)",
    )
    parser.add_argument("--threads", type=int, default=2)


# ----------------------------------------------------------------------- synthetic


def summary(metric: LesionDetectionMetric, figures: dict | None = None) -> dict:
    """A metric's aggregate figures (rounded) and, under "ci95", 95 % confidence intervals
    of recall at the operating point, malignant AUC and AP from a bootstrap over photos (300
    held-out photos, about 470 malignant lesions among the found ones: the AUC is uncertain
    by about +-0.01; with 100 photos it was +-0.017)."""
    figures = metric.aggregate() if figures is None else figures
    out = {k: _round(v) for k, v in figures.items()}
    intervals = metric.confidence_intervals()
    out["ci95"] = {k: [_round(v) for v in bounds] for k, bounds in intervals.items()}
    return out


#: the held-out figures by where the lesions came from (``LesionRecord.origin``): each
#: origin alone, and the lesions blended onto the body (a lesion photo or a procedural
#: lesion, malignant or benign) without the bodies' own moles (benign, many of 1-2 mm)
ORIGIN_GROUPS = {
    "photo": ("photo",),
    "procedural": ("procedural",),
    "body_mole": ("body_mole",),
    "blended": ("photo", "procedural"),
}


#: Fitzpatrick types pooled for the figures by skin type (a few dozen photos each in a
#: 300-photo run: single types would be too few to say anything)
SKIN_TYPE_GROUPS = {"I-II": (1, 2), "III-IV": (3, 4), "V-VI": (5, 6)}


def skin_type_group(skin_type: int) -> str | None:
    """The group of :data:`SKIN_TYPE_GROUPS` of a Fitzpatrick type, None when unknown (0)."""
    for group, types in SKIN_TYPE_GROUPS.items():
        if skin_type in types:
            return group
    return None


def subgroup_summary(
    metric: LesionDetectionMetric, visible: LesionDetectionMetric, threshold: float
) -> dict:
    """Figures of a subgroup of the photos at the operating point chosen on all of them
    (``threshold``): a clinic runs one threshold for every patient. ``metric`` counts every
    lesion, ``visible`` those of :data:`VISIBLE_MIN_CONTRAST` and more. Recall and false
    positives per photo there, the share of visible lesions and their recall, and the
    malignant AUC with its 95 % interval."""
    figures = metric.aggregate()
    auc_bounds = metric.confidence_intervals()["auc_malignant"]
    n_true = int(figures["n_true"])
    return {
        "n_images": metric.n_images,
        "n_true": n_true,
        "recall_at_operating_point": _round(metric.recall_at(threshold)),
        "fp_per_image_at_operating_point": _round(metric.fp_per_image_at(threshold)),
        "share_visible": _round(visible.aggregate()["n_true"] / n_true if n_true else 0.0),
        "recall_visible_at_operating_point": _round(visible.recall_at(threshold)),
        "auc_malignant": _round(figures["auc_malignant"]),
        "auc_malignant_ci95": [_round(v) for v in auc_bounds],
        "n_malignant_matched": figures["n_malignant_matched"],
        "n_benign_matched": figures["n_benign_matched"],
    }


def _origins_and_clusters(dataset, index: int) -> tuple[dict[int, str], dict[int, str]]:
    """Where each true lesion of photo ``index`` came from ({instance id: one of
    ``LESION_ORIGINS``}) and, for those made from a lesion photo, that photo ({instance id:
    its source}), when the dataset can say (a ``DetectionDataset``); else ({}, {}).

    Many synthetic photos blend the same few dozen lesion photos (PAD-UFES-20: one photo a
    patient), so the malignancy calls of their lesions are not independent across photos:
    the AUC intervals by origin resample the lesion photos, not the synthetic ones."""
    sample = getattr(dataset, "sample", None)
    if sample is None:
        return {}, {}
    records = sample(index).lesions
    origins = {record.id: record.origin for record in records}
    clusters = {r.id: f"lesion photo {r.source}" for r in records if r.origin == "photo"}
    return origins, clusters


def evaluate_synthetic(
    detectors: dict[str, DetectFn],
    dataset,
    n: int,
    limits: dict[str, int],
    progress: Callable[[str], None] = print,
) -> tuple[dict, dict[str, LesionDetectionMetric]]:
    """Run each detector on photos 0..n-1 of ``dataset`` (items with "image", "class_map",
    "instance_map"); detector ``name`` only on the first ``limits.get(name, n)`` photos.

    Returns ({name: aggregate figures + timing}, {name: metric}) and a shared-photo
    timing comparison under "timing" (median seconds per photo on the photos all ran on).
    """
    metrics = {name: LesionDetectionMetric() for name in detectors}
    # per skin-type group: every lesion, and the visible ones (is a lower recall the
    # detector's or the photos', whose lesions show less on that skin?)
    by_skin_type = {
        name: {
            group: (
                LesionDetectionMetric(),
                LesionDetectionMetric(min_contrast=VISIBLE_MIN_CONTRAST),
            )
            for group in SKIN_TYPE_GROUPS
        }
        for name in detectors
    }
    clinical = {name: LesionDetectionMetric() for name in detectors}
    visible = {name: LesionDetectionMetric(min_contrast=VISIBLE_MIN_CONTRAST) for name in detectors}
    seconds: dict[str, list[float]] = {name: [] for name in detectors}
    for i in range(n):
        item = dataset[i]
        image = np.ascontiguousarray(item["image"].permute(1, 2, 0).numpy())
        class_map = np.asarray(item["class_map"], np.uint8)
        instance_map = np.asarray(item["instance_map"], np.int32)
        classes = instance_classes(instance_map, class_map)
        contrasts = lesion_contrasts(image, instance_map)
        origins, clusters = _origins_and_clusters(dataset, i)
        for name, detect in detectors.items():
            if i >= limits.get(name, n):
                continue
            tic = time.perf_counter()
            detection = detect(image)
            seconds[name].append(time.perf_counter() - tic)
            found = (detection.lesions, instance_map, classes)
            metrics[name].update(*found, contrasts, origins, clusters)
            group = skin_type_group(int(item.get("skin_type", 0)))
            if group is not None:
                for group_metric in by_skin_type[name][group]:
                    group_metric.update(*found, contrasts, origins, clusters)
            visible[name].update(*found, contrasts, origins, clusters)
            if "mm_per_px" in item:
                mm_per_px = float(item["mm_per_px"])
                clinical[name].min_diameter_px = CLINICAL_MIN_DIAMETER_MM / mm_per_px
                clinical[name].update(*found, None, origins, clusters)
        if (i + 1) % 10 == 0 or i + 1 == n:
            progress(f"synthetic {i + 1}/{n}")
    out: dict = {}
    for name, metric in metrics.items():
        figures = metric.aggregate()
        out[name] = summary(metric, figures)
        # which lesions the operating point misses, by size (and which no score finds)
        out[name]["recall_by_diameter_px"] = [
            {k: _round(v) for k, v in band.items()}
            for band in metric.recall_by_diameter(float(figures["score_threshold_at"]))
        ]
        # and by how visible they are in the photo: a lesion the blending left next to
        # invisible (contrast under 5) is a miss no detector could avoid
        out[name]["recall_by_contrast"] = [
            {k: _round(v) for k, v in band.items()}
            for band in metric.recall_by_contrast(float(figures["score_threshold_at"]))
        ]
        out[name]["median_s_per_photo"] = _round(statistics.median(seconds[name]))
        # where the figures come from: is the malignant AUC one of the easy benign body moles,
        # or of telling blended lesions apart? are the misses the bodies' faint moles?
        by_origin = metric.by_origin(float(figures["score_threshold_at"]), ORIGIN_GROUPS)
        if by_origin:
            out[name]["by_lesion_origin"] = {
                origin: {
                    k: [_round(b) for b in v] if isinstance(v, list) else _round(v)
                    for k, v in group.items()
                }
                for origin, group in by_origin.items()
            }
        out[name]["visible_lesions"] = summary(visible[name])
        threshold = float(figures["score_threshold_at"])
        out[name]["by_skin_type"] = {
            group: subgroup_summary(every, visible_only, threshold)
            for group, (every, visible_only) in by_skin_type[name].items()
            if every.n_images
        }
        if clinical[name].n_images:
            out[name]["lesions_from_2mm"] = summary(clinical[name])
    shared = min(len(s) for s in seconds.values())
    timing = {name: _round(statistics.median(s[:shared])) for name, s in seconds.items() if shared}
    out["timing"] = {"photos": shared, "median_s_per_photo": timing}
    if "detector" in timing and "baseline" in timing and timing["detector"] > 0:
        out["timing"]["baseline_over_detector"] = _round(timing["baseline"] / timing["detector"])
    return out, metrics


# ---------------------------------------------------------------------------- real


def closeup_p_malignant(detect: DetectFn, image: np.ndarray) -> tuple[float, bool]:
    """(p_malignant of the close-up's lesion, whether a region was found): read as
    ``Analyzer.detect(closeup=True)`` reads it (:func:`core.closeup.assess`), on ``image``
    already reduced."""
    verdict = assess(detect(image))
    return float(verdict.p_malignant), verdict.lesion_id is not None


def pad_ufes_rows(root: Path, part: str) -> list[dict[str, str]]:
    """Rows of ``root/labels.csv`` of the patients held out of synthesis (``"holdout"``) or
    of the training patients whose lesions synthesis may use (``"train"``)."""
    from training.sources.splits import pad_ufes_holdout

    labels = root / "labels.csv"
    train, holdout = pad_ufes_holdout(labels)
    patients = holdout if part == "holdout" else train
    with open(labels, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if (r.get("patient_id") or "").strip() in patients]


#: Longer sides tried by ``--closeup-side auto``: a close-up's lesion fills much of the frame,
#: so the side sets the lesion's size in pixels, which a detector trained on body photos
#: reads best near the lesion sizes it was trained on.
CLOSEUP_SIDES = (96, 128, 160, 224, 320)


def closeup_scores(detect: DetectFn, root: Path, rows: list[dict[str, str]], side: int):
    """(labels int64 (n,), p_malignant float64 (n,), regions found) of close-ups at ``side``."""
    from core.io import load_photo

    labels, scores, found = [], [], 0
    for row in rows:
        image = resize_longer_side(load_photo(root / row["file"]), side)
        p, hit = closeup_p_malignant(detect, image)
        labels.append(int(row["malignant"]))
        scores.append(p)
        found += int(hit)
    return np.asarray(labels, np.int64), np.asarray(scores, np.float64), found


def choose_closeup_side(detect: DetectFn, root: Path, sides=CLOSEUP_SIDES) -> tuple[int, dict]:
    """The side with the best malignant AUC on the *training* patients' close-ups (never on
    the held-out ones, whose AUC is then reported): (side, {side: AUC})."""
    rows = pad_ufes_rows(root, "train")
    aucs = {}
    for side in sides:
        labels, scores, _ = closeup_scores(detect, root, rows, side)
        aucs[side] = roc_auc(labels, scores)
    best = max(sides, key=lambda side: (np.nan_to_num(aucs[side], nan=-1.0), -side))
    return best, {str(k): _round(v) for k, v in aucs.items()}


def evaluate_closeups(
    detectors: dict[str, DetectFn], root: Path, side: int | str
) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Malignant AUC of each detector on the held-out PAD-UFES-20 close-ups, resized to a
    longer side of ``side`` pixels, or (``"auto"``) of the side each detector reads best on
    the training patients' close-ups (:func:`choose_closeup_side`)."""
    rows = pad_ufes_rows(root, "holdout")
    out: dict = {
        "source": "pad-ufes20-dev, patients held out of synthesis",
        "n": len(rows),
        "n_malignant": sum(int(r["malignant"]) for r in rows),
        "closeup_side_px": side,
    }
    curves = {}
    for name, detect in detectors.items():
        entry: dict = {}
        chosen = side
        if side == "auto":
            chosen, entry["train_patients_auc_by_side"] = choose_closeup_side(detect, root)
            entry["closeup_side_px"] = chosen
        labels, scores, found = closeup_scores(detect, root, rows, int(chosen))
        interval = auc_interval(labels, scores, groups=[r["patient_id"] for r in rows])
        entry.update(
            auc_malignant=_round(roc_auc(labels, scores)),
            auc_malignant_ci95=[_round(v) for v in interval],
            n_fallback=len(rows) - found,
        )
        out[name] = entry
        curves[name] = (labels, scores)
    return out, curves


def evaluate_tiles(detect: DetectFn, root: Path, out_dir: Path) -> dict:
    """Detections on the total-body-photography tiles; overlays written to ``out_dir``."""
    from core.io import load_photo
    from core.overlay import detection_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"source": "itobos-tbp-dev", "photos": {}}
    for path in sorted((root / "images").glob("*.png")):
        image = load_photo(path)
        detection = detect(image)
        overlay = detection_overlay(image, detection)
        cv2.imwrite(str(out_dir / f"overlay_{path.stem}.png"), overlay[:, :, ::-1])
        result["photos"][path.name] = {
            "detections": len(detection.lesions),
            "malignant_over_0.5": sum(le.p_malignant > 0.5 for le in detection.lesions),
        }
    return result


# --------------------------------------------------------------------------- output


def roc_plot(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path) -> None:
    """ROC curves, one panel per data set, detector and baseline on the same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 5), squeeze=False)
    for ax, (title, by_model) in zip(axes[0], curves.items(), strict=True):
        for name, (labels, scores) in by_model.items():
            if labels.size == 0 or labels.min() == labels.max():
                continue
            fpr, tpr, _ = roc_curve(labels, scores)
            ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, scores):.3f}, n={labels.size})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="false positive rate (benign called malignant)", ylabel="true positive rate")
        ax.set_title(title)
        ax.set_aspect("equal")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_model_json(folder: Path, metrics: dict, closeup_side_px: int | None = None) -> str:
    """Store ``metrics`` under model.json "metrics" and, when given, the close-up side
    chosen on the training patients as ``inference.closeup_side_px`` (what
    ``Analyzer.detect(closeup=True)`` uses); then re-check that the weights still match the
    SHA-256 (raises ModelError otherwise).

    Kept beside them: "validation" and every other evaluation of the same weights (its
    "model" "sha256" that of the folder); an evaluation of other weights is dropped.
    """
    from core.model_folder import META_FILE, load_model_folder, read_model_meta

    meta = read_model_meta(folder)
    if closeup_side_px is not None:
        meta["inference"] = {**(meta.get("inference") or {}), "closeup_side_px": closeup_side_px}
    kept = meta.get("metrics", {}) if isinstance(meta.get("metrics"), dict) else {}

    def same_weights(figures: object) -> bool:
        model = figures.get("model") if isinstance(figures, dict) else None
        return isinstance(model, dict) and model.get("sha256") == meta.get("sha256")

    meta["metrics"] = {
        key: figures
        for key, figures in kept.items()
        if key == "validation" or (key not in metrics and same_weights(figures))
    }
    meta["metrics"].update(metrics)
    text = json.dumps(meta, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.json.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, folder / META_FILE)
    _, checked = load_model_folder(folder, "cpu")
    return str(checked["sha256"])


def _round(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4) if np.isfinite(value) else None
    return value


def run(args: argparse.Namespace) -> int:
    import torch

    from core.analyzer import Analyzer
    from training.baselines.sliding_window import SlidingWindowDetector
    from training.synthesis.datasets import DetectionDataset

    torch.set_num_threads(max(1, int(args.threads)))
    if args.update_model_json and args.precision != "float32":
        raise ValueError("--update-model-json records float32's figures: drop --precision")
    analyzer = Analyzer.load(args.device, detector=args.model, precision=args.precision)
    meta = analyzer.detector_meta
    train_cfg = meta.get("training", {}).get("config", {})
    data_cfg = train_cfg.get("data", {})
    used = {data_cfg.get("train_seed"), data_cfg.get("val_seed")}
    if args.seed in used:
        raise DataError(args.model / "model.json", f"seed {args.seed} was used in training")
    detectors: dict[str, DetectFn] = {"detector": analyzer.detect}
    if args.baseline is not None:
        baseline = SlidingWindowDetector.load(args.baseline, analyzer.device)
        detectors["baseline"] = baseline.detect
    args.out.mkdir(parents=True, exist_ok=True)
    # the held-out photos blend real lesions from ../shared/data; without it the same seed
    # makes other, procedural-only photos, whose figures must not pass for the model card's
    real_lesions = real_lesions_present()
    if not real_lesions:
        if args.update_model_json:
            raise DataError(PAD_UFES_DEV, "absent: model.json's figures need the real lesions")
        print(
            f"lesion-train: {PAD_UFES_DEV} is absent: the synthetic photos carry procedural "
            "lesions only (not comparable with the model card)",
            file=sys.stderr,
        )
    started = time.time()
    config = synth_config(data_cfg)
    recipe_size = (config.width, config.height)
    config = dataclasses.replace(
        config, width=args.width or config.width, height=args.height or config.height
    )
    at_recipe_size = (config.width, config.height) == recipe_size
    dataset = DetectionDataset(args.n, args.seed, config)
    synthetic, synth_metrics = evaluate_synthetic(
        detectors, dataset, args.n, {"baseline": min(args.baseline_n, args.n)}
    )
    synthetic.update({"seed": args.seed, "photos": args.n, "size": [config.width, config.height]})
    synthetic["lesion_sources"] = (
        "PAD-UFES-20 training patients and procedural" if real_lesions else "procedural only"
    )
    curves = {"synthetic held-out": {k: m.malignant_scores() for k, m in synth_metrics.items()}}
    blended = ORIGIN_GROUPS["blended"]
    blended_curves = {k: m.malignant_scores(blended) for k, m in synth_metrics.items()}
    if args.unseen_lesions > 0 and real_lesions:
        # the held-out photos above blend the training patients' lesion photos (augmented):
        # a network may score them by recognising those lesions. These blend lesions no
        # training photo used, so their malignant AUC is one of malignancy alone
        unseen_set = DetectionDataset(
            args.unseen_lesions,
            args.seed,
            dataclasses.replace(config, lesion_source="holdout"),
        )
        unseen, unseen_metrics = evaluate_synthetic(
            {"detector": analyzer.detect}, unseen_set, args.unseen_lesions, {}
        )
        synthetic["unseen_lesions"] = {
            **unseen["detector"],
            "photos": args.unseen_lesions,
            "lesion_sources": "PAD-UFES-20 held-out patients and procedural",
        }
        curves["synthetic, unseen lesions"] = {
            "detector": unseen_metrics["detector"].malignant_scores()
        }
        blended_curves["detector, unseen lesions"] = unseen_metrics["detector"].malignant_scores(
            blended
        )
    if any(labels.size for labels, _ in blended_curves.values()):
        # without the bodies' own moles (benign, easy): the lesions that can look alike
        curves["synthetic, blended lesions only"] = blended_curves
    result: dict = {
        "schema": 1,
        "model": analyzer.detector_info.to_json(),
        "device": str(analyzer.device),
        "threads": torch.get_num_threads(),
        "precision": analyzer.precision,
        "synthetic": synthetic,
    }
    pad = Path(args.data) / "pad-ufes20-dev"
    if at_recipe_size and (pad / "labels.csv").is_file():
        result["real_closeups"], real_curves = evaluate_closeups(detectors, pad, args.closeup_side)
        curves["PAD-UFES-20 held-out patients"] = real_curves
    tiles = Path(args.data) / "itobos-tbp-dev"
    if at_recipe_size and tiles.is_dir():
        result["tbp_tiles"] = evaluate_tiles(analyzer.detect, tiles, args.out / "overlays")
    result["duration_s"] = round(time.time() - started, 1)
    roc_plot(curves, args.out / "roc.png")
    (args.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.update_model_json:
        closeups = result.get("real_closeups", {})
        chosen = closeups.get("detector", {}).get(
            "closeup_side_px", closeups.get("closeup_side_px")
        )
        side = chosen if isinstance(chosen, int) else None
        key = "evaluation" if at_recipe_size else f"evaluation_{config.width}x{config.height}"
        sha = update_model_json(args.model, {key: result}, closeup_side_px=side)
        print(f"model.json updated; weights still match sha256 {sha[:12]}...")
    return 0
