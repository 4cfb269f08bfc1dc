"""Clinicians' corrections as labelled training data, in a PAD-UFES-20-like layout.

Output folder::

    labels.csv     file,img_id,patient_id,diagnostic,malignant,biopsed,region,fitspatrick,
                   diameter_1_mm,diameter_2_mm,lesion_label,observation_id,source,
                   class_source,outline
    labels.json    {"schema": 1, "lesions": [...same fields, outline as a list...],
                    "rejected": [{"photo": ..., "bbox": [...]}, ...]}
    images/corr_<observation id>.png        crop around the lesion (no metadata)
    images/corr_<observation id>_mask.png   its outline filled (255 = lesion)
    rejected/rej_<observation id>.png       crops of detections a clinician deleted
                                            (false positives: hard negatives)

Rows: every live observation a clinician drew (source 'manual') or re-classed. outline:
JSON [[x, y], ...] in crop pixels. patient_id is the store's number, no name.
diagnostic: the lesion's biopsy result when it is a known code (class_source
'biopsy', biopsed True); otherwise the clinician's class written as the generic code
NEV (benign) or MEL (malignant) with class_source 'clinician' and biopsed False -
readers that need the exact diagnosis must use only class_source == 'biopsy' rows.
``training.sources.real_lesions.read_lesion_folder`` reads this folder as PAD-UFES-20.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.io import load_photo
from lesionviewer.reports.deidentify import save_clean_image
from lesionviewer.store import Observation, Store

#: Diagnosis codes known to the training package's readers, and their class.
MALIGNANT_CODES = ("MEL", "BCC", "SCC", "IEC", "AKIEC")
BENIGN_CODES = ("NEV", "NV", "ML", "ACK", "AK", "SEK", "SK", "BKL", "DF", "VASC", "PYO")
COLUMNS = (
    "file",
    "img_id",
    "patient_id",
    "diagnostic",
    "malignant",
    "biopsed",
    "region",
    "fitspatrick",
    "diameter_1_mm",
    "diameter_2_mm",
    "lesion_label",
    "observation_id",
    "source",
    "class_source",
    "outline",
)


@dataclass(frozen=True)
class ExportSummary:
    """How many corrected lesions and rejected detections were written, and where."""

    out_dir: Path
    lesions: int
    rejected: int


def _crop_box(bbox: tuple[int, int, int, int], width: int, height: int) -> tuple[int, ...]:
    """The bbox grown by half its size on each side (at least 16 px), inside the photo."""
    x0, y0, x1, y1 = bbox
    margin = max(16, (x1 - x0) // 2, (y1 - y0) // 2)
    return (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(width, x1 + margin),
        min(height, y1 + margin),
    )


def _diagnosis(store: Store, obs: Observation) -> tuple[str, bool, str]:
    """(diagnostic code, biopsed, class_source) of a corrected observation."""
    result = store.get_lesion(obs.lesion_id).biopsy_result.strip().upper()
    if result in MALIGNANT_CODES + BENIGN_CODES:
        return result, True, "biopsy"
    return ("MEL" if obs.malignant else "NEV"), False, "clinician"


def export_corrections(store: Store, out_dir: str | Path) -> ExportSummary:
    """Write the store's corrections into ``out_dir`` (created; files overwritten)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    photo_cache: dict[int, np.ndarray] = {}

    def pixels(photo_id: int) -> np.ndarray:
        if photo_id not in photo_cache:
            photo_cache.clear()  # one photo at a time in memory
            photo_cache[photo_id] = load_photo(store.get_photo(photo_id).path)
        return photo_cache[photo_id]

    rows: list[dict] = []
    rejected: list[dict] = []
    corrections = sorted(
        store.corrected_observations(include_deleted=True), key=lambda o: (o.photo_id, o.id)
    )
    for obs in corrections:
        image = pixels(obs.photo_id)
        height, width = image.shape[:2]
        x0, y0, x1, y1 = _crop_box(obs.bbox, width, height)
        crop = image[y0:y1, x0:x1]
        photo = store.get_photo(obs.photo_id)
        if obs.deleted:
            if obs.source == "auto":
                (out / "rejected").mkdir(exist_ok=True)
                save_clean_image(crop, out / "rejected" / f"rej_{obs.id}.png")
                rejected.append(
                    {
                        "file": f"rejected/rej_{obs.id}.png",
                        "photo": photo.sha256,
                        "bbox": list(obs.bbox),
                        "p_malignant": obs.p_malignant,
                    }
                )
            continue
        outline = [[round(x - x0, 2), round(y - y0, 2)] for x, y in obs.outline]
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(np.array(outline)).astype(np.int32).reshape(-1, 1, 2)], 255)
        name = f"corr_{obs.id}.png"
        save_clean_image(crop, out / "images" / name)
        cv2.imwrite(str(out / "images" / f"corr_{obs.id}_mask.png"), mask)
        code, biopsed, class_source = _diagnosis(store, obs)
        patient = store.patient_of_photo(obs.photo_id)
        rows.append(
            {
                "file": f"images/{name}",
                "img_id": name,
                "patient_id": patient.id,
                "diagnostic": code,
                "malignant": int(code in MALIGNANT_CODES),
                "biopsed": biopsed,
                "region": photo.body_site.upper(),
                "fitspatrick": "",
                "diameter_1_mm": "",
                "diameter_2_mm": "",
                "lesion_label": obs.lesion_label,
                "observation_id": obs.id,
                "source": obs.source,
                "class_source": class_source,
                "outline": outline,
            }
        )
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "outline": json.dumps(row["outline"])})
    (out / "labels.json").write_text(
        json.dumps({"schema": 1, "lesions": rows, "rejected": rejected}, indent=2)
    )
    return ExportSummary(out, len(rows), len(rejected))
