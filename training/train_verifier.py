"""`lesion-train verifier`: train a detector's second stage, the candidate verifier.

The recipe is a config (``training/configs/verifier.json``)::

    lesion-train verifier --config training/configs/verifier.json \\
        --detector resources/models/detector --out runs/detector-verified

1. mine the detector's candidates (``candidates`` thresholds) on a synthetic pool it was
   not trained on and on validation photos of other seeds (see
   :mod:`training.verifier_data`; cached under ``--work-dir``, so a rerun skips them);
2. train a :class:`core.models.verifier.CandidateVerifier` on them: binary cross-entropy
   (true lesion or not), the 8 flips and rotations of the crops, AdamW with a one-cycle
   schedule, seeded; after each epoch the validation photos are scored as the Analyzer
   scores them, and recall at <= 0.5 false positives per photo and AP are logged;
3. write a new detector model folder: the detector's network and weights unchanged, the
   verifier's tensors added (``arch_kwargs.verifier``), model.json's ``"verifier"`` section
   with the thresholds, the training command, seed, data and validation figures.

An optional ``"tile"`` entry of the recipe (``{"size": 1024}``) replaces the detector's
``tile`` settings of inference in the new folder.

With ``"calibration": "platt"`` in the recipe, the verifier's probabilities are
Platt-scaled on the validation candidates before ``min_score`` is chosen (see
:mod:`training.calibration`): the ranking, hence recall and AP, is unchanged, and a score of
0.3 then means a true lesion about 3 times in 10.

The verifier trains in minutes; mining the pool is the long part (the detector's full
analysis, about 2 s a 1024x768 photo on 2 CPU cores), hence the cache.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit
from tqdm import tqdm

from core.errors import DataError
from core.models.verifier import CandidateVerifier
from core.postprocess import PostprocessConfig
from core.verification import VerificationSettings
from training.calibration import fit_platt, fold_into_linear, log_loss
from training.detector_stages import fit, folder_with_stage, mine_recipe, training_record
from training.metrics import LesionDetectionMetric
from training.statistics import expected_calibration_error
from training.verifier_data import PhotoCandidates, photo_truth_classes


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="verifier recipe (JSON)")
    parser.add_argument("--detector", type=Path, required=True, help="detector model folder")
    parser.add_argument("--out", type=Path, required=True, help="new detector model folder")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("runs/verifier"), help="candidate cache"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)


def read_recipe(path: Path, required: dict[str, tuple[str, ...]]) -> dict:
    """A JSON recipe whose sections ("" for the top level) hold the ``required`` keys;
    DataError naming the file otherwise."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable JSON recipe ({exc})") from exc
    if not isinstance(cfg, dict):
        raise DataError(path, "the recipe must be an object")
    for section, keys in required.items():
        where = cfg.get(section) if section else cfg
        if not isinstance(where, dict):
            raise DataError(path, f"{section or 'the recipe'} must be an object")
        missing = [k for k in keys if k not in where]
        if missing:
            raise DataError(path, f"{section or 'recipe'} lacks {', '.join(missing)}")
    return cfg


def check_pools(path: Path, pools: object) -> None:
    """DataError naming the recipe unless ``pools`` is a non-empty list of {folder, photos}."""
    if not isinstance(pools, list) or not pools:
        raise DataError(path, "data.pools must be a list of {folder, photos} objects")
    for pool in pools:
        if not isinstance(pool, dict) or "folder" not in pool or "photos" not in pool:
            raise DataError(path, f"data.pools: {pool!r} lacks folder or photos")


def read_config(path: Path) -> dict:
    """The recipe, with its required keys checked (DataError naming the file)."""
    cfg = read_recipe(
        path,
        {
            "": ("seed", "version", "candidates", "min_score", "model", "data", "train"),
            "data": ("pools", "val_seeds", "val_photos"),
            "train": ("epochs", "batch_size", "lr", "weight_decay"),
        },
    )
    if cfg.get("calibration", "platt") != "platt":
        raise DataError(path, f"calibration {cfg['calibration']!r}: the one method is 'platt'")
    tile = cfg.get("tile", {})
    if not isinstance(tile, dict) or not all(
        key in ("size", "overlap") and isinstance(v, int) and not isinstance(v, bool) and v > 0
        for key, v in tile.items()
    ):
        raise DataError(path, f"tile {tile!r}: give whole numbers of pixels for size and overlap")
    check_pools(path, cfg["data"]["pools"])
    return cfg


# -------------------------------------------------------------------------- training


def _stack(items: list[PhotoCandidates]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crops uint8 (N, 7, S, S), scalars float32 (N, 4), labels float32 (N,)) of all photos."""
    if not items:
        raise DataError(Path("."), "no photos to take candidates from")
    crops = np.concatenate([item.crops for item in items])
    scalars = np.concatenate([item.scalars for item in items])
    label = np.concatenate([item.label for item in items]).astype(np.float32)
    return torch.from_numpy(crops), torch.from_numpy(scalars), torch.from_numpy(label)


def _dihedral(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 rotations and flips of a batch of crops (the same for the batch)."""
    turn = int(torch.randint(4, (1,), generator=generator))
    crops = torch.rot90(crops, turn, (2, 3))
    return crops.flip(3) if int(torch.randint(2, (1,), generator=generator)) else crops


@torch.no_grad()
def predict_logits(
    net: CandidateVerifier, crops: torch.Tensor, scalars: torch.Tensor
) -> np.ndarray:
    """Logits (N,) of P(true lesion) in eval mode."""
    net.eval()
    out = [net(crops[i : i + 1024], scalars[i : i + 1024]) for i in range(0, len(crops), 1024)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def predict(net: CandidateVerifier, crops: torch.Tensor, scalars: torch.Tensor) -> np.ndarray:
    """P(true lesion) (N,) in eval mode."""
    return expit(predict_logits(net, crops, scalars))


def calibrate(net: CandidateVerifier, val: list[PhotoCandidates]) -> dict:
    """Platt-scale ``net`` on the validation candidates, folded into its last layer (see
    :mod:`training.calibration`); returns the record for model.json: a, b and the
    candidates' calibration error and log loss before and after."""
    crops, scalars, labels = _stack(val)
    y = labels.numpy()
    before = predict_logits(net, crops, scalars)
    a, b = fit_platt(before, y)
    fold_into_linear(net.output_layer, a, b)
    after = predict_logits(net, crops, scalars)  # the folded network itself, not a * z + b
    return {
        "method": "Platt scaling on the validation candidates, folded into the last layer",
        "a": round(a, 5),
        "b": round(b, 5),
        "val_ece_before": round(expected_calibration_error(y, expit(before)), 4),
        "val_ece_after": round(expected_calibration_error(y, expit(after)), 4),
        "val_log_loss_before": round(log_loss(before, y), 4),
        "val_log_loss_after": round(log_loss(after, y), 4),
    }


def rescored_figures(
    items: list[PhotoCandidates], p_true: np.ndarray, min_score: float = 0.0
) -> dict:
    """:class:`LesionDetectionMetric` figures of the validation photos with each candidate
    scored ``p_true`` (N,) (the regions of all photos in order) and those under
    ``min_score`` dropped, as the Analyzer reports them."""
    metric = LesionDetectionMetric()
    start = 0
    for item in items:
        scores = p_true[start : start + len(item.lesions)]
        start += len(item.lesions)
        kept = [
            replace(lesion, score=float(s))
            for lesion, s in zip(item.lesions, scores, strict=True)
            if s >= min_score
        ]
        metric.update(kept, item.instance_map, photo_truth_classes(item))
    return metric.aggregate()


def validation_figures(items: list[PhotoCandidates], p_true: np.ndarray) -> dict:
    """The figures logged each epoch (see :func:`rescored_figures`), rounded."""
    figures = rescored_figures(items, p_true)
    return {
        "recall_at_max_fp": round(float(figures["recall_at_max_fp"]), 4),
        "ap": round(float(figures["ap"]), 4),
        "score_threshold_at": round(float(figures["score_threshold_at"]), 4),
        "candidate_recall": round(float(figures["recall"]), 4),
    }


def false_positives_per_photo(items: list[PhotoCandidates], p_true: np.ndarray, t: float) -> float:
    """False positives per photo of the validation photos when candidates need ``t``."""
    return float(rescored_figures(items, p_true, t)["fp_per_image"])


def choose_min_score(items: list[PhotoCandidates], p_true: np.ndarray, max_fp: float) -> float:
    """The lowest threshold of 0.01, 0.02, ..., 0.99 at which the validation photos have at
    most ``max_fp`` false positives per photo (bisection: fewer pass a higher threshold)."""
    lo, hi = 1, 99  # in hundredths; hi always passes (or is the last resort)
    while lo < hi:
        mid = (lo + hi) // 2
        if false_positives_per_photo(items, p_true, mid / 100) <= max_fp:
            hi = mid
        else:
            lo = mid + 1
    return hi / 100


def train(
    cfg: dict, pool: list[PhotoCandidates], val: list[PhotoCandidates]
) -> tuple[CandidateVerifier, list[dict]]:
    """The trained verifier and one line of figures per epoch."""
    torch.manual_seed(int(cfg["seed"]))
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    net = CandidateVerifier(**cfg["model"])
    crops, scalars, label = _stack(pool)
    if len(label) == 0:
        raise DataError(Path("."), "the pools gave no candidates")
    val_crops, val_scalars, _ = _stack(val) if val else (None, None, None)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        logits = net(_dihedral(crops[index], generator), scalars[index])
        return F.binary_cross_entropy_with_logits(logits, label[index])

    def after_epoch() -> dict:
        return validation_figures(val, predict(net, val_crops, val_scalars)) if val else {}

    history = fit(net, len(label), cfg["train"], generator, batch_loss, after_epoch)
    return net, history


# ---------------------------------------------------------------------------- output


def _pool_photos(folder: Path, count: int):
    from training.synthesis.datasets import FolderDetectionDataset

    dataset = FolderDetectionDataset(folder)
    if count > len(dataset):
        raise DataError(folder, f"holds {len(dataset)} photos, the recipe asks for {count}")
    return [(i, lambda i=i: dataset[i]) for i in range(count)]


def _val_photos(seed: int, count: int, data_cfg: dict):
    from training.detector_data import synth_config
    from training.synthesis.datasets import DetectionDataset

    dataset = DetectionDataset(count, seed, synth_config(data_cfg))
    return [(i, lambda i=i: dataset[i]) for i in range(count)]


def run(args: argparse.Namespace) -> int:
    from core.analyzer import Analyzer

    torch.set_num_threads(max(1, int(args.threads)))
    cfg = read_config(args.config)
    candidates = PostprocessConfig.from_json(cfg["candidates"])
    # training data in float32, whatever LESIONVIEWER_PRECISION says
    analyzer = Analyzer.load(args.device, detector=args.detector, precision="float32")
    if analyzer.verification is not None:
        raise DataError(args.detector, "this detector already has a verifier")
    data = cfg["data"]
    tic = time.time()

    def bar(items):
        return tqdm(items, desc="candidates", mininterval=10.0)

    pool, val = mine_recipe(
        data, analyzer.probabilities, candidates, args.work_dir, _pool_photos, _val_photos, bar
    )
    mined = time.time() - tic
    net, history = train(cfg, pool, val)
    calibration = {}
    if cfg.get("calibration") == "platt":
        if not val:
            raise DataError(args.config, "calibration needs validation photos")
        calibration = calibrate(net, val)
        print(json.dumps({"calibration": calibration}), flush=True)
    # min_score: a number, or {"max_val_fp_per_photo": F}: the lowest threshold that keeps the
    # validation photos' false positives at F per photo or fewer (chosen here, on validation)
    rule = cfg["min_score"]
    if isinstance(rule, dict):
        if not val:
            raise DataError(args.config, "min_score by rule needs validation photos")
        p_val = predict(net, *_stack(val)[:2])
        min_score = choose_min_score(val, p_val, float(rule["max_val_fp_per_photo"]))
        at_min = {
            "min_score_rule": rule,
            "fp_per_photo_at_min_score": round(false_positives_per_photo(val, p_val, min_score), 3),
        }
    else:
        min_score, at_min = float(rule), {}
    settings = VerificationSettings(candidates, min_score)
    n_candidates = sum(len(item.label) for item in pool)
    n_true = sum(int(item.label.sum()) for item in pool)
    record = {
        **settings.to_json(),
        **at_min,
        **({"calibration": calibration} if calibration else {}),
        "training": training_record(
            cfg,
            {
                "pools": data["pools"],
                "candidates": n_candidates,
                "true_candidates": n_true,
                "val_seeds": list(data["val_seeds"]),
                "val_photos_per_seed": int(data["val_photos"]),
            },
            mined,
            time.time() - tic - mined,
            history,
        ),
        "metrics": {
            # the last epoch's figures (calibration keeps the ranking, so they still hold)
            "validation": history[-1] if history else {},
            # the same photos and candidates ranked by the detector's own scores
            "validation_detector_alone": validation_figures(
                val, np.array([lesion.score for item in val for lesion in item.lesions])
            )
            if val
            else {},
        },
    }
    # a larger tile (less overlap) wins back some of the time the second stage costs
    digest = folder_with_stage(
        args.detector,
        args.out,
        "verifier",
        net,
        cfg["model"],
        cfg["version"],
        record,
        tile=cfg.get("tile"),
    )
    print(f"{n_candidates} candidates ({n_true} true) -> {args.out} (sha256 {digest[:12]})")
    return 0
