"""``pixecom jobs``: the dead letters of jobs that failed for good, and resolving them.

Read and written as the application role (``dead_letters`` is a system table it may
SELECT and UPDATE), so operators need no owner credentials for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from pixecom_core.db.urls import app_conninfo
from pixecom_core.settings import Settings

#: Most dead letters listed at once; the oldest open ones first.
LIST_LIMIT = 200


@dataclass(frozen=True)
class DeadLetterLine:
    id: int
    task_name: str
    seller_id: str | None
    attempts: int
    failed_at: datetime
    resolved_at: datetime | None
    error: str


def list_dead_letters(settings: Settings, *, include_resolved: bool) -> list[DeadLetterLine]:
    """Open dead letters (all, with ``include_resolved``), oldest first, bounded."""
    query = (
        "SELECT id, task_name, seller_id::text, attempts, failed_at, resolved_at, error"
        " FROM dead_letters"
        + ("" if include_resolved else " WHERE resolved_at IS NULL")
        + " ORDER BY failed_at, id LIMIT %s"
    )
    with psycopg.connect(app_conninfo(settings)) as conn:
        rows = conn.execute(query, (LIST_LIMIT,)).fetchall()
    return [DeadLetterLine(*row) for row in rows]


def resolve_dead_letter(settings: Settings, dead_letter_id: int) -> bool:
    """Mark a dead letter handled; False when there is no such open one."""
    with psycopg.connect(app_conninfo(settings)) as conn:
        cursor = conn.execute(
            "UPDATE dead_letters SET resolved_at = now() WHERE id = %s AND resolved_at IS NULL",
            (dead_letter_id,),
        )
        return cursor.rowcount == 1
