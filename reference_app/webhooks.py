"""``pixecom webhooks failed``: payment webhooks the worker could not process, for the
operator.

Issue 12 item 6: a delivery that cannot be parsed, or names a payment no order is known
for, is ``DEFERRED`` (retried) and then ``FAILED`` (parked). Its seller sees it in
``GET /problems`` when the worker could attribute it; the rest (and every seller's) are
listed here. Run as the schema owner (``DATABASE_URL``) through the owner-only function
``pixecom_inbox_problems`` (migration 0010): the app role cannot read deliveries outside a
seller's scope. Bodies and headers (shoppers' personal data) are never printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from pixecom_core.db.urls import owner_conninfo
from pixecom_core.settings import Settings

#: The default page; the function never answers more than 1000 (SCALE-4).
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class FailedDelivery:
    """One ``DEFERRED`` or ``FAILED`` delivery, without its body or headers."""

    inbox_id: int
    gateway: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    seller_id: str | None
    last_error: str | None


def list_failed_deliveries(
    settings: Settings, *, after: int | None = None, limit: int = PAGE_SIZE
) -> list[FailedDelivery]:
    """One page of deferred and failed deliveries of every seller and of none, by inbox id
    (oldest first), after inbox id ``after``."""
    with psycopg.connect(owner_conninfo(settings)) as conn:
        rows = conn.execute(
            "SELECT inbox_id, gateway, event_id, event_type, status, attempts, received_at,"
            " next_attempt_at, seller_id::text, last_error"
            " FROM pixecom_inbox_problems(%s, %s)",
            (after, max(1, min(limit, MAX_PAGE_SIZE))),
        ).fetchall()
    return [FailedDelivery(*row) for row in rows]
