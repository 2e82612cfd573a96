"""Two workers, one PostgreSQL, one Redis: each seller's sync runs once per cycle, and a
worker killed mid-cycle loses no task (SCALE-2; issue 7 "what
must hold"). Everything is asserted from the database's ``sync_runs`` log and stats rows.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aioredis

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings
from pixecom_core.stats.schedule import due_syncs
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, stream_name
from reference_app.worker.scheduler import sellers as directory
from reference_app.worker.scheduler import tick
from tests.scaleout import slowads
from tests.scaleout.conftest import (
    Start,
    Started,
    create_sellers,
    daily_spend,
    done_per_seller,
    kick_low_syncs,
    process_env,
    sync_runs,
    wait_for,
)

SELLERS = 20
WORKER_ARGS = ("worker", "--queue", Queue.STATS_LOW.value, "--max-tasks", "3")


def pending(client: redis.Redis, settings: Settings) -> int:
    """Messages delivered and not acknowledged yet."""
    summary = client.xpending(
        stream_name(settings, Queue.STATS_LOW), f"{settings.redis_key_prefix}workers"
    )
    return int(summary["pending"])


def start_two_workers(
    start: Start, database: TestDatabase, settings: Settings
) -> tuple[Started, Started]:
    env = process_env(database, settings)
    first, second = start(env, *WORKER_ARGS), start(env, *WORKER_ARGS)
    # Both consume before anything is queued, so neither gets the whole cycle by
    # starting first (process start takes seconds on a loaded machine).
    wait_for(
        lambda: all("Listening started" in w.output() for w in (first, second)),
        90,
        "two workers",
        first,
        second,
    )
    time.sleep(0.5)  # both blocked in XREADGROUP
    return first, second


def assert_spend_written(dsn: str, sellers: list[uuid.UUID], days_back: int) -> None:
    today = datetime.now(UTC).date()
    for seller_id in sellers:
        account = f"act_{seller_id.hex[:12]}"
        expected = {
            (today - timedelta(days=back)).isoformat(): slowads.spend_micros(
                account, today - timedelta(days=back)
            )
            for back in range(days_back)
        }
        spend = daily_spend(dsn, seller_id)
        # Around midnight UTC a sync may have written yesterday's window: compare overlap.
        assert {day: spend[day] for day in expected if day in spend} == {
            day: value for day, value in expected.items() if day in spend
        }
        assert len(spend) >= days_back


def quiet_instant(sellers: list[tuple[uuid.UUID, SellerTier]], settings: Settings) -> datetime:
    """A time at which every seller's sync is due and no seller's daily sweep is, so a
    cycle is exactly one sync per seller."""
    start = datetime.now(UTC)
    for minute in range(24 * 60):
        now = start + timedelta(minutes=minute)
        due = due_syncs(sellers, now, settings)
        if not any(d.sweep for d in due) and len(due) == len(sellers):
            return now
    raise AssertionError("no instant without a sweep: too many sellers for this test")


async def test_two_workers_sync_each_seller_once_per_cycle(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    sellers = create_sellers(dsn, settings, SELLERS)
    client = redis.Redis.from_url(scaleout_database.redis_url)
    first, second = start_two_workers(start_pixecom, scaleout_database, settings)

    # One scheduler cycle (its tick function), and a second scheduler ticking at the same
    # instant: the slot claims queue every seller's sync once.
    engine = create_engine(settings, role="app")
    sessions = create_sessionmaker(engine)
    async_client = aioredis.Redis.from_url(scaleout_database.redis_url)
    broker = build_broker(settings, Queue.STATS_LOW)
    await broker.startup()
    try:
        everyone = [seller async for seller in directory(sessions)]
        now = quiet_instant(everyone, settings)
        queued = await asyncio.gather(
            tick(sessions, async_client, broker, settings, now=now),
            tick(sessions, async_client, broker, settings, now=now),
        )
    finally:
        await broker.shutdown()
        await async_client.aclose()
        await engine.dispose()
    assert sum(queued) >= SELLERS

    wait_for(
        lambda: min(done_per_seller(dsn, sellers).values()) >= 1,
        60,
        "every seller's sync",
        first,
        second,
    )
    wait_for(lambda: pending(client, settings) == 0, 10, "acknowledgements", first, second)
    time.sleep(1.0)  # a duplicate would be running by now

    runs = sync_runs(dsn, sellers)
    assert sorted(run.seller_id for run in runs) == sorted(sellers)  # once each, no more
    assert {run.outcome for run in runs} == {"done"}
    assert {run.days_back for run in runs} == {settings.sync_window_days}
    pids = {f":{first.process.pid}", f":{second.process.pid}"}
    workers = {run.worker for run in runs}
    assert len(workers) == 2 and {w[w.rindex(":") :] for w in workers} == pids
    assert_spend_written(dsn, sellers, settings.sync_window_days)
    first.assert_alive()
    second.assert_alive()
    client.close()


async def test_a_worker_killed_mid_cycle_loses_no_sync(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    sellers = create_sellers(dsn, settings, SELLERS)
    client = redis.Redis.from_url(scaleout_database.redis_url)
    victim, survivor = start_two_workers(start_pixecom, scaleout_database, settings)

    await kick_low_syncs(settings, sellers)

    def victim_mid_sync() -> bool:
        return any(
            not run.finished and run.worker.endswith(f":{victim.process.pid}")
            for run in sync_runs(dsn, sellers)
        )

    wait_for(victim_mid_sync, 60, "the first worker to be mid-sync", victim, survivor)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    cut_short = {
        run.seller_id
        for run in sync_runs(dsn, sellers)
        if not run.finished and run.worker.endswith(f":{victim.process.pid}")
    }
    assert cut_short

    # The survivor reclaims the dead worker's unacknowledged syncs (after
    # worker_redelivery_after_seconds) and takes over their per-seller locks.
    wait_for(
        lambda: min(done_per_seller(dsn, sellers).values()) >= 1,
        60,
        "every seller's sync after the kill",
        survivor,
    )
    wait_for(lambda: pending(client, settings) == 0, 15, "acknowledgements", survivor)
    time.sleep(1.0)

    runs = sync_runs(dsn, sellers)
    assert done_per_seller(dsn, sellers) == dict.fromkeys(sellers, 1)  # never twice
    unfinished = [run for run in runs if not run.finished]
    # Only the killed worker left runs unfinished, and only those were run again.
    assert {run.seller_id for run in unfinished} == cut_short
    assert all(run.worker.endswith(f":{victim.process.pid}") for run in unfinished)
    assert len(runs) == SELLERS + len(unfinished)
    for seller_id in cut_short:
        [done] = [r for r in runs if r.seller_id == seller_id and r.outcome == "done"]
        assert done.worker.endswith(f":{survivor.process.pid}")
    assert_spend_written(dsn, sellers, settings.sync_window_days)
    survivor.assert_alive()
    assert "taking over its dead predecessor's lock" in survivor.output()
    client.close()


def test_two_scheduler_processes_queue_each_slot_once(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    sellers = create_sellers(scaleout_database.owner_dsn, settings, 10)
    env = process_env(scaleout_database, settings)
    schedulers = [start_pixecom(env, "scheduler"), start_pixecom(env, "scheduler")]
    client = redis.Redis.from_url(scaleout_database.redis_url)
    prefix = settings.redis_key_prefix

    def claims(kind: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key in client.scan_iter(f"{prefix}schedule:{kind}:*", count=1000):
            seller = key.decode()[len(f"{prefix}schedule:{kind}:") :].split(":")[0]
            counts[seller] = counts.get(seller, 0) + 1
        return counts

    wait_for(
        lambda: all(str(s) in claims("sync") for s in sellers),
        60,
        "a slot of every seller",
        *schedulers,
    )
    time.sleep(settings.sync_interval_low_seconds + 1)  # at least one more slot each
    for item in schedulers:
        item.assert_alive()
        item.process.send_signal(signal.SIGTERM)
    for item in schedulers:
        assert item.process.wait(timeout=30) == 0, item.output()
        assert "scheduler started" in item.output()

    queued: dict[tuple[str, int], int] = {}
    for queue in (Queue.STATS_HIGH, Queue.STATS_MEDIUM, Queue.STATS_LOW):
        entries: list[Any] = client.xrange(stream_name(settings, queue)) or []
        for _, fields in entries:
            message = json.loads(fields[b"data"])
            key = (message["args"][0], int(message["args"][1]))
            queued[key] = queued.get(key, 0) + 1
    sync_claims, sweep_claims = claims("sync"), claims("sweep")
    for seller_id in sellers:
        seller = str(seller_id)
        # Every claimed slot was queued exactly once, though two schedulers ticked.
        assert queued.get((seller, settings.sync_window_days), 0) == sync_claims[seller]
        assert queued.get((seller, settings.sweep_window_days), 0) == sweep_claims.get(seller, 0)
        assert 2 <= sync_claims[seller] <= 4  # one per 10 s slot over the ~15-25 s run
    client.close()
