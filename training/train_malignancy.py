"""`lesion-train malignancy`: train a detector's third stage, the malignancy classifier.

The recipe is a config (``training/configs/malignancy.json``)::

    lesion-train malignancy --config training/configs/malignancy.json \\
        --detector resources/models/detector --out runs/detector-malignancy \\
        --work-dir runs/verifier

``--detector`` is a folder with a verifier (:mod:`core.verification`): the classifier reads
the verifier's crops.

1. the detector's candidates on synthetic pools it was not trained on and on validation
   photos of other seeds, exactly as ``lesion-train verifier`` mines them (same thresholds,
   same cache: :mod:`training.verifier_data`; pass the verifier's ``--work-dir`` to reuse it);
2. the true candidates only (those the evaluation's matching pairs with a true lesion),
   labelled malignant or benign by that lesion, their region-sized photo crops (planes 0-2,
   :data:`core.malignancy.MALIGNANCY_PLANES`);
3. a :class:`core.models.malignancy.MalignancyClassifier` trained on them: binary
   cross-entropy with the malignant class weighted up to the benign one's total, the 8 flips
   and rotations and a small brightness and colour jitter of the crops, AdamW with a
   one-cycle schedule, seeded; after each epoch the lesion-level malignant AUC of the
   validation photos (their candidates scored and kept by the detector's verifier, as the
   Analyzer reports them) is logged for the classifier alone and for the mix;
4. the mixing weight w of :func:`core.malignancy.mixed_p_malignant`: of ``weights``, the
   one with the highest validation AUC (the lowest on ties);
5. a new detector model folder: the detector's networks and weights unchanged, the
   classifier's tensors added (``arch_kwargs.malignancy``), model.json's ``"malignancy"``
   section with w, the training command, seed, data and validation figures. The old
   folder's held-out ``metrics`` are dropped (``evaluate-detector`` makes new ones).

Training takes minutes on 2 CPU cores; mining, when the cache is cold, is the long part.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import DataError
from core.malignancy import MALIGNANCY_PLANES, mixed_p_malignant
from core.models.malignancy import MalignancyClassifier
from core.postprocess import PostprocessConfig
from training.detector_stages import fit, folder_with_stage, mine_recipe, training_record
from training.metrics import LesionDetectionMetric, match_lesions_to_instances
from training.train_verifier import (
    _dihedral,
    _pool_photos,
    _val_photos,
    check_pools,
    predict,
    read_recipe,
)
from training.verifier_data import PhotoCandidates, photo_truth_classes

#: the mixing weights tried on validation when the recipe names none
DEFAULT_WEIGHTS = tuple(round(0.05 * k, 2) for k in range(21))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="classifier recipe (JSON)")
    parser.add_argument(
        "--detector", type=Path, required=True, help="detector model folder with a verifier"
    )
    parser.add_argument("--out", type=Path, required=True, help="new detector model folder")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("runs/verifier"), help="candidate cache"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)


def read_config(path: Path) -> dict:
    """The recipe, with its required keys checked (DataError naming the file)."""
    cfg = read_recipe(
        path,
        {
            "": ("seed", "version", "model", "data", "train"),
            "data": ("pools", "val_seeds", "val_photos"),
            "train": ("epochs", "batch_size", "lr", "weight_decay"),
        },
    )
    check_pools(path, cfg["data"]["pools"])
    weights = cfg.get("weights", list(DEFAULT_WEIGHTS))
    if (
        not isinstance(weights, list)
        or not weights
        or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w <= 1 for w in weights
        )
    ):
        raise DataError(path, f"weights {weights!r}: give a list of numbers in [0, 1]")
    return cfg


# ------------------------------------------------------------------------------ data


def true_candidates(items: list[PhotoCandidates]) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops uint8 (N, 3, S, S), labels float32 (N,), 1 = malignant) of the candidates the
    evaluation's matching pairs with a true lesion, labelled by that lesion's class."""
    crops, labels = [], []
    for item in items:
        classes = photo_truth_classes(item)
        for index, instance in match_lesions_to_instances(item.lesions, item.instance_map).pairs:
            crops.append(item.crops[index, :MALIGNANCY_PLANES])
            labels.append(classes[int(instance)] == 2)
    if not crops:
        raise DataError(Path("."), "the candidates hold no true lesion")
    return torch.from_numpy(np.stack(crops)), torch.tensor(labels, dtype=torch.float32)


def jittered(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """float32 crops in 0-255: one of the 8 flips and rotations (the same for the batch),
    brightness x [0.88, 1.12] and each colour x [0.96, 1.04] per crop (photos differ in
    exposure and white balance; the classifier should not read malignancy from them)."""
    n = len(crops)
    gain = 1.0 + 0.12 * (2.0 * torch.rand(n, 1, 1, 1, generator=generator) - 1.0)
    colour = 1.0 + 0.04 * (2.0 * torch.rand(n, 3, 1, 1, generator=generator) - 1.0)
    return (_dihedral(crops, generator).float() * gain * colour).clamp(0.0, 255.0)


# ------------------------------------------------------------------------ validation


@torch.no_grad()
def classifier_p(net: MalignancyClassifier, items: list[PhotoCandidates]) -> np.ndarray:
    """P(malignant | lesion) (N,) of every candidate of ``items``, in order, eval mode."""
    net.eval()
    crops = torch.from_numpy(np.concatenate([item.crops[:, :MALIGNANCY_PLANES] for item in items]))
    out = [net(crops[i : i + 1024]) for i in range(0, len(crops), 1024)]
    return torch.sigmoid(torch.cat(out)).numpy() if out else np.zeros(0, np.float32)


def listed_auc(
    items: list[PhotoCandidates],
    p_true: np.ndarray,
    min_score: float,
    p_classifier: np.ndarray,
    weight: float,
) -> float:
    """Malignant AUC of the validation photos as the Analyzer reports them: candidates
    scored ``p_true`` (the verifier's), those under ``min_score`` dropped, p_malignant
    mixed with ``p_classifier`` at ``weight``."""
    metric = LesionDetectionMetric()
    start = 0
    for item in items:
        end = start + len(item.lesions)
        mixed = mixed_p_malignant(
            [lesion.p_malignant for lesion in item.lesions], p_classifier[start:end], weight
        )
        kept = [
            replace(lesion, score=float(s), p_malignant=float(p))
            for lesion, s, p in zip(item.lesions, p_true[start:end], mixed, strict=True)
            if s >= min_score
        ]
        metric.update(kept, item.instance_map, photo_truth_classes(item))
        start = end
    return float(metric.aggregate()["auc_malignant"])


# -------------------------------------------------------------------------- training


def train(
    cfg: dict,
    crops: torch.Tensor,
    label: torch.Tensor,
    validate: Callable[[MalignancyClassifier], dict],
) -> tuple[MalignancyClassifier, list[dict]]:
    """The classifier trained on ``crops`` (uint8 (N, 3, S, S)) and ``label`` (float32 (N,),
    1 = malignant); one line of figures per epoch (``validate(net)`` adds the validation
    figures)."""
    torch.manual_seed(int(cfg["seed"]))
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    net = MalignancyClassifier(**cfg["model"])
    share = float(label.mean())
    if not 0.0 < share < 1.0:
        raise DataError(Path("."), "the true candidates are all of one class")
    # malignant lesions are a few in ten: weigh them up to the benign ones' total
    pos_weight = torch.tensor((1.0 - share) / share)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        logits = net(jittered(crops[index], generator))
        return F.binary_cross_entropy_with_logits(logits, label[index], pos_weight=pos_weight)

    history = fit(net, len(label), cfg["train"], generator, batch_loss, lambda: validate(net))
    return net.eval(), history


# ---------------------------------------------------------------------------- output


def run(args: argparse.Namespace) -> int:
    from core.analyzer import Analyzer

    torch.set_num_threads(max(1, int(args.threads)))
    cfg = read_config(args.config)
    # training data in float32, whatever LESIONVIEWER_PRECISION says
    analyzer = Analyzer.load(args.device, detector=args.detector, precision="float32")
    if analyzer.verification is None:
        raise DataError(args.detector, "this detector has no verifier (train one first)")
    if analyzer.malignancy is not None:
        raise DataError(args.detector, "this detector already has a malignancy classifier")
    # the verifier's own candidates: its thresholds, its cache
    candidates: PostprocessConfig = analyzer.verification.candidates
    min_score = analyzer.verification.min_score
    verifier = analyzer._detector.verifier  # noqa: SLF001 (the folder's own second stage)
    data = cfg["data"]
    tic = time.time()
    pool, val = mine_recipe(
        data, analyzer.probabilities, candidates, args.work_dir, _pool_photos, _val_photos
    )
    if not val:
        raise DataError(args.config, "choosing the mixing weight needs validation photos")
    mined = time.time() - tic
    val_crops = torch.from_numpy(np.concatenate([item.crops for item in val]))
    val_scalars = torch.from_numpy(np.concatenate([item.scalars for item in val]))
    p_true = predict(verifier.float().cpu(), val_crops, val_scalars)
    detector_alone = round(listed_auc(val, p_true, min_score, np.full(len(p_true), 0.5), 0.0), 4)

    def validate(net: MalignancyClassifier) -> dict:
        p = classifier_p(net, val)
        return {
            "auc_classifier": round(listed_auc(val, p_true, min_score, p, 1.0), 4),
            "auc_mixed_half": round(listed_auc(val, p_true, min_score, p, 0.5), 4),
        }

    crops, label = true_candidates(pool)
    net, history = train(cfg, crops, label, validate)
    p_val = classifier_p(net, val)
    by_weight = {
        float(w): round(listed_auc(val, p_true, min_score, p_val, float(w)), 4)
        for w in cfg.get("weights", DEFAULT_WEIGHTS)
    }
    weight = max(sorted(by_weight), key=lambda w: by_weight[w])  # lowest weight on ties
    record = {
        "weight": weight,
        "training": training_record(
            cfg,
            {
                "pools": data["pools"],
                "true_candidates": len(label),
                "malignant": int(label.sum()),
                "candidate_cache": str(args.work_dir),
                "val_seeds": list(data["val_seeds"]),
                "val_photos_per_seed": int(data["val_photos"]),
            },
            mined,
            time.time() - tic - mined,
            history,
        ),
        "metrics": {
            "validation": {
                "auc_malignant_detector_alone": detector_alone,
                "auc_malignant_by_weight": {f"{w:g}": auc for w, auc in by_weight.items()},
                "auc_malignant": by_weight[weight],
            }
        },
    }
    print(json.dumps(record["metrics"]), flush=True)
    digest = folder_with_stage(
        args.detector, args.out, "malignancy", net, cfg["model"], cfg["version"], record
    )
    print(
        f"{len(label)} true candidates ({int(label.sum())} malignant), weight {weight:g} -> "
        f"{args.out} (sha256 {digest[:12]})"
    )
    return 0
