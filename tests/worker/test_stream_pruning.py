"""Issue 18 item 5: queue streams trimmed by age, never past a message still to be run;
and the whole daily maintenance (``pixecom db maintain``) idempotent.

Real Redis and the real taskiq stream broker: tasks are queued with ``kiq``, delivered to
the consumer group by the broker's own ``listen`` and acknowledged (or not) as a worker
would. Ages are measured from a ``now`` the test gives, so entries are "old" on any day.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis
from taskiq import AckableMessage, AsyncBroker

from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from reference_app import database
from reference_app.worker.broker import Queue, build_broker, kick_process_webhook, stream_name
from reference_app.worker.stream_retention import (
    parse_stream_id,
    trim_floor,
    trim_queue_streams,
)


@pytest.fixture
def isolated(settings: Settings) -> Settings:
    """Settings whose streams no other test (or worker) reads."""
    return settings.model_copy(
        update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:", "queue_retention_days": 7}
    )


@pytest.fixture
def client(isolated: Settings) -> Iterator[redis.Redis]:
    assert isolated.redis_url is not None
    conn = redis.Redis.from_url(isolated.redis_url, decode_responses=True)
    yield conn
    for key in conn.scan_iter(match=f"{isolated.redis_key_prefix}*"):
        conn.delete(key)
    conn.close()


@pytest.fixture
async def payments(isolated: Settings) -> AsyncIterator[AsyncBroker]:
    """The payments queue's broker; its startup declares the workers' consumer group."""
    broker = build_broker(isolated, Queue.PAYMENTS)
    await broker.startup()
    yield broker
    await broker.shutdown()


async def deliver(broker: AsyncBroker, count: int) -> list[AckableMessage]:
    """``count`` messages as a worker receives them (delivered, not acknowledged yet)."""
    received: list[AckableMessage] = []
    async with asyncio.timeout(10):
        async for message in broker.listen():
            assert isinstance(message, AckableMessage)
            received.append(message)
            if len(received) == count:
                break
    return received


async def ack(message: AckableMessage) -> None:
    await message.ack()  # type: ignore[misc]


def entry_ids(client: redis.Redis, stream: str) -> list[str]:
    return [str(entry_id) for entry_id, _fields in client.xrange(stream) or []]


def test_the_floor_is_the_oldest_of_cutoff_pending_and_unread() -> None:
    groups = [
        {"name": "a", "last-delivered-id": "100-4"},
        {"name": "b", "last-delivered-id": "90-0"},
    ]
    cutoff = (1_000, 0)
    assert trim_floor(cutoff, groups, {"a": None, "b": None}) == (90, 1)
    assert trim_floor(cutoff, groups, {"a": (50, 2), "b": None}) == (50, 2)
    assert trim_floor((10, 0), groups, {"a": (50, 2), "b": None}) == (10, 0)
    assert trim_floor(cutoff, [], {}) is None
    assert parse_stream_id("1733580000000-3") == (1733580000000, 3)


async def test_old_acknowledged_entries_go_pending_and_unread_ones_stay(
    isolated: Settings, client: redis.Redis, payments: AsyncBroker
) -> None:
    stream = stream_name(isolated, Queue.PAYMENTS)
    for inbox_id in (1, 2, 3):
        await kick_process_webhook(payments, inbox_id)
    first, second, third = await deliver(payments, 3)
    await ack(first)
    await ack(third)  # the second is still running on its worker: pending
    await kick_process_webhook(payments, 4)  # queued, not delivered to any worker yet
    e1, e2, e3, e4 = entry_ids(client, stream)
    month_later = datetime.now(UTC) + timedelta(days=30)  # every entry is past 7 days

    # Young entries are never trimmed, whatever their state.
    young = {t.stream: t for t in trim_queue_streams(isolated, now=datetime.now(UTC))}
    assert young[stream].trimmed == 0
    assert entry_ids(client, stream) == [e1, e2, e3, e4]

    trims = {t.stream: t for t in trim_queue_streams(isolated, now=month_later)}

    assert trims[stream].trimmed == 1
    assert trims[stream].floor == e2
    assert entry_ids(client, stream) == [e2, e3, e4]
    assert client.xpending(stream, f"{isolated.redis_key_prefix}workers")["pending"] == 1

    # Once acknowledged, the second goes too; the undelivered fourth still waits.
    await ack(second)
    after_ack = {t.stream: t for t in trim_queue_streams(isolated, now=month_later)}
    assert after_ack[stream].trimmed == 2
    assert entry_ids(client, stream) == [e4]
    again = {t.stream: t for t in trim_queue_streams(isolated, now=month_later)}
    assert again[stream].trimmed == 0
    assert parse_stream_id(e4) >= parse_stream_id(again[stream].floor or "0-0")

    # The fourth is delivered as usual after all.
    (fourth,) = await deliver(payments, 1)
    assert payments.formatter.loads(fourth.data).args == [4]


def test_a_stream_no_worker_group_reads_yet_is_left_alone(
    isolated: Settings, client: redis.Redis
) -> None:
    stream = stream_name(isolated, Queue.TRACKING)
    old = client.xadd(stream, {"data": "{}"}, id="1000-0")

    trims = {
        t.stream: t for t in trim_queue_streams(isolated, now=datetime.now(UTC) + timedelta(1))
    }

    assert trims[stream].floor is None and trims[stream].trimmed == 0
    assert entry_ids(client, stream) == [old]
    # Queues with no stream at all are reported, untouched.
    assert trims[stream_name(isolated, Queue.BACKFILL)].trimmed == 0


# -- the daily maintenance as a whole ------------------------------------------------------


@pytest.fixture(scope="module")
def maintained_database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """A database of its own: the maintenance drops partitions."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as db:
        yield db


async def test_the_daily_maintenance_reports_counts_and_a_second_run_changes_nothing(
    maintained_database: TestDatabase, isolated: Settings, client: redis.Redis
) -> None:
    settings = maintained_database.settings.model_copy(
        update={"redis_key_prefix": isolated.redis_key_prefix}
    )
    now = datetime(2046, 6, 15, 12, tzinfo=UTC)
    with psycopg.connect(maintained_database.owner_dsn, autocommit=True) as owner:
        owner.execute(
            "INSERT INTO dead_letters (task_name, task_id, error, attempts, failed_at,"
            " resolved_at) VALUES ('t', %s, 'e', 1, %s, %s)",
            (uuid.uuid4().hex, now - timedelta(days=90), now - timedelta(days=60)),
        )
    broker = build_broker(settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        await kick_process_webhook(broker, 7)
        (message,) = await deliver(broker, 1)
        await ack(message)
        await kick_process_webhook(broker, 8)  # waits for a worker: kept
    finally:
        await broker.shutdown()
    stream = stream_name(settings, Queue.PAYMENTS)

    first = database.maintain(settings, now=now)
    second = database.maintain(settings, now=now)

    assert first.changed
    assert first.pruned.dead_letters == 1
    assert "webhook_inbox_p204606" in first.partitions.created
    assert {t.stream: t.trimmed for t in first.streams}[stream] == 1
    assert len(entry_ids(client, stream)) == 1
    lines = database.describe_daily_maintenance(first)
    assert "deleted 1 resolved dead letter and 0 sync runs past retention" in lines
    assert f"queue stream {stream}: trimmed 1 entry (kept from {first.streams[0].floor})" in (lines)
    assert not second.changed
    assert database.describe_daily_maintenance(second)[0].startswith("nothing to do")
