"""History backfill: chunked, idempotent, resumable, never in a regular sync's way.

The clock is pinned (``NOW``): the window, the chunks and the numbers are the same on
whatever date the tests run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis.asyncio as redis
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker, Context, TaskiqMessage

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import EntityLevel, ProviderAuthError, ProviderThrottled
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.backfill import (
    BACKFILL_TASK,
    BackfillJobResult,
    BackfillJobs,
    ChunkOutcome,
    JobOutcome,
    backfill_chunk,
    backfill_window,
    baton_key,
    next_chunk,
    plan_backfill,
)
from pixecom_core.stats.jobs import JobOutcome as SyncOutcome
from pixecom_core.stats.jobs import SyncJobs
from pixecom_core.stats.sync import DayWindow, StatsSync
from pixecom_core.tenancy import SellerContext
from pixecom_core.testing.databases import TestDatabase
from reference_app.services import open_services
from reference_app.worker.broker import (
    Queue,
    WorkerResources,
    backfill_account,
    build_broker,
    kick_backfill,
    stream_name,
)
from reference_app.worker.scheduler import resume_backfills
from tests.db.tenant_rows import seller_scope
from tests.stats.fakeads import FakeAdNetwork
from tests.stats.test_sync import FakeAdsPlugin, Seller, seller_with_accounts

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
#: The default window at NOW in UTC: 28 days ending yesterday.
SINCE, UNTIL = date(2026, 10, 29), date(2026, 11, 25)


@pytest.fixture
def backfill_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "backfill_days": 28,
            "backfill_chunk_days": 7,
            "backfill_stall_seconds": 1,
        }
    )


@pytest.fixture
async def client(database: TestDatabase) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(database.redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
def network() -> FakeAdNetwork:
    return FakeAdNetwork()


@pytest.fixture
def stats_sync(
    app_engine: AsyncEngine, backfill_settings: Settings, network: FakeAdNetwork
) -> StatsSync:
    manager = create_plugin_manager(load_entry_points=False, plugins=[FakeAdsPlugin(network)])
    return StatsSync(
        create_sessionmaker(app_engine),
        backfill_settings,
        ProviderRegistry(manager),
        SecretBox(backfill_settings.token_encryption_keys),
        manager,
    )


@pytest.fixture
def jobs(
    stats_sync: StatsSync, app_engine: AsyncEngine, backfill_settings: Settings, client: redis.Redis
) -> BackfillJobs:
    return BackfillJobs(stats_sync, create_sessionmaker(app_engine), backfill_settings, client)


def spend_of(day: date, level: EntityLevel) -> int:
    """The network's number for an entity-day: different every day and level."""
    return (day.toordinal() % 97 + 1) * 10**6 + list(EntityLevel).index(level)


def seller_with_history(
    dsn: str, settings: Settings, network: FakeAdNetwork, name: str
) -> tuple[Seller, uuid.UUID]:
    """A seller whose account delivered on each of the 40 days up to NOW, at every level."""
    seller = seller_with_accounts(dsn, SecretBox(settings.token_encryption_keys), name)
    for back in range(40):
        day = NOW.date() - timedelta(days=back)
        for level, entity in (
            (EntityLevel.CAMPAIGN, f"cmp_{name}"),
            (EntityLevel.ADSET, f"set_{name}"),
            (EntityLevel.AD, f"ad_{name}"),
        ):
            network.set_spend(name, level, entity, day, spend_of(day, level))
    return seller, seller.accounts[name]


def daily_rows(dsn: str, seller_id: uuid.UUID) -> dict[tuple[str, date], int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT entity_id, stat_date, spend_micros FROM ad_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def sellpage_days(dsn: str, seller_id: uuid.UUID) -> dict[date, int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT stat_date, spend_minor FROM sellpage_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {r[0]: r[1] for r in rows if r[1]}


def backfill_columns(dsn: str, seller_id: uuid.UUID, account_id: uuid.UUID) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT backfill_since, backfill_until, backfill_done_through, needs_reconnect,"
            " throttled_until, last_synced_at FROM ad_accounts WHERE seller_id = %s AND id = %s",
            (seller_id, account_id),
        ).fetchone()
    assert row is not None
    return tuple(row)


def expected_window(name: str) -> dict[tuple[str, date], int]:
    days = DayWindow(SINCE, UNTIL).days()
    return {
        (f"{prefix}_{name}", day): spend_of(day, level)
        for day in days
        for prefix, level in (
            ("cmp", EntityLevel.CAMPAIGN),
            ("set", EntityLevel.ADSET),
            ("ad", EntityLevel.AD),
        )
    }


async def run_to_the_end(
    jobs: BackfillJobs, seller_id: uuid.UUID, account_id: uuid.UUID, first_task: str = "t0"
) -> list[JobOutcome]:
    """Run jobs the way the task chains them: each under the id its predecessor named."""
    outcomes: list[JobOutcome] = []
    task_id = first_task
    for number in range(1, 20):
        next_id = f"{first_task}-{number}"
        result = await jobs.run(
            seller_id, account_id, task_id=task_id, next_task_id=next_id, now=NOW
        )
        outcomes.append(result.outcome)
        if result.outcome is not JobOutcome.CONTINUE:
            return outcomes
        task_id = next_id
    raise AssertionError(f"the backfill did not end: {outcomes}")


# -- the window and its chunks ----------------------------------------------------------


def test_the_window_is_the_last_closed_days_of_the_accounts_time_zone() -> None:
    assert backfill_window("UTC", 28, NOW) == DayWindow(SINCE, UNTIL)
    # Already the 27th in Auckland (UTC+13): its yesterday is the 26th.
    assert backfill_window("Pacific/Auckland", 28, NOW).until == date(2026, 11, 26)
    assert backfill_window("America/Los_Angeles", 1, NOW) == DayWindow(
        date(2026, 11, 25), date(2026, 11, 25)
    )


def test_chunks_cover_the_window_once_from_its_first_day() -> None:
    chunks: list[DayWindow] = []
    done: date | None = None
    while (chunk := next_chunk(SINCE, UNTIL, done, 7)) is not None:
        chunks.append(chunk)
        done = chunk.until
    assert [(c.since, c.until) for c in chunks] == [
        (date(2026, 10, 29), date(2026, 11, 4)),
        (date(2026, 11, 5), date(2026, 11, 11)),
        (date(2026, 11, 12), date(2026, 11, 18)),
        (date(2026, 11, 19), date(2026, 11, 25)),
    ]
    # A last chunk shorter than the others stops at the window's end.
    assert next_chunk(SINCE, date(2026, 11, 1), None, 7) == DayWindow(SINCE, date(2026, 11, 1))


def test_the_window_is_capped_inside_what_networks_keep(settings: Settings) -> None:
    fields = Settings.model_fields
    assert fields["backfill_days"].default == 28
    bound = max(m.le for m in fields["backfill_days"].metadata if hasattr(m, "le"))
    assert bound <= 37 * 30  # Meta keeps 37 months of insights
    with pytest.raises(ValueError, match="backfill_days"):
        Settings.model_validate({**settings.model_dump(), "backfill_days": bound + 1})


# -- chunks -------------------------------------------------------------------------------


async def test_a_backfill_fills_every_day_of_the_window_once_in_seven_day_chunks(
    jobs: BackfillJobs, network: FakeAdNetwork, backfill_settings: Settings, database_owner_dsn: str
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "hist")

    outcomes = await run_to_the_end(jobs, seller.seller_id, account)

    assert outcomes == [JobOutcome.CONTINUE] * 3 + [JobOutcome.DONE]
    # Four fetches of 7 days at three levels, nothing outside the window.
    windows = sorted({(since, until) for _, _, since, until in network.calls})
    assert windows == [
        (date(2026, 10, 29), date(2026, 11, 4)),
        (date(2026, 11, 5), date(2026, 11, 11)),
        (date(2026, 11, 12), date(2026, 11, 18)),
        (date(2026, 11, 19), date(2026, 11, 25)),
    ]
    assert len(network.calls) == 12
    # Every entity-day of the window exactly once, with the network's number.
    assert daily_rows(database_owner_dsn, seller.seller_id) == expected_window("hist")
    campaign = {d: v for (e, d), v in expected_window("hist").items() if e == "cmp_hist"}
    assert sum(campaign.values()) == sum(
        spend_of(day, EntityLevel.CAMPAIGN) for day in DayWindow(SINCE, UNTIL).days()
    )
    # The sellpage's days were re-aggregated from the campaign (micros → cents).
    assert sellpage_days(database_owner_dsn, seller.seller_id) == {
        day: micros // 10**4 for day, micros in campaign.items()
    }
    since, until, done_through, reconnect, _, last_synced = backfill_columns(
        database_owner_dsn, seller.seller_id, account
    )
    assert (since, until, done_through, reconnect) == (SINCE, UNTIL, UNTIL, False)
    # The regular syncs' bookkeeping is theirs: a backfill is not a sync of today.
    assert last_synced is None
    # Finished: another kick does nothing.
    again = await jobs.run(seller.seller_id, account, task_id="late", next_task_id="x", now=NOW)
    assert again.outcome is JobOutcome.DONE and len(network.calls) == 12


async def test_a_chunk_run_twice_changes_no_total(
    stats_sync: StatsSync,
    network: FakeAdNetwork,
    backfill_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "twice")
    context = SellerContext(
        seller_id=seller.seller_id,
        sessions=create_sessionmaker(app_engine),
        settings=backfill_settings,
    )
    await plan_backfill(context, account, days=28, now=NOW)

    first = await backfill_chunk(stats_sync, context, account, chunk_days=7, now=NOW)
    after_first = daily_rows(database_owner_dsn, seller.seller_id)
    pages_after_first = sellpage_days(database_owner_dsn, seller.seller_id)
    # The same chunk again (its job was delivered twice): move the progress back.
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        conn.execute(
            "UPDATE ad_accounts SET backfill_done_through = NULL WHERE id = %s", (account,)
        )
    second = await backfill_chunk(stats_sync, context, account, chunk_days=7, now=NOW)

    assert first.outcome is second.outcome is ChunkOutcome.ADVANCED
    assert first.window == second.window == DayWindow(SINCE, date(2026, 11, 4))
    assert daily_rows(database_owner_dsn, seller.seller_id) == after_first
    assert sellpage_days(database_owner_dsn, seller.seller_id) == pages_after_first
    assert len(after_first) == 7 * 3
    assert backfill_columns(database_owner_dsn, seller.seller_id, account)[2] == date(2026, 11, 4)


async def test_planning_again_keeps_the_window_and_its_progress_unless_asked(
    stats_sync: StatsSync,
    network: FakeAdNetwork,
    backfill_settings: Settings,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "re")
    context = SellerContext(
        seller_id=seller.seller_id,
        sessions=create_sessionmaker(app_engine),
        settings=backfill_settings,
    )
    planned = await plan_backfill(context, account, days=28, now=NOW)
    await backfill_chunk(stats_sync, context, account, chunk_days=7, now=NOW)

    # Connected again a week later: the window and its progress stay.
    later = NOW + timedelta(days=7)
    kept = await plan_backfill(context, account, days=28, now=later)
    assert kept == planned == DayWindow(SINCE, UNTIL)
    assert backfill_columns(database_owner_dsn, seller.seller_id, account)[:3] == (
        SINCE,
        UNTIL,
        date(2026, 11, 4),
    )
    replanned = await plan_backfill(context, account, days=10, now=later, replan=True)
    assert replanned == DayWindow(date(2026, 11, 23), date(2026, 12, 2))
    assert backfill_columns(database_owner_dsn, seller.seller_id, account)[2] is None
    assert await plan_backfill(context, uuid.uuid4(), days=28, now=NOW) is None


async def test_a_throttled_chunk_does_not_advance_and_waits_the_networks_time(
    jobs: BackfillJobs,
    network: FakeAdNetwork,
    backfill_settings: Settings,
    client: redis.Redis,
    database_owner_dsn: str,
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "slow")
    first = await jobs.run(seller.seller_id, account, task_id="a", next_task_id="b", now=NOW)
    network.fail_next("slow", ProviderThrottled("rate limited", retry_after_seconds=120))

    throttled = await jobs.run(seller.seller_id, account, task_id="b", next_task_id="c", now=NOW)

    assert first.outcome is JobOutcome.CONTINUE
    assert throttled.outcome is JobOutcome.WAITING
    assert throttled.chunk is not None and throttled.chunk.outcome is ChunkOutcome.THROTTLED
    _, _, done_through, _, throttled_until, _ = backfill_columns(
        database_owner_dsn, seller.seller_id, account
    )
    assert done_through == date(2026, 11, 4)  # not advanced
    assert throttled_until == NOW + timedelta(seconds=120)  # regular syncs wait too
    # No job carries it on; the sweep may queue it once the network's wait is over.
    baton = baton_key(backfill_settings, account)
    assert await client.get(baton) == b"waiting"
    assert 100 < await client.ttl(baton) <= 120
    # After the wait the next chunk is the one that was throttled.
    await client.delete(baton)
    resumed = await jobs.run(
        seller.seller_id, account, task_id="d", next_task_id="e", now=NOW + timedelta(minutes=3)
    )
    assert resumed.chunk is not None
    assert resumed.chunk.window == DayWindow(date(2026, 11, 5), date(2026, 11, 11))


async def test_a_refused_token_stops_the_backfill_until_the_account_is_reconnected(
    jobs: BackfillJobs, network: FakeAdNetwork, backfill_settings: Settings, database_owner_dsn: str
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "gone")
    network.fail_next("gone", ProviderAuthError("token expired (code 190)"))

    result = await jobs.run(seller.seller_id, account, task_id="a", next_task_id="b", now=NOW)

    assert result.outcome is JobOutcome.STOPPED
    assert result.chunk is not None and result.chunk.outcome is ChunkOutcome.NEEDS_RECONNECT
    since, until, done_through, reconnect, _, _ = backfill_columns(
        database_owner_dsn, seller.seller_id, account
    )
    assert (since, until, done_through, reconnect) == (SINCE, UNTIL, None, True)
    with psycopg.connect(database_owner_dsn) as conn:
        resumable = conn.execute(
            "SELECT ad_account_id FROM pixecom_backfills_to_resume(NULL, 1000)"
        ).fetchall()
    assert (account,) not in resumable  # not queued again while the token is refused


async def test_a_duplicated_kick_does_not_fork_the_backfill(
    jobs: BackfillJobs, network: FakeAdNetwork, backfill_settings: Settings, database_owner_dsn: str
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "dup")
    first = await jobs.run(seller.seller_id, account, task_id="a", next_task_id="a2", now=NOW)

    duplicate = await jobs.run(seller.seller_id, account, task_id="b", next_task_id="b2", now=NOW)
    carried_on = await jobs.run(seller.seller_id, account, task_id="a2", next_task_id="a3", now=NOW)

    assert first.outcome is JobOutcome.CONTINUE
    assert duplicate.outcome is JobOutcome.SUPERSEDED and duplicate.chunk is None
    assert carried_on.chunk is not None
    assert carried_on.chunk.window == DayWindow(date(2026, 11, 5), date(2026, 11, 11))
    assert len(network.calls) == 6  # two chunks, no third


# -- jobs and queues ----------------------------------------------------------------------


async def test_a_regular_sync_runs_while_a_backfill_chunk_holds_its_lock(
    jobs: BackfillJobs,
    stats_sync: StatsSync,
    network: FakeAdNetwork,
    backfill_settings: Settings,
    app_engine: AsyncEngine,
    client: redis.Redis,
    database_owner_dsn: str,
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "both")
    sync_jobs = SyncJobs(stats_sync, create_sessionmaker(app_engine), backfill_settings, client)
    # The chunk's fetches wait until the sync and the second job are done: it holds its
    # lock all that time, whatever the machine's speed.
    release = asyncio.Event()
    chunk = asyncio.create_task(
        jobs.run(seller.seller_id, account, task_id="bf-1", next_task_id="bf-2", now=NOW)
    )
    network.held_tasks[chunk] = release

    async def sync_once_the_chunk_runs() -> SyncOutcome:
        while not await client.exists(jobs.lock_name(account)):
            await asyncio.sleep(0.01)
        result = await sync_jobs.run(seller.seller_id, days_back=3, task_id="sync-1")
        # The chunk still ran when the sync finished: they overlapped.
        assert await client.exists(jobs.lock_name(account))
        return result.outcome

    try:
        sync_outcome, second_chunk = await asyncio.gather(
            sync_once_the_chunk_runs(),
            _after_lock(
                client,
                jobs.lock_name(account),
                jobs.run(seller.seller_id, account, task_id="bf-x", next_task_id="bf-y", now=NOW),
            ),
        )
    finally:
        release.set()
    backfill = await chunk

    assert sync_outcome is SyncOutcome.DONE  # never skipped because a backfill runs
    assert backfill.outcome is JobOutcome.CONTINUE
    # A second backfill job of the same account is the one that waits its turn.
    assert second_chunk.outcome is JobOutcome.SKIPPED_RUNNING


async def _after_lock(
    client: redis.Redis, key: str, job: Awaitable[BackfillJobResult]
) -> BackfillJobResult:
    while not await client.exists(key):
        await asyncio.sleep(0.01)
    return await job


async def _run_task(broker: AsyncBroker, queued: dict[str, Any]) -> str:
    """Run a queued ``pixecom.backfill_account`` message as a worker would."""
    seller_id, ad_account_id = queued["args"]
    message = TaskiqMessage(
        task_id=queued["task_id"],
        task_name=BACKFILL_TASK,
        labels={},
        args=queued["args"],
        kwargs={},
    )
    return await backfill_account(seller_id, ad_account_id, Context(message, broker))


async def _queued(client: redis.Redis, stream: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every message of ``stream`` as (stream id, taskiq message)."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(stream)  # type: ignore[assignment]
    return [(entry_id, json.loads(fields[b"data"])) for entry_id, fields in entries]


async def test_a_backfill_whose_next_job_was_lost_resumes_where_it_stopped(
    stats_sync: StatsSync,
    network: FakeAdNetwork,
    backfill_settings: Settings,
    client: redis.Redis,
    app_engine: AsyncEngine,
    database_owner_dsn: str,
) -> None:
    seller, account = seller_with_history(database_owner_dsn, backfill_settings, network, "lost")
    sessions = create_sessionmaker(app_engine)
    broker = build_broker(backfill_settings, Queue.BACKFILL)
    await broker.startup()
    stream = stream_name(backfill_settings, Queue.BACKFILL)
    providers = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[]))
    try:
        async with open_services(
            backfill_settings,
            providers,
            application_name="pixecom-test-backfill",
            redis_socket_timeout=5.0,
        ) as services:
            broker.state.pixecom = WorkerResources(
                services=services,
                sync_jobs=SyncJobs(stats_sync, sessions, backfill_settings, client),
                broker=broker,
                backfill_jobs=BackfillJobs(
                    stats_sync, sessions, backfill_settings, client, clock=lambda: NOW
                ),
            )
            # The connect flow queues the backfill; a worker runs its first two chunks.
            await kick_backfill(broker, backfill_settings, seller.seller_id, account)
            for _ in range(2):
                [(entry, message)] = await _queued(client, stream)
                await client.xdel(stream, entry)
                outcome = await _run_task(broker, message)
                assert outcome == "continue"
            # The worker dies with the third job, and Redis loses it too.
            [(entry, lost)] = await _queued(client, stream)
            await client.xdel(stream, entry)
            done_through = backfill_columns(database_owner_dsn, seller.seller_id, account)[2]
            assert done_through == date(2026, 11, 11)

            # While the lost job's baton lives, the sweep queues nothing for the account.
            await client.expire(baton_key(backfill_settings, account), 60)
            await resume_backfills(sessions, client, broker, backfill_settings, now=NOW)
            assert [
                m for _, m in await _queued(client, stream) if m["args"][1] == str(account)
            ] == []
            # No job carried it on for backfill_stall_seconds: the next sweep queues it.
            await client.delete(baton_key(backfill_settings, account))
            await resume_backfills(
                sessions, client, broker, backfill_settings, now=NOW + timedelta(minutes=1)
            )
            mine = [
                (entry, m)
                for entry, m in await _queued(client, stream)
                if m["args"][1] == str(account)
            ]
            assert len(mine) == 1 and mine[0][1]["task_id"] != lost["task_id"]
            # Run the chain to its end, as the worker would.
            outcomes: list[str] = []
            while mine:
                [(entry, message)] = mine
                await client.xdel(stream, entry)
                outcomes.append(await _run_task(broker, message))
                mine = [
                    (entry, m)
                    for entry, m in await _queued(client, stream)
                    if m["args"][1] == str(account)
                ]
    finally:
        await broker.shutdown()

    assert outcomes == ["continue", "done"]
    # Chunks 3 and 4 were fetched once each after the resume; chunks 1 and 2 not again.
    windows = [
        (since, until) for _, level, since, until in network.calls if level is EntityLevel.AD
    ]
    assert windows == [
        (date(2026, 10, 29), date(2026, 11, 4)),
        (date(2026, 11, 5), date(2026, 11, 11)),
        (date(2026, 11, 12), date(2026, 11, 18)),
        (date(2026, 11, 19), date(2026, 11, 25)),
    ]
    assert daily_rows(database_owner_dsn, seller.seller_id) == expected_window("lost")
    assert backfill_columns(database_owner_dsn, seller.seller_id, account)[2] == UNTIL
