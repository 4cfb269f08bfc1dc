"""Small, fast stand-ins for synthetic detection photos in the detector-training tests.

``ToyDetectionDataset`` draws skin-coloured photos with a few dark (benign) and
red-black irregular (malignant) disks; items follow the DetectionDataset contract.
``use_toy_data`` points the trainer at it (in this process).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

TINY_CONFIG = {
    "schema": 1,
    "name": "detector",
    "version": "test",
    "seed": 7,
    "model": {
        "arch": "lesion_fcn",
        "kwargs": {
            "widths": [8, 16, 16, 16],
            "depths": [1, 1, 1, 1],
            "decoder_widths": [8, 8, 8],
            "num_classes": 3,
        },
    },
    "data": {
        "source": "synthetic",
        "train_seed": 1,
        "photos_per_epoch": 4,
        "fresh_photos_per_epoch": True,
        "val_seed": 2,
        "val_photos": 2,
    },
    "crops": {"crop_size": 64, "crops_per_image": 2, "scale_range": [0.7, 1.4]},
    "train": {
        "epochs": 2,
        "photos_per_batch": 2,
        "workers": 0,
        "lr": 0.003,
        "weight_decay": 0.0001,
        "schedule": "onecycle",
        "warmup_fraction": 0.2,
        "grad_clip": 5.0,
        "amp": True,
    },
    "loss": {"class_weights": [1.0, 3.0, 3.0], "dice_weight": 1.0},
    "inference": {"tile": {"size": 128, "overlap": 16}, "postprocess": {}},
}


def toy_photo(
    index: int, seed: int, size: tuple[int, int] = (96, 128)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (H, W, 3) uint8, class_map (H, W) uint8, instance_map (H, W) int32)."""
    rng = np.random.default_rng([seed, index])
    h, w = size
    skin = np.array([205, 160, 135], np.float32) + rng.uniform(-20, 20, 3)
    image = np.clip(skin + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    class_map = np.zeros((h, w), np.uint8)
    instance_map = np.zeros((h, w), np.int32)
    for k in range(1, int(rng.integers(1, 4)) + 1):
        label = int(rng.integers(1, 3))
        r = int(rng.integers(4, 10))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
        colour = (90, 60, 45) if label == 1 else (120, 30, 30)
        mask = np.zeros((h, w), np.uint8)
        cv2.circle(mask, (cx, cy), r, 1, -1)
        image[mask > 0] = colour
        class_map[mask > 0] = label
        instance_map[mask > 0] = k
    return image, class_map, instance_map


class ToyDetectionDataset(Dataset):
    """Items {"image": uint8 (3, H, W), "class_map": int64 (H, W), "instance_map": int32}."""

    def __init__(self, length: int, seed: int, config: object = None) -> None:
        self.length, self.seed = int(length), int(seed)
        # a SynthConfig's width and height when given, else toy_photo's own size
        self.size = (getattr(config, "height", 96), getattr(config, "width", 128))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        image, class_map, instance_map = toy_photo(index, self.seed, size=self.size)
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "class_map": torch.from_numpy(class_map.astype(np.int64)),
            "instance_map": torch.from_numpy(instance_map),
        }


def use_toy_data(setattr_fn=setattr) -> None:
    """Make the trainer read toy photos (``setattr_fn`` may be ``monkeypatch.setattr``)."""
    import training.train_detector as td
    from training.detector_data import ValidationSet

    def dataset(data_cfg: dict, *, length: int) -> Dataset:
        return ToyDetectionDataset(length, int(data_cfg["train_seed"]))

    def validation(data_cfg: dict) -> ValidationSet:
        n = int(data_cfg["val_photos"])
        return ValidationSet.from_dataset(ToyDetectionDataset(n, int(data_cfg["val_seed"])), n)

    setattr_fn(td, "detection_dataset", dataset)
    setattr_fn(td.ValidationSet, "from_config", staticmethod(validation))
