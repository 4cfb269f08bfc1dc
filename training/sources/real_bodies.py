"""Real body photos from a folder, with skin masks read from files or made automatically.

Folder layout (photos directly in the folder, or in an ``images/`` subfolder):

    photo.jpg                 a body photo (any format core.io.load_photo reads)
    photo_mask.png            optional skin mask next to it (non-zero = skin), or
    masks/photo.png           the same in a ``masks/`` subfolder (same stem, any image suffix)
    scale.csv                 optional: columns ``file`` and ``mm_per_px``

Scale: ``scale.csv`` gives mm per pixel for the photos it lists. For the others it is
*estimated* by assuming the photo's longer side spans ``field_of_view_mm`` (default
400 mm: a typical clinical photo of a back, chest or thigh taken at about a metre).
For close-up tiles (e.g. total-body-photography crops of ~9 cm) pass the right field of
view or write a scale.csv; the estimate is only as good as that assumption.

Moles already on real bodies are not labelled (mole_instances is all zero).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError, PhotoError
from core.io import SUPPORTED_SUFFIXES, load_photo
from training.sources.base import BodyPhoto

#: Assumed span of a photo's longer side when no scale is given, in mm.
DEFAULT_FIELD_OF_VIEW_MM = 400.0
_MASK_SUFFIX = "_mask"
_WORK_SIDE = 512  # auto masks are computed at most this large, then resized


def auto_skin_mask(image: np.ndarray) -> np.ndarray:
    """Skin mask of an RGB photo from a colour-space skin model and morphology.

    image: (H, W, 3) uint8 RGB. Returns (H, W) bool, True on skin.

    Method: a broad YCrCb/HSV skin rule seeds a per-photo Gaussian model of skin
    chroma (Cr, Cb); pixels close to it under Mahalanobis distance, not too dark and
    not perfectly flat (padding, masked fills) are skin. Closing then takes in hair and
    moles on the skin, holes are filled and small islands dropped.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ycrcb = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    gray = y
    mean = cv2.blur(gray, (7, 7))
    local_var = cv2.blur(gray * gray, (7, 7)) - mean * mean
    textured = local_var > 0.6  # padding and masked-out fills are perfectly flat
    bright_enough = (y > 35) & (val > 40)
    seed = (
        (cr > 135) & (cr < 180) & (cb > 77) & (cb < 130)
        & ((hue < 25) | (hue > 165)) & (sat > 25) & (sat < 200)
        & bright_enough & textured
    )  # fmt: skip
    skin = seed
    if seed.sum() > 200:
        chroma = np.stack([cr[seed], cb[seed]], axis=1)
        centre = np.median(chroma, axis=0)
        cov = np.cov(chroma, rowvar=False) + np.eye(2) * 4.0
        inv = np.linalg.inv(cov)
        d = np.stack([cr - centre[0], cb - centre[1]], axis=-1)
        maha = np.einsum("...i,ij,...j->...", d, inv, d)
        skin = (maha < 9.0) & bright_enough & textured & (sat > 15)
    mask = skin.astype(np.uint8)
    side = max(small.shape[:2])
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    k = max(3, int(side * 0.02) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                              (k, k)))  # fmt: skip
    mask = _fill_holes(mask)
    mask = _drop_small(mask, 0.01 * mask.size)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # keep the outline on skin
    if scale < 1.0:
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return mask.astype(bool)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the image border."""
    inverse = (mask == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(inverse, connectivity=4)
    if count <= 1:
        return mask
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~np.isin(labels, border) & (inverse > 0)
    out = mask.copy()
    out[holes] = 1
    return out


def _drop_small(mask: np.ndarray, min_area: float) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels].astype(np.uint8)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise DataError(path, f"cannot read mask ({exc})") from exc
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        raise DataError(path, "mask is not a readable image")
    if mask.ndim == 3:
        mask = mask[..., 3] if mask.shape[2] == 4 else mask.max(axis=2)
    if mask.shape != shape:
        raise DataError(
            path, f"mask is {mask.shape[1]}x{mask.shape[0]} px but its photo is "
                  f"{shape[1]}x{shape[0]} px"
        )  # fmt: skip
    return mask > 0


def _read_scale(path: Path) -> dict[str, float]:
    """``file -> mm_per_px`` from scale.csv (the key is the file name, or its stem)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            if not {"file", "mm_per_px"} <= columns:
                missing = sorted({"file", "mm_per_px"} - columns)
                raise DataError(path, f"missing column(s) {', '.join(missing)}")
            scale: dict[str, float] = {}
            first_line: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                name = str(row["file"] or "").strip()
                if not name:
                    raise DataError(path, f"line {line}: empty file name")
                if name in first_line:
                    raise DataError(
                        path,
                        f"line {line}: {name!r} listed twice (first on line {first_line[name]})",
                    )
                first_line[name] = line
                try:
                    value = float(row["mm_per_px"])
                except (TypeError, ValueError):
                    raise DataError(
                        path, f"line {line}: mm_per_px {row['mm_per_px']!r} is not a number"
                    ) from None
                if not 0.0 < value < 100.0:
                    raise DataError(path, f"line {line}: mm_per_px {value} out of range")
                scale[name] = value
            return scale
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"not a readable CSV file ({exc})") from exc


class RealBodyFolder:
    """A folder of real body photos as a sequence of BodyPhoto (see the module docstring).

    Args:
        path: the folder.
        field_of_view_mm: assumed span of a photo's longer side when scale.csv does not
            list it.
        region: region recorded on every photo ("back", ..., or "unknown").

    Raises DataError naming the folder when it holds no photos, and naming the file for a
    malformed scale.csv or mask; reading a corrupt photo raises PhotoError naming it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        field_of_view_mm: float = DEFAULT_FIELD_OF_VIEW_MM,
        region: str = "unknown",
    ) -> None:
        root = Path(path)
        if not root.is_dir():
            raise DataError(root, "body folder not found")
        image_dir = root / "images" if (root / "images").is_dir() else root
        files = sorted(
            p
            for p in image_dir.iterdir()
            if p.is_file()
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and not p.stem.endswith(_MASK_SUFFIX)
        )
        if not files:
            raise DataError(root, "no body photos in folder")
        self.root = root
        self.files: tuple[Path, ...] = tuple(files)
        self.field_of_view_mm = float(field_of_view_mm)
        self.region = region
        scale_path = root / "scale.csv"
        self._scale = _read_scale(scale_path) if scale_path.is_file() else {}
        self._mask_dirs = [d for d in (image_dir / "masks", root / "masks") if d.is_dir()]
        self._auto_masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def mask_file(self, index: int) -> Path | None:
        """The mask file of photo ``index``, or None when it gets an automatic mask."""
        photo = self.files[index]
        beside = [photo.with_name(photo.stem + _MASK_SUFFIX + s) for s in (".png", ".bmp", ".tif")]
        for candidate in beside:
            if candidate.is_file():
                return candidate
        for folder in self._mask_dirs:
            for candidate in sorted(folder.glob(photo.stem + ".*")):
                if candidate.suffix.lower() in SUPPORTED_SUFFIXES:
                    return candidate
        return None

    def mm_per_px(self, index: int, shape: tuple[int, int]) -> float:
        """Scale of photo ``index`` of pixel size ``shape`` (H, W): scale.csv, else estimated."""
        photo = self.files[index]
        for key in (photo.name, photo.stem):
            if key in self._scale:
                return self._scale[key]
        return self.field_of_view_mm / max(shape)

    def __getitem__(self, index: int) -> BodyPhoto:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        photo_path = self.files[index]
        image = load_photo(photo_path)
        mask_path = self.mask_file(index)
        if mask_path is not None:
            mask = _read_mask(mask_path, image.shape[:2])
            source = f"{photo_path.name} (mask {mask_path.name})"
        else:
            if index not in self._auto_masks:
                self._auto_masks[index] = auto_skin_mask(image)
            mask = self._auto_masks[index]
            source = f"{photo_path.name} (automatic mask)"
        if not mask.any():
            raise PhotoError(photo_path, "no skin found in the photo (mask is empty)")
        return BodyPhoto(
            image=image,
            skin_mask=mask,
            mm_per_px=self.mm_per_px(index, image.shape[:2]),
            mole_instances=np.zeros(image.shape[:2], np.uint16),
            region=self.region,
            source=source,
        )
