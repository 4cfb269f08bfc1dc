"""The detection data of a training recipe: training photos, validation photos, and what
the model saw (for ``model.json``).

The ``data`` section of ``training/configs/detector.json``:
- ``source``: ``"synthetic"`` (photos made on the fly from ``train_seed``, see
  ``training.synthesis.datasets.DetectionDataset``) or ``"folder"`` (a ``lesion-train
  synth`` output folder named by ``folder``, read by ``FolderDetectionDataset``);
- ``val_seed``, ``val_photos``: the fixed synthetic validation photos (another seed);
- ``synth_config``: overrides of ``training.synthesis.detection.SynthConfig`` fields;
- ``hard_negatives`` (optional, with ``source: folder``): a ``lesion-train mine-negatives``
  JSON of that folder, for the crops' ``hard_negative`` share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from core.errors import DataError
from training.metrics import instance_classes

#: ``../shared/data`` next to the checkout (real photos; never copied into the repository).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAD_UFES = SHARED_DATA / "pad-ufes20-dev"


def synth_config(data_cfg: dict):  # -> training.synthesis.detection.SynthConfig
    """The SynthConfig of the recipe (defaults overridden by ``synth_config``)."""
    from training.synthesis.detection import SynthConfig

    overrides = dict(data_cfg.get("synth_config") or {})
    names = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise DataError(Path("config"), f"unknown synth_config fields: {sorted(unknown)}")
    for key, value in overrides.items():
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return SynthConfig(**overrides)


def detection_dataset(data_cfg: dict, *, length: int) -> Dataset:
    """Training photos: items {"image": uint8 (3, H, W), "class_map": (H, W), ...}."""
    source = data_cfg.get("source", "synthetic")
    from training.synthesis.sources import check_training_lesion_source

    lesions = (data_cfg.get("synth_config") or {}).get("lesion_source", "default")
    check_training_lesion_source(str(lesions), Path("config"))
    if source == "synthetic":
        from training.synthesis.datasets import DetectionDataset

        return DetectionDataset(length, int(data_cfg["train_seed"]), synth_config(data_cfg))
    if source == "folder":
        from training.synthesis.datasets import FolderDetectionDataset

        folder = Path(data_cfg["folder"])
        dataset = FolderDetectionDataset(folder)
        if len(dataset) == 0:
            raise DataError(folder, "synthetic folder holds no photos")
        return dataset
    raise DataError(Path("config"), f"unknown data source {source!r} (synthetic or folder)")


def hard_negatives(data_cfg: dict) -> dict[int, np.ndarray] | None:
    """{photo index: (N, 2) centroids} of the recipe's mined hard negatives, or None."""
    path = data_cfg.get("hard_negatives")
    if not path:
        return None
    from training.hard_negatives import read_hard_negatives

    return read_hard_negatives(Path(path))


@dataclass(frozen=True)
class ValidationPhoto:
    """One validation photo: image (H, W, 3) uint8 RGB, class_map (H, W) uint8 {0, 1, 2},
    instance_map (H, W) int32 (0 = none), classes {instance id: 1 benign | 2 malignant}."""

    image: np.ndarray = field(repr=False)
    class_map: np.ndarray = field(repr=False)
    instance_map: np.ndarray = field(repr=False)
    classes: dict[int, int]


@dataclass(frozen=True)
class ValidationSet:
    """Fixed validation photos, made once and kept in memory."""

    photos: tuple[ValidationPhoto, ...]

    def __iter__(self) -> Iterator[ValidationPhoto]:
        return iter(self.photos)

    def __len__(self) -> int:
        return len(self.photos)

    @classmethod
    def from_dataset(cls, dataset: Dataset, count: int) -> ValidationSet:
        """The first ``count`` items of a detection dataset."""
        photos = []
        for i in range(count):
            item = dataset[i]
            image = item["image"].permute(1, 2, 0).contiguous().numpy()
            class_map = np.asarray(item["class_map"], dtype=np.uint8)
            instance_map = np.asarray(item["instance_map"], dtype=np.int32)
            photos.append(
                ValidationPhoto(
                    image, class_map, instance_map, instance_classes(instance_map, class_map)
                )
            )
        return cls(tuple(photos))

    @classmethod
    def from_config(cls, data_cfg: dict) -> ValidationSet:
        """``val_photos`` synthetic photos made with ``val_seed``."""
        from training.synthesis.datasets import DetectionDataset

        count = int(data_cfg.get("val_photos", 6))
        seed = int(data_cfg["val_seed"])
        if seed == int(data_cfg.get("train_seed", -1)):
            raise DataError(Path("config"), "val_seed must differ from train_seed")
        return cls.from_dataset(DetectionDataset(count, seed, synth_config(data_cfg)), count)


def pad_ufes_holdout_patients() -> list[str]:
    """Patient ids of PAD-UFES-20 kept out of synthesis (empty when the data is absent)."""
    labels = PAD_UFES / "labels.csv"
    if not labels.is_file():
        return []
    from training.sources.splits import pad_ufes_holdout

    _, holdout = pad_ufes_holdout(labels)
    return sorted(holdout, key=lambda s: (len(str(s)), str(s)))


def data_summary(data_cfg: dict, *, epochs: int) -> dict:
    """What the model saw, for ``model.json``."""
    source = data_cfg.get("source", "synthetic")
    photos = int(data_cfg["photos_per_epoch"])
    fresh = bool(data_cfg.get("fresh_photos_per_epoch", False))
    summary: dict = {
        "kind": "synthetic body photos (real and procedural lesions blended onto bodies)",
        "source": source,
        "train_seed": data_cfg.get("train_seed"),
        "distinct_train_photos": photos * (epochs if fresh else 1),
        "val_seed": data_cfg.get("val_seed"),
        "val_photos": int(data_cfg.get("val_photos", 6)),
    }
    if source == "folder":
        summary["folder"] = str(data_cfg.get("folder"))
        if data_cfg.get("pool_command"):
            summary["pool_command"] = data_cfg["pool_command"]
    if data_cfg.get("hard_negatives"):
        import json

        path = Path(data_cfg["hard_negatives"])
        mined = json.loads(path.read_text(encoding="utf-8"))
        summary["hard_negatives"] = {
            "file": str(path),
            "mined_with": mined.get("model"),
            "min_score": mined.get("min_score"),
            "regions": sum(len(v) for v in mined.get("negatives", {}).values()),
        }
    try:
        summary["synth_config"] = _jsonable(dataclasses.asdict(synth_config(data_cfg)))
    except ImportError:
        pass
    summary["real_lesion_sources"] = {
        "pad-ufes20-dev": "../shared/data/pad-ufes20-dev (training patients only)"
        if PAD_UFES.is_dir()
        else "absent",
    }
    summary["pad_ufes_holdout_patients_excluded"] = pad_ufes_holdout_patients()
    return summary


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
