"""The webhook inbox's waiting and parked deliveries per state, read for ``/metrics``
through the aggregates-only function (issue 12 item 6)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.observability.inbox import INBOX_STATES, InboxGauges, InboxState, inbox_states
from pixecom_core.observability.metrics import label_values

Connection = psycopg.Connection[tuple[Any, ...]]


def deliver(conn: Connection, status: str, received_at: datetime) -> None:
    with conn.transaction():
        conn.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
        conn.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, body, status, received_at)"
            " VALUES ('fakepay', %s, 'b', %s, %s)",
            (f"evt_{uuid.uuid4().hex}", status, received_at),
        )


def by_state(states: list[InboxState]) -> dict[str, InboxState]:
    return {state.state: state for state in states}


async def test_deliveries_per_state_and_the_oldest(
    owner_conn: Connection, app_engine: AsyncEngine
) -> None:
    sessions = create_sessionmaker(app_engine)
    before = by_state(await inbox_states(sessions))
    now = datetime.now(UTC)
    deliver(owner_conn, "RECEIVED", now)
    deliver(owner_conn, "DEFERRED", now)
    deliver(owner_conn, "DEFERRED", now)
    deliver(owner_conn, "FAILED", now - timedelta(days=800))  # older than any other row
    deliver(owner_conn, "PROCESSED", now - timedelta(days=900))  # done: not counted

    registry = CollectorRegistry()
    after = by_state(await InboxGauges(registry).refresh(sessions))

    assert list(after) == list(INBOX_STATES)
    assert after["RECEIVED"].deliveries == before["RECEIVED"].deliveries + 1
    assert after["DEFERRED"].deliveries == before["DEFERRED"].deliveries + 2
    assert after["FAILED"].deliveries == before["FAILED"].deliveries + 1
    assert 800 * 86400 <= after["FAILED"].oldest_age_seconds < 800 * 86400 + 120
    assert registry.get_sample_value(
        "pixecom_webhook_inbox_deliveries", {"state": "failed"}
    ) == float(after["FAILED"].deliveries)
    assert registry.get_sample_value(
        "pixecom_webhook_inbox_oldest_age_seconds", {"state": "failed"}
    ) == (after["FAILED"].oldest_age_seconds)
    # State names only: no seller, gateway or event in any label.
    assert set(label_values(registry)) == {state.lower() for state in INBOX_STATES}


def test_counting_reads_only_waiting_and_parked_deliveries(owner_conn: Connection) -> None:
    """A grown inbox (processed deliveries, ~300K a day at scale B) is not scanned per
    scrape: the two queries of ``pixecom_inbox_states()`` (migration 0010) carry the
    predicates of the partial indexes ``ix_webhook_inbox_pending`` and
    ``ix_webhook_inbox_seller_problems``."""
    bulk = uuid.uuid4().hex
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, body, status, received_at)"
            " SELECT 'fakepay', 'evt_bulk_' || n || %s, 'b', 'PROCESSED',"
            " now() - n * interval '1 second' FROM generate_series(1, 20000) AS n",
            (bulk,),
        )
        owner_conn.execute("ANALYZE webhook_inbox")
        plans = [
            "\n".join(row[0] for row in owner_conn.execute(f"EXPLAIN {query}").fetchall())
            for query in (
                "SELECT status, count(*), min(received_at) FROM webhook_inbox"
                " WHERE status IN ('RECEIVED', 'DEFERRED') GROUP BY status",
                "SELECT count(*), min(received_at) FROM webhook_inbox"
                " WHERE status IN ('DEFERRED', 'FAILED') AND status = 'FAILED'",
            )
        ]
        # The inbox is partitioned by month (0019): each partition has its own copy of
        # the partial index, and an empty partition may be scanned for nothing.
        copies = {
            parent: {
                str(name)
                for (name,) in owner_conn.execute(
                    "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c"
                    " ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                    (parent,),
                ).fetchall()
            }
            for parent in ("ix_webhook_inbox_pending", "ix_webhook_inbox_seller_problems")
        }
        bulk_homes = {
            str(name)
            for (name,) in owner_conn.execute(
                "SELECT DISTINCT tableoid::regclass::text FROM webhook_inbox"
                " WHERE event_id LIKE 'evt\\_bulk\\_%%' || %s",
                (bulk,),
            ).fetchall()
        }
    assert any(name in plans[0] for name in copies["ix_webhook_inbox_pending"]), plans[0]
    assert any(name in plans[1] for name in copies["ix_webhook_inbox_seller_problems"]), plans[1]
    # The months holding the 20,000 processed deliveries are never scanned whole.
    scanned = {name for plan in plans for name in re.findall(r"Seq Scan on (\w+)", plan)}
    assert bulk_homes and not bulk_homes & scanned, (bulk_homes, plans)
