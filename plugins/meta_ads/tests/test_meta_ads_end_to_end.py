"""Meta end to end: core's sync over the sandbox, restated days replace, never add up.

The plugin's sandbox on loopback, core's StatsSync on a real database (DATABASE_URL, else
embedded): a day the sandbox restates ends as the new value after the next cycle, and
running the same cycle again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from meta_ads_support import TOKEN, SandboxHandle, raw_daily_rows
from pixecom_meta_ads.ad_network import MetaAdNetwork

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdNetwork
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.stats.sync import AccountOutcome, StatsSync
from pixecom_core.testing import databases
from pixecom_core.testing.databases import TestDatabase

ACCOUNT = "1000042"


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


def seller_with_meta_account(db: TestDatabase) -> uuid.UUID:
    seller_id = uuid.uuid4()
    box = SecretBox(db.settings.token_encryption_keys)
    with psycopg.connect(db.owner_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        conn.execute(
            "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, 'Meta shop', 'USD')",
            (seller_id,),
        )
        conn.execute(
            "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone, currency,"
            " token_ciphertext, token_key_version) VALUES (%s, 'meta', %s, 'Main', 'UTC', 'USD',"
            " %s, %s)",
            (seller_id, f"act_{ACCOUNT}", box.encrypt(TOKEN), box.primary_version),
        )
    return seller_id


def daily(db: TestDatabase, seller_id: uuid.UUID, day: date) -> dict[tuple[str, str], int]:
    with psycopg.connect(db.owner_dsn) as conn:
        rows = conn.execute(
            "SELECT entity_type, entity_id, spend_micros FROM ad_stats_daily"
            " WHERE seller_id = %s AND stat_date = %s",
            (seller_id, day),
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


async def test_a_restated_day_replaces_the_snapshot_through_the_real_plugin(
    database: TestDatabase, sandbox: SandboxHandle, network: MetaAdNetwork
) -> None:
    seller_id = seller_with_meta_account(database)
    manager = create_plugin_manager(load_entry_points=False, plugins=[MetaAtSandbox(network)])
    engine = create_engine(database.settings, role="app")
    sync = StatsSync(
        create_sessionmaker(engine),
        database.settings,
        ProviderRegistry(manager),
        SecretBox(database.settings.token_encryption_keys),
    )
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    try:
        first = await sync.sync_seller(seller_id, days_back=3, now=now)
        before = daily(database, seller_id, yesterday)
        restated = await sandbox.restate(ACCOUNT, yesterday)
        assert restated.status_code == 200, restated.text
        await sync.sync_seller(seller_id, days_back=3, now=now + timedelta(minutes=15))
        after = daily(database, seller_id, yesterday)
        await sync.sync_seller(seller_id, days_back=3, now=now + timedelta(minutes=30))
        repeated = daily(database, seller_id, yesterday)
    finally:
        await engine.dispose()

    assert first.accounts[0].outcome is AccountOutcome.SYNCED, first.accounts[0].error
    assert before and set(before) == set(after)
    # Every level is present and none collapsed into another.
    assert {kind for kind, _ in before} == {"campaign", "adset", "ad"}
    changed = [key for key in before if before[key] != after[key]]
    assert changed, "the restatement changed nothing"
    # The new value, never old + new: exactly what the sandbox reports for the day now.
    for level in ("campaign", "adset", "ad"):
        for row in await raw_daily_rows(sandbox, ACCOUNT, level, yesterday, yesterday):
            micros = int(Decimal(row["spend"]) * 1_000_000)
            assert after[(level, row[f"{level}_id"])] == micros
    assert repeated == after
