"""The schema, built only by numbered migrations.

``MIGRATIONS`` is an ordered list of ``(number, sql)``. ``migrate`` applies every one
whose number is above the database's ``schema_version`` in one transaction each and
records it; a database newer than this program is refused. Never edit a released
migration: add the next number.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from lesionviewer.store.db import sqlite_errors, utc_now, write_transaction
from lesionviewer.store.errors import StoreError

_M1_PATIENTS_VISITS_PHOTOS = """
CREATE TABLE patient (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    record_number TEXT NOT NULL DEFAULT '',
    birth_date TEXT,
    sex TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX patient_name ON patient(name COLLATE NOCASE);
CREATE INDEX patient_record_number ON patient(record_number);

CREATE TABLE visit (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patient(id),
    date TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX visit_patient_date ON visit(patient_id, date);

CREATE TABLE photo (
    id INTEGER PRIMARY KEY,
    visit_id INTEGER NOT NULL REFERENCES visit(id),
    body_site TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    original_name TEXT NOT NULL,
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    size_bytes INTEGER NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE INDEX photo_visit ON photo(visit_id);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id INTEGER,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_entity ON audit(entity, entity_id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_M2_ANALYSES_LESIONS = """
CREATE TABLE analysis (
    id INTEGER PRIMARY KEY,
    photo_id INTEGER NOT NULL REFERENCES photo(id),
    other_photo_id INTEGER REFERENCES photo(id),
    kind TEXT NOT NULL CHECK (kind IN ('detect', 'track')),
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX analysis_photo ON analysis(photo_id);

CREATE TABLE lesion (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patient(id),
    number INTEGER NOT NULL CHECK (number > 0),
    label TEXT NOT NULL,
    body_site TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active',
    biopsy_result TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    created_analysis_id INTEGER REFERENCES analysis(id),
    created_at TEXT NOT NULL,
    UNIQUE (patient_id, number),
    UNIQUE (patient_id, label)
);

CREATE TABLE observation (
    id INTEGER PRIMARY KEY,
    lesion_id INTEGER NOT NULL REFERENCES lesion(id),
    photo_id INTEGER NOT NULL REFERENCES photo(id),
    analysis_id INTEGER REFERENCES analysis(id),
    detection_index INTEGER,
    source TEXT NOT NULL CHECK (source IN ('auto', 'manual')),
    outline TEXT NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    cx REAL NOT NULL, cy REAL NOT NULL,
    area_px REAL NOT NULL CHECK (area_px >= 0),
    score REAL NOT NULL CHECK (score BETWEEN 0 AND 1),
    p_malignant REAL NOT NULL CHECK (p_malignant BETWEEN 0 AND 1),
    class_override TEXT CHECK (class_override IN ('benign', 'malignant')),
    corrected INTEGER NOT NULL DEFAULT 0,
    link_locked INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX observation_photo ON observation(photo_id);
CREATE INDEX observation_lesion ON observation(lesion_id);

CREATE TABLE track_link (
    id INTEGER PRIMARY KEY,
    observation_a INTEGER NOT NULL REFERENCES observation(id) ON DELETE CASCADE,
    observation_b INTEGER NOT NULL REFERENCES observation(id) ON DELETE CASCADE,
    analysis_id INTEGER REFERENCES analysis(id),
    source TEXT NOT NULL CHECK (source IN ('auto', 'manual')),
    confidence REAL NOT NULL,
    area_ratio REAL,
    delta_e REAL,
    p_malignant_change REAL,
    changed INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (observation_a, observation_b)
);
CREATE INDEX track_link_b ON track_link(observation_b);
"""

# Lesions of one photo that a tracking analysis found outside the other photo's view (the
# camera moved): neither new nor gone for that pair of photos.
_M3_OUT_OF_VIEW = """
CREATE TABLE out_of_view (
    id INTEGER PRIMARY KEY,
    analysis_id INTEGER NOT NULL REFERENCES analysis(id),
    observation_id INTEGER NOT NULL REFERENCES observation(id) ON DELETE CASCADE,
    UNIQUE (analysis_id, observation_id)
);
CREATE INDEX out_of_view_observation ON out_of_view(observation_id);
"""

# Close-ups of one lesion (see core.closeup): analysed reduced, and the detection of such a
# photo carries the verdict on the photographed lesion: the region at the photo's centre
# (its detection index, as observation.detection_index; NULL when no region was found) and
# its p_malignant.
_M4_CLOSEUPS = """
ALTER TABLE photo ADD COLUMN closeup INTEGER NOT NULL DEFAULT 0 CHECK (closeup IN (0, 1));
ALTER TABLE analysis ADD COLUMN closeup_region INTEGER;
ALTER TABLE analysis ADD COLUMN closeup_p_malignant REAL
    CHECK (closeup_p_malignant IS NULL OR closeup_p_malignant BETWEEN 0 AND 1);
"""

# A close-up's verdict read without a region says how much lesion there was to read it
# from: the mean P(lesion) over the photo's central third (the region's score otherwise).
_M5_CLOSEUP_P_LESION = """
ALTER TABLE analysis ADD COLUMN closeup_p_lesion REAL
    CHECK (closeup_p_lesion IS NULL OR closeup_p_lesion BETWEEN 0 AND 1);
"""

#: (number, sql), in order. Append only.
MIGRATIONS: list[tuple[int, str]] = [
    (1, _M1_PATIENTS_VISITS_PHOTOS),
    (2, _M2_ANALYSES_LESIONS),
    (3, _M3_OUT_OF_VIEW),
    (4, _M4_CLOSEUPS),
    (5, _M5_CLOSEUP_P_LESION),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest applied migration number; 0 for an empty database."""
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _split_statements(sql: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.strip().splitlines():
        buffer += line + "\n"
        if buffer.strip().endswith(";") and sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def migrate(db: sqlite_utils.Database, path: Path, *, target: int | None = None) -> int:
    """Apply pending migrations up to ``target`` (default: the latest); return the version.

    Each migration runs in its own transaction together with its ``schema_version`` row,
    so a crash leaves the database at the previous version, never half-migrated.
    Raises StoreError if the database is newer than this program.
    """
    target = LATEST_VERSION if target is None else target
    with sqlite_errors(path):
        if schema_version(db) == target == LATEST_VERSION:
            return target  # current: opening stays read-only and cheap
        with write_transaction(db, path):
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        current = schema_version(db)
        if current > LATEST_VERSION:
            raise StoreError(
                path,
                f"database schema version {current} is newer than this program "
                f"(knows up to {LATEST_VERSION}); update LesionViewer",
            )
        for number, sql in MIGRATIONS:
            if number <= current or number > target:
                continue
            with write_transaction(db, path):
                # re-check under the write lock: another process may have migrated
                if schema_version(db) >= number:
                    continue
                for statement in _split_statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    [number, utc_now()],
                )
        return schema_version(db)
