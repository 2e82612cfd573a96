"""A seller's sync: fetch, ingest, aggregate — restated, throttled, refused, repeated."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import (
    AdNetwork,
    EntityLevel,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.sync import AccountOutcome, StatsSync
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.stats.fakeads import FakeAdNetwork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


class FakeAdsPlugin:
    def __init__(self, network: FakeAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@dataclass(frozen=True)
class Seller:
    seller_id: uuid.UUID
    sellpage_id: uuid.UUID
    accounts: dict[str, uuid.UUID]


@pytest.fixture
def network() -> FakeAdNetwork:
    return FakeAdNetwork()


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.token_encryption_keys)


@pytest.fixture
def stats_sync(
    app_engine: AsyncEngine, settings: Settings, network: FakeAdNetwork, box: SecretBox
) -> StatsSync:
    manager = create_plugin_manager(load_entry_points=False, plugins=[FakeAdsPlugin(network)])
    return StatsSync(
        create_sessionmaker(app_engine), settings, ProviderRegistry(manager), box, manager
    )


def seller_with_accounts(dsn: str, box: SecretBox, *names: str) -> Seller:
    """A seller with a sellpage and, per name, an ad account whose campaign ``cmp_<name>``
    is linked to it; tokens encrypted as core stores them."""
    seller_id = uuid.uuid4()
    accounts: dict[str, uuid.UUID] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            page = conn.execute(
                "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'P') RETURNING id",
                (seller_id, f"p-{uuid.uuid4().hex[:10]}"),
            ).fetchone()
            assert page is not None
            for name in names:
                row = conn.execute(
                    "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                    " currency, token_ciphertext, token_key_version) VALUES (%s, 'fakeads', %s,"
                    " %s, 'UTC', 'USD', %s, %s) RETURNING id",
                    (seller_id, name, name, box.encrypt(f"token-{name}"), box.primary_version),
                ).fetchone()
                assert row is not None
                accounts[name] = row[0]
                conn.execute(
                    "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name,"
                    " sellpage_id) VALUES (%s, %s, %s, 'C', %s)",
                    (seller_id, row[0], f"cmp_{name}", page[0]),
                )
    return Seller(seller_id=seller_id, sellpage_id=page[0], accounts=accounts)


def daily_spend(dsn: str, seller_id: uuid.UUID) -> dict[tuple[str, date], int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT entity_id, stat_date, spend_micros FROM ad_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def sellpage_spend(dsn: str, seller: Seller) -> dict[date, int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller.seller_id):
        rows = conn.execute(
            "SELECT stat_date, spend_minor FROM sellpage_stats_daily WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchall()
    return {r[0]: r[1] for r in rows if r[1]}


def account_status(dsn: str, seller_id: uuid.UUID, account_id: uuid.UUID) -> dict[str, object]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        cursor = conn.execute(
            "SELECT last_synced_at, last_sync_error, sync_failures, throttled_until,"
            " needs_reconnect FROM ad_accounts WHERE seller_id = %s AND id = %s",
            (seller_id, account_id),
        )
        row = cursor.fetchone()
        names = [c.name for c in cursor.description or []]
    assert row is not None
    return dict(zip(names, row, strict=True))


async def test_restated_day_ends_as_the_new_value_and_a_repeat_changes_nothing(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    seller = seller_with_accounts(database_owner_dsn, box, "acct_a")
    yesterday = TODAY - timedelta(days=1)
    for day in (TODAY - timedelta(days=2), yesterday, TODAY):
        network.set_spend("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", day, 10_000_000)
    network.set_spend("acct_a", EntityLevel.AD, "ad_1", yesterday, 4_000_000)

    first = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)
    network.restate("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", yesterday, 15_000_000)
    await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)
    settled = daily_spend(database_owner_dsn, seller.seller_id)
    await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)

    assert first.accounts[0].outcome is AccountOutcome.SYNCED
    assert first.accounts[0].rows_received == 4
    assert settled[("cmp_acct_a", yesterday)] == 15_000_000  # the new value, not 25
    assert settled[("ad_1", yesterday)] == 4_000_000  # levels never collapse
    assert daily_spend(database_owner_dsn, seller.seller_id) == settled
    assert sellpage_spend(database_owner_dsn, seller) == {
        TODAY - timedelta(days=2): 1_000,
        yesterday: 1_500,
        TODAY: 1_000,
    }
    # The plugin got the decrypted token, core never stored it in the clear.
    assert network.tokens_seen == {"token-acct_a"}
    status = account_status(database_owner_dsn, seller.seller_id, seller.accounts["acct_a"])
    assert status["last_synced_at"] is not None and status["last_sync_error"] is None


async def test_a_throttled_account_is_delayed_while_others_keep_syncing(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    seller = seller_with_accounts(database_owner_dsn, box, "busy", "calm")
    for name in ("busy", "calm"):
        network.set_spend(name, EntityLevel.CAMPAIGN, f"cmp_{name}", TODAY, 1_000_000)
    network.fail_next("busy", ProviderThrottled("rate limited", retry_after_seconds=600))

    result = await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)
    calls_after_first = len(network.calls)
    again = await stats_sync.sync_seller(
        seller.seller_id, days_back=1, now=NOW + timedelta(minutes=5)
    )

    outcomes = {a.ad_account_id: a.outcome for a in result.accounts}
    assert outcomes[seller.accounts["busy"]] is AccountOutcome.THROTTLED
    assert outcomes[seller.accounts["calm"]] is AccountOutcome.SYNCED
    status = account_status(database_owner_dsn, seller.seller_id, seller.accounts["busy"])
    assert status["throttled_until"] == NOW + timedelta(seconds=600)
    assert status["sync_failures"] == 0  # delayed, not failed
    # Before the deadline the throttled account is not even called.
    busy_calls = [c for c in network.calls[calls_after_first:] if c[0] == "busy"]
    assert busy_calls == []
    assert {a.outcome for a in again.accounts} == {
        AccountOutcome.THROTTLED,
        AccountOutcome.SYNCED,
    }


async def test_a_refused_token_marks_the_account_for_reconnection(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    seller = seller_with_accounts(database_owner_dsn, box, "expired")
    network.fail_next("expired", ProviderAuthError("token expired (code 190)"))

    result = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)
    later = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)

    assert result.accounts[0].outcome is AccountOutcome.NEEDS_RECONNECT
    assert later.accounts[0].outcome is AccountOutcome.SKIPPED
    status = account_status(database_owner_dsn, seller.seller_id, seller.accounts["expired"])
    assert status["needs_reconnect"] is True
    assert status["sync_failures"] == 1
    assert "190" in str(status["last_sync_error"])


async def test_another_sellers_sync_touches_only_its_own_rows(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    a = seller_with_accounts(database_owner_dsn, box, "shared_name")
    b = seller_with_accounts(database_owner_dsn, box, "other")
    network.set_spend("shared_name", EntityLevel.CAMPAIGN, "cmp_shared_name", TODAY, 2_000_000)
    network.set_spend("other", EntityLevel.CAMPAIGN, "cmp_other", TODAY, 3_000_000)

    await stats_sync.sync_seller(b.seller_id, days_back=1, now=NOW)

    assert daily_spend(database_owner_dsn, a.seller_id) == {}
    assert daily_spend(database_owner_dsn, b.seller_id) == {("cmp_other", TODAY): 3_000_000}


async def test_campaigns_the_network_reports_become_campaign_rows_of_their_account(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    seller = seller_with_accounts(database_owner_dsn, box, "first", "second")
    network.set_spend("first", EntityLevel.CAMPAIGN, "cmp_new_1", TODAY, 1_000_000)
    network.set_spend("second", EntityLevel.CAMPAIGN, "cmp_new_2", TODAY, 1_000_000)

    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)
    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)  # no duplicates

    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        rows = conn.execute(
            "SELECT external_id, ad_account_id, name FROM campaigns WHERE seller_id = %s"
            " AND external_id LIKE 'cmp_new_%%' ORDER BY external_id",
            (seller.seller_id,),
        ).fetchall()
    assert rows == [
        ("cmp_new_1", seller.accounts["first"], "cmp_new_1"),
        ("cmp_new_2", seller.accounts["second"], "cmp_new_2"),
    ]


def raw_rows(dsn: str, seller_id: uuid.UUID, entity: str, day: date) -> int:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT count(*) FROM ad_stats_raw WHERE seller_id = %s AND entity_id = %s"
            " AND date_start = %s",
            (seller_id, entity, day),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_an_entity_a_complete_refetch_no_longer_reports_stops_counting(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    # Meta omits an entity without delivery: when the re-fetch of a day no longer reports
    # a campaign, its old snapshot must not keep counting (spend would be over-stated).
    seller = seller_with_accounts(database_owner_dsn, box, "acct_a", "acct_b")
    yesterday = TODAY - timedelta(days=1)
    for day in (yesterday, TODAY):
        network.set_spend("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", day, 10_000_000)
        network.set_spend("acct_b", EntityLevel.CAMPAIGN, "cmp_acct_b", day, 20_000_000)
    network.set_spend("acct_a", EntityLevel.AD, "ad_a", yesterday, 10_000_000)

    await stats_sync.sync_seller(seller.seller_id, days_back=2, now=NOW)
    network.stop_delivery("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", yesterday)
    network.stop_delivery("acct_a", EntityLevel.AD, "ad_a", yesterday)
    refetched = await stats_sync.sync_seller(seller.seller_id, days_back=2, now=NOW)
    settled = daily_spend(database_owner_dsn, seller.seller_id)
    repeated = await stats_sync.sync_seller(seller.seller_id, days_back=2, now=NOW)

    assert refetched.accounts[0].outcome is AccountOutcome.SYNCED
    assert settled == {
        ("cmp_acct_a", yesterday): 0,
        ("ad_a", yesterday): 0,
        ("cmp_acct_a", TODAY): 10_000_000,
        ("cmp_acct_b", yesterday): 20_000_000,
        ("cmp_acct_b", TODAY): 20_000_000,
    }
    assert sellpage_spend(database_owner_dsn, seller) == {yesterday: 2_000, TODAY: 3_000}
    # The zero is a snapshot of its own in the raw table, written once: a repeat adds
    # nothing and changes nothing.
    assert raw_rows(database_owner_dsn, seller.seller_id, "cmp_acct_a", yesterday) == 2
    assert sum(account.rows_inserted for account in repeated.accounts) == 3
    assert raw_rows(database_owner_dsn, seller.seller_id, "cmp_acct_a", yesterday) == 2
    assert daily_spend(database_owner_dsn, seller.seller_id) == settled


async def test_an_entity_that_delivers_again_after_a_zero_counts_again(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    seller = seller_with_accounts(database_owner_dsn, box, "acct_a")
    network.set_spend("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", TODAY, 10_000_000)
    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)
    network.stop_delivery("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", TODAY)
    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)
    network.restate("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", TODAY, 12_000_000)
    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)

    assert daily_spend(database_owner_dsn, seller.seller_id) == {("cmp_acct_a", TODAY): 12_000_000}
    assert sellpage_spend(database_owner_dsn, seller) == {TODAY: 1_200}


async def test_a_failed_refetch_zeroes_nothing(
    stats_sync: StatsSync, network: FakeAdNetwork, box: SecretBox, database_owner_dsn: str
) -> None:
    # Only a complete fetch says an entity delivered nothing; one that broke off says
    # nothing at all.
    seller = seller_with_accounts(database_owner_dsn, box, "acct_a")
    network.set_spend("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", TODAY, 10_000_000)
    await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)
    network.stop_delivery("acct_a", EntityLevel.CAMPAIGN, "cmp_acct_a", TODAY)
    network.fail_next("acct_a", ProviderError("the network broke off"))

    failed = await stats_sync.sync_seller(seller.seller_id, days_back=1, now=NOW)

    assert failed.accounts[0].outcome is AccountOutcome.FAILED
    assert daily_spend(database_owner_dsn, seller.seller_id) == {("cmp_acct_a", TODAY): 10_000_000}
