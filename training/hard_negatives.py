"""`lesion-train mine-negatives`: where a trained detector is confidently wrong on its pool.

Lesions cover a tiny share of a body photo and most crops are centred on them, so a rare
look-alike (a nipple, a navel, a shadow fold, a patterned sleeve) is almost never in a
training crop, and the detector calls it a lesion with high confidence. Classic hard
negative mining: run the detector over the training pool (a ``lesion-train synth`` folder),
keep every detected region that covers no true lesion, and let the next training run centre
a share of its crops on them (``crops.hard_negative`` with ``data.hard_negatives``).

Output JSON: {"model": {name, version, sha256}, "folder", "min_score", "photos",
"negatives": {"<photo index>": [[x, y, score], ...]}} with (x, y) the region centroid in
the photo's pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.errors import DataError

#: A region is a false positive when at most this share of its pixels is lesion.
MAX_LESION_SHARE = 0.05


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="detector model folder")
    parser.add_argument("--folder", type=Path, required=True, help="lesion-train synth folder")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write")
    parser.add_argument("--min-score", type=float, default=0.3, help="P(lesion) to keep")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)


def false_positive_centroids(
    lesions, instance_map: np.ndarray, min_score: float
) -> list[list[float]]:
    """[[x, y, score], ...] of the detected regions with score >= ``min_score`` whose outline
    holds at most :data:`MAX_LESION_SHARE` lesion pixels (``instance_map`` > 0)."""
    import cv2

    out = []
    for lesion in lesions:
        if lesion.score < min_score:
            continue
        mask = np.zeros(instance_map.shape, np.uint8)
        cv2.fillPoly(mask, [np.asarray(lesion.contour, np.int32).reshape(-1, 1, 2)], 1)
        inside = instance_map[mask > 0]
        if inside.size and float((inside > 0).mean()) > MAX_LESION_SHARE:
            continue
        x, y = lesion.centroid
        out.append([round(float(x), 1), round(float(y), 1), round(float(lesion.score), 3)])
    return out


def read_hard_negatives(path: Path) -> dict[int, np.ndarray]:
    """{photo index: float32 (N, 2) centroids (x, y)} from a ``mine-negatives`` JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {
            int(k): np.asarray([p[:2] for p in v], np.float32).reshape(-1, 2)
            for k, v in data["negatives"].items()
        }
    except FileNotFoundError as exc:
        raise DataError(
            path, "hard-negatives file not found (lesion-train mine-negatives)"
        ) from exc
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(path, f"not a mine-negatives file ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from core.analyzer import Analyzer
    from training.synthesis.datasets import FolderDetectionDataset

    torch.set_num_threads(max(1, int(args.threads)))
    # training data in float32, whatever LESIONVIEWER_PRECISION says
    analyzer = Analyzer.load(args.device, detector=args.model, precision="float32")
    dataset = FolderDetectionDataset(args.folder)
    negatives: dict[str, list[list[float]]] = {}
    for index in tqdm(range(len(dataset)), desc="mine", mininterval=10.0):
        item = dataset[index]
        image = np.ascontiguousarray(item["image"].permute(1, 2, 0).numpy())
        found = false_positive_centroids(
            analyzer.detect(image).lesions, item["instance_map"].numpy(), args.min_score
        )
        if found:
            negatives[str(index)] = found
    result = {
        "model": analyzer.detector_info.to_json(),
        "folder": str(args.folder),
        "min_score": args.min_score,
        "photos": len(dataset),
        "negatives": negatives,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n", encoding="utf-8")
    total = sum(len(v) for v in negatives.values())
    print(f"{total} false positives on {len(negatives)} of {len(dataset)} photos -> {args.out}")
    return 0
