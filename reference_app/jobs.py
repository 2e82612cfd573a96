"""``pixecom jobs``: the dead letters of jobs that failed for good, and resolving them.

Run as the schema owner (``DATABASE_URL``), through the owner-only functions
``pixecom_dead_letters`` and ``pixecom_resolve_dead_letter`` (migration 0010): the app
role sees a seller's dead letters only in that seller's scope (issue 12 item 3), while an
operator needs every seller's, and those of no seller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from pixecom_core.db.urls import owner_conninfo
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
    with psycopg.connect(owner_conninfo(settings)) as conn:
        rows = conn.execute(
            "SELECT dead_letter_id, task_name, seller_id::text, attempts, failed_at,"
            " resolved_at, error FROM pixecom_dead_letters(%s, NULL, %s)",
            (include_resolved, LIST_LIMIT),
        ).fetchall()
    return [DeadLetterLine(*row) for row in rows]


def resolve_dead_letter(settings: Settings, dead_letter_id: int) -> bool:
    """Mark a dead letter handled; False when there is no such open one."""
    with psycopg.connect(owner_conninfo(settings)) as conn:
        row = conn.execute("SELECT pixecom_resolve_dead_letter(%s)", (dead_letter_id,)).fetchone()
    return bool(row and row[0])
