"""A worker killed between inbox insert and ledger write loses nothing.

Real processes: `pixecom worker` consumes the payments stream on Redis; the first worker
is SIGKILLed while the delivery is being parsed (before any ledger write), the second one
gets the unacknowledged message again (and the inbox sweep queues the delivery too), and
the ledger ends with the fact exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from pixecom_core.ledger import WebhookInbox
from pixecom_core.providers import PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, kick_process_webhook, stream_name
from tests.ledger import fakepay
from tests.ledger.conftest import OrderFactory

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "worker_redelivery_after_seconds": 3.0,
            "webhook_task_timeout_seconds": 2.0,
            "stats_task_timeout_seconds": 2.0,
            "inbox_sweep_seconds": 1.0,
        }
    )


def worker_env(database: TestDatabase, settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXECOM_")}
    env.update(
        {
            "PIXECOM_MODE": "test",
            "DATABASE_URL": database.owner_dsn,
            "REDIS_URL": database.redis_url,
            "PIXECOM_REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "PIXECOM_JWT_SIGNING_KEYS": json.dumps(
                [k.get_secret_value() for k in settings.jwt_signing_keys]
            ),
            "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(
                [k.get_secret_value() for k in settings.token_encryption_keys]
            ),
            "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps(
                [k.get_secret_value() for k in settings.refresh_token_peppers]
            ),
            "PIXECOM_WORKER_REDELIVERY_AFTER_SECONDS": str(
                settings.worker_redelivery_after_seconds
            ),
            "PIXECOM_WEBHOOK_TASK_TIMEOUT_SECONDS": str(settings.webhook_task_timeout_seconds),
            "PIXECOM_STATS_TASK_TIMEOUT_SECONDS": str(settings.stats_task_timeout_seconds),
            "PIXECOM_INBOX_SWEEP_SECONDS": str(settings.inbox_sweep_seconds),
            # No installed plugin, only the test gateway, importable from the repository.
            "PIXECOM_LOAD_PLUGINS": "",
            "PIXECOM_PLUGIN_MODULES": "tests.ledger.fakepay",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []
    executable = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert executable

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [executable, "worker", "--queue", "payments"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(
    condition: object,
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes],
    log: Path,
) -> None:
    """Wait for ``condition``; fail at once, with its log, if the worker exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}):\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()}")


def inbox_status(dsn: str, inbox_id: int) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status FROM webhook_inbox WHERE id = %s", (inbox_id,)).fetchone()
    assert row is not None
    return str(row[0])


def ledger_count(dsn: str, seller_id: uuid.UUID, fact: str) -> int:
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        row = conn.execute(
            "SELECT count(*) FROM payment_events WHERE gateway_reference = %s", (fact,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_killing_the_worker_mid_task_loses_nothing(
    database: TestDatabase,
    worker_settings: Settings,
    inbox: WebhookInbox,
    payable_order: OrderFactory,
    start_worker: object,
    tmp_path: Path,
) -> None:
    order = payable_order()
    fact = f"ch_{uuid.uuid4().hex[:10]}"
    body, headers = fakepay.delivery(
        [fakepay.fact(order.payment, fact, PaymentEventKind.CAPTURED, 4_200)]
    )
    receipt = await inbox.receive("fakepay", body=body, headers=headers)
    broker = build_broker(worker_settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        await kick_process_webhook(broker, receipt.inbox_id)
    finally:
        await broker.shutdown()

    # Worker 1 takes the message and is killed while parsing, before any ledger write.
    slow = worker_env(database, worker_settings, PIXECOM_FAKEPAY_PARSE_SECONDS="30")
    first = start_worker(slow)  # type: ignore[operator]
    stream = stream_name(worker_settings, Queue.PAYMENTS)
    group = f"{worker_settings.redis_key_prefix}workers"
    client = redis.Redis.from_url(database.redis_url)

    def taken() -> bool:
        try:
            return int(client.xpending(stream, group)["pending"]) == 1
        except redis.ResponseError:
            return False  # the group does not exist yet

    # Generous: a worker process starting on a loaded two-core CI machine is slow.
    wait_for(taken, 120, "worker 1 to take the message", first, tmp_path / "worker-0.log")
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert inbox_status(database.owner_dsn, receipt.inbox_id) == "RECEIVED"
    assert ledger_count(database.owner_dsn, order.seller_id, fact) == 0

    # Worker 2 finishes the job: exactly one fact, the delivery marked processed.
    second = start_worker(worker_env(database, worker_settings))  # type: ignore[operator]
    wait_for(
        lambda: inbox_status(database.owner_dsn, receipt.inbox_id) == "PROCESSED",
        120,
        "worker 2 to process the redelivered webhook",
        second,
        tmp_path / "worker-1.log",
    )
    assert ledger_count(database.owner_dsn, order.seller_id, fact) == 1
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0, (tmp_path / "worker-1.log").read_text()
    client.close()
