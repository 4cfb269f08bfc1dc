"""A small filled store for report and export tests: one patient, two visits, a photo
each (the first with GPS EXIF), detections, a tracking and a clinician's correction."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lesionviewer.store import Store
from tests.lesionviewer.store_samples import detection, square_lesion, tracking

NAME, RECORD, BIRTH = "Zelda Quintessa", "MRN-774411", "1958-09-17"
W, H = 240, 160


def skin_photo(path: Path, seed: int, spots: list[tuple[int, int, int]], *, gps: bool) -> Path:
    """A skin-coloured JPEG with dark spots (x, y, r); optional EXIF with GPS."""
    rng = np.random.default_rng(seed)
    image = np.empty((H, W, 3), np.float32)
    image[:] = (214, 170, 140)
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    for x, y, r in spots:
        cv2.circle(image, (x, y), r, (90, 55, 40), -1, lineType=cv2.LINE_AA)
    pil = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    pil.save(path, exif=exif.tobytes())
    return path


def filled_store(
    data_dir: Path, work: Path, *, uncertain: tuple[int, ...] = (), new_score: float = 0.9
) -> tuple[Store, int, list[int]]:
    """Returns (store, patient id, [photo id visit 1, photo id visit 2]); the tracking's
    matches of the visit-1 lesion ids in ``uncertain`` have a low confidence; the new lesion
    of visit 2 (L3) was detected with score ``new_score``."""
    store = Store.open(data_dir, actor="tester")
    patient = store.add_patient(NAME, record_number=RECORD, birth_date=BIRTH, sex="F")
    lesions_a = [square_lesion(1, 40, 40, 16, p_malignant=0.2), square_lesion(2, 150, 60, 14)]
    lesions_b = [
        square_lesion(1, 42, 42, 18, p_malignant=0.7),
        square_lesion(2, 151, 61, 14),
        square_lesion(3, 100, 120, 12, score=new_score, p_malignant=0.1),
    ]
    photo_ids = []
    for i, (date, lesions) in enumerate([("2023-03-01", lesions_a), ("2024-03-01", lesions_b)]):
        visit = store.add_visit(patient.id, date)
        spots = [(int(le.centroid[0]), int(le.centroid[1]), 7) for le in lesions]
        path = skin_photo(work / f"visit{i}.jpg", i, spots, gps=True)
        photo = store.import_photo(visit.id, path, body_site="back").photo
        store.save_detection(photo.id, detection(lesions, width=W, height=H))
        photo_ids.append(photo.id)
    store.save_tracking(
        photo_ids[0],
        photo_ids[1],
        tracking(
            lesions_a,
            lesions_b,
            [(1, 1), (2, 2)],
            changed=(1,),
            width=W,
            height=H,
            uncertain=uncertain,
        ),
    )
    store.add_manual_observation(
        photo_ids[1], [(200, 20), (215, 20), (215, 35), (200, 35)], malignant=False
    )
    return store, patient.id, photo_ids
