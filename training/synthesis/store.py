"""The on-disk layout of a synthetic dataset written by ``lesion-train synth``.

```
DIR/manifest.json                 schema 1: kind, seed, n, config, files, per-sample metadata
DIR/images/000000.png|.jpg        detection photo (RGB; PNG, or JPEG quality 95)
DIR/labels/000000_class.png       uint8 class map {0 skin/background, 1 benign, 2 malignant}
DIR/labels/000000_instances.png   uint16 instance map (0 none, k = lesion id)
pairs: images/000000_a.*, 000000_b.*, labels/000000_{a,b}_{class,instances}.png,
DIR/flow/000000.npy               float32 (H, W, 2): A pixel (x, y) + flow = position in B
DIR/valid/000000.png              uint8, 255 where the A pixel is visible in B
```
Paths in the manifest are relative to DIR. Writing is deterministic (no timestamps), so the
same seed gives bit-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError
from training.synthesis.detection import DetectionSample, LesionRecord
from training.synthesis.pairs import PairSample

SCHEMA = 1


def _write_rgb(path: Path, image: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]), params):
        raise DataError(path, "could not be written")


def _write_gray(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(array)):
        raise DataError(path, "could not be written")


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a dataset image; DataError if missing or unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(path, "missing or unreadable image")
    return np.ascontiguousarray(image[..., ::-1])


def read_label(path: Path, dtype: type) -> np.ndarray:
    """A single-channel label PNG as ``dtype``; DataError if missing, unreadable or wrong depth."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(path, "missing or unreadable label image")
    if array.ndim != 2 or array.dtype != np.dtype(dtype):
        raise DataError(path, f"expected a single-channel {np.dtype(dtype).name} PNG")
    return array


def _lesions(records: tuple[LesionRecord, ...]) -> list[dict]:
    return [r.to_json() for r in records]


def write_detection(out: Path, index: int, sample: DetectionSample, image_ext: str) -> dict:
    """Write one detection sample under ``out``; returns its manifest entry."""
    stem = f"{index:06d}"
    files = {
        "image": f"images/{stem}{image_ext}",
        "class_map": f"labels/{stem}_class.png",
        "instance_map": f"labels/{stem}_instances.png",
    }
    _write_rgb(out / files["image"], sample.image)
    _write_gray(out / files["class_map"], sample.class_map)
    _write_gray(out / files["instance_map"], sample.instance_map)
    return {
        "index": index,
        **files,
        "mm_per_px": round(sample.mm_per_px, 6),
        "lesions": _lesions(sample.lesions),
    }


def write_pair(out: Path, index: int, sample: PairSample, image_ext: str) -> dict:
    """Write one tracking pair under ``out``; returns its manifest entry."""
    stem = f"{index:06d}"
    files = {
        "image_a": f"images/{stem}_a{image_ext}",
        "image_b": f"images/{stem}_b{image_ext}",
        "class_map_a": f"labels/{stem}_a_class.png",
        "class_map_b": f"labels/{stem}_b_class.png",
        "instance_map_a": f"labels/{stem}_a_instances.png",
        "instance_map_b": f"labels/{stem}_b_instances.png",
        "flow": f"flow/{stem}.npy",
        "valid": f"valid/{stem}.png",
    }
    _write_rgb(out / files["image_a"], sample.image_a)
    _write_rgb(out / files["image_b"], sample.image_b)
    for side in ("a", "b"):
        _write_gray(out / files[f"class_map_{side}"], getattr(sample, f"class_map_{side}"))
        _write_gray(out / files[f"instance_map_{side}"], getattr(sample, f"instance_map_{side}"))
    np.save(out / files["flow"], sample.flow.astype(np.float32))
    _write_gray(out / files["valid"], sample.valid.astype(np.uint8) * 255)
    return {
        "index": index,
        **files,
        "mm_per_px": round(sample.mm_per_px, 6),
        "lesions_a": _lesions(sample.lesions_a),
        "lesions_b": _lesions(sample.lesions_b),
        "correspondences": [list(c) for c in sample.correspondences],
        "new_in_b": list(sample.new_in_b),
        "gone_from_a": list(sample.gone_from_a),
        "changed": list(sample.changed),
        "only_in_a": list(sample.only_in_a),
        "only_in_b": list(sample.only_in_b),
    }


def make_dirs(out: Path, kind: str) -> None:
    for sub in ("images", "labels") + (("flow", "valid") if kind == "pairs" else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)


def write_manifest(out: Path, manifest: dict) -> Path:
    path = out / "manifest.json"
    path.write_text(json.dumps({"schema": SCHEMA, **manifest}, indent=1, sort_keys=True) + "\n")
    return path


def read_manifest(folder: Path, kind: str) -> dict:
    """The manifest of a dataset folder of ``kind`` ("detection" or "pairs"), checked."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise DataError(path, "no manifest.json: not a `lesion-train synth` output folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(path, f"must hold a JSON object, not {type(manifest).__name__}")
    if manifest.get("schema") != SCHEMA:
        raise DataError(path, f"unsupported schema {manifest.get('schema')!r}")
    if manifest.get("kind") != kind:
        raise DataError(path, f"holds {manifest.get('kind')!r} samples, not {kind!r}")
    if not isinstance(manifest.get("samples"), list):
        raise DataError(path, "no sample list")
    for index, entry in enumerate(manifest["samples"]):
        if not isinstance(entry, dict):
            raise DataError(path, f"sample {index} is not a JSON object")
    return manifest


def check_same_size(manifest: Path, index: int, arrays: dict[str, np.ndarray]) -> None:
    """DataError naming the manifest and sample when the named arrays differ in (H, W)."""
    sizes = {name: tuple(a.shape[:2]) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} {w}x{h}" for name, (h, w) in sizes.items())
        raise DataError(manifest, f"sample {index}: images and labels differ in size ({listed})")
