"""The slow-query watch, against statements really running on the server (OPS-1)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import psycopg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.observability.slow_queries import SlowQueryGauges, watch_slow_queries
from pixecom_core.settings import LogFormat, Settings
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, stream_name
from reference_app.worker.metrics import WATCH_SLOW_QUERIES, kick_slow_query_watch_if_due
from tests.observability.conftest import captured_logging


@pytest.fixture
def json_log(settings: Settings) -> Iterator[io.StringIO]:
    json_settings = settings.model_copy(update={"log_format": LogFormat.JSON})
    with captured_logging(json_settings, "worker") as buffer:
        yield buffer


@asynccontextmanager
async def sleeping_statement(dsn: str, seconds: float, application_name: str) -> AsyncIterator[int]:
    """``SELECT pg_sleep(seconds)`` running on its own connection; yields its pid and
    cancels it on exit (so the test does not wait the whole sleep)."""
    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, application_name=application_name
    )
    pid = conn.info.backend_pid
    sleeper = asyncio.create_task(conn.execute("SELECT pg_sleep(%s)", (seconds,)))
    try:
        yield pid
    finally:
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))
        with pytest.raises(psycopg.errors.QueryCanceled):
            await sleeper
        await conn.close()


async def test_a_long_statement_is_reported_logged_and_counted(
    database: TestDatabase, app_engine: AsyncEngine, json_log: io.StringIO
) -> None:
    registry = CollectorRegistry()
    gauges = SlowQueryGauges(registry)
    # As the application role, like an API request: the watch (also the app role) sees it.
    async with sleeping_statement(database.app_dsn, 30, "pixecom-api") as pid:
        await asyncio.sleep(0.8)  # past the threshold
        report = await watch_slow_queries(app_engine, 0.5, gauges)

    [statement] = [s for s in report.statements if s.pid == pid]
    assert report.total == 1
    assert "pg_sleep" in statement.query
    assert statement.application_name == "pixecom-api"
    assert statement.state == "active"
    assert statement.wait_event == "PgSleep"
    assert 0.5 <= statement.duration_seconds < 30
    assert registry.get_sample_value("pixecom_slow_statements") == 1
    longest = registry.get_sample_value("pixecom_slow_statement_longest_seconds")
    assert longest == statement.duration_seconds
    checked = registry.get_sample_value("pixecom_slow_query_check_timestamp_seconds")
    assert checked is not None and checked > time.time() - 60

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [logged] = [line for line in lines if line["event"] == "slow statement"]
    assert logged["pid"] == pid
    assert logged["level"] == "warning"
    assert logged["application_name"] == "pixecom-api"
    assert logged["wait_event"] == "PgSleep"
    assert logged["state"] == "active"
    assert "pg_sleep" in logged["query"]
    assert logged["duration_seconds"] >= 0.5


async def test_a_fast_system_reports_nothing(
    app_engine: AsyncEngine, json_log: io.StringIO
) -> None:
    registry = CollectorRegistry()
    gauges = SlowQueryGauges(registry)
    gauges.count.set(7)  # what a previous check found: must be replaced, not kept
    gauges.longest.set(99)
    report = await watch_slow_queries(app_engine, 0.5, gauges)
    assert report.total == 0 and report.statements == []
    assert registry.get_sample_value("pixecom_slow_statements") == 0
    assert registry.get_sample_value("pixecom_slow_statement_longest_seconds") == 0
    assert "slow statement" not in json_log.getvalue()


async def test_a_statement_under_the_threshold_is_not_reported(
    database: TestDatabase, app_engine: AsyncEngine
) -> None:
    async with sleeping_statement(database.app_dsn, 30, "pixecom-worker-payments") as pid:
        await asyncio.sleep(0.5)
        report = await watch_slow_queries(app_engine, 20)
    assert pid not in {s.pid for s in report.statements}
    assert report.total == 0


async def test_long_queries_are_truncated(database: TestDatabase, app_engine: AsyncEngine) -> None:
    padding = "x" * 5000
    conn = await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True)
    pid = conn.info.backend_pid
    sleeper = asyncio.create_task(
        conn.execute(f"SELECT pg_sleep(30), '{padding}'")  # the literal makes it long
    )
    try:
        await asyncio.sleep(0.8)
        report = await watch_slow_queries(app_engine, 0.5)
    finally:
        with psycopg.connect(database.app_dsn, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))
        with pytest.raises(psycopg.errors.QueryCanceled):
            await sleeper
        await conn.close()
    [statement] = [s for s in report.statements if s.pid == pid]
    assert len(statement.query) <= 300
    assert statement.query.startswith("SELECT pg_sleep(30)")


async def test_the_scheduler_queues_the_watch_once_per_slot(settings: Settings) -> None:
    import uuid

    own = settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})
    broker = build_broker(own, Queue.STATS_LOW)
    await broker.startup()
    assert own.redis_url
    client = aioredis.Redis.from_url(own.redis_url)
    try:
        now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
        assert await kick_slow_query_watch_if_due(client, broker, own, now)
        # A second scheduler (or the next tick) in the same slot queues nothing.
        assert not await kick_slow_query_watch_if_due(client, broker, own, now)
        later = datetime.fromtimestamp(now.timestamp() + own.slow_query_watch_seconds, tz=UTC)
        assert await kick_slow_query_watch_if_due(client, broker, own, later)
        entries = await client.xrange(stream_name(own, Queue.PAYMENTS))
        names = [json.loads((fields or {})[b"data"])["task_name"] for _, fields in entries or []]
        assert names == [WATCH_SLOW_QUERIES, WATCH_SLOW_QUERIES]
    finally:
        await client.aclose()
        await broker.shutdown()
