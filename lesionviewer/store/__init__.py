"""The store: patients, visits, photos, lesions and results in SQLite plus photo files.

No Qt here. The app's views read and change everything through :class:`Store`::

    store = Store.open(data_dir)            # one per thread; cheap
    patient = store.add_patient("Name", record_number="R1", birth_date="1970-01-31")
    visit = store.add_visit(patient.id, "2024-05-01")
    [result] = store.import_photos(visit.id, [path], body_site="back")
    saved = store.save_detection(result.photo.id, detection)      # core.types.Detection
    links = store.save_tracking(photo_a.id, photo_b.id, tracking)  # core.types.Tracking
    store.lesion_history(lesion_id); store.open_patient(patient.id)
    store.add_manual_observation(...); store.delete_observation(...); store.set_class(...)
    store.relink(...); store.split_track(...); store.audit_log()

Whole-store operations: :func:`backup_store`, :func:`restore_store` (folder or .zip) and
:func:`check_integrity` (a list of :class:`Problem`; :func:`errors_only` keeps the
inconsistencies, :func:`remove_leftovers` deletes orphan files of killed imports).
Errors: :class:`StoreError` and subclasses (read-only, locked) carry the path and the
reason; photo import raises ``core.errors.PhotoError`` for corrupt or unsupported files.

Data folder: ``Store.open(data_dir)``; None -> ``$LESIONVIEWER_DATA_DIR`` -> the user data
folder (platformdirs, "LesionViewer"). Layout: ``lesionviewer.sqlite3`` (WAL) and
``photos/ab/cdef....ext``.
"""

from lesionviewer.store.backup import backup_store, restore_store
from lesionviewer.store.db import DATA_DIR_ENV, DB_NAME, resolve_data_dir
from lesionviewer.store.errors import (
    DuplicatePhotoError,
    NotFoundError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
)
from lesionviewer.store.integrity import check_integrity, errors_only, remove_leftovers
from lesionviewer.store.migrations import LATEST_VERSION, MIGRATIONS
from lesionviewer.store.models import (
    MALIGNANT_THRESHOLD,
    Analysis,
    AuditEntry,
    HistoryEntry,
    ImportResult,
    LesionRecord,
    Observation,
    Patient,
    PatientRecord,
    Photo,
    Problem,
    SavedDetection,
    TrackLink,
    Visit,
)
from lesionviewer.store.repository import Store

__all__ = [
    "DATA_DIR_ENV",
    "DB_NAME",
    "LATEST_VERSION",
    "MALIGNANT_THRESHOLD",
    "MIGRATIONS",
    "Analysis",
    "AuditEntry",
    "HistoryEntry",
    "ImportResult",
    "LesionRecord",
    "DuplicatePhotoError",
    "NotFoundError",
    "Observation",
    "Patient",
    "PatientRecord",
    "Photo",
    "Problem",
    "SavedDetection",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "TrackLink",
    "Visit",
    "backup_store",
    "check_integrity",
    "errors_only",
    "remove_leftovers",
    "resolve_data_dir",
    "restore_store",
]
