"""The open-patient benchmark helper builds its store and times both readers."""

from __future__ import annotations

from pathlib import Path

from lesionviewer.store import Store
from lesionviewer.store.bench_support import bench_open_patient, build_bench_store


def test_bench_store_and_timing(tmp_path: Path) -> None:
    patient_id = build_bench_store(
        tmp_path / "bench", visits=3, photos_per_visit=2, lesions_per_photo=3
    )
    with Store.open(tmp_path / "bench") as store:
        record = store.open_patient(patient_id)
        assert len(record.visits) == 3 and len(record.links) == 2 * 2 * 3
        lesion = record.lesions[0]
        assert len(store.lesion_history(lesion.id)) == 3  # tracked through every visit
        assert len(record.lesions) == 2 * 3
    timing = bench_open_patient(tmp_path / "bench", patient_id, repeats=3)
    assert (timing.visits, timing.photos, timing.observations) == (3, 6, 18)
    assert timing.api_median_s > 0 and timing.plain_sqlite_median_s > 0
    assert timing.ratio == timing.api_median_s / timing.plain_sqlite_median_s
