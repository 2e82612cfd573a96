"""One ``pixecom worker`` process consuming several queues (issue 18 item 6, "memory for
one small VPS"): every queue gets its tasks, each queue's concurrency bounds that queue
alone, SIGTERM drains every queue, and the metrics and readiness endpoints name the queues.

Real processes, PostgreSQL and Redis; syncs of the ``slowads`` network take about 1.2 s
each (three fetches of 0.4 s), long enough to see which ran side by side.
"""

from __future__ import annotations

import json
import signal
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime

import httpx
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings
from pixecom_core.stats.schedule import DueSync
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import (
    PROCESS_WEBHOOK,
    Queue,
    build_broker,
    kick_sync,
    stream_name,
)
from tests.scaleout.conftest import (
    Start,
    Started,
    create_sellers,
    done_per_seller,
    process_env,
    wait_for,
)


@dataclass(frozen=True)
class Timed:
    """One finished ``sync_runs`` row with its times."""

    seller_id: uuid.UUID
    worker: str
    started_at: datetime
    finished_at: datetime


def timed_runs(dsn: str, sellers: list[uuid.UUID]) -> dict[uuid.UUID, Timed]:
    """Each seller's finished run (each has exactly one in these tests)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT seller_id, worker, started_at, finished_at FROM sync_runs"
            " WHERE seller_id = ANY(%s) AND finished_at IS NOT NULL",
            (sellers,),
        ).fetchall()
    assert len(rows) == len(sellers), rows
    return {row[0]: Timed(*row) for row in rows}


def overlap(first: Timed, second: Timed) -> bool:
    """Whether the two runs were running at the same moment."""
    return first.started_at < second.finished_at and second.started_at < first.finished_at


def running(dsn: str, sellers: list[uuid.UUID]) -> int:
    """Runs of ``sellers`` started and not finished."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sync_runs WHERE seller_id = ANY(%s) AND finished_at IS NULL",
            (sellers,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def kick_syncs(
    settings: Settings, due: list[tuple[uuid.UUID, SellerTier]], *, webhooks: int = 0
) -> None:
    """Queue a sync of each seller on its tier's queue, and ``webhooks`` deliveries (of
    no stored row: processed as skipped) on the payments queue, as the scheduler and the
    API would."""
    broker = build_broker(settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        for seller_id, tier in due:
            await kick_sync(
                broker,
                settings,
                DueSync(seller_id, tier, settings.sync_window_days, "-", 0, False),
            )
        task = broker.find_task(PROCESS_WEBHOOK)
        assert task is not None
        for number in range(webhooks):
            await task.kiq(987_000_000 + number)
    finally:
        await broker.shutdown()


def pending(client: redis.Redis, settings: Settings, queue: Queue) -> int:
    """Messages of ``queue`` delivered and not acknowledged yet."""
    summary = client.xpending(stream_name(settings, queue), f"{settings.redis_key_prefix}workers")
    return int(summary["pending"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return None


def listening(worker: Started, receivers: int) -> bool:
    """Whether every queue's receiver of ``worker`` has started listening."""
    return worker.output().count("Listening started") >= receivers


async def test_each_queue_gets_its_tasks_and_its_concurrency_bounds_it_alone(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    low, high = create_sellers(dsn, settings, 2), create_sellers(dsn, settings, 2)
    port = free_port()
    worker = start_pixecom(
        process_env(scaleout_database, settings),
        "worker",
        "--queue",
        "stats-low:1",
        "--queue",
        "stats-high:2,payments:5",
        "--metrics-port",
        str(port),
    )
    wait_for(lambda: listening(worker, 3), 90, "three queues' receivers", worker)

    await kick_syncs(
        settings,
        [(seller, SellerTier.LOW) for seller in low] + [(s, SellerTier.HIGH) for s in high],
        webhooks=2,
    )
    wait_for(
        lambda: done_per_seller(dsn, low + high) == dict.fromkeys(low + high, 1),
        60,
        "every sync to finish",
        worker,
    )

    runs = timed_runs(dsn, low + high)
    # stats-low:1 — its two syncs ran one after the other …
    assert not overlap(runs[low[0]], runs[low[1]]), runs
    # … while stats-high:2 ran its two side by side, and beside a stats-low sync.
    assert overlap(runs[high[0]], runs[high[1]]), runs
    assert any(overlap(runs[h], runs[s]) for h in high for s in low), runs
    # One process ran all of them.
    assert {run.worker for run in runs.values()} == {f"{runs[low[0]].worker}"}
    assert runs[low[0]].worker.endswith(f":{worker.process.pid}")

    base = f"http://127.0.0.1:{port}"

    def webhooks_ran() -> bool:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        labels = {"queue": "payments", "task": PROCESS_WEBHOOK}
        return sample(text, "pixecom_task_duration_seconds_count", **labels) == 2

    wait_for(webhooks_ran, 30, "the payments queue's two tasks", worker)
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for queue, limit in (("stats-low", 1), ("stats-high", 2), ("payments", 5)):
        assert sample(text, "pixecom_worker_queue_concurrency", queue=queue) == limit
        assert sample(text, "pixecom_worker_queue_running_tasks", queue=queue) == 0
    for queue in ("stats-low", "stats-high"):
        labels = {"queue": queue, "task": "pixecom.sync_seller"}
        assert sample(text, "pixecom_task_duration_seconds_count", **labels) == 2
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200
    assert json.loads(ready.text)["queues"] == {"stats-low": 1, "stats-high": 2, "payments": 5}


async def test_sigterm_drains_every_queue_then_exits(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    low, high = create_sellers(dsn, settings, 2), create_sellers(dsn, settings, 2)
    client = redis.Redis.from_url(scaleout_database.redis_url)
    worker = start_pixecom(
        process_env(scaleout_database, settings),
        "worker",
        "--queue",
        "stats-low:2",
        "--queue",
        "stats-high:2",
    )
    wait_for(lambda: listening(worker, 2), 90, "two queues' receivers", worker)

    await kick_syncs(
        settings,
        [(seller, SellerTier.LOW) for seller in low] + [(s, SellerTier.HIGH) for s in high],
    )
    wait_for(lambda: running(dsn, low + high) == 4, 60, "four syncs running at once", worker)
    worker.process.send_signal(signal.SIGTERM)
    # Each sync takes ~1.2 s of fake network; the drain allows the task timeout (5 s).
    assert worker.process.wait(timeout=30) == 0, worker.output()

    assert done_per_seller(dsn, low + high) == dict.fromkeys(low + high, 1)
    assert running(dsn, low + high) == 0  # none cut short
    assert pending(client, settings, Queue.STATS_LOW) == 0  # acknowledged before exit
    assert pending(client, settings, Queue.STATS_HIGH) == 0
    assert "waiting up to" in worker.output()
    client.close()
