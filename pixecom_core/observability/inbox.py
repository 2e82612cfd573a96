"""How many payment webhooks wait, are retried or are parked, for ``/metrics``.

Issue 12 item 6: a delivery that cannot be parsed, or names a payment no order is known
for, sat ``DEFERRED`` or ``FAILED`` where only SQL found it. The worker's ``/metrics``
now reads, at scrape time, ``pixecom_inbox_states()`` (migration 0010): counts per state
and the arrival of the oldest, aggregates only, so no seller's row leaves its scope. The
function reads only the rows the inbox's partial indexes cover (waiting and parked
deliveries), never the processed ones, so a scrape stays cheap however large the inbox
grows. ``pixecom webhooks failed`` lists the deliveries themselves for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

#: The states a delivery waits or is parked in (PROCESSED ones are not counted here).
INBOX_STATES = ("RECEIVED", "DEFERRED", "FAILED")

_STATES = text("SELECT status, deliveries, oldest_received_at FROM pixecom_inbox_states()")


@dataclass(frozen=True)
class InboxState:
    """How many deliveries are in ``state``, and how long the oldest has been there."""

    state: str
    deliveries: int
    oldest_age_seconds: float


async def inbox_states(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None
) -> list[InboxState]:
    """Every state of :data:`INBOX_STATES`, zeros included, in that order."""
    async with sessions() as session:
        rows = (await session.execute(_STATES)).all()
    now = now or datetime.now(UTC)
    found = {
        row.status: InboxState(
            state=row.status,
            deliveries=int(row.deliveries),
            oldest_age_seconds=(
                max(0.0, (now - row.oldest_received_at).total_seconds())
                if row.oldest_received_at is not None
                else 0.0
            ),
        )
        for row in rows
    }
    return [found.get(state, InboxState(state, 0, 0.0)) for state in INBOX_STATES]


class InboxGauges:
    """The inbox's waiting and parked deliveries as gauges, labelled by state only."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Gauge(
            "pixecom_webhook_inbox_deliveries",
            "Payment webhook deliveries waiting to be processed (received), being retried "
            "(deferred) or parked for an operator (failed).",
            ["state"],
            registry=registry,
        )
        self.oldest_age = Gauge(
            "pixecom_webhook_inbox_oldest_age_seconds",
            "How long ago the oldest delivery in the state arrived (0 when there is none).",
            ["state"],
            registry=registry,
        )

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> list[InboxState]:
        """Read the counts from the database and set the gauges."""
        states = await inbox_states(sessions)
        for state in states:
            label = state.state.lower()
            self.deliveries.labels(label).set(state.deliveries)
            self.oldest_age.labels(label).set(state.oldest_age_seconds)
        return states


__all__ = ["INBOX_STATES", "InboxGauges", "InboxState", "inbox_states"]
