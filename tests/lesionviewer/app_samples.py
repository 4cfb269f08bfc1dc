"""Small hand-made photos, heatmaps and lesion marks for the app tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.io import save_rgb
from core.types import Detection, Lesion, LesionMatch, ModelInfo, Tracking
from lesionviewer.app.view_data import LesionMark, PhotoData

#: (cx, cy, radius, p_malignant) of the lesions painted on a sample photo
SPOTS = ((60, 50, 9, 0.1), (150, 110, 12, 0.85), (220, 60, 7, 0.3))


def skin_photo(width: int = 320, height: int = 200, *, shift: int = 0, seed: int = 0) -> np.ndarray:
    """An RGB uint8 'body' photo: skin tone, soft noise, dark round spots at SPOTS (+shift)."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (214, 170, 140)
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    for cx, cy, r, p in SPOTS:
        colour = (70, 40, 30) if p >= 0.5 else (140, 95, 70)
        cv2.circle(image, (cx + shift, cy), r, colour, -1, lineType=cv2.LINE_AA)
    return np.clip(image, 0, 255).astype(np.uint8)


def spot_heatmap(width: int = 320, height: int = 200, *, shift: int = 0, spots=None) -> np.ndarray:
    """float32 (H, W, 3) probabilities with lesion probability on the spots
    ((cx, cy, r, p), default SPOTS shifted right by ``shift``)."""
    heat = np.zeros((height, width, 3), np.float32)
    heat[..., 0] = 1.0
    if spots is None:
        spots = [(cx + shift, cy, r, p) for cx, cy, r, p in SPOTS]
    for cx, cy, r, p in spots:
        disk = np.zeros((height, width), np.uint8)
        cv2.circle(disk, (int(cx), int(cy)), int(r) + 2, 1, -1)
        m = disk.astype(bool)
        heat[m] = (0.1, 0.9 * (1 - p), 0.9 * p)
    return heat


def spot_marks(*, shift: int = 0, first_id: int = 1, labels=None) -> tuple[LesionMark, ...]:
    marks = []
    for i, (cx, cy, r, p) in enumerate(SPOTS):
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        contour = np.stack([cx + shift + r * np.cos(angles), cy + r * np.sin(angles)], 1)
        marks.append(
            LesionMark(
                observation_id=first_id + i,
                lesion_id=i + 1,
                label=labels[i] if labels else f"L{i + 1}",
                contour=contour,
                centroid=(float(cx + shift), float(cy)),
                bbox=(cx + shift - r, cy - r, cx + shift + r + 1, cy + r + 1),
                area_px=float(np.pi * r * r),
                score=0.99,
                p_malignant=p,
            )
        )
    return tuple(marks)


def sample_photo_data(
    folder: Path, *, photo_id: int = 1, shift: int = 0, name="a.png"
) -> PhotoData:
    path = Path(folder) / name
    save_rgb(path, skin_photo(shift=shift))
    return PhotoData(
        photo_id=photo_id,
        path=path,
        body_site="back",
        visit_label="2024-01-10",
        marks=spot_marks(shift=shift, first_id=photo_id * 10),
        heatmap=spot_heatmap(shift=shift),
        size=(320, 200),
    )


HANDMADE = ModelInfo("handmade", "0", "0" * 64)


def spot_detection(*, shift: int = 0, extra: tuple = (), grow: int = 0) -> Detection:
    """A Detection of the SPOTS (+shift), spot 2 grown by ``grow`` px, plus ``extra``
    (cx, cy, r, p) spots; lesion ids 1.."""
    spots = [
        (cx + shift, cy, r + (grow if i == 1 else 0), p) for i, (cx, cy, r, p) in enumerate(SPOTS)
    ]
    spots += list(extra)
    lesions = []
    for i, (cx, cy, r, p) in enumerate(spots):
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        contour = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round()
        lesions.append(
            Lesion(
                id=i + 1,
                centroid=(float(cx), float(cy)),
                bbox=(cx - r, cy - r, cx + r + 1, cy + r + 1),
                contour=contour.astype(np.int32),
                area_px=float(np.pi * r * r),
                score=0.99,
                p_malignant=float(p),
            )
        )
    heat = spot_heatmap(spots=spots)
    return Detection(heatmap=heat, lesions=tuple(lesions), model=HANDMADE)


NEW_SPOT = (280, 160, 8, 0.7)


def make_store_patient(data_dir: Path, folder: Path) -> dict:
    """A patient with two visits of one 'back' photo each, detected and tracked by hand:
    visit 2 has the three spots shifted by 6 px, spot L2 grown, and one new spot.

    Returns ids: patient, visits (v1, v2), photos (p1, p2).
    """
    from lesionviewer.app.heatmap_cache import save_heatmap
    from lesionviewer.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    img1, img2 = folder / "back_2024.png", folder / "back_2025.png"
    save_rgb(img1, skin_photo())
    photo2 = skin_photo(shift=6, seed=1)
    cv2.circle(photo2, NEW_SPOT[:2], NEW_SPOT[2], (60, 35, 25), -1, lineType=cv2.LINE_AA)
    cv2.circle(photo2, (SPOTS[1][0] + 6, SPOTS[1][1]), SPOTS[1][2] + 5, (70, 40, 30), -1)
    save_rgb(img2, photo2)
    det1 = spot_detection()
    det2 = spot_detection(shift=6, extra=(NEW_SPOT,), grow=5)
    matches = tuple(
        LesionMatch(
            a=i + 1,
            b=i + 1,
            confidence=0.9,
            area_ratio=ratio,
            delta_e=2.0,
            p_malignant_change=0.05 if i == 1 else 0.0,
            changed=i == 1,
        )
        for i, ratio in enumerate((1.0, 1.9, 1.0))
    )
    tracking = Tracking(
        flow=np.full((200, 320, 2), (6.0, 0.0), np.float32),
        lesions_a=det1.lesions,
        lesions_b=det2.lesions,
        matches=matches,
        new_in_b=(4,),
        gone_from_a=(),
        model=HANDMADE,
    )
    with Store.open(data_dir) as store:
        patient = store.add_patient("Sample Patient", record_number="R-17", birth_date="1961-02-03")
        v1 = store.add_visit(patient.id, "2024-03-01")
        v2 = store.add_visit(patient.id, "2025-03-04")
        p1 = store.import_photo(v1.id, img1, body_site="back").photo
        p2 = store.import_photo(v2.id, img2, body_site="back").photo
        store.save_detection(p1.id, det1)
        store.save_detection(p2.id, det2)
        save_heatmap(data_dir, p1.sha256, det1.heatmap)
        save_heatmap(data_dir, p2.sha256, det2.heatmap)
        store.save_tracking(p1.id, p2.id, tracking)
    return {"patient": patient.id, "visits": (v1.id, v2.id), "photos": (p1.id, p2.id)}


def tiny_model_folders(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Randomly initialised, very small detector and tracker model folders."""
    import torch

    from core.model_folder import save_model_folder
    from core.models.registry import build_model

    det_kwargs = {"widths": [8, 8, 8, 8], "depths": [1, 1, 1, 1], "decoder_widths": [8, 8, 8]}
    trk_kwargs = {
        "widths": [8, 8, 8],
        "depths": [1, 1, 1],
        "feature_dim": 8,
        "atrous_dilations": [2, 2],
        "estimator_width": 8,
        "working_size": 128,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        detector = build_model("lesion_fcn", **det_kwargs)
        tracker = build_model("lesion_tracker", **trk_kwargs)
    meta = {"name": "tiny-random", "version": "test"}
    det_meta = {**meta, "inference": {"closeup_side_px": 64}}  # close-ups analysed at 64 px
    det_dir, trk_dir = folder / "detector", folder / "tracker"
    save_model_folder(det_dir, detector, arch="lesion_fcn", arch_kwargs=det_kwargs, meta=det_meta)
    save_model_folder(trk_dir, tracker, arch="lesion_tracker", arch_kwargs=trk_kwargs, meta=meta)
    return det_dir, trk_dir
