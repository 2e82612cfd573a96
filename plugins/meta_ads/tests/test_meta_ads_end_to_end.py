"""Meta end to end: core's sync over the sandbox, restated days replace, never add up.

The plugin's sandbox on loopback, core's StatsSync on a real database (DATABASE_URL, else
embedded): a day the sandbox restates ends as the new value after the next cycle, and
running the same cycle again changes nothing; an ad the restated day no longer reports
counts zero. The day is pinned at the sandbox and in core's clock, so the ads that deliver
are the same on whatever date the tests run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import psycopg
import pytest
from meta_ads_support import TOKEN, SandboxHandle, raw_daily_rows
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.sandbox import account_ads, ad_day

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


def a_day_on_which_a_restatement_stops_an_ad(number: str, campaigns: int) -> tuple[date, str]:
    """The first day of 2026 on which one of the account's ads delivers at revision 0 and
    no longer at revision 1: the sandbox's numbers are a hash of (ad, day, revision), so
    this is the same day on every run, whatever the date the tests run on."""
    for offset in range(366):
        day = date(2026, 1, 1) + timedelta(days=offset)
        for ad in account_ads(number, campaigns):
            if ad_day(ad.ad_id, day, 0) is not None and ad_day(ad.ad_id, day, 1) is None:
                return day, ad.ad_id
    raise AssertionError("no restatement in 2026 stops an ad")  # pragma: no cover


async def sync_a_restated_day(
    database: TestDatabase,
    sandbox: SandboxHandle,
    network: MetaAdNetwork,
    restated_day: date,
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Sync a fresh seller's account on the day after ``restated_day`` (pinned at the
    sandbox and in core's clock), restate the day, sync twice more; the day's daily rows
    before the restatement, after it, and after the repeat."""
    seller_id = seller_with_meta_account(database)
    await sandbox.change_account(ACCOUNT, today=(restated_day + timedelta(days=1)).isoformat())
    manager = create_plugin_manager(load_entry_points=False, plugins=[MetaAtSandbox(network)])
    engine = create_engine(database.settings, role="app")
    sync = StatsSync(
        create_sessionmaker(engine),
        database.settings,
        ProviderRegistry(manager),
        SecretBox(database.settings.token_encryption_keys),
    )
    now = datetime.combine(restated_day + timedelta(days=1), time(12), UTC)
    try:
        first = await sync.sync_seller(seller_id, days_back=3, now=now)
        assert first.accounts[0].outcome is AccountOutcome.SYNCED, first.accounts[0].error
        before = daily(database, seller_id, restated_day)
        restated = await sandbox.restate(ACCOUNT, restated_day)
        assert restated.status_code == 200, restated.text
        await sync.sync_seller(seller_id, days_back=3, now=now + timedelta(minutes=15))
        after = daily(database, seller_id, restated_day)
        await sync.sync_seller(seller_id, days_back=3, now=now + timedelta(minutes=30))
        repeated = daily(database, seller_id, restated_day)
    finally:
        await engine.dispose()
    return before, after, repeated


async def reported(sandbox: SandboxHandle, day: date) -> dict[tuple[str, str], int]:
    """What the sandbox reports for ``day`` now, at every level, in micros."""
    rows: dict[tuple[str, str], int] = {}
    for level in ("campaign", "adset", "ad"):
        for row in await raw_daily_rows(sandbox, ACCOUNT, level, day, day):
            rows[(level, row[f"{level}_id"])] = int(Decimal(row["spend"]) * 1_000_000)
    return rows


async def test_a_restated_day_replaces_the_snapshot_through_the_real_plugin(
    database: TestDatabase, sandbox: SandboxHandle, network: MetaAdNetwork
) -> None:
    day = date(2026, 11, 20)
    before, after, repeated = await sync_a_restated_day(database, sandbox, network, day)
    now_reported = await reported(sandbox, day)

    # Every level is present and none collapsed into another.
    assert {kind for kind, _ in before} == {"campaign", "adset", "ad"}
    changed = [key for key in before if before[key] != after.get(key)]
    assert changed, "the restatement changed nothing"
    # The new value, never old + new: exactly what the sandbox reports for the day now,
    # and zero for what it stopped reporting (Meta omits rows without delivery).
    assert after == now_reported | dict.fromkeys(before.keys() - now_reported.keys(), 0)
    assert repeated == after


async def test_an_ad_a_restatement_stops_no_longer_counts_through_the_real_plugin(
    database: TestDatabase, sandbox: SandboxHandle, network: MetaAdNetwork
) -> None:
    campaigns = (await sandbox.account(ACCOUNT))["campaigns"]
    day, stopped_ad = a_day_on_which_a_restatement_stops_an_ad(ACCOUNT, campaigns)
    before, after, repeated = await sync_a_restated_day(database, sandbox, network, day)
    now_reported = await reported(sandbox, day)

    assert before[("ad", stopped_ad)] > 0
    assert ("ad", stopped_ad) not in now_reported
    assert after[("ad", stopped_ad)] == 0
    assert after == now_reported | dict.fromkeys(before.keys() - now_reported.keys(), 0)
    assert repeated == after
