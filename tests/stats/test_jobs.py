"""Sync jobs and the scheduler: one sync per seller at a time, bounded, spread, claimed once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.models.sellers import SellerTier
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import EntityLevel
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import JobOutcome, JobResult, SyncJobs, tier_for
from pixecom_core.stats.schedule import due_syncs, interval_for, offset_for
from pixecom_core.stats.sync import StatsSync
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, stream_name
from reference_app.worker.scheduler import tick
from tests.db.tenant_rows import insert_seller, insert_seller_day, seller_scope
from tests.stats.fakeads import FakeAdNetwork
from tests.stats.test_sync import FakeAdsPlugin, seller_with_accounts


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:", "stats_task_attempts": 3}
    )


@pytest.fixture
async def client(database: TestDatabase) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(database.redis_url)
    yield connection
    await connection.aclose()


def make_jobs(
    app_engine: AsyncEngine, settings: Settings, network: FakeAdNetwork, client: redis.Redis
) -> SyncJobs:
    manager = create_plugin_manager(load_entry_points=False, plugins=[FakeAdsPlugin(network)])
    sessions = create_sessionmaker(app_engine)
    box = SecretBox(settings.token_encryption_keys)
    stats = StatsSync(sessions, settings, ProviderRegistry(manager), box, manager)
    return SyncJobs(stats, sessions, settings, client, backoff_base_seconds=0.01)


def dead_letters(dsn: str, seller_id: uuid.UUID) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT task_name, attempts, error FROM dead_letters WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()


async def test_two_workers_never_sync_one_seller_at_once(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    network = FakeAdNetwork()
    network.delay_seconds = 0.5
    box = SecretBox(job_settings.token_encryption_keys)
    seller = seller_with_accounts(database_owner_dsn, box, "slow_acct")
    # Two workers: two job runners sharing only Redis and the database.
    first = make_jobs(app_engine, job_settings, network, client)
    second = make_jobs(app_engine, job_settings, network, client)

    results = await asyncio.gather(
        first.run(seller.seller_id, days_back=1, task_id="t1"),
        second.run(seller.seller_id, days_back=1, task_id="t2"),
    )

    assert sorted(r.outcome.value for r in results) == ["done", "skipped_running"]
    # The lock is released: the next sync runs.
    again = await first.run(seller.seller_id, days_back=1, task_id="t3")
    assert again.outcome is JobOutcome.DONE


async def test_a_job_past_its_timeout_is_stopped_and_recorded(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    network = FakeAdNetwork()
    network.delay_seconds = 5
    settings = job_settings.model_copy(update={"stats_task_timeout_seconds": 0.3})
    seller = seller_with_accounts(
        database_owner_dsn, SecretBox(settings.token_encryption_keys), "stuck"
    )
    jobs = make_jobs(app_engine, settings, network, client)

    started = asyncio.get_running_loop().time()
    result = await jobs.run(seller.seller_id, days_back=1, task_id="slow-1")

    assert result.outcome is JobOutcome.TIMED_OUT
    assert asyncio.get_running_loop().time() - started < 3
    [(task, attempts, error)] = dead_letters(database_owner_dsn, seller.seller_id)
    assert task == "pixecom.sync_seller" and attempts == 1 and "timeout" in str(error)


async def test_a_job_that_keeps_failing_is_retried_then_dead_lettered(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    network = FakeAdNetwork()
    network.crash = RuntimeError("parser bug")
    seller = seller_with_accounts(
        database_owner_dsn, SecretBox(job_settings.token_encryption_keys), "broken"
    )
    jobs = make_jobs(app_engine, job_settings, network, client)

    result = await jobs.run(seller.seller_id, days_back=1, task_id="bug-1")
    redelivered = await jobs.run(seller.seller_id, days_back=1, task_id="bug-1")

    assert result.outcome is JobOutcome.DEAD_LETTER and "parser bug" in str(result.error)
    assert redelivered.outcome is JobOutcome.DEAD_LETTER
    assert len(network.calls) == 6  # 3 attempts per run
    # One dead letter per task id, however often it is delivered.
    assert [row[:2] for row in dead_letters(database_owner_dsn, seller.seller_id)] == [
        ("pixecom.sync_seller", 3)
    ]


async def test_a_big_spender_moves_to_the_high_tier(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    network = FakeAdNetwork()
    seller = seller_with_accounts(
        database_owner_dsn, SecretBox(job_settings.token_encryption_keys), "whale"
    )
    today = datetime.now(UTC).date()
    for back in range(3):
        network.set_spend(
            "whale", EntityLevel.CAMPAIGN, "cmp_whale", today - timedelta(days=back), 5_000 * 10**6
        )
    jobs = make_jobs(app_engine, job_settings, network, client)

    await jobs.run(seller.seller_id, days_back=3, task_id="whale-1")

    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        tier = conn.execute("SELECT tier FROM sellers WHERE id = %s", (seller.seller_id,))
        assert tier.fetchone() == ("high",)  # 15,000 / 7 days ≈ 2,143 a day
    assert tier_for(99.9, job_settings) is SellerTier.LOW
    assert tier_for(100, job_settings) is SellerTier.MEDIUM


def test_starts_are_spread_over_the_interval(settings: Settings) -> None:
    interval = interval_for(SellerTier.LOW, settings)
    sellers = [uuid.uuid4() for _ in range(3_000)]

    per_minute = Counter(offset_for(seller, interval) // 60 for seller in sellers)

    mean = len(sellers) / (interval // 60)
    assert len(per_minute) == interval // 60  # every minute of the interval is used
    assert max(per_minute.values()) < 2 * mean  # no stampede minute
    # At any instant only the sellers whose slot just started are due.
    now = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC)
    due = [
        d for d in due_syncs([(s, SellerTier.LOW) for s in sellers], now, settings) if not d.sweep
    ]
    assert 0 < len(due) < len(sellers) * 0.05


async def test_two_schedulers_queue_each_slot_once(
    app_engine: AsyncEngine,
    job_settings: Settings,
    client: redis.Redis,
    database_owner_dsn: str,
) -> None:
    # Intervals short enough that every seller is due at once.
    settings = job_settings.model_copy(
        update={
            "sync_interval_low_seconds": 10,
            "sync_interval_medium_seconds": 10,
            "sync_interval_high_seconds": 10,
            "scheduler_tick_seconds": 5,
        }
    )
    box = SecretBox(settings.token_encryption_keys)
    for index in range(5):
        seller_with_accounts(database_owner_dsn, box, f"sched_{index}")
    sessions = create_sessionmaker(app_engine)
    broker = build_broker(settings, Queue.STATS_LOW)
    await broker.startup()
    now = datetime.now(UTC)
    try:
        first, second = await asyncio.gather(
            tick(sessions, client, broker, settings, now=now),
            tick(sessions, client, broker, settings, now=now),
        )
    finally:
        await broker.shutdown()

    messages: Counter[tuple[str, tuple[object, ...]]] = Counter()
    for queue in (Queue.STATS_HIGH, Queue.STATS_MEDIUM, Queue.STATS_LOW, Queue.TRACKING):
        for _, fields in await client.xrange(stream_name(settings, queue)):
            message = broker.formatter.loads(fields[b"data"])
            messages[(message.task_name, tuple(message.args))] += 1
    queued = sum(messages.values())
    assert first + second == queued
    # Every slot queued once, by one scheduler: no task with the same arguments twice.
    assert max(messages.values()) == 1, messages.most_common(3)
    assert queued >= 5  # this run's sellers (and the test database's others) are due
    sellers_in_db = await _count_sellers(database_owner_dsn)
    assert queued <= sellers_in_db * 2  # at most one sync and one sweep per seller


async def _count_sellers(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM sellers").fetchone()
    assert row is not None
    return int(row[0])


async def test_the_tier_reads_the_converted_days_whatever_the_currencies(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    """Issue 16: the tier follows the seller's converted days (every account, cross rates
    included), in the reporting currency's own minor unit — JPY has none."""
    seller_id = uuid.uuid4()
    today = datetime.now(UTC).date()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            conn.execute(
                "UPDATE sellers SET reporting_currency = 'JPY' WHERE id = %s", (seller_id,)
            )
            # ¥5,000 a day: high (1,000 major units a day), were yen counted in hundredths
            # it would be ¥50 a day, low.
            for back in range(7):
                insert_seller_day(
                    conn,
                    seller_id,
                    today - timedelta(days=back),
                    reporting_currency="JPY",
                    spend_minor=5000,
                    unlinked_spend_minor=5000,
                )
    jobs = make_jobs(app_engine, job_settings, FakeAdNetwork(), client)

    assert await jobs.update_tier(seller_id) is SellerTier.HIGH


async def test_a_sweep_waits_for_the_running_sync_instead_of_being_skipped(
    app_engine: AsyncEngine, job_settings: Settings, client: redis.Redis, database_owner_dsn: str
) -> None:
    # The sweep's slot is claimed for the whole day: skipped, its older days would go
    # unread until tomorrow. A regular sync in its place is skipped (the next cycle
    # reads the same days).
    network = FakeAdNetwork()
    network.delay_seconds = 0.5
    box = SecretBox(job_settings.token_encryption_keys)
    seller = seller_with_accounts(database_owner_dsn, box, "busy_acct")
    first = make_jobs(app_engine, job_settings, network, client)
    second = make_jobs(app_engine, job_settings, network, client)
    sweep_days = job_settings.sweep_window_days
    assert sweep_days > job_settings.sync_window_days

    async def sweep_once_the_sync_holds_the_lock() -> JobResult:
        while not await client.exists(first.lock_name(seller.seller_id)):
            await asyncio.sleep(0.01)
        return await second.run(seller.seller_id, days_back=sweep_days, task_id="sweep")

    regular, sweep = await asyncio.gather(
        first.run(seller.seller_id, days_back=1, task_id="cycle"),
        sweep_once_the_sync_holds_the_lock(),
    )

    assert regular.outcome is JobOutcome.DONE
    assert sweep.outcome is JobOutcome.DONE
    with psycopg.connect(database_owner_dsn) as conn:
        runs = conn.execute(
            "SELECT task_id, days_back, started_at, finished_at FROM sync_runs"
            " WHERE seller_id = %s ORDER BY started_at",
            (seller.seller_id,),
        ).fetchall()
    assert [(task, days) for task, days, _, _ in runs] == [("cycle", 1), ("sweep", sweep_days)]
    # One after the other, never overlapping.
    assert runs[1][2] >= runs[0][3]
