"""A real ``pixecom worker`` process: task metrics, log context, sync lag and readiness on
its metrics port, the slow-query watch run as a task (issue 7)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from taskiq import AsyncBroker
from typer.testing import CliRunner

from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from reference_app.cli import app
from reference_app.worker.broker import (
    PROCESS_WEBHOOK,
    REFRESH_TRACKING,
    Queue,
    build_broker,
    stream_name,
)
from reference_app.worker.metrics import WATCH_SLOW_QUERIES
from tests.ledger.test_worker_redelivery import worker_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"})


@pytest.fixture
def running_worker(
    database: TestDatabase, worker_settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """``pixecom worker --queue payments --metrics-port N``: (metrics base URL, its log)."""
    executable = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert executable
    port = free_port()
    log = tmp_path / "worker.log"
    env = worker_env(
        database,
        worker_settings,
        PIXECOM_LOG_FORMAT="json",
        PIXECOM_SLOW_QUERY_THRESHOLD_SECONDS="0.5",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, "worker", "--queue", "payments", "--metrics-port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker's metrics port never answered:\n{log.read_text()}")
        time.sleep(0.2)
    yield base, log
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return None


async def kick(broker: AsyncBroker, settings: Settings, task_name: str, *args: Any) -> None:
    task = broker.find_task(task_name)
    assert task is not None
    await task.kicker().with_labels(queue_name=stream_name(settings, Queue.PAYMENTS)).kiq(*args)


def wait_for_metrics(base: str, log: Path, done: Any, what: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        if done(text):
            return text
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()}")


async def test_task_metrics_log_context_and_readiness(
    worker_settings: Settings,
    running_worker: tuple[str, Path],
) -> None:
    base, log = running_worker
    seller_id = str(uuid.uuid4())
    broker = build_broker(worker_settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        # Two that succeed (no such delivery: skipped), one that raises (not an id), one
        # with a seller (the tracker is not installed in this run: it fails fast).
        await kick(broker, worker_settings, PROCESS_WEBHOOK, 987_654_321)
        await kick(broker, worker_settings, PROCESS_WEBHOOK, 987_654_322)
        await kick(broker, worker_settings, PROCESS_WEBHOOK, "not-an-inbox-id")
        await kick(broker, worker_settings, REFRESH_TRACKING, seller_id)
    finally:
        await broker.shutdown()

    def all_ran(text: str) -> bool:
        webhooks = sample(
            text, "pixecom_task_duration_seconds_count", queue="payments", task=PROCESS_WEBHOOK
        )
        tracking = sample(
            text, "pixecom_task_duration_seconds_count", queue="payments", task=REFRESH_TRACKING
        )
        return webhooks == 3 and tracking == 1

    text = wait_for_metrics(base, log, all_ran, "four tasks to run")
    assert sample(text, "pixecom_task_failures_total", queue="payments", task=PROCESS_WEBHOOK) == 1
    assert sample(text, "pixecom_worker_ready") == 1
    # Sync lag per tier, read from the database at scrape time.
    for tier in ("high", "medium", "low"):
        assert sample(text, "pixecom_sync_lag_max_seconds", tier=tier) is not None
    assert sample(text, "pixecom_metrics_source_up", source="sync_lag") == 1
    # Issue 12 item 6: the inbox's waiting and parked deliveries, per state.
    assert sample(text, "pixecom_metrics_source_up", source="webhook_inbox") == 1
    for state in ("received", "deferred", "failed"):
        assert sample(text, "pixecom_webhook_inbox_deliveries", state=state) is not None
    assert seller_id not in text  # task metrics are labelled by name, never by argument

    readiness = httpx.get(f"{base}/readyz", timeout=5)
    assert readiness.status_code == 200
    assert readiness.json()["checks"]["database"]["status"] == "ok"

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("event") == "task finished"]
    assert len(finished) == 4
    [tracking] = [line for line in finished if line["task_name"] == REFRESH_TRACKING]
    assert tracking["seller_id"] == seller_id
    assert tracking["queue"] == "payments" and tracking["process"] == "worker-payments"
    failed = [line for line in finished if line["outcome"] == "failed"]
    assert {line["task_name"] for line in failed} >= {PROCESS_WEBHOOK}
    # Webhook tasks have no seller: none is invented, and none leaks from the tracking task.
    assert all("seller_id" not in line for line in finished if line["task_name"] == PROCESS_WEBHOOK)
    # Every line of the worker is JSON, taskiq's own included.
    assert all(line.startswith("{") for line in log.read_text().splitlines() if line.strip())


async def test_the_watch_runs_in_the_worker_and_sets_its_gauges(
    database: TestDatabase,
    worker_settings: Settings,
    running_worker: tuple[str, Path],
) -> None:
    base, log = running_worker
    conn = await psycopg.AsyncConnection.connect(
        database.app_dsn, autocommit=True, application_name="pixecom-api"
    )
    pid = conn.info.backend_pid
    sleeper = asyncio.create_task(conn.execute("SELECT pg_sleep(60)"))
    try:
        await asyncio.sleep(1.0)
        broker = build_broker(worker_settings, Queue.PAYMENTS)
        await broker.startup()
        try:
            await kick(broker, worker_settings, WATCH_SLOW_QUERIES)
        finally:
            await broker.shutdown()
        text = await asyncio.to_thread(
            wait_for_metrics,
            base,
            log,
            lambda t: (
                sample(
                    t,
                    "pixecom_task_duration_seconds_count",
                    queue="payments",
                    task=WATCH_SLOW_QUERIES,
                )
                == 1
            ),
            "the watch to run",
        )
    finally:
        with psycopg.connect(database.app_dsn, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (pid,))
        with pytest.raises(psycopg.errors.QueryCanceled):
            await sleeper
        await conn.close()
    assert sample(text, "pixecom_slow_statements") == 1
    assert (sample(text, "pixecom_slow_statement_longest_seconds") or 0) >= 0.5
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [slow] = [line for line in lines if line.get("event") == "slow statement"]
    assert slow["pid"] == pid and slow["application_name"] == "pixecom-api"
    assert slow["task_name"] == WATCH_SLOW_QUERIES


@pytest.mark.parametrize("port", ["-1", "70000", "nine"])
def test_bad_metrics_ports_are_refused(port: str) -> None:
    result = CliRunner().invoke(app, ["worker", "--metrics-port", port])
    assert result.exit_code == 2, result.output
    assert "metrics-port" in result.output
