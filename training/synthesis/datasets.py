"""Torch datasets of synthetic detection photos and tracking pairs.

On-the-fly datasets synthesise item ``i`` from ``np.random.default_rng([seed, i])``, so any
DataLoader worker produces the same item for the same index. Folder datasets read the
output of ``lesion-train synth``. Items are dicts of tensors:

detection: "image" uint8 (3, H, W), "class_map" int64 (H, W), "instance_map" int32 (H, W)
pairs: "image_a", "image_b" uint8 (3, H, W), "flow" float32 (2, H, W) (A pixel + flow =
    position in B), "valid" bool (H, W), "class_map_a/b" int64, "instance_map_a/b" int32.

With ``crop=(height, width)`` a random window (seeded by seed and index) is cut; a pair
is cut at the same window in A and B, which leaves the flow values unchanged and clears
``valid`` where the flow leaves the window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import DataError
from training.synthesis import store
from training.synthesis.detection import DetectionSample, SynthConfig, make_detection_sample
from training.synthesis.pairs import make_pair_sample
from training.synthesis.sources import SynthSources


def _window(
    shape: tuple[int, int], crop: tuple[int, int] | None, seed: int, index: int
) -> tuple[slice, slice, int, int]:
    h, w = shape
    if crop is None:
        return slice(0, h), slice(0, w), 0, 0
    ch, cw = min(crop[0], h), min(crop[1], w)
    rng = np.random.default_rng([seed, index, 0xC80])
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return slice(y0, y0 + ch), slice(x0, x0 + cw), x0, y0


def _image(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def detection_item(
    image: np.ndarray,
    class_map: np.ndarray,
    instance_map: np.ndarray,
    crop: tuple[int, int] | None = None,
    seed: int = 0,
    index: int = 0,
) -> dict[str, torch.Tensor]:
    """Tensors of one detection sample, optionally cropped."""
    ys, xs, _, _ = _window(class_map.shape, crop, seed, index)
    return {
        "image": _image(image[ys, xs]),
        "class_map": torch.from_numpy(class_map[ys, xs].astype(np.int64)),
        "instance_map": torch.from_numpy(instance_map[ys, xs].astype(np.int32)),
    }


def pair_item(
    arrays: dict[str, np.ndarray],
    crop: tuple[int, int] | None = None,
    seed: int = 0,
    index: int = 0,
) -> dict[str, torch.Tensor]:
    """Tensors of one pair from numpy arrays named as in PairSample, optionally cropped."""
    ys, xs, x0, y0 = _window(arrays["valid"].shape, crop, seed, index)
    flow = arrays["flow"][ys, xs].astype(np.float32)
    valid = arrays["valid"][ys, xs].astype(bool)
    if crop is not None:
        h, w = valid.shape
        gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
        bx, by = gx + flow[..., 0], gy + flow[..., 1]
        valid &= (bx >= 0) & (bx <= w - 1) & (by >= 0) & (by <= h - 1)
    item = {
        "image_a": _image(arrays["image_a"][ys, xs]),
        "image_b": _image(arrays["image_b"][ys, xs]),
        "flow": torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1))),
        "valid": torch.from_numpy(valid),
    }
    for side in ("a", "b"):
        item[f"class_map_{side}"] = torch.from_numpy(
            arrays[f"class_map_{side}"][ys, xs].astype(np.int64)
        )
        item[f"instance_map_{side}"] = torch.from_numpy(
            arrays[f"instance_map_{side}"][ys, xs].astype(np.int32)
        )
    return item


_PAIR_ARRAYS = (
    "image_a",
    "image_b",
    "flow",
    "valid",
    "class_map_a",
    "class_map_b",
    "instance_map_a",
    "instance_map_b",
)


class _SyntheticDataset(Dataset):
    """``length`` synthetic samples, each made on the fly from (seed, index)."""

    def __init__(
        self,
        length: int,
        seed: int,
        config: SynthConfig = SynthConfig(),  # noqa: B008 (frozen, immutable)
        *,
        crop: tuple[int, int] | None = None,
        sources: SynthSources | None = None,
    ) -> None:
        self.length, self.seed, self.config = length, seed, config
        self.crop, self.sources = crop, sources

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self._item(index)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class DetectionDataset(_SyntheticDataset):
    """``length`` synthetic detection photos, made on the fly from (seed, index).

    ``sample(index)`` gives the whole :class:`DetectionSample` of an item, lesion records
    included (what a batch of tensors cannot carry); the last one is kept, so that
    ``dataset[i]`` then ``dataset.sample(i)`` synthesises the photo once.
    """

    _last: tuple[int, DetectionSample] | None = None

    def sample(self, index: int) -> DetectionSample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if self._last is None or self._last[0] != index:
            made = make_detection_sample(index, self.seed, self.config, sources=self.sources)
            self._last = (index, made)
        return self._last[1]

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        s = self.sample(index)
        item = detection_item(s.image, s.class_map, s.instance_map, self.crop, self.seed, index)
        item["mm_per_px"] = torch.tensor(float(s.mm_per_px))  # pixel size on the skin
        item["skin_type"] = torch.tensor(int(s.skin_type))  # Fitzpatrick 1-6, 0 unknown
        return item


class PairDataset(_SyntheticDataset):
    """``length`` synthetic tracking pairs, made on the fly from (seed, index)."""

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        s = make_pair_sample(index, self.seed, self.config, sources=self.sources)
        arrays = {name: getattr(s, name) for name in _PAIR_ARRAYS}
        return pair_item(arrays, self.crop, self.seed, index)


class _FolderDataset(Dataset):
    """Samples of one ``kind`` written by ``lesion-train synth`` in ``path``."""

    kind = ""

    def __init__(
        self, path: str | Path, *, crop: tuple[int, int] | None = None, seed: int = 0
    ) -> None:
        self.root = Path(path)
        self.manifest = store.read_manifest(self.root, self.kind)
        self.samples = self.manifest["samples"]
        self.crop, self.seed = crop, seed

    def __len__(self) -> int:
        return len(self.samples)


class FolderDetectionDataset(_FolderDataset):
    """Detection samples written by ``lesion-train synth --kind detection`` in ``path``."""

    kind = "detection"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.samples[index]
        try:
            image = store.read_rgb(self.root / entry["image"])
            class_map = store.read_label(self.root / entry["class_map"], np.uint8)
            instances = store.read_label(self.root / entry["instance_map"], np.uint16)
        except KeyError as exc:
            raise DataError(self.root / "manifest.json", f"sample {index} lacks {exc}") from exc
        store.check_same_size(
            self.root / "manifest.json",
            index,
            {"image": image, "class_map": class_map, "instance_map": instances},
        )
        return detection_item(image, class_map, instances, self.crop, self.seed, index)


class FolderPairDataset(_FolderDataset):
    """Tracking pairs written by ``lesion-train synth --kind pairs`` in ``path``."""

    kind = "pairs"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        entry = self.samples[index]
        root = self.root
        try:
            arrays = {
                "image_a": store.read_rgb(root / entry["image_a"]),
                "image_b": store.read_rgb(root / entry["image_b"]),
                "valid": store.read_label(root / entry["valid"], np.uint8) > 0,
            }
            for side in ("a", "b"):
                arrays[f"class_map_{side}"] = store.read_label(
                    root / entry[f"class_map_{side}"], np.uint8
                )
                arrays[f"instance_map_{side}"] = store.read_label(
                    root / entry[f"instance_map_{side}"], np.uint16
                )
            flow_path = root / entry["flow"]
        except KeyError as exc:
            raise DataError(root / "manifest.json", f"sample {index} lacks {exc}") from exc
        try:
            flow = np.load(flow_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(flow_path, f"missing or unreadable flow ({exc})") from exc
        store.check_same_size(root / "manifest.json", index, arrays)
        if flow.shape != (*arrays["valid"].shape, 2):
            raise DataError(flow_path, f"flow shape {flow.shape} does not match the images")
        if not np.issubdtype(flow.dtype, np.floating):
            raise DataError(flow_path, f"flow must hold floats, not {flow.dtype}")
        arrays["flow"] = flow
        return pair_item(arrays, self.crop, self.seed, index)
