"""Meta history backfill: core's backfill jobs over the sandbox on loopback.

A newly connected account's last 28 days are fetched in 7-day chunks through the real
plugin; every entity-day of the window ends in ``ad_stats_daily`` once, with exactly the
number the sandbox reports for it, and a chunk run again changes no total. The sandbox's
"today" and core's clock are pinned, so the numbers are the same on any date.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
import redis.asyncio as redis
from meta_ads_support import TOKEN, SandboxHandle, raw_daily_rows
from pixecom_meta_ads.ad_network import MetaAdNetwork

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdNetwork
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.stats.backfill import BackfillJobs, JobOutcome
from pixecom_core.stats.sync import StatsSync
from pixecom_core.testing import databases
from pixecom_core.testing.databases import TestDatabase

ACCOUNT = "1000042"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SINCE, UNTIL = date(2026, 10, 29), date(2026, 11, 25)
LEVELS = ("campaign", "adset", "ad")


class MetaAtSandbox:
    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@pytest.fixture(scope="module")
def database() -> Iterator[TestDatabase]:
    with (
        databases.test_servers() as (server_dsn, redis_url),
        databases.provision_test_database(server_dsn, redis_url) as db,
    ):
        yield db


@pytest.fixture
async def jobs(database: TestDatabase, network: MetaAdNetwork) -> AsyncIterator[BackfillJobs]:
    settings = database.settings.model_copy(
        update={"redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:"}
    )
    manager = create_plugin_manager(load_entry_points=False, plugins=[MetaAtSandbox(network)])
    engine = create_engine(settings, role="app")
    client = redis.Redis.from_url(database.redis_url)
    sessions = create_sessionmaker(engine)
    sync = StatsSync(
        sessions, settings, ProviderRegistry(manager), SecretBox(settings.token_encryption_keys)
    )
    yield BackfillJobs(sync, sessions, settings, client, clock=lambda: NOW)
    await client.aclose()
    await engine.dispose()


def connected_account(db: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    seller_id = uuid.uuid4()
    box = SecretBox(db.settings.token_encryption_keys)
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        conn.execute(
            "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, 'Meta shop', 'USD')",
            (seller_id,),
        )
        row = conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, currency,"
            " token_ciphertext, token_key_version) VALUES (%s, 'meta', %s, 'Main', 'UTC', 'USD',"
            " %s, %s) RETURNING id",
            (seller_id, f"act_{ACCOUNT}", box.encrypt(TOKEN), box.primary_version),
        ).fetchone()
    assert row is not None
    return seller_id, row[0]


def stored(db: TestDatabase, seller_id: uuid.UUID) -> dict[tuple[str, str, date], int]:
    with psycopg.connect(db.owner_dsn) as conn:
        rows = conn.execute(
            "SELECT entity_type, entity_id, stat_date, spend_micros FROM ad_stats_daily"
            " WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def done_through(db: TestDatabase, seller_id: uuid.UUID) -> date | None:
    with psycopg.connect(db.owner_dsn) as conn:
        row = conn.execute(
            "SELECT backfill_done_through FROM ad_accounts WHERE seller_id = %s", (seller_id,)
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def sandbox_reports(sandbox: SandboxHandle) -> dict[tuple[str, str, date], int]:
    """What the sandbox reports for the whole window, per level, entity and day."""
    reported: dict[tuple[str, str, date], int] = {}
    for level in LEVELS:
        for row in await raw_daily_rows(sandbox, ACCOUNT, level, SINCE, UNTIL):
            key = (level, row[f"{level}_id"], date.fromisoformat(row["date_start"]))
            reported[key] = int(Decimal(row["spend"]) * 1_000_000)
    return reported


async def test_a_28_day_backfill_stores_every_day_the_sandbox_reports_once(
    database: TestDatabase, sandbox: SandboxHandle, jobs: BackfillJobs
) -> None:
    await sandbox.change_account(ACCOUNT, today=NOW.date().isoformat())
    seller_id, account_id = connected_account(database)

    outcomes: list[JobOutcome] = []
    chunk_seconds: list[float] = []
    task_id = "bf-0"
    for number in range(1, 10):
        started = time.perf_counter()
        result = await jobs.run(seller_id, account_id, task_id=task_id, next_task_id=f"bf-{number}")
        chunk_seconds.append(time.perf_counter() - started)
        outcomes.append(result.outcome)
        if result.outcome is not JobOutcome.CONTINUE:
            break
        task_id = f"bf-{number}"
    print(f"backfill chunk seconds: {[round(s, 3) for s in chunk_seconds]}")  # noqa: T201
    reported = await sandbox_reports(sandbox)
    after_backfill = stored(database, seller_id)

    # Chunk 4 of 7 days each, the last one completing the window.
    assert outcomes == [JobOutcome.CONTINUE] * 3 + [JobOutcome.DONE]
    assert done_through(database, seller_id) == UNTIL
    assert {day for _, _, day in reported} == {
        SINCE + timedelta(days=n) for n in range((UNTIL - SINCE).days + 1)
    }
    # Every entity-day exactly as the sandbox reports it: nothing missing, nothing twice.
    assert after_backfill == reported
    for level in LEVELS:
        assert sum(v for (lv, _, _), v in after_backfill.items() if lv == level) == sum(
            v for (lv, _, _), v in reported.items() if lv == level
        )

    # The last chunk again (its job delivered twice): no total changes.
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        conn.execute(
            "UPDATE ad_accounts SET backfill_done_through = %s WHERE id = %s",
            (UNTIL - timedelta(days=7), account_id),
        )
    again = await jobs.run(seller_id, account_id, task_id="again", next_task_id="again-2")
    assert again.outcome is JobOutcome.DONE
    assert stored(database, seller_id) == after_backfill
