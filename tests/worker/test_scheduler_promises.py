"""The scheduler's promises (SCALE-5; issue 18 item 8), each asserted on the messages it
leaves in the real taskiq streams while :func:`~reference_app.worker.scheduler.tick` runs
on a simulated clock against real PostgreSQL and Redis:

- each tier's sync lands on its own queue (``stats-high`` / ``stats-medium`` /
  ``stats-low``), exactly its tier's interval apart;
- the restatement sweep re-reads 28 days, once a day per seller, on ``stats-low``;
- the tracking refresh is queued every 6 hours per seller, and not in between;
- a slot claimed by one scheduler is not queued again by a second one ticking at the same
  instant.

The module has a database of its own, so the scheduler's directory holds exactly one
seller per tier.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import AsyncBroker, TaskiqMessage

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import SYNC_TASK
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from reference_app.worker.broker import REFRESH_TRACKING, Queue, build_broker, stream_name
from reference_app.worker.scheduler import tick
from tests.db.tenant_rows import insert_seller, seller_scope

#: The simulated clock's origin: a fixed midnight, so no test depends on today's date.
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

#: The promise, written out rather than read from the code under test.
TIER_QUEUE = {
    SellerTier.HIGH: Queue.STATS_HIGH,
    SellerTier.MEDIUM: Queue.STATS_MEDIUM,
    SellerTier.LOW: Queue.STATS_LOW,
}
TIER_INTERVAL_SETTING = {
    SellerTier.HIGH: "sync_interval_high_seconds",
    SellerTier.MEDIUM: "sync_interval_medium_seconds",
    SellerTier.LOW: "sync_interval_low_seconds",
}
#: Meta restates insights for up to 28 days: the daily sweep re-reads that many.
SWEEP_DAYS = 28
TRACKING_EVERY = timedelta(hours=6)


@dataclass(frozen=True)
class Queued:
    """One message the scheduler queued: at which simulated instant, on which queue, which
    task with which arguments."""

    at: datetime
    queue: Queue
    task_name: str
    args: tuple[object, ...]

    @property
    def seller_id(self) -> uuid.UUID:
        """The seller the task is for (every scheduled task's first argument)."""
        return uuid.UUID(str(self.args[0]))


@pytest.fixture(scope="module")
def scheduler_database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """A migrated database of this module's own: the directory is this module's sellers."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as db:
        yield db


@pytest.fixture(scope="module")
def tiered_sellers(scheduler_database: TestDatabase) -> dict[SellerTier, uuid.UUID]:
    """One seller in each tier."""
    sellers = {tier: uuid.uuid4() for tier in SellerTier}
    with psycopg.connect(scheduler_database.owner_dsn, autocommit=True) as conn:
        for tier, seller_id in sellers.items():
            insert_seller(conn, seller_id, name=f"{tier.value} spender")
            with seller_scope(conn, seller_id):
                conn.execute("UPDATE sellers SET tier = %s WHERE id = %s", (tier.value, seller_id))
    return sellers


@pytest.fixture(scope="module")
async def sessions(
    scheduler_database: TestDatabase,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """App-role sessions, as the scheduler process opens them."""
    engine = create_engine(scheduler_database.settings, role="app")
    yield create_sessionmaker(engine)
    await engine.dispose()


def scheduler_settings(database: TestDatabase, **update: object) -> Settings:
    """The deployment's defaults (intervals, windows), with Redis keys of the caller's own."""
    return database.settings.model_copy(
        update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:", **update}
    )


async def run_scheduler(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    start: datetime,
    until: datetime,
) -> list[Queued]:
    """Tick as ``pixecom scheduler`` does, every ``scheduler_tick_seconds`` of a simulated
    clock from ``start`` to ``until`` (excluded), against the real Redis; return every
    message it left in any queue's stream, stamped with the instant of the tick that
    queued it."""
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url)
    broker = build_broker(settings, Queue.STATS_LOW)  # as the scheduler process builds it
    await broker.startup()
    streams = {stream_name(settings, queue): queue for queue in Queue}
    read_from: dict[str, str] = dict.fromkeys(streams, "0")
    queued: list[Queued] = []
    step = timedelta(seconds=settings.scheduler_tick_seconds)
    now = start
    try:
        while now < until:
            await tick(sessions, client, broker, settings, now=now)
            reply: Any = await client.xread(read_from)  # type: ignore[arg-type]
            for raw_stream, entries in reply:
                name = raw_stream.decode()
                for entry_id, fields in entries:
                    read_from[name] = entry_id.decode()
                    message = taskiq_message(broker, fields)
                    queued.append(
                        Queued(now, streams[name], message.task_name, tuple(message.args))
                    )
            now += step
    finally:
        await broker.shutdown()
        await client.aclose()
    return queued


def taskiq_message(broker: AsyncBroker, fields: Any) -> TaskiqMessage:
    """The task message a stream entry holds (its fields as redis-py returns them)."""
    return broker.formatter.loads(fields[b"data"])


def gaps(messages: list[Queued]) -> set[timedelta]:
    """The distinct times between consecutive messages."""
    instants = sorted(message.at for message in messages)
    return {later - earlier for earlier, later in zip(instants, instants[1:], strict=False)}


@pytest.fixture(scope="module")
async def one_hour(
    scheduler_database: TestDatabase,
    tiered_sellers: dict[SellerTier, uuid.UUID],
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[Settings, list[Queued]]:
    """An hour of 5-second ticks at the default intervals (a minute of ticks before it,
    so the hour starts with no slot left to catch up on)."""
    assert tiered_sellers
    settings = scheduler_settings(scheduler_database)
    assert settings.scheduler_tick_seconds == 5
    queued = await run_scheduler(sessions, settings, T0 - timedelta(minutes=1), T0 + HOUR)
    return settings, [message for message in queued if message.at >= T0]


@pytest.fixture(scope="module")
async def two_days(
    scheduler_database: TestDatabase,
    tiered_sellers: dict[SellerTier, uuid.UUID],
    sessions: async_sessionmaker[AsyncSession],
) -> list[Queued]:
    """Two days of ticks every 5 minutes (an hour of ticks before them, longer than any
    catch-up, so the window opens with nothing owed)."""
    assert tiered_sellers
    settings = scheduler_settings(scheduler_database, scheduler_tick_seconds=300)
    queued = await run_scheduler(sessions, settings, T0 - HOUR, T0 + 2 * DAY)
    return [message for message in queued if message.at >= T0]


@pytest.mark.parametrize("tier", list(SellerTier))
def test_each_tier_is_synced_on_its_own_queue_at_its_own_interval(
    tier: SellerTier,
    one_hour: tuple[Settings, list[Queued]],
    tiered_sellers: dict[SellerTier, uuid.UUID],
) -> None:
    settings, queued = one_hour
    interval = timedelta(seconds=getattr(settings, TIER_INTERVAL_SETTING[tier]))
    syncs = [
        message
        for message in queued
        if message.task_name == SYNC_TASK
        and message.seller_id == tiered_sellers[tier]
        and message.args[1] == settings.sync_window_days
    ]

    assert {message.queue for message in syncs} == {TIER_QUEUE[tier]}
    assert len(syncs) == HOUR // interval  # 60 / 12 / 2 in the hour
    assert gaps(syncs) == {interval}


def test_the_default_intervals_are_one_five_and_thirty_minutes(
    one_hour: tuple[Settings, list[Queued]],
) -> None:
    settings, _ = one_hour
    seconds = {tier: getattr(settings, name) for tier, name in TIER_INTERVAL_SETTING.items()}

    assert seconds == {SellerTier.HIGH: 60, SellerTier.MEDIUM: 300, SellerTier.LOW: 1800}


def test_a_tier_queue_carries_only_its_tier(
    one_hour: tuple[Settings, list[Queued]],
    tiered_sellers: dict[SellerTier, uuid.UUID],
) -> None:
    settings, queued = one_hour
    regular = [
        message
        for message in queued
        if message.task_name == SYNC_TASK and message.args[1] == settings.sync_window_days
    ]
    owner = {seller_id: tier for tier, seller_id in tiered_sellers.items()}

    assert regular
    for message in regular:
        assert message.queue is TIER_QUEUE[owner[message.seller_id]], message


def test_the_restatement_sweep_is_queued_once_a_day_over_28_days(
    two_days: list[Queued], tiered_sellers: dict[SellerTier, uuid.UUID]
) -> None:
    for seller_id in tiered_sellers.values():
        sweeps = [
            message
            for message in two_days
            if message.task_name == SYNC_TASK
            and message.seller_id == seller_id
            and message.args[1] == SWEEP_DAYS
        ]

        # Twelve ticks fall in each sweep's hour of catch-up; one of them queues it.
        assert len(sweeps) == 2, sweeps
        assert gaps(sweeps) == {DAY}
        # Whatever the tier: a day's re-read must not hold up the fast tiers' syncs.
        assert {message.queue for message in sweeps} == {Queue.STATS_LOW}
        assert {message.at.date() for message in sweeps} == {T0.date(), (T0 + DAY).date()}


def test_no_sync_reads_a_window_other_than_the_cycle_or_the_sweep(
    two_days: list[Queued], one_hour: tuple[Settings, list[Queued]]
) -> None:
    settings, hour = one_hour
    windows = Counter(
        message.args[1] for message in [*two_days, *hour] if message.task_name == SYNC_TASK
    )
    swept_in_the_hour = Counter(
        message.seller_id
        for message in hour
        if message.task_name == SYNC_TASK and message.args[1] == SWEEP_DAYS
    )

    assert set(windows) == {settings.sync_window_days, SWEEP_DAYS}
    # Each seller's sweep starts at its own offset in the day: a random seller id puts it
    # in the hour's window one run in eight or so, and then it is queued there once.
    assert windows[SWEEP_DAYS] == 2 * len(SellerTier) + swept_in_the_hour.total()
    assert set(swept_in_the_hour.values()) <= {1}


def test_tracking_is_refreshed_every_six_hours_and_not_in_between(
    two_days: list[Queued], tiered_sellers: dict[SellerTier, uuid.UUID]
) -> None:
    refreshes = [message for message in two_days if message.task_name == REFRESH_TRACKING]

    assert {message.queue for message in refreshes} == {Queue.TRACKING}
    for seller_id in tiered_sellers.values():
        own = [message for message in refreshes if message.seller_id == seller_id]
        assert len(own) == (2 * DAY) // TRACKING_EVERY, own  # 8 in two days
        assert gaps(own) == {TRACKING_EVERY}
        assert {message.args for message in own} == {(str(seller_id),)}


async def test_two_schedulers_ticking_at_once_queue_each_slot_once(
    scheduler_database: TestDatabase,
    tiered_sellers: dict[SellerTier, uuid.UUID],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Intervals no longer than the catch-up (three ticks): every seller's sync and
    # tracking refresh is due at any instant (its sweep only in its day's first hour).
    settings = scheduler_settings(
        scheduler_database,
        scheduler_tick_seconds=20,
        sync_interval_high_seconds=20,
        sync_interval_medium_seconds=40,
        sync_interval_low_seconds=60,
        tracking_refresh_seconds=60,
    )
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url)
    first_broker = build_broker(settings, Queue.STATS_LOW)
    second_broker = build_broker(settings, Queue.STATS_LOW)
    await first_broker.startup()
    await second_broker.startup()
    try:
        first, second = await asyncio.gather(
            tick(sessions, client, first_broker, settings, now=T0),
            tick(sessions, client, second_broker, settings, now=T0),
        )
        # A third tick in the same slots (a scheduler restarted at once): nothing new.
        # (Later ticks within a slot are the simulations' ticks inside each catch-up.)
        third = await tick(sessions, client, first_broker, settings, now=T0)
        entries: dict[Queue, Any] = {
            queue: await client.xrange(stream_name(settings, queue)) for queue in Queue
        }
    finally:
        await first_broker.shutdown()
        await second_broker.shutdown()
        await client.aclose()

    kinds: Counter[tuple[str, uuid.UUID, object]] = Counter()
    for queue_entries in entries.values():
        for _, fields in queue_entries:
            message = taskiq_message(first_broker, fields)
            kind = message.args[1] if message.task_name == SYNC_TASK else None
            kinds[(message.task_name, uuid.UUID(str(message.args[0])), kind)] += 1

    assert third == 0
    assert first + second == sum(kinds.values())
    for seller_id in tiered_sellers.values():
        assert kinds[(SYNC_TASK, seller_id, settings.sync_window_days)] == 1
        assert kinds[(REFRESH_TRACKING, seller_id, None)] == 1
        assert kinds[(SYNC_TASK, seller_id, SWEEP_DAYS)] <= 1
    assert max(kinds.values()) == 1, kinds  # no message queued twice, by either scheduler
