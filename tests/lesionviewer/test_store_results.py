"""Detections, trackings, lesion identities, history and corrections in the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesionviewer.store import Store, StoreError
from tests.lesionviewer.store_samples import detection, square_lesion, tracking, write_photo


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "data", actor="tester") as opened:
        yield opened


def _two_visits(store: Store, tmp_path: Path) -> tuple[int, int, int]:
    """A patient with one photo at each of two visits: (patient id, photo A, photo B)."""
    patient = store.add_patient("Sample Patient")
    photos = []
    for i, date in enumerate(["2023-01-10", "2024-01-10"]):
        visit = store.add_visit(patient.id, date)
        path = write_photo(tmp_path / f"p{i}.png", i)
        photos.append(store.import_photo(visit.id, path, body_site="back").photo.id)
    return patient.id, photos[0], photos[1]


A_LESIONS = [square_lesion(1, 5, 5), square_lesion(2, 30, 10, p_malignant=0.8)]
B_LESIONS = [square_lesion(1, 7, 6), square_lesion(2, 31, 12), square_lesion(3, 50, 30)]


def test_save_detection_creates_lesions_and_records_model(store: Store, tmp_path: Path) -> None:
    patient_id, photo_a, _ = _two_visits(store, tmp_path)
    saved = store.save_detection(photo_a, detection(A_LESIONS))
    assert saved.analysis.model_name == "test-detector" and saved.analysis.kind == "detect"
    assert [o.lesion_label for o in saved.observations] == ["L1", "L2"]
    first = saved.observations[0]
    assert first.bbox == (5, 5, 13, 13) and first.area_px == 64.0 and first.source == "auto"
    assert first.outline[0] == (5.0, 5.0)
    assert saved.observations[1].malignant and not first.malignant
    assert [le.body_site for le in store.list_lesions(patient_id)] == ["back", "back"]


def test_detection_of_wrong_size_is_refused(store: Store, tmp_path: Path) -> None:
    _, photo_a, _ = _two_visits(store, tmp_path)
    with pytest.raises(StoreError, match="does not fit"):
        store.save_detection(photo_a, detection(A_LESIONS, width=32))
    assert store.list_analyses(photo_a) == []


def test_tracking_links_identities_and_new_lesions_get_next_labels(
    store: Store, tmp_path: Path
) -> None:
    patient_id, photo_a, photo_b = _two_visits(store, tmp_path)
    store.save_detection(photo_a, detection(A_LESIONS))
    store.save_detection(photo_b, detection(B_LESIONS))
    links = store.save_tracking(
        photo_a, photo_b, tracking(A_LESIONS, B_LESIONS, [(1, 1), (2, 2)], changed=(2,))
    )
    assert len(links) == 2 and [link.changed for link in links] == [False, True]
    labels_b = [o.lesion_label for o in store.list_observations(photo_b)]
    assert labels_b == ["L1", "L2", "L3"]  # L3 is new; no gap left by the absorbed ones
    assert [le.label for le in store.list_lesions(patient_id)] == ["L1", "L2", "L3"]
    lesion_1 = store.list_observations(photo_a)[0].lesion_id
    history = store.lesion_history(lesion_1)
    assert [h.visit.date for h in history] == ["2023-01-10", "2024-01-10"]
    assert history[0].link_from_previous is None
    assert history[1].link_from_previous.confidence == pytest.approx(0.9)
    record = store.open_patient(patient_id)
    assert len(record.visits) == 2 and len(record.links) == 2
    assert sum(len(v) for v in record.observations.values()) == 5


def test_lesions_outside_the_other_photo_are_neither_new_nor_gone(
    store: Store, tmp_path: Path
) -> None:
    from lesionviewer.app.store_adapter import compare_data, open_patient

    patient_id, photo_a, photo_b = _two_visits(store, tmp_path)
    store.save_detection(photo_a, detection(A_LESIONS))
    store.save_detection(photo_b, detection(B_LESIONS))
    # B's lesion 3 lies where photo A did not look; A's lesion 2 left photo B's frame
    store.save_tracking(
        photo_a, photo_b, tracking(A_LESIONS, B_LESIONS, [(1, 1)], outside_a=(3,), outside_b=(2,))
    )
    data = compare_data(open_patient(store, patient_id), photo_a, photo_b)
    assert [m.label for m in data.outside_view_of_a] == ["L4"]  # B's lesion 3
    assert [m.label for m in data.outside_view_of_b] == ["L2"]  # A's lesion 2
    assert [m.label for m in data.new_in_b] == ["L3"]  # B's lesion 2: truly new
    assert data.gone_from_a == ()
    # a later tracking of the same pair that sees everything replaces the verdict
    store.save_tracking(photo_a, photo_b, tracking(A_LESIONS, B_LESIONS, [(1, 1)]))
    again = compare_data(open_patient(store, patient_id), photo_a, photo_b)
    assert again.outside_view_of_a == again.outside_view_of_b == ()
    assert len(again.new_in_b) == 2 and [m.label for m in again.gone_from_a] == ["L2"]


def test_reanalysis_replaces_auto_but_keeps_corrections(store: Store, tmp_path: Path) -> None:
    _, photo_a, _ = _two_visits(store, tmp_path)
    lesions = [square_lesion(1, 5, 5), square_lesion(2, 30, 10), square_lesion(3, 45, 30)]
    first = store.save_detection(photo_a, detection(lesions)).observations
    deleted = store.delete_observation(first[1].id, reason="freckle, not a lesion")
    reclassed = store.set_class(first[2].id, "malignant")
    manual = store.add_manual_observation(
        photo_a, [(20, 35), (28, 35), (28, 43), (20, 43)], malignant=True
    )
    assert manual.lesion_label == "L4" and manual.area_px == pytest.approx(64.0)
    # re-analysis: lesion 1 moved slightly, 2 and 3 found again, one new, manual found too
    again = [
        square_lesion(1, 6, 5, score=0.95),
        square_lesion(2, 30, 10),
        square_lesion(3, 45, 30, p_malignant=0.1),
        square_lesion(4, 20, 35),
        square_lesion(5, 2, 35),
    ]
    saved = store.save_detection(photo_a, detection(again))
    live = {o.id: o for o in saved.observations}
    assert first[0].id in live and live[first[0].id].score == pytest.approx(0.95)
    assert live[first[0].id].lesion_label == "L1"
    assert deleted.id not in live
    assert store.get_observation(deleted.id).deleted
    assert live[reclassed.id].class_override == "malignant" and live[reclassed.id].malignant
    assert live[manual.id].source == "manual"
    assert sorted(o.lesion_label for o in live.values()) == ["L1", "L3", "L4", "L5"]
    assert len(store.list_observations(photo_a, include_deleted=True)) == 5
    actions = {(e.entity, e.action) for e in store.audit_log()}
    assert ("observation", "update") in actions and ("observation", "create") in actions


def test_reanalysis_drops_vanished_auto_observations(store: Store, tmp_path: Path) -> None:
    patient_id, photo_a, _ = _two_visits(store, tmp_path)
    store.save_detection(photo_a, detection(A_LESIONS))
    store.save_detection(photo_a, detection([A_LESIONS[0]]))
    assert [o.lesion_label for o in store.list_observations(photo_a)] == ["L1"]
    assert [le.label for le in store.list_lesions(patient_id)] == ["L1"]
    assert "replace" in [e.action for e in store.audit_log(entity="observation")]


def test_relink_and_split_survive_retracking(store: Store, tmp_path: Path) -> None:
    patient_id, photo_a, photo_b = _two_visits(store, tmp_path)
    store.save_detection(photo_a, detection(A_LESIONS))
    store.save_detection(photo_b, detection(B_LESIONS))
    wrong = tracking(A_LESIONS, B_LESIONS, [(1, 2), (2, 1)])  # swapped matches
    store.save_tracking(photo_a, photo_b, wrong)
    obs_a = store.list_observations(photo_a)
    obs_b = {o.detection_index: o for o in store.list_observations(photo_b)}
    assert obs_b[1].lesion_id == obs_a[1].lesion_id  # wrong identity
    split = store.split_track(obs_b[1].id)
    assert split.label == "L4"
    store.relink(obs_b[2].id, obs_a[1].lesion_id)
    store.relink(obs_b[1].id, obs_a[0].lesion_id)
    store.save_tracking(photo_a, photo_b, wrong)  # the machine insists
    obs_b = {o.detection_index: o for o in store.list_observations(photo_b)}
    assert obs_b[1].lesion_id == obs_a[0].lesion_id
    assert obs_b[2].lesion_id == obs_a[1].lesion_id
    assert {link.source for link in store.links_between(photo_a, photo_b)} == {"manual"}
    history = store.lesion_history(obs_a[0].lesion_id)
    assert [h.observation.id for h in history] == [obs_a[0].id, obs_b[1].id]
    assert history[1].link_from_previous.source == "manual"
    assert split.id not in [le.id for le in store.list_lesions(patient_id)]  # emptied, retired


def test_relink_refuses_conflicts(store: Store, tmp_path: Path) -> None:
    _, photo_a, _ = _two_visits(store, tmp_path)
    obs = store.save_detection(photo_a, detection(A_LESIONS)).observations
    with pytest.raises(StoreError, match="already outlined"):
        store.relink(obs[0].id, obs[1].lesion_id)
    other = store.add_patient("Second Case")
    visit = store.add_visit(other.id, "2024-01-01")
    photo = store.import_photo(visit.id, write_photo(tmp_path / "bob.png", 9)).photo
    foreign = store.save_detection(photo.id, detection(A_LESIONS)).observations[0]
    with pytest.raises(StoreError, match="another patient"):
        store.relink(obs[0].id, foreign.lesion_id)


def test_bad_corrections_are_refused(store: Store, tmp_path: Path) -> None:
    _, photo_a, _ = _two_visits(store, tmp_path)
    with pytest.raises(StoreError, match="bad outline"):
        store.add_manual_observation(photo_a, [(1, 1), (2, 2)], malignant=False)
    with pytest.raises(StoreError, match="outside"):
        store.add_manual_observation(photo_a, [(100, 100), (110, 100), (110, 110)], malignant=False)
    obs = store.save_detection(photo_a, detection(A_LESIONS)).observations[0]
    with pytest.raises(StoreError, match="class must be"):
        store.set_class(obs.id, "melanoma")


def test_lesion_notes_and_biopsy_are_audited(store: Store, tmp_path: Path) -> None:
    _, photo_a, _ = _two_visits(store, tmp_path)
    obs = store.save_detection(photo_a, detection(A_LESIONS)).observations[0]
    lesion = store.update_lesion(obs.lesion_id, biopsy_result="MEL", status="excised")
    assert lesion.biopsy_result == "MEL"
    log = store.audit_log(entity="lesion", entity_id=lesion.id)
    assert log[-1].after == {"biopsy_result": "MEL", "status": "excised"}
    # a lesion with a biopsy result is never silently dropped by re-analysis
    store.save_detection(photo_a, detection([]))
    assert store.get_lesion(lesion.id).biopsy_result == "MEL"
