"""Integrity check of a whole store: database, photo files and the rules between rows.

Errors mean the store is inconsistent; warnings are harmless leftovers (an orphan photo
file or a ``.partial`` file of an import that was killed before its row was written),
which :func:`remove_leftovers` deletes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from lesionviewer.store.db import sqlite_errors
from lesionviewer.store.migrations import LATEST_VERSION, schema_version
from lesionviewer.store.models import Problem
from lesionviewer.store.photos import PARTIAL_SUFFIX, PHOTOS_DIRNAME, file_sha256

if TYPE_CHECKING:
    from lesionviewer.store.repository import Store

_RULES: list[tuple[str, str, str]] = [
    (
        "observation-patient",
        "SELECT o.id FROM observation o JOIN lesion l ON l.id = o.lesion_id "
        "JOIN photo f ON f.id = o.photo_id JOIN visit v ON v.id = f.visit_id "
        "WHERE l.patient_id != v.patient_id",
        "observation {} belongs to a lesion of another patient than its photo",
    ),
    (
        "duplicate-observation",
        "SELECT lesion_id || ' on photo ' || photo_id FROM observation WHERE deleted = 0 "
        "GROUP BY lesion_id, photo_id HAVING COUNT(*) > 1",
        "lesion {} has more than one live observation",
    ),
    (
        "link-same-photo",
        "SELECT t.id FROM track_link t JOIN observation a ON a.id = t.observation_a "
        "JOIN observation b ON b.id = t.observation_b WHERE a.photo_id = b.photo_id",
        "track link {} joins two observations of one photo",
    ),
    (
        "link-patient",
        "SELECT t.id FROM track_link t JOIN observation a ON a.id = t.observation_a "
        "JOIN observation b ON b.id = t.observation_b JOIN lesion la ON la.id = a.lesion_id "
        "JOIN lesion lb ON lb.id = b.lesion_id WHERE la.patient_id != lb.patient_id",
        "track link {} joins lesions of two patients",
    ),
    (
        "analysis-observation",
        "SELECT o.id FROM observation o JOIN analysis a ON a.id = o.analysis_id "
        "WHERE a.photo_id != o.photo_id",
        "observation {} refers to an analysis of another photo",
    ),
    (
        "auto-without-analysis",
        "SELECT id FROM observation WHERE source = 'auto' AND analysis_id IS NULL",
        "automatic observation {} has no analysis",
    ),
]


def check_integrity(store: Store, *, verify_hashes: bool = True) -> list[Problem]:
    """Every problem found in an open store (empty list: consistent); see check_database."""
    with sqlite_errors(store.db_path):
        return check_database(store.db, store.data_dir, verify_hashes=verify_hashes)


def check_database(
    db: sqlite_utils.Database, data_dir: Path, *, verify_hashes: bool = True
) -> list[Problem]:
    """Every problem found (empty list: consistent).

    Runs PRAGMA integrity_check and foreign_key_check, checks the schema version, that
    every photo file exists (and, with ``verify_hashes``, that its SHA-256 matches), the
    rules between rows (no orphan or cross-patient observations or links), and lists
    photo files that no row refers to.
    """
    problems: list[Problem] = []
    for (message,) in db.execute("PRAGMA integrity_check").fetchall():
        if message != "ok":
            problems.append(Problem("error", "sqlite-integrity", str(message)))
    for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall():
        problems.append(
            Problem("error", "foreign-key", f"{table} row {rowid} refers to a missing {parent}")
        )
    version = schema_version(db)
    if version != LATEST_VERSION:
        problems.append(
            Problem("error", "schema-version", f"schema {version}, expected {LATEST_VERSION}")
        )
        return problems
    for kind, sql, template in _RULES:
        for (value,) in db.execute(sql).fetchall():
            problems.append(Problem("error", kind, template.format(value)))
    referenced: set[Path] = set()
    for photo_id, relative, sha256 in db.execute("SELECT id, file, sha256 FROM photo"):
        path = data_dir / relative
        referenced.add(path.resolve())
        if not path.is_file():
            problems.append(Problem("error", "photo-missing", f"photo {photo_id}: {relative}"))
        elif verify_hashes and file_sha256(path) != sha256:
            problems.append(
                Problem("error", "photo-changed", f"photo {photo_id}: {relative} SHA-256 differs")
            )
    problems.extend(_leftovers(data_dir, referenced))
    return problems


def _leftovers(data_dir: Path, referenced: set[Path]) -> list[Problem]:
    found = []
    photos_dir = data_dir / PHOTOS_DIRNAME
    if not photos_dir.is_dir():
        return found
    for path in sorted(photos_dir.rglob("*")):
        if not path.is_file() or path.resolve() in referenced:
            continue
        kind = "partial-file" if path.name.endswith(PARTIAL_SUFFIX) else "orphan-file"
        found.append(Problem("warning", kind, path.relative_to(data_dir).as_posix()))
    return found


def remove_leftovers(problems: list[Problem], data_dir: Path) -> int:
    """Delete the orphan and partial photo files a check found; returns how many."""
    removed = 0
    for problem in problems:
        if problem.kind in ("orphan-file", "partial-file"):
            (data_dir / problem.detail).unlink(missing_ok=True)
            removed += 1
    return removed


def errors_only(problems: list[Problem]) -> list[Problem]:
    """The problems with severity 'error'."""
    return [p for p in problems if p.severity == "error"]
