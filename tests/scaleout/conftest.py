"""Scale-out fixtures: real ``pixecom worker`` / ``pixecom scheduler`` processes sharing one
PostgreSQL database and one Redis, sellers whose ad accounts use the ``slowads`` network,
and the ``sync_runs`` log read back as the owner.

The module gets its own migrated database, so the scheduler's view of "every seller" is
exactly the sellers these tests create.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pixecom_core.models.sellers import SellerTier
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.schedule import DueSync
from pixecom_core.testing.databases import TestDatabase, provision_test_database
from reference_app.worker.broker import Queue, build_broker, kick_sync
from tests.db.tenant_rows import insert_seller, seller_scope

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Seconds one fetch of the slow network takes (three fetches per sync).
FETCH_SECONDS = 0.4


@pytest.fixture(scope="module")
def scaleout_database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """A migrated database of this module's own."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as db:
        yield db


@pytest.fixture
def scaled_settings(scaleout_database: TestDatabase) -> Settings:
    """Settings of one test: its own Redis keys, short timeouts, every seller due at once
    (10 s intervals, caught up over 15 s)."""
    return scaleout_database.settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "worker_redelivery_after_seconds": 6.0,
            "webhook_task_timeout_seconds": 2.0,
            "stats_task_timeout_seconds": 5.0,
            "sync_interval_low_seconds": 10,
            "sync_interval_medium_seconds": 10,
            "sync_interval_high_seconds": 10,
            "scheduler_tick_seconds": 5.0,
        }
    )


def process_env(
    database: TestDatabase, settings: Settings, redis_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a worker or scheduler process of this test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXECOM_")}
    keys = {
        "PIXECOM_JWT_SIGNING_KEYS": json.dumps(
            [k.get_secret_value() for k in settings.jwt_signing_keys]
        ),
        "PIXECOM_TOKEN_ENCRYPTION_KEYS": json.dumps(
            [k.get_secret_value() for k in settings.token_encryption_keys]
        ),
        "PIXECOM_REFRESH_TOKEN_PEPPERS": json.dumps(
            [k.get_secret_value() for k in settings.refresh_token_peppers]
        ),
    }
    tuned = {
        f"PIXECOM_{name.upper()}": str(getattr(settings, name))
        for name in (
            "redis_key_prefix",
            "worker_redelivery_after_seconds",
            "webhook_task_timeout_seconds",
            "stats_task_timeout_seconds",
            "sync_interval_low_seconds",
            "sync_interval_medium_seconds",
            "sync_interval_high_seconds",
            "scheduler_tick_seconds",
        )
    }
    env.update(
        {
            "PIXECOM_MODE": "test",
            "DATABASE_URL": database.owner_dsn,
            "REDIS_URL": redis_url or database.redis_url,
            **keys,
            **tuned,
            # No installed plugin: only the slow test network, importable from the repo.
            "PIXECOM_LOAD_PLUGINS": "",
            "PIXECOM_PLUGIN_MODULES": "tests.scaleout.slowads",
            "PIXECOM_SLOWADS_DELAY_SECONDS": str(FETCH_SECONDS),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update(extra)
    return env


@dataclass
class Started:
    """A process this test started, and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def assert_alive(self) -> None:
        """Fail with the log if the process exited."""
        if self.process.poll() is not None:
            pytest.fail(f"process exited ({self.process.returncode}):\n{self.output()}")


Start = Callable[..., Started]


@pytest.fixture
def start_pixecom(tmp_path: Path) -> Iterator[Start]:
    """``start_pixecom(env, "worker", "--queue", "stats-low")``: a ``pixecom`` process,
    killed at the end of the test if still running."""
    started: list[Started] = []
    executable = shutil.which("pixecom", path=str(Path(sys.executable).parent))
    assert executable

    def start(env: dict[str, str], *args: str) -> Started:
        log = tmp_path / f"{args[0]}-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [executable, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Started(process, log))
        return started[-1]

    yield start
    for item in started:
        if item.process.poll() is None:
            item.process.kill()
            item.process.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, *watched: Started) -> None:
    """Wait for ``condition``; fail at once, with its log, if a watched process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for item in watched:
            item.assert_alive()
        time.sleep(0.1)
    logs = "\n".join(item.output() for item in watched)
    pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{logs}")


def create_sellers(dsn: str, settings: Settings, count: int) -> list[uuid.UUID]:
    """``count`` sellers, each with one active ``slowads`` account (token encrypted as core
    stores it)."""
    box = SecretBox(settings.token_encryption_keys)
    sellers = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(count):
            seller_id = uuid.uuid4()
            insert_seller(conn, seller_id)
            with seller_scope(conn, seller_id):
                conn.execute(
                    "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                    " currency, token_ciphertext, token_key_version) VALUES (%s, 'slowads',"
                    " %s, 'A', 'UTC', 'USD', %s, %s)",
                    (seller_id, f"act_{seller_id.hex[:12]}", box.encrypt("t"), box.primary_version),
                )
            sellers.append(seller_id)
    return sellers


async def kick_low_syncs(settings: Settings, sellers: list[uuid.UUID]) -> None:
    """Queue one sync of each of ``sellers`` on the low tier's queue (the regular window, no
    sweep), as a scheduler would, through a broker of its own."""
    broker = build_broker(settings, Queue.STATS_LOW)
    await broker.startup()
    try:
        for seller_id in sellers:
            await kick_sync(
                broker,
                settings,
                DueSync(seller_id, SellerTier.LOW, settings.sync_window_days, "-", 0, False),
            )
    finally:
        await broker.shutdown()


@dataclass(frozen=True)
class Run:
    """One ``sync_runs`` row."""

    seller_id: uuid.UUID
    task_id: str
    days_back: int
    worker: str
    finished: bool
    outcome: str | None


def sync_runs(dsn: str, sellers: list[uuid.UUID]) -> list[Run]:
    """The recorded runs of ``sellers`` (read as the owner, filtered by seller)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT seller_id, task_id, days_back, worker, finished_at IS NOT NULL, outcome"
            " FROM sync_runs WHERE seller_id = ANY(%s) ORDER BY started_at",
            (sellers,),
        ).fetchall()
    return [Run(*row) for row in rows]


def done_per_seller(dsn: str, sellers: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many runs finished ``done``, per seller (0 for a seller without one)."""
    counts = dict.fromkeys(sellers, 0)
    for run in sync_runs(dsn, sellers):
        if run.outcome == "done":
            counts[run.seller_id] += 1
    return counts


def daily_spend(dsn: str, seller_id: uuid.UUID) -> dict[str, int]:
    """``ad_stats_daily`` spend of a seller by ISO day."""
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT stat_date, spend_micros FROM ad_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {day.isoformat(): spend for day, spend in rows}
