"""Benchmark helper for issue 5's figure: time to open a patient with 10 visits of 5
photos each through the Store API, as a ratio to reading the same rows with plain
sqlite3. ``lesionviewer.bench.gui`` calls :func:`bench_open_patient`.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.types import Detection, Lesion, LesionMatch, ModelInfo, Tracking
from lesionviewer.store.db import DB_NAME
from lesionviewer.store.repository import Store

_MODEL = ModelInfo("bench-model", "0", "0" * 64)
_W, _H = 96, 64


@dataclass(frozen=True)
class OpenPatientTiming:
    """Medians in seconds over ``repeats`` runs, and api / plain."""

    visits: int
    photos: int
    observations: int
    api_median_s: float
    plain_sqlite_median_s: float
    ratio: float
    repeats: int


def _lesion(index: int, rng: np.random.Generator) -> Lesion:
    cx, cy = 8 + (index % 8) * 10 + rng.uniform(-1, 1), 10 + (index // 8) * 20
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    contour = np.stack([cx + 3 * np.cos(angles), cy + 3 * np.sin(angles)], 1).round()
    return Lesion(
        id=index + 1,
        centroid=(float(cx), float(cy)),
        bbox=(int(cx - 3), int(cy - 3), int(cx + 4), int(cy + 4)),
        contour=contour.astype(np.int32),
        area_px=28.0,
        score=float(rng.uniform(0.5, 1.0)),
        p_malignant=float(rng.uniform(0, 1)),
    )


def build_bench_store(
    data_dir: str | Path,
    *,
    visits: int = 10,
    photos_per_visit: int = 5,
    lesions_per_photo: int = 8,
    seed: int = 0,
) -> int:
    """Fill a new store: one patient, ``visits`` x ``photos_per_visit`` small photos, each
    detected (``lesions_per_photo`` lesions) and tracked to the same site's photo of the
    previous visit. Returns the patient id."""
    rng = np.random.default_rng(seed)
    folder = Path(data_dir)
    sources = folder.parent / (folder.name + "-sources")
    sources.mkdir(parents=True, exist_ok=True)
    with Store.open(folder, actor="bench") as store:
        patient = store.add_patient("Bench Patient", record_number="BENCH-1")
        previous: list[tuple[int, tuple[Lesion, ...]]] = []
        for v in range(visits):
            visit = store.add_visit(patient.id, f"{2015 + v}-01-01")
            current = []
            for p in range(photos_per_visit):
                path = sources / f"v{v}_p{p}.png"
                pixels = rng.integers(0, 256, (_H, _W, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path)
                photo = store.import_photo(visit.id, path, body_site=f"site{p}").photo
                lesions = tuple(_lesion(i, rng) for i in range(lesions_per_photo))
                heatmap = np.zeros((_H, _W, 3), np.float32)
                store.save_detection(photo.id, Detection(heatmap, lesions, _MODEL))
                current.append((photo.id, lesions))
                if previous:
                    before_id, before = previous[p]
                    matches = tuple(
                        LesionMatch(le.id, le.id, 0.9, 1.0, 1.0, 0.0, False) for le in lesions
                    )
                    tracking = Tracking(
                        np.zeros((_H, _W, 2), np.float32), before, lesions, matches, (), (), _MODEL
                    )
                    store.save_tracking(before_id, photo.id, tracking)
            previous = current
        return patient.id


_PLAIN_QUERIES = (
    "SELECT * FROM patient WHERE id = :p",
    "SELECT * FROM visit WHERE patient_id = :p ORDER BY date, id",
    "SELECT f.* FROM photo f JOIN visit v ON v.id = f.visit_id WHERE v.patient_id = :p",
    "SELECT o.*, l.label FROM observation o JOIN lesion l ON l.id = o.lesion_id "
    "WHERE l.patient_id = :p AND o.deleted = 0",
    "SELECT * FROM lesion WHERE patient_id = :p ORDER BY number",
    "SELECT t.* FROM track_link t JOIN observation a ON a.id = t.observation_a "
    "JOIN lesion l ON l.id = a.lesion_id WHERE l.patient_id = :p AND t.rejected = 0",
)


def _plain_read(conn: sqlite3.Connection, patient_id: int) -> int:
    return sum(len(conn.execute(sql, {"p": patient_id}).fetchall()) for sql in _PLAIN_QUERIES)


def bench_open_patient(
    data_dir: str | Path, patient_id: int | None = None, *, repeats: int = 20
) -> OpenPatientTiming:
    """Median time of ``Store.open_patient`` vs the same rows read with plain sqlite3
    (both on an already open connection, after one warm-up run each). Builds the bench
    store first when ``data_dir`` holds none."""
    folder = Path(data_dir)
    if patient_id is None:
        patient_id = build_bench_store(folder) if not (folder / DB_NAME).exists() else 1
    with Store.open(folder) as store:
        record = store.open_patient(patient_id)
        api = []
        for _ in range(repeats):
            start = time.perf_counter()
            store.open_patient(patient_id)
            api.append(time.perf_counter() - start)
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        _plain_read(conn, patient_id)
        plain = []
        for _ in range(repeats):
            start = time.perf_counter()
            _plain_read(conn, patient_id)
            plain.append(time.perf_counter() - start)
    finally:
        conn.close()
    api_median, plain_median = statistics.median(api), statistics.median(plain)
    return OpenPatientTiming(
        visits=len(record.visits),
        photos=sum(len(v) for v in record.photos.values()),
        observations=sum(len(v) for v in record.observations.values()),
        api_median_s=api_median,
        plain_sqlite_median_s=plain_median,
        ratio=api_median / plain_median,
        repeats=repeats,
    )
