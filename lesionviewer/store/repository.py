"""The Store: the app's one way to read and change patients, photos, lesions and results.

One Store per thread (it wraps one SQLite connection); ``Store.open(data_dir)`` is cheap,
so worker threads open their own. Every change runs in one write transaction together
with its audit rows: it happens completely or not at all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from core.io import load_photo
from core.types import Detection, Tracking
from lesionviewer.store import audit, rows
from lesionviewer.store.db import (
    BUSY_TIMEOUT_MS,
    DB_NAME,
    connect,
    resolve_data_dir,
    sqlite_errors,
    utc_now,
    write_transaction,
)
from lesionviewer.store.errors import DuplicatePhotoError, NotFoundError, StoreError
from lesionviewer.store.migrations import migrate
from lesionviewer.store.models import (
    Analysis,
    AuditEntry,
    HistoryEntry,
    ImportResult,
    LesionRecord,
    Observation,
    Patient,
    PatientRecord,
    Photo,
    SavedDetection,
    TrackLink,
    Visit,
)
from lesionviewer.store.photos import (
    file_sha256,
    relative_photo_path,
    stored_suffix,
    write_atomically,
)

_LESION_FIELDS = ("body_site", "status", "biopsy_result", "notes")
_PATIENT_FIELDS = ("name", "record_number", "birth_date", "sex", "notes")


class Store:
    """Patients, visits, photos, lesions, observations, analyses and the audit log.

    Create with :meth:`open`. ``actor`` names who makes the changes in the audit log
    (default: the operating-system login). Use from one thread only.
    """

    def __init__(self, db: sqlite_utils.Database, data_dir: Path, *, actor: str) -> None:
        self.db = db
        self.data_dir = data_dir
        self.db_path = data_dir / DB_NAME
        self.actor = actor

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        actor: str | None = None,
        readonly: bool = False,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> Store:
        """Open (creating and migrating if needed) the store in ``data_dir``.

        data_dir: the app's ``--data-dir``; None -> ``$LESIONVIEWER_DATA_DIR`` -> the
        user data folder. readonly: open without writing (no migration; writes fail).
        busy_timeout_ms: how long a write waits for another program's lock.
        Raises StoreReadOnlyError / StoreLockedError / StoreError with path and reason.
        """
        folder = resolve_data_dir(data_dir)
        db_path = folder / DB_NAME
        if readonly and not db_path.exists():
            raise StoreError(db_path, "no store here (database file not found)")
        db = connect(db_path, readonly=readonly, busy_timeout_ms=busy_timeout_ms)
        try:
            if not readonly:
                migrate(db, db_path)
        except BaseException:
            db.close()
            raise
        return cls(db, folder, actor=actor or audit.default_actor())

    def close(self) -> None:
        """Close the connection (the Store cannot be used afterwards)."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several API calls into one all-or-nothing write transaction."""
        with write_transaction(self.db, self.db_path):
            yield

    # ------------------------------------------------------------------ helpers
    def _one(self, sql: str, params: Sequence[Any], what: str) -> dict[str, Any]:
        with sqlite_errors(self.db_path):
            found = list(self.db.query(sql, params))
        if not found:
            raise NotFoundError(self.db_path, f"no {what}")
        return found[0]

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with sqlite_errors(self.db_path):
            return list(self.db.query(sql, params))

    def _audit(
        self,
        action: str,
        entity: str,
        entity_id: int | None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        audit.record(
            self.db,
            actor=self.actor,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
        )

    def _insert(self, table: str, values: Mapping[str, Any]) -> int:
        """INSERT one row (inside a transaction) and audit it; returns its id."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
        )
        row_id = int(cursor.lastrowid)
        self._audit("create", table, row_id, None, values)
        return row_id

    def _update(self, table: str, row_id: int, changes: Mapping[str, Any]) -> None:
        """UPDATE one row (inside a transaction), auditing the before/after of the fields."""
        before_row = self._one(f"SELECT * FROM {table} WHERE id = ?", [row_id], f"{table} {row_id}")
        before = {k: before_row[k] for k in changes}
        if before == dict(changes):
            return
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*changes.values(), row_id])
        self._audit("update", table, row_id, before, changes)

    # ----------------------------------------------------------------- patients
    def add_patient(
        self,
        name: str,
        *,
        record_number: str = "",
        birth_date: str | None = None,
        sex: str = "",
        notes: str = "",
    ) -> Patient:
        """Create a patient. ``birth_date`` is ``YYYY-MM-DD`` or None."""
        if not name.strip():
            raise StoreError(self.db_path, "a patient needs a name")
        values = {
            "name": name.strip(),
            "record_number": record_number.strip(),
            "birth_date": birth_date,
            "sex": sex,
            "notes": notes,
            "created_at": utc_now(),
        }
        with self.transaction():
            patient_id = self._insert("patient", values)
        return self.get_patient(patient_id)

    def update_patient(self, patient_id: int, **changes: Any) -> Patient:
        """Change name, record_number, birth_date, sex or notes (audited)."""
        bad = set(changes) - set(_PATIENT_FIELDS)
        if bad:
            raise StoreError(self.db_path, f"cannot change patient fields {sorted(bad)}")
        with self.transaction():
            self._update("patient", patient_id, changes)
        return self.get_patient(patient_id)

    def get_patient(self, patient_id: int) -> Patient:
        return rows.patient(
            self._one("SELECT * FROM patient WHERE id = ?", [patient_id], f"patient {patient_id}")
        )

    def list_patients(self) -> list[Patient]:
        """All patients by name (case-insensitive)."""
        return [
            rows.patient(r)
            for r in self._all("SELECT * FROM patient ORDER BY name COLLATE NOCASE, id")
        ]

    def search_patients(self, text: str) -> list[Patient]:
        """Patients whose name or record number contains ``text`` (case-insensitive)."""
        pattern = (
            "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        sql = (
            "SELECT * FROM patient WHERE name LIKE ? ESCAPE '\\' "
            "OR record_number LIKE ? ESCAPE '\\' ORDER BY name COLLATE NOCASE, id"
        )
        return [rows.patient(r) for r in self._all(sql, [pattern, pattern])]

    # ------------------------------------------------------------------- visits
    def add_visit(self, patient_id: int, date: str, *, notes: str = "") -> Visit:
        """Create a visit of a patient on ``date`` (``YYYY-MM-DD``)."""
        self.get_patient(patient_id)
        values = {"patient_id": patient_id, "date": date, "notes": notes, "created_at": utc_now()}
        with self.transaction():
            visit_id = self._insert("visit", values)
        return self.get_visit(visit_id)

    def update_visit(self, visit_id: int, **changes: Any) -> Visit:
        """Change a visit's date or notes (audited)."""
        bad = set(changes) - {"date", "notes"}
        if bad:
            raise StoreError(self.db_path, f"cannot change visit fields {sorted(bad)}")
        with self.transaction():
            self._update("visit", visit_id, changes)
        return self.get_visit(visit_id)

    def get_visit(self, visit_id: int) -> Visit:
        return rows.visit(
            self._one("SELECT * FROM visit WHERE id = ?", [visit_id], f"visit {visit_id}")
        )

    def list_visits(self, patient_id: int) -> list[Visit]:
        """A patient's visits, oldest first."""
        sql = "SELECT * FROM visit WHERE patient_id = ? ORDER BY date, id"
        return [rows.visit(r) for r in self._all(sql, [patient_id])]

    # ------------------------------------------------------------------- photos
    def import_photo(
        self, visit_id: int, path: str | Path, *, body_site: str = "", closeup: bool = False
    ) -> ImportResult:
        """Store a copy of a photo file for a visit (``closeup``: a close-up of one lesion
        rather than a body region, see :attr:`Photo.closeup`).

        The file is decoded first (``core.io.load_photo``): a corrupt or unsupported
        image raises ``core.errors.PhotoError`` naming it, and nothing is stored. The
        copy is named by its SHA-256 and written atomically; the original is not touched.
        A file already imported for this visit is not stored again: the existing photo
        comes back with ``duplicate=True``. A file already stored for another visit is
        refused with :class:`DuplicatePhotoError` (the same picture cannot document two
        visits, and above all never two patients). width/height are after EXIF orientation.
        """
        source = Path(path)
        self.get_visit(visit_id)
        suffix = stored_suffix(source)
        sha256 = file_sha256(source)
        existing = self._all("SELECT * FROM photo WHERE sha256 = ?", [sha256])
        if existing:
            if int(existing[0]["visit_id"]) != int(visit_id):
                raise DuplicatePhotoError(
                    source, f"already imported for another visit (photo {existing[0]['id']})"
                )
            return ImportResult(rows.photo(existing[0], self.data_dir), True, source)
        pixels = load_photo(source)
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        del pixels
        relative = relative_photo_path(sha256, suffix)
        target = self.data_dir / relative
        write_atomically(source, target, sha256)
        values = {
            "visit_id": visit_id,
            "body_site": body_site,
            "sha256": sha256,
            "file": relative,
            "original_name": source.name,
            "width": width,
            "height": height,
            "size_bytes": target.stat().st_size,
            "imported_at": utc_now(),
            "closeup": int(bool(closeup)),
        }
        try:
            with self.transaction():
                photo_id = self._insert("photo", values)
        except BaseException:
            # no row refers to the copy: remove it unless another import just took it
            if not self._all("SELECT id FROM photo WHERE sha256 = ?", [sha256]):
                target.unlink(missing_ok=True)
            raise
        return ImportResult(self.get_photo(photo_id), False, source)

    def import_photos(
        self,
        visit_id: int,
        paths: Iterable[str | Path],
        *,
        body_site: str | Mapping[str, str] = "",
        closeup: bool = False,
    ) -> list[ImportResult]:
        """Import many files; ``body_site`` is one site for all or a mapping from each
        path (as given, str) to its site; ``closeup`` holds for all. Stops at the first bad
        file (PhotoError); the files before it stay imported (each import is complete on
        its own)."""
        results = []
        for path in paths:
            site = body_site.get(str(path), "") if isinstance(body_site, Mapping) else body_site
            results.append(self.import_photo(visit_id, path, body_site=site, closeup=closeup))
        return results

    def get_photo(self, photo_id: int) -> Photo:
        row = self._one("SELECT * FROM photo WHERE id = ?", [photo_id], f"photo {photo_id}")
        return rows.photo(row, self.data_dir)

    def list_photos(self, visit_id: int) -> list[Photo]:
        """A visit's photos in import order."""
        found = self._all("SELECT * FROM photo WHERE visit_id = ? ORDER BY id", [visit_id])
        return [rows.photo(r, self.data_dir) for r in found]

    def set_body_site(self, photo_id: int, body_site: str) -> Photo:
        """Tag a photo with its body site (audited)."""
        with self.transaction():
            self._update("photo", photo_id, {"body_site": body_site})
        return self.get_photo(photo_id)

    def patient_of_photo(self, photo_id: int) -> Patient:
        sql = (
            "SELECT p.* FROM patient p JOIN visit v ON v.patient_id = p.id "
            "JOIN photo f ON f.visit_id = v.id WHERE f.id = ?"
        )
        return rows.patient(self._one(sql, [photo_id], f"photo {photo_id}"))

    # ----------------------------------------------------------------- analyses
    def save_detection(self, photo_id: int, detection: Detection) -> SavedDetection:
        """Store a ``core.types.Detection`` of a photo as an analysis and observations.

        New lesions get new labels. Re-analysis replaces the photo's automatic
        observations (an old one that overlaps a new one keeps its id, lesion and
        links) but keeps every clinician correction: manual, re-classed and deleted
        observations stay, and new detections overlapping them are dropped.
        """
        from lesionviewer.store.analyses import save_detection

        return save_detection(self, photo_id, detection)

    def save_tracking(
        self, photo_a_id: int, photo_b_id: int, tracking: Tracking
    ) -> list[TrackLink]:
        """Store a ``core.types.Tracking`` from photo A (earlier) to photo B.

        Each match links the two observations (found by detection index, else by
        position) and gives B's observation the lesion identity of A's; lesions
        new in B keep their own new labels. Clinicians' re-links and splits win.
        Returns the auto links written.
        """
        from lesionviewer.store.analyses import save_tracking

        return save_tracking(self, photo_a_id, photo_b_id, tracking)

    def list_analyses(self, photo_id: int) -> list[Analysis]:
        """Analyses of a photo (detections on it, trackings from or to it), oldest first."""
        sql = "SELECT * FROM analysis WHERE photo_id = ? OR other_photo_id = ? ORDER BY id"
        return [rows.analysis(r) for r in self._all(sql, [photo_id, photo_id])]

    def get_analysis(self, analysis_id: int) -> Analysis:
        sql = "SELECT * FROM analysis WHERE id = ?"
        return rows.analysis(self._one(sql, [analysis_id], f"analysis {analysis_id}"))

    # ---------------------------------------------------------- lesions, reading
    def list_observations(
        self, photo_id: int, *, include_deleted: bool = False
    ) -> list[Observation]:
        """A photo's observations ordered by lesion label number."""
        sql = rows.OBSERVATION_SELECT + " WHERE o.photo_id = ?"
        if not include_deleted:
            sql += " AND o.deleted = 0"
        sql += " ORDER BY l.number, o.id"
        return [rows.observation(r) for r in self._all(sql, [photo_id])]

    def get_observation(self, observation_id: int) -> Observation:
        sql = rows.OBSERVATION_SELECT + " WHERE o.id = ?"
        found = self._one(sql, [observation_id], f"observation {observation_id}")
        return rows.observation(found)

    def list_lesions(self, patient_id: int) -> list[LesionRecord]:
        """A patient's lesion identities by label number."""
        sql = "SELECT * FROM lesion WHERE patient_id = ? ORDER BY number"
        return [rows.lesion(r) for r in self._all(sql, [patient_id])]

    def get_lesion(self, lesion_id: int) -> LesionRecord:
        sql = "SELECT * FROM lesion WHERE id = ?"
        return rows.lesion(self._one(sql, [lesion_id], f"lesion {lesion_id}"))

    def update_lesion(self, lesion_id: int, **changes: Any) -> LesionRecord:
        """Change body_site, status, biopsy_result or notes of a lesion (audited)."""
        bad = set(changes) - set(_LESION_FIELDS)
        if bad:
            raise StoreError(self.db_path, f"cannot change lesion fields {sorted(bad)}")
        with self.transaction():
            self._update("lesion", lesion_id, changes)
        return self.get_lesion(lesion_id)

    def lesion_history(self, lesion_id: int) -> list[HistoryEntry]:
        """The lesion's live observations across visits, ordered by visit date."""
        query = (
            "SELECT o.id FROM observation o JOIN photo f ON f.id = o.photo_id "
            "JOIN visit v ON v.id = f.visit_id WHERE o.lesion_id = ? AND o.deleted = 0 "
            "ORDER BY v.date, v.id, f.id"
        )
        entries = []
        for row in self._all(query, [lesion_id]):
            observation = self.get_observation(row["id"])
            photo = self.get_photo(observation.photo_id)
            links = self.links_into(observation.id)
            entries.append(
                HistoryEntry(
                    visit=self.get_visit(photo.visit_id),
                    photo=photo,
                    observation=observation,
                    link_from_previous=links[0] if links else None,
                )
            )
        return entries

    def links_into(self, observation_id: int) -> list[TrackLink]:
        """Live links that end at an observation (from an earlier one)."""
        sql = (
            rows.LINK_SELECT + " JOIN observation a ON a.id = t.observation_a "
            "WHERE t.observation_b = ? AND t.rejected = 0 AND a.deleted = 0 "
            "ORDER BY t.source = 'manual' DESC, t.id DESC"
        )
        return [rows.link(r) for r in self._all(sql, [observation_id])]

    def links_between(self, photo_a_id: int, photo_b_id: int) -> list[TrackLink]:
        """Live links from observations on photo A to observations on photo B."""
        sql = (
            rows.LINK_SELECT + " JOIN observation a ON a.id = t.observation_a "
            "JOIN observation b ON b.id = t.observation_b "
            "WHERE a.photo_id = ? AND b.photo_id = ? AND t.rejected = 0 "
            "AND a.deleted = 0 AND b.deleted = 0 ORDER BY t.id"
        )
        return [rows.link(r) for r in self._all(sql, [photo_a_id, photo_b_id])]

    def open_patient(self, patient_id: int) -> PatientRecord:
        """Everything shown when a patient is opened, in eight queries."""
        patient = self.get_patient(patient_id)
        visits = tuple(self.list_visits(patient_id))
        photo_rows = self._all(
            "SELECT f.* FROM photo f JOIN visit v ON v.id = f.visit_id "
            "WHERE v.patient_id = ? ORDER BY f.id",
            [patient_id],
        )
        photos: dict[int, list[Photo]] = {v.id: [] for v in visits}
        for r in photo_rows:
            photos[r["visit_id"]].append(rows.photo(r, self.data_dir))
        obs_rows = self._all(
            rows.OBSERVATION_SELECT + " WHERE l.patient_id = ? AND o.deleted = 0 "
            "ORDER BY o.photo_id, l.number",
            [patient_id],
        )
        observations: dict[int, list[Observation]] = {r["id"]: [] for r in photo_rows}
        for r in obs_rows:
            observations.setdefault(r["photo_id"], []).append(rows.observation(r))
        link_rows = self._all(
            rows.LINK_SELECT + " JOIN observation a ON a.id = t.observation_a "
            "JOIN lesion l ON l.id = a.lesion_id WHERE l.patient_id = ? AND t.rejected = 0 "
            "ORDER BY t.id",
            [patient_id],
        )
        out_of_view = self._all(
            "SELECT a.photo_id AS pa, a.other_photo_id AS pb, v.observation_id AS o "
            "FROM out_of_view v "
            "JOIN analysis a ON a.id = v.analysis_id JOIN photo f ON f.id = a.photo_id "
            "JOIN visit w ON w.id = f.visit_id WHERE w.patient_id = ? AND a.id = ("
            "SELECT MAX(b.id) FROM analysis b WHERE b.kind = 'track' "
            "AND b.photo_id = a.photo_id AND b.other_photo_id = a.other_photo_id)",
            [patient_id],
        )
        closeup_rows = self._all(
            "SELECT a.* FROM analysis a JOIN photo f ON f.id = a.photo_id "
            "JOIN visit w ON w.id = f.visit_id WHERE w.patient_id = ? AND f.closeup = 1 "
            "AND a.id = (SELECT MAX(b.id) FROM analysis b WHERE b.kind = 'detect' "
            "AND b.photo_id = a.photo_id)",
            [patient_id],
        )
        return PatientRecord(
            patient=patient,
            visits=visits,
            photos={k: tuple(v) for k, v in photos.items()},
            observations={k: tuple(v) for k, v in observations.items()},
            lesions=tuple(self.list_lesions(patient_id)),
            links=tuple(rows.link(r) for r in link_rows),
            out_of_view=frozenset((r["pa"], r["pb"], r["o"]) for r in out_of_view),
            closeup_analyses={r["photo_id"]: rows.analysis(r) for r in closeup_rows},
        )

    # -------------------------------------------------------------- corrections
    def add_manual_observation(
        self,
        photo_id: int,
        outline: Sequence[Sequence[float]],
        *,
        malignant: bool,
        lesion_id: int | None = None,
    ) -> Observation:
        """Add a lesion the machine missed, drawn as a closed polygon [(x, y), ...] in
        photo pixels (>= 3 vertices). It joins ``lesion_id`` or gets a new lesion/label."""
        from lesionviewer.store.corrections import add_manual_observation

        return add_manual_observation(self, photo_id, outline, malignant, lesion_id)

    def delete_observation(self, observation_id: int, *, reason: str = "") -> Observation:
        """Soft-delete a false detection (kept, hidden, audited, survives re-analysis)."""
        from lesionviewer.store.corrections import delete_observation

        return delete_observation(self, observation_id, reason)

    def set_class(self, observation_id: int, class_name: str | None) -> Observation:
        """Override the class: 'benign', 'malignant', or None to return to the model's."""
        from lesionviewer.store.corrections import set_class

        return set_class(self, observation_id, class_name)

    def relink(self, observation_id: int, lesion_id: int) -> Observation:
        """Re-link a wrong match: the observation becomes part of ``lesion_id`` (same
        patient, no other live observation of it on that photo); the wrong link is
        rejected and a manual link from the lesion's previous observation is made."""
        from lesionviewer.store.corrections import relink

        return relink(self, observation_id, lesion_id)

    def split_track(self, observation_id: int) -> LesionRecord:
        """Split a wrong track: this observation and the lesion's later ones become a
        new lesion with a new label; the link into this observation is rejected."""
        from lesionviewer.store.corrections import split_track

        return split_track(self, observation_id)

    def corrected_observations(self, *, include_deleted: bool = False) -> list[Observation]:
        """Observations a clinician drew or re-classed (and, optionally, deleted)."""
        sql = (
            rows.OBSERVATION_SELECT + " WHERE (o.source = 'manual' OR o.class_override IS NOT NULL"
        )
        sql += " OR o.deleted = 1)" if include_deleted else ") AND o.deleted = 0"
        sql += " ORDER BY o.id"
        return [rows.observation(r) for r in self._all(sql)]

    # -------------------------------------------------------------------- audit
    def audit_log(
        self, *, entity: str | None = None, entity_id: int | None = None
    ) -> list[AuditEntry]:
        """Audit rows oldest first, optionally of one table and/or one row id."""
        with sqlite_errors(self.db_path):
            return audit.entries(self.db, entity=entity, entity_id=entity_id)


def outline_json(points: Iterable[Sequence[float]]) -> str:
    """A polygon as compact JSON ``[[x, y], ...]`` (2 decimals)."""
    return json.dumps([[round(float(x), 2), round(float(y), 2)] for x, y in points])
