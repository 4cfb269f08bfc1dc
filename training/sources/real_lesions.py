"""Readers for folders of real single-lesion photos with their diagnoses.

Three published layouts are recognised automatically:

- **PAD-UFES-20**: a CSV (``labels.csv`` or ``metadata.csv``) with the columns
  ``patient_id``, ``diagnostic`` and ``file`` (path relative to the folder) or ``img_id``
  (file name searched in the folder and its subfolders).
- **ISIC / HAM10000**: a CSV with ``image_id`` and ``dx``; images ``<image_id>.jpg`` (or
  another photo suffix) anywhere under the folder. ``lesion_id``, when present, groups
  photos of one lesion.
- **Dermofit-style class folders**: one subfolder per diagnosis code (``MEL/``, ``BCC/``,
  ``ML/`` ...), photos anywhere below it. A file ``<stem>mask.png`` next to a photo is
  used as its lesion mask instead of the automatic one.

Diagnoses map to benign or malignant through :data:`training.sources.base.DIAGNOSIS_CLASS`.
"""

from __future__ import annotations

import csv
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import DataError, PhotoError
from core.io import SUPPORTED_SUFFIXES, load_photo
from training.sources.base import DIAGNOSIS_CLASS, LesionPatch
from training.sources.lesion_masks import MaskCache, crop_lesion

PAD_UFES, ISIC, CLASS_FOLDERS = "pad-ufes-20", "isic", "class-folders"
_MASK_SUFFIXES = ("mask", "_mask", "_segmentation")


@dataclass(frozen=True)
class LesionRecord:
    """One photo of the folder and what its table says about it.

    path: the photo file. diagnosis: a DIAGNOSIS_CLASS code. label: BENIGN or MALIGNANT.
    group: patient (PAD-UFES-20), lesion (HAM10000) or photo id, for grouped splits.
    diameter_mm: the larger recorded diameter, or None. mask_path: a given mask or None.
    """

    path: Path
    diagnosis: str
    label: int
    group: str
    diameter_mm: float | None = None
    mask_path: Path | None = None


class _Row(dict):
    """A CSV row (column -> text) that knows its line number in the file (``.line``)."""

    line: int = 0


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                rows.append(_Row(row))
                rows[-1].line = reader.line_num  # blank lines are skipped but counted
            return [c.strip() for c in (reader.fieldnames or [])], rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read table ({exc})") from exc


def _photos_under(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUPPORTED_SUFFIXES
        and not p.stem.lower().endswith(_MASK_SUFFIXES)
    )


def _diagnosis(value: str) -> str | None:
    code = value.strip().upper()
    return code if code in DIAGNOSIS_CLASS else None


def _float_or_none(value: str | None) -> float | None:
    """A positive finite number, None for an empty cell, 'nan' or <= 0; ValueError for text."""
    number = float(value) if value not in (None, "") else None
    return number if number is not None and np.isfinite(number) and number > 0 else None


def _diameters(row: dict[str, str]) -> list[float | None]:
    """diameter_1_mm, diameter_2_mm of a row; ValueError naming the column for text."""
    values = []
    for key in ("diameter_1_mm", "diameter_2_mm"):
        try:
            values.append(_float_or_none(row.get(key)))
        except ValueError:
            raise ValueError(f"{key} {row.get(key)!r} is not a number of millimetres") from None
    return values


def _line(row: dict[str, str], fallback: int) -> int:
    return getattr(row, "line", 0) or fallback


class _Collector:
    """Gathers records, raising on the first bad one or skipping it (and noting why)."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.records: list[LesionRecord] = []
        self.skipped: list[tuple[str, str]] = []

    def bad(self, path: Path, reason: str) -> None:
        if not self.skip_bad:
            raise DataError(path, reason)
        self.skipped.append((str(path), reason))


def _find_tables(root: Path) -> list[tuple[Path, str, list[str], list[dict[str, str]]]]:
    tables = []
    for path in sorted(root.glob("*.csv")):
        columns, rows = _read_csv(path)
        lower = {c.lower() for c in columns}
        if lower & {"image_id", "dx"}:
            tables.append((path, ISIC, columns, rows))
        elif lower & {"img_id", "diagnostic", "patient_id"}:
            tables.append((path, PAD_UFES, columns, rows))
        else:
            tables.append((path, "", columns, rows))
    return tables


def _require(path: Path, columns: list[str], needed: list[str]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} (has {', '.join(columns)})")


def _read_pad(root: Path, table: Path, columns: list[str], rows, out: _Collector) -> None:
    _require(table, columns, ["patient_id", "diagnostic"])
    if "file" not in columns and "img_id" not in columns:
        raise DataError(table, "missing column(s) file or img_id")
    by_name = None
    first_line: dict[str, int] = {}  # photo reference -> line that listed it first
    for index, row in enumerate(rows):
        number = _line(row, index + 2)
        code = _diagnosis(row.get("diagnostic") or "")
        if code is None:
            out.bad(table, f"line {number}: unknown diagnosis {row.get('diagnostic')!r}")
            continue
        patient = (row.get("patient_id") or "").strip()
        reference = (row.get("file") or "").strip() or (row.get("img_id") or "").strip()
        if not patient or not reference:
            empty = "patient_id" if not patient else "file/img_id"
            out.bad(table, f"line {number}: empty {empty}")
            continue
        if reference in first_line:
            out.bad(table, f"line {number}: {reference!r} listed twice (first on line "
                           f"{first_line[reference]})")  # fmt: skip
            continue
        first_line[reference] = number
        try:
            known = [d for d in _diameters(row) if d is not None]
        except ValueError as exc:
            out.bad(table, f"line {number}: {exc}")
            continue
        if (row.get("file") or "").strip():
            path = root / reference
        else:
            if by_name is None:
                by_name = {p.name: p for p in _photos_under(root)}
            path = by_name.get(reference, root / reference)
        out.records.append(
            LesionRecord(
                path=path,
                diagnosis=code,
                label=DIAGNOSIS_CLASS[code],
                group=f"patient:{patient}",
                diameter_mm=max(known) if known else None,
            )
        )


def _read_isic(root: Path, table: Path, columns: list[str], rows, out: _Collector) -> None:
    _require(table, columns, ["image_id", "dx"])
    by_stem = {p.stem: p for p in _photos_under(root)}
    first_line: dict[str, int] = {}
    for index, row in enumerate(rows):
        number = _line(row, index + 2)
        code = _diagnosis(row.get("dx") or "")
        image_id = (row.get("image_id") or "").strip()
        if code is None:
            out.bad(table, f"line {number}: unknown diagnosis {row.get('dx')!r}")
            continue
        if not image_id:
            out.bad(table, f"line {number}: empty image_id")
            continue
        if image_id in first_line:
            out.bad(table, f"line {number}: image_id {image_id!r} listed twice (first on line "
                           f"{first_line[image_id]})")  # fmt: skip
            continue
        first_line[image_id] = number
        path = by_stem.get(image_id, root / f"{image_id}.jpg")
        group = (row.get("lesion_id") or "").strip() or image_id
        out.records.append(
            LesionRecord(path=path, diagnosis=code, label=DIAGNOSIS_CLASS[code], group=group)
        )


def _read_class_folders(root: Path, out: _Collector) -> None:
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = _photos_under(folder)
        if not photos:
            continue
        code = _diagnosis(folder.name)
        if code is None:
            out.bad(folder, f"unknown diagnosis {folder.name!r} (class folder name)")
            continue
        for photo in photos:
            mask = next(
                (
                    candidate
                    for suffix in _MASK_SUFFIXES
                    for candidate in photo.parent.glob(f"{photo.stem}{suffix}.*")
                ),
                None,
            )
            out.records.append(
                LesionRecord(
                    path=photo,
                    diagnosis=code,
                    label=DIAGNOSIS_CLASS[code],
                    group=photo.stem,
                    mask_path=mask,
                )
            )


class RealLesionFolder:
    """A folder of real lesion photos as a LesionSource.

    ``folder[i]`` is a :class:`LesionPatch`: the photo cropped around its lesion with a
    skin margin of about one lesion radius on each side (RGB uint8) and its mask (bool),
    from the given mask file or the automatic segmentation (cached on disk by SHA-256).
    Recently used patches are also kept in memory.

    layout: PAD_UFES, ISIC or CLASS_FOLDERS. records: one per usable photo.
    skipped: (file, reason) of every row or photo left out when read with skip_bad=True.
    """

    def __init__(
        self,
        root: Path,
        layout: str,
        records: list[LesionRecord],
        skipped: list[tuple[str, str]],
        *,
        cache_folder: str | Path | None = None,
        memory_items: int = 256,
    ) -> None:
        self.root = root
        self.layout = layout
        self.records = tuple(records)
        self.skipped = list(skipped)
        self.mask_cache = MaskCache(cache_folder)
        self._memory: OrderedDict[int, LesionPatch] = OrderedDict()
        self._memory_items = memory_items

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> list[int]:
        """Class (BENIGN or MALIGNANT) of each record, without loading photos."""
        return [r.label for r in self.records]

    def subset(self, groups: set[str]) -> RealLesionFolder:
        """The records whose ``group`` is in ``groups`` (e.g. ``"patient:123"``)."""
        kept = [r for r in self.records if r.group in groups]
        return RealLesionFolder(
            self.root, self.layout, kept, self.skipped, cache_folder=self.mask_cache.folder
        )

    def full_mask(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole photo (H, W, 3) uint8 and its lesion mask (H, W) bool."""
        record = self.records[index]
        try:
            image = load_photo(record.path)
        except PhotoError as exc:
            raise DataError(record.path, f"bad photo: {exc.reason}") from exc
        if record.mask_path is not None:
            given = cv2.imread(str(record.mask_path), cv2.IMREAD_GRAYSCALE)
            if given is None or given.shape != image.shape[:2]:
                raise DataError(record.mask_path, "unreadable mask or size differs from photo")
            return image, given > 127
        return image, self.mask_cache.mask_for(record.path, image)

    def __getitem__(self, index: int) -> LesionPatch:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        if index in self._memory:
            self._memory.move_to_end(index)
            return self._memory[index]
        record = self.records[index]
        image, mask = self.full_mask(index)
        crop, crop_mask = crop_lesion(image, mask, margin=1.0)
        try:
            source = str(record.path.relative_to(self.root))
        except ValueError:
            source = str(record.path)
        patch = LesionPatch(
            image=crop,
            mask=crop_mask,
            label=record.label,
            diagnosis=record.diagnosis,
            source=source,
            diameter_mm=record.diameter_mm,
        )
        self._memory[index] = patch
        if len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)
        return patch


def read_lesion_folder(
    path: str | Path,
    *,
    skip_bad: bool = False,
    check_photos: bool = True,
    cache_folder: str | Path | None = None,
) -> RealLesionFolder:
    """Read a folder of lesion photos in one of the three layouts (detected automatically).

    Raises :class:`core.errors.DataError` naming the file for: a missing folder, an
    empty folder, a labels table without a needed column, an unknown diagnosis, a
    missing or corrupt photo (decoded with :func:`core.io.load_photo` when
    ``check_photos``). With ``skip_bad=True`` bad rows and photos are left out and listed
    in ``.skipped`` as (file, reason); a wrong table (missing column) still raises.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, "lesion folder not found")
    out = _Collector(skip_bad)
    tables = _find_tables(root)
    known = [t for t in tables if t[1]]
    if known:
        table, layout, columns, rows = known[0]
        (_read_isic if layout == ISIC else _read_pad)(root, table, columns, rows, out)
    elif any(p.is_dir() and _diagnosis(p.name) for p in root.iterdir()) or (
        not tables and any(p.is_dir() for p in root.iterdir())
    ):  # class folders; a table no layout fits beside e.g. images/ is the error to name
        layout = CLASS_FOLDERS
        _read_class_folders(root, out)
    elif tables:
        table, _, columns, _ = tables[0]
        header = ",".join(columns)
        hint = next(
            (f" (columns separated by {name}, not commas?)"
             for sep, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")) if sep in header),
            "",
        )  # fmt: skip
        raise DataError(
            table,
            "missing column(s): expected patient_id+diagnostic+file/img_id (PAD-UFES-20) "
            f"or image_id+dx (ISIC/HAM10000), has {', '.join(columns) or 'no header'}{hint}",
        )
    else:
        layout = ""
    if not out.records and not out.skipped:
        raise DataError(root, "empty folder: no labels table and no class folders with photos")
    records = []
    for record in out.records:
        if not record.path.is_file():
            out.bad(record.path, "photo listed in the table is missing")
            continue
        if check_photos:
            try:
                load_photo(record.path)
            except PhotoError as exc:
                out.bad(record.path, f"corrupt photo: {exc.reason}")
                continue
        records.append(record)
    if not records:
        raise DataError(root, f"no usable photos ({len(out.skipped)} skipped)")
    return RealLesionFolder(root, layout, records, out.skipped, cache_folder=cache_folder)
