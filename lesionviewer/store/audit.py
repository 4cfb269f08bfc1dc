"""The append-only audit log: every change the store makes writes one row here.

Rows are written in the same transaction as the change they describe. Triggers made by
migration 1 refuse UPDATE and DELETE on the table, so the log can only grow.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import sqlite_utils

from lesionviewer.store.db import utc_now
from lesionviewer.store.models import AuditEntry


def default_actor() -> str:
    """The operating-system login of the user running the app ('unknown' if none)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no login name in some containers/services
        return "unknown"


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record(
    db: sqlite_utils.Database,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Append one audit row (call inside the change's transaction)."""
    db.execute(
        "INSERT INTO audit (at, actor, action, entity, entity_id, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [utc_now(), actor, action, entity, entity_id, _dump(before), _dump(after)],
    )


def entries(
    db: sqlite_utils.Database,
    *,
    entity: str | None = None,
    entity_id: int | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Audit rows, oldest first, optionally for one entity type and/or one row id."""
    where, params = [], []
    if entity is not None:
        where.append("entity = ?")
        params.append(entity)
    if entity_id is not None:
        where.append("entity_id = ?")
        params.append(entity_id)
    sql = "SELECT * FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        AuditEntry(
            id=row["id"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            entity=row["entity"],
            entity_id=row["entity_id"],
            before=None if row["before"] is None else json.loads(row["before"]),
            after=None if row["after"] is None else json.loads(row["after"]),
        )
        for row in db.query(sql, params)
    ]
