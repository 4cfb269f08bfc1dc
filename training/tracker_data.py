"""Training and validation pairs for the tracker, as dicts of tensors (the pairs contract).

Sources (config ``data.source``):
- ``"synth_pairs"``: ``training.synthesis.datasets.PairDataset`` (synthetic body photos with
  lesions that move, grow, appear and vanish; the synthesis team's time model).
- ``"synth_folder"``: ``training.synthesis.datasets.FolderPairDataset`` (``lesion-train synth``
  output): a fixed pool made once, so a training step costs only the network.
- ``"detection_warps"``: synthetic detection photos (``make_detection_sample``) deformed by
  :func:`training.tracking_pairs.make_known_pair` (exact flow, relit, painted lesions).
- ``"image_folder"``: any folder of photos, deformed the same way.
Every item is resized to the training size (``data.width`` x ``data.height``) with its flow
scaled, so that displacements keep their share of the image, as at inference.
With ``data.augment`` (a dict, see :class:`PairAugment`) a contract source (``synth_pairs`` /
``synth_folder``) is cycled for ``length`` items, each a fresh augmentation of pool item
``index % len(pool)`` seeded by (seed, index): the same window cut from A and B (flow values
unchanged, ``valid`` cleared where the target leaves the window), flips (flow mirrored), and
photometric jitter of A and B separately (flow untouched).
Items: {"image_a", "image_b": uint8 (3, H, W), "flow": float32 (2, H, W), "valid": bool (H, W)}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

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


def pad_ufes_split_files(folder: Path, files: list[Path], split: str) -> list[Path]:
    """The photos of ``files`` whose patient is on ``split`` ("train" or "holdout") of
    :func:`training.sources.splits.pad_ufes_holdout`; the table is ``labels.csv`` in
    ``folder`` or its parent (PAD-UFES-20 layout). DataError when there is none."""
    import csv

    from training.sources.splits import pad_ufes_holdout

    if split not in ("train", "holdout"):
        raise ValueError("split must be 'train', 'holdout' or 'all'")
    table = next(
        (d / "labels.csv" for d in (folder, folder.parent) if (d / "labels.csv").is_file()), None
    )
    if table is None:
        raise DataError(folder, "a patient split needs a PAD-UFES-20 labels.csv here or above")
    train, holdout = pad_ufes_holdout(table)
    keep = train if split == "train" else holdout
    with table.open(newline="", encoding="utf-8") as handle:
        names = {
            Path(row.get("file") or row["img_id"]).stem
            for row in csv.DictReader(handle)
            if str(row["patient_id"]) in keep
        }
    return [f for f in files if f.stem in names]


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
        split: str = "all",
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
            if split != "all":
                self.files = pad_ufes_split_files(Path(folder), self.files, split)
            if not self.files:
                raise DataError(Path(folder), f"no photos in the image folder (split {split!r})")
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


@dataclass(frozen=True)
class PairAugment:
    """Cheap pair augmentation (config ``data.augment``).

    crop_scale: the window's side as a share of the largest window of the training aspect
    (uniform in the range); hflip / vflip: probability of mirroring the pair; brightness,
    contrast, colour: largest relative change of A and of B (independently), gamma: largest
    change of the exponent.
    """

    crop_scale: tuple[float, float] = (0.75, 1.0)
    hflip: float = 0.5
    vflip: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.15
    colour: float = 0.06
    gamma: float = 0.15


def _jitter(image: np.ndarray, rng: np.random.Generator, aug: PairAugment) -> np.ndarray:
    """Photometric jitter of one (H, W, 3) uint8 RGB image (one lookup table per channel)."""
    gain = (1 + rng.uniform(-aug.brightness, aug.brightness)) * (
        1 + rng.uniform(-aug.colour, aug.colour, size=3)
    )
    contrast = 1 + rng.uniform(-aug.contrast, aug.contrast)
    gamma = 1 + rng.uniform(-aug.gamma, aug.gamma)
    mean = float(image[::4, ::4].mean()) / 255.0
    x = np.arange(256, dtype=np.float64)[:, None] / 255.0
    lut = np.clip(((x - mean) * contrast + mean) * gain[None, :], 0, 1) ** gamma
    lut = (lut * 255 + 0.5).astype(np.uint8)  # (256, 3)
    return np.stack([lut[image[..., c], c] for c in range(3)], axis=-1)


def augment_pair(
    image_a: np.ndarray,
    image_b: np.ndarray,
    flow: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    aug: PairAugment,
) -> dict[str, torch.Tensor]:
    """One augmented pair at (width, height) = ``size`` (see the module docstring).

    image_a/b: (H, W, 3) uint8 of the same size; flow (H, W, 2) float32 (A pixel + flow =
    position in B); valid (H, W) bool. Returns the item dict of :func:`resize_pair_sample`.
    """
    h, w = valid.shape
    aspect = size[0] / size[1]
    full_w = min(w, h * aspect)
    s = rng.uniform(*aug.crop_scale)
    cw, ch = max(8, int(round(full_w * s))), max(8, int(round(full_w * s / aspect)))
    cw, ch = min(cw, w), min(ch, h)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    ys, xs = slice(y0, y0 + ch), slice(x0, x0 + cw)
    a, b = image_a[ys, xs], image_b[ys, xs]
    f = flow[ys, xs].astype(np.float32)
    gy, gx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    tx, ty = gx + f[..., 0], gy + f[..., 1]
    v = valid[ys, xs] & (tx >= 0) & (tx <= cw - 1) & (ty >= 0) & (ty <= ch - 1)
    if rng.random() < aug.hflip:
        a, b, f, v = a[:, ::-1], b[:, ::-1], f[:, ::-1] * np.float32([-1, 1]), v[:, ::-1]
    if rng.random() < aug.vflip:
        a, b, f, v = a[::-1], b[::-1], f[::-1] * np.float32([1, -1]), v[::-1]
    a, b = _jitter(a, rng, aug), _jitter(b, rng, aug)
    return resize_pair_sample(
        np.ascontiguousarray(a),
        np.ascontiguousarray(b),
        np.ascontiguousarray(f),
        np.ascontiguousarray(v),
        size,
    )


class AugmentedPool(Dataset):
    """``length`` augmented items cycling over a contract pair dataset (the pool)."""

    def __init__(
        self, pool: Dataset, length: int, seed: int, size: tuple[int, int], aug: PairAugment
    ) -> None:
        if len(pool) == 0:  # type: ignore[arg-type]
            raise ValueError("empty pair pool")
        self.pool, self.length, self.seed, self.size, self.aug = pool, length, seed, size, aug

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.pool[index % len(self.pool)]  # type: ignore[arg-type]
        rng = np.random.default_rng([self.seed, index, 0xA06])

        def hwc(t: torch.Tensor) -> np.ndarray:
            return t.permute(1, 2, 0).numpy()

        return augment_pair(
            hwc(item["image_a"]),
            hwc(item["image_b"]),
            hwc(item["flow"]),
            item["valid"].numpy(),
            rng,
            self.size,
            self.aug,
        )


class CachedPairs(Dataset):
    """Every item of ``inner`` made once and kept in memory (small validation sets)."""

    def __init__(self, inner: Dataset) -> None:
        self.items = [inner[i] for i in range(len(inner))]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def tracker_dataset(data: dict, *, length: int, seed: int) -> Dataset:
    """The dataset the config's ``data`` section describes (see the module docstring).

    For ``synth_pairs`` without ``augment``, ``length`` pairs are made from ``seed``; for
    ``synth_folder`` without ``augment`` the folder's pairs are used as they are.
    """
    size = (int(data["width"]), int(data["height"]))
    if size[0] % 32 or size[1] % 32:
        raise ValueError(f"training size {size} must be multiples of 32")
    source = data.get("source", "image_folder")
    if source == "mix":
        parts = [pair_pool(part, seed=seed + 7919 * (i + 1)) for i, part in enumerate(data["mix"])]
        aug = PairAugment(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data["augment"].items()}
        )
        return AugmentedPool(ConcatDataset(parts), length, seed, size, aug)
    if source in ("image_folder", "detection_warps"):
        return WarpPairDataset(
            length,
            seed,
            size=size,
            base=source,
            folder=data.get("folder"),
            split=data.get("split", "all"),
        )
    if source == "synth_pairs":
        from training.synthesis.datasets import PairDataset
        from training.synthesis.detection import SynthConfig
        from training.synthesis.sources import check_training_lesion_source

        config = SynthConfig(**data.get("synth_config", {}))
        check_training_lesion_source(config.lesion_source, Path("config"))
        pool_size = int(data.get("pool_size", length))
        pool: Dataset = PairDataset(pool_size, seed, config)
    elif source == "synth_folder":
        from training.synthesis.datasets import FolderPairDataset

        pool = FolderPairDataset(data["folder"])
    else:
        raise ValueError(f"unknown data.source {source!r}")
    if data.get("augment") is not None:
        aug = data["augment"]
        aug = PairAugment(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in dict(aug).items()}
        )
        return AugmentedPool(pool, length, seed, size, aug)
    return _ResizedPairs(pool, size)


def pair_pool(part: dict, *, seed: int) -> Dataset:
    """One pool of a ``"mix"`` source (not augmented), at the part's ``width`` x ``height``
    (default 384 x 288) and kept in memory: a ``synth_folder``'s pairs read once (decoding
    its PNGs for every item costs the data worker more CPU than the network's step;
    ``"cache": false`` reads them each time instead), or ``pool_size`` pairs of an
    on-the-fly source made once (seed ``part["seed"]`` if given)."""
    part = {"width": 384, "height": 288, **part}
    part.pop("augment", None)
    if part.get("source") == "synth_folder":
        folder = tracker_dataset(part, length=0, seed=seed)
        return CachedPairs(folder) if part.get("cache", True) else folder
    size = int(part["pool_size"])
    return CachedPairs(tracker_dataset(part, length=size, seed=int(part.get("seed", seed))))


def validation_config(data: dict) -> dict:
    """The ``data`` section for validation: ``data.val`` overrides, never augmented."""
    out = {k: v for k, v in data.items() if k not in ("val", "augment", "pool_size")}
    out.update(data.get("val", {}))
    return out
