"""Training and validation pairs for the tracker, as dicts of tensors (the pairs contract).

Sources (config ``data.source``):
- ``"synth_pairs"``: ``training.synthesis.datasets.PairDataset`` (synthetic body photos with
  lesions that move, grow, appear and vanish; the synthesis team's time model).
- ``"synth_folder"``: ``training.synthesis.datasets.FolderPairDataset`` (``lesion-train synth``
  output).
- ``"detection_warps"``: synthetic detection photos (``make_detection_sample``) deformed by
  :func:`training.tracking_pairs.make_known_pair` (exact flow, relit, painted lesions).
- ``"image_folder"``: any folder of photos, deformed the same way.
Every item is resized to the training size (``data.width`` x ``data.height``) with its flow
scaled, so that displacements keep their share of the image, as at inference.
Items: {"image_a", "image_b": uint8 (3, H, W), "flow": float32 (2, H, W), "valid": bool (H, W)}.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import DataError
from core.io import SUPPORTED_SUFFIXES, load_photo
from training.tracking_pairs import WarpParams, make_known_pair


def resize_pair_sample(
    image_a: np.ndarray,
    image_b: np.ndarray,
    flow: np.ndarray,
    valid: np.ndarray,
    size: tuple[int, int],
) -> dict[str, torch.Tensor]:
    """A pair at (width, height) = ``size``: images area-resized, flow resampled and scaled."""
    w, h = size
    sx, sy = w / image_a.shape[1], h / image_a.shape[0]
    out_flow = cv2.resize(flow.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    # position q = p + f maps with pixel centres: q' = (q + 0.5) s - 0.5, p' likewise
    out_flow[..., 0] *= sx
    out_flow[..., 1] *= sy
    out_valid = cv2.resize(valid.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0

    def img(x: np.ndarray) -> torch.Tensor:
        interp = cv2.INTER_AREA if x.shape[1] > w else cv2.INTER_LINEAR
        return (
            torch.from_numpy(cv2.resize(x, (w, h), interpolation=interp))
            .permute(2, 0, 1)
            .contiguous()
        )

    return {
        "image_a": img(image_a),
        "image_b": img(image_b),
        "flow": torch.from_numpy(out_flow).permute(2, 0, 1).contiguous(),
        "valid": torch.from_numpy(out_valid),
    }


class WarpPairDataset(Dataset):
    """Known-deformation pairs of base photos; item ``i`` is seeded by (seed, i) only."""

    def __init__(
        self,
        length: int,
        seed: int,
        *,
        size: tuple[int, int],
        base: str = "image_folder",
        folder: str | Path | None = None,
        params: WarpParams | None = None,
    ) -> None:
        self.length, self.seed, self.size, self.base = length, seed, size, base
        self.params = params if params is not None else WarpParams()
        self.files: list[Path] = []
        if base == "image_folder":
            if folder is None or not Path(folder).is_dir():
                raise DataError(Path(str(folder)), "image folder for tracker pairs not found")
            self.files = sorted(
                p for p in Path(folder).rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES
            )
            if not self.files:
                raise DataError(Path(folder), "no photos in the image folder")
        elif base != "detection_warps":
            raise ValueError(f"unknown base {base!r}")

    def __len__(self) -> int:
        return self.length

    def _base_image(self, index: int, rng: np.random.Generator) -> np.ndarray:
        w, h = self.size
        if self.base == "detection_warps":
            from training.synthesis.detection import SynthConfig, make_detection_sample

            sample = make_detection_sample(index, self.seed, SynthConfig(width=2 * w, height=2 * h))
            return sample.image
        image = load_photo(self.files[int(rng.integers(len(self.files)))])
        # a random crop of the training aspect, at least half of the photo
        ih, iw = image.shape[:2]
        scale = rng.uniform(0.5, 1.0) * min(iw / w, ih / h)
        cw, ch = int(w * scale), int(h * scale)
        x0, y0 = int(rng.integers(0, iw - cw + 1)), int(rng.integers(0, ih - ch + 1))
        crop = image[y0 : y0 + ch, x0 : x0 + cw]
        return cv2.resize(crop, (2 * w, 2 * h), interpolation=cv2.INTER_AREA)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        base = self._base_image(index, rng)
        n = int(rng.integers(4, 12))
        pair = make_known_pair(base, rng, params=self.params, lesions=n, gone=1, new=1)
        return resize_pair_sample(pair.image_a, pair.image_b, pair.flow, pair.valid, self.size)


class _ResizedPairs(Dataset):
    """A contract pair dataset resized to the training size."""

    def __init__(self, inner: Dataset, size: tuple[int, int]) -> None:
        self.inner, self.size = inner, size

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.inner[index]

        def hwc(t: torch.Tensor) -> np.ndarray:
            return t.permute(1, 2, 0).numpy()

        return resize_pair_sample(
            hwc(item["image_a"]),
            hwc(item["image_b"]),
            hwc(item["flow"]),
            item["valid"].numpy(),
            self.size,
        )


def tracker_dataset(data: dict, *, length: int, seed: int) -> Dataset:
    """The dataset the config's ``data`` section describes (see the module docstring)."""
    size = (int(data["width"]), int(data["height"]))
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"training size {size} must be multiples of 32")
    source = data.get("source", "image_folder")
    if source in ("image_folder", "detection_warps"):
        return WarpPairDataset(length, seed, size=size, base=source, folder=data.get("folder"))
    if source == "synth_pairs":
        from training.synthesis.datasets import PairDataset
        from training.synthesis.detection import SynthConfig

        return _ResizedPairs(
            PairDataset(length, seed, SynthConfig(**data.get("synth_config", {}))), size
        )
    if source == "synth_folder":
        from training.synthesis.datasets import FolderPairDataset

        return _ResizedPairs(FolderPairDataset(data["folder"]), size)
    raise ValueError(f"unknown data.source {source!r}")
