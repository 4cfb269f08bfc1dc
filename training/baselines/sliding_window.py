"""The paper's baseline: a patch classifier run as a sliding window over the photo.

Training (``lesion-train sliding-window --config training/configs/sliding_window.json``):
patches of the same synthetic photos the detector learns from (same synthesis config and
training seed), labelled by their centre pixel (0 skin/background, 1 benign, 2
malignant), class-balanced, with the detector's scale (lesions ~6 to ~200 px), rotation,
flip and colour augmentation. Network: ``core.models.patch_classifier.PatchClassifier``
(registered arch ``patch_cnn``).

Inference (:func:`sliding_window_heatmap`): one patch per ``stride`` pixels, each
classified on its own (no shared computation: that is what makes the baseline slow), a
coarse probability map upsampled to full resolution, then the detector's own
post-processing (``core.postprocess.find_lesions``), so both are evaluated the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from core.analyzer import model_info, prepare_for_inference
from core.device import choose_device
from core.model_folder import load_model_folder, save_model_folder
from core.postprocess import PostprocessConfig, find_lesions
from core.tiling import upsample_probabilities
from core.types import Detection, ModelInfo
from training.detector_crops import CropRecipe, colour_jitter

DEFAULT_CONFIG = Path("training/configs/sliding_window.json")
CLASSES = ("background", "benign", "malignant")


# ------------------------------------------------------------------------- inference


def sliding_window_heatmap(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    patch_size: int,
    stride: int,
    device: torch.device,
    batch_size: int = 1024,
) -> np.ndarray:
    """Per-pixel class probabilities of ``image`` by classifying one patch per position.

    image: (H, W, 3) uint8 RGB. Patch centres are at ``stride * k + (stride - 1) / 2`` on
    each axis (``core.models.patch_classifier.window_grid`` positions); the photo is padded
    by reflection so every patch is full. Returns float32 (H, W, 3), rows summing to 1.
    """
    h, w = image.shape[:2]
    rows, cols = -(-h // stride), -(-w // stride)
    before = patch_size // 2 - stride // 2
    after_y = stride * (rows - 1) + patch_size - before - h
    after_x = stride * (cols - 1) + patch_size - before - w
    padded = cv2.copyMakeBorder(
        image, before, max(after_y, 0), before, max(after_x, 0), cv2.BORDER_REFLECT_101
    )
    # (rows, cols, 3, p, p) view: patch (r, c) starts at (stride * r, stride * c) of padded
    windows = sliding_window_view(padded, (patch_size, patch_size), axis=(0, 1))
    windows = windows[: stride * (rows - 1) + 1 : stride, : stride * (cols - 1) + 1 : stride]
    probs = np.empty((rows * cols, 3), np.float32)
    flat = windows.reshape(rows * cols, 3, patch_size, patch_size)
    use_amp = device.type == "cuda"
    with torch.inference_mode():
        for first in range(0, rows * cols, batch_size):
            chunk = np.ascontiguousarray(flat[first : first + batch_size])
            x = torch.from_numpy(chunk).to(device).float().div_(255.0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = model(x)
            probs[first : first + len(chunk)] = F.softmax(logits.float(), dim=1).cpu().numpy()
    return upsample_probabilities(probs.reshape(rows, cols, 3), h, w, stride)


class SlidingWindowDetector:
    """A trained patch classifier applied as a sliding window; ``detect`` like the Analyzer."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: torch.device) -> None:
        self.model = prepare_for_inference(model, device)
        self.meta = meta
        self.device = device
        self.patch_size = int(meta.get("patch_size", getattr(model, "patch_size", 64)))
        self.stride = int(meta.get("stride", 8))
        self.postprocess = PostprocessConfig.from_json(meta.get("postprocess"))
        self.info: ModelInfo = model_info(meta)

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "auto") -> SlidingWindowDetector:
        chosen = choose_device(device)
        model, meta = load_model_folder(folder, chosen)
        return cls(model, meta, chosen)

    def heatmap(self, image: np.ndarray) -> np.ndarray:
        return sliding_window_heatmap(
            self.model, image, patch_size=self.patch_size, stride=self.stride, device=self.device
        )

    def detect(self, image: np.ndarray) -> Detection:
        heatmap = self.heatmap(image)
        return Detection(heatmap, find_lesions(heatmap, self.postprocess), self.info)


# -------------------------------------------------------------------------- training


@dataclass(frozen=True)
class PatchRecipe:
    """How training patches are drawn from a photo.

    patches_per_photo: patches per synthetic photo.
    class_mix: target fractions of background, benign and malignant centre pixels.
    near_lesion: share of background patches drawn in a ring around a lesion (the hard
        negatives at lesion borders); the rest anywhere.
    """

    patch_size: int = 64
    patches_per_photo: int = 48
    class_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)
    near_lesion: float = 0.4


def _pick_centres(
    class_map: np.ndarray, rng: np.random.Generator, recipe: PatchRecipe
) -> list[tuple[int, int, int]]:
    """(x, y, label) of the patch centres of one photo."""
    h, w = class_map.shape
    pools = {c: np.flatnonzero(class_map.ravel() == c) for c in (1, 2)}
    ring = np.zeros_like(class_map, np.uint8)
    if pools[1].size or pools[2].size:
        lesion = (class_map > 0).astype(np.uint8)
        ring = cv2.dilate(lesion, np.ones((25, 25), np.uint8)) - lesion
    ring_pool = np.flatnonzero(ring.ravel())
    out = []
    for _ in range(recipe.patches_per_photo):
        label = int(rng.choice(3, p=np.asarray(recipe.class_mix) / sum(recipe.class_mix)))
        if label > 0 and pools[label].size == 0:
            label = 3 - label if pools[3 - label].size else 0
        if label > 0:
            idx = int(pools[label][rng.integers(pools[label].size)])
        elif ring_pool.size and rng.random() < recipe.near_lesion:
            idx = int(ring_pool[rng.integers(ring_pool.size)])
        else:
            idx = int(rng.integers(h * w))
        y, x = divmod(idx, w)
        out.append((x, y, int(class_map[y, x])))
    return out


def sample_patches(
    image: np.ndarray,
    class_map: np.ndarray,
    rng: np.random.Generator,
    recipe: PatchRecipe,
    crops: CropRecipe,
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented patches (N, p, p, 3) uint8 and their centre labels (N,) int64."""
    p = recipe.patch_size
    c = (p - 1) / 2.0
    centres = _pick_centres(class_map, rng, recipe)
    patches = np.empty((len(centres), p, p, 3), np.uint8)
    labels = np.empty(len(centres), np.int64)
    lo, hi = crops.scale_range
    for k, (x, y, label) in enumerate(centres):
        scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        angle = math.radians(rng.uniform(0, 360))
        fx = -1.0 if rng.integers(2) else 1.0
        a, b = scale * math.cos(angle), scale * math.sin(angle)
        m = np.array([[a * fx, -b, 0.0], [b * fx, a, 0.0]])
        m[:, 2] = np.array([c, c]) - m[:, :2] @ np.array([x, y], np.float64)
        patches[k] = cv2.warpAffine(
            image, m, (p, p), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        patches[k] = colour_jitter(patches[k], rng, crops)
        labels[k] = label
    return patches, labels


class PatchDataset(Dataset):
    """Per synthetic photo: {"image": uint8 (N, 3, p, p), "label": int64 (N,)}."""

    def __init__(
        self, base: Dataset, recipe: PatchRecipe, crops: CropRecipe, *, length: int, seed: int
    ) -> None:
        self.base, self.recipe, self.crops = base, recipe, crops
        self.length, self.seed = int(length), int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        image = item["image"].permute(1, 2, 0).contiguous().numpy()
        class_map = np.asarray(item["class_map"], dtype=np.uint8)
        rng = np.random.default_rng([self.seed, 7, index])
        patches, labels = sample_patches(image, class_map, rng, self.recipe, self.crops)
        return {
            "image": torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous(),
            "label": torch.from_numpy(labels),
        }


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([it[k] for it in items]) for k in items[0]}


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="recipe (JSON)")
    parser.add_argument(
        "--out", type=Path, default=Path("resources/models/sliding_window"), help="model folder"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--photos", type=int, default=None, help="override train.photos")
    parser.add_argument("--workers", type=int, default=None, help="override train.workers")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of this process")


def run(args: argparse.Namespace) -> int:
    from training.detector_data import data_summary, detection_dataset
    from training.train_detector import build_optimizer, command_line, load_config

    torch.set_num_threads(max(1, int(args.threads)))
    cfg = load_config(args.config)
    t = cfg["train"]
    if args.photos is not None:
        t["photos"] = int(args.photos)
    if args.workers is not None:
        t["workers"] = int(args.workers)
    device = choose_device(args.device)
    photos, per_batch = int(t["photos"]), int(t["photos_per_batch"])
    recipe = PatchRecipe(
        **{k: v for k, v in cfg["patches"].items() if k != "class_mix"},
        class_mix=tuple(cfg["patches"].get("class_mix", (0.5, 0.25, 0.25))),
    )
    crops = CropRecipe.from_dict(cfg["crops"])
    dataset = PatchDataset(
        detection_dataset(cfg["data"], length=photos),
        recipe,
        crops,
        length=photos,
        seed=int(cfg["seed"]),
    )
    from training.train_detector import build_model

    model = build_model(cfg).to(device)
    steps = photos // per_batch
    optimizer, scheduler = build_optimizer(model, cfg, total_steps=steps)
    workers = int(t.get("workers", 1))
    loader = DataLoader(
        dataset,
        batch_size=per_batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(int(cfg["seed"])),
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init,
        drop_last=True,
        prefetch_factor=2 if workers else None,
        multiprocessing_context="spawn" if workers else None,  # see train_detector.make_loader
    )
    weights = torch.tensor(cfg["loss"]["class_weights"], dtype=torch.float32, device=device)
    started = time.time()
    model.train()
    total, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, total=steps, desc="sliding-window baseline", mininterval=10.0)
    for batch in bar:
        x = batch["image"].to(device).float().div_(255.0)
        y = batch["label"].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.3f}")
    meta = {
        "name": cfg.get("name", "sliding_window"),
        "version": cfg.get("version", "0"),
        "classes": list(CLASSES),
        "patch_size": recipe.patch_size,
        "stride": int(cfg.get("inference", {}).get("stride", 8)),
        "postprocess": dict(cfg.get("inference", {}).get("postprocess", {})),
        "training": {
            "command": command_line(),
            "seed": int(cfg["seed"]),
            "config": cfg,
            "device": str(device),
            "steps": steps,
            "patches_seen": seen,
            "train_loss": round(total / max(seen, 1), 4),
            "train_accuracy": round(correct / max(seen, 1), 4),
            "duration_s": round(time.time() - started, 1),
        },
        "data": data_summary({**cfg["data"], "photos_per_epoch": photos}, epochs=1),
    }
    sha = save_model_folder(
        args.out,
        model.cpu().eval(),
        arch=cfg["model"]["arch"],
        arch_kwargs=cfg["model"].get("kwargs", {}),
        meta=meta,
    )
    print(
        json.dumps({"saved": str(args.out), "sha256": sha, **meta["training"]} | {"config": None})
    )
    return 0
