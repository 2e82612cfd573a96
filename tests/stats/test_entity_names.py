"""Campaigns, ad sets and ads carry the network's names and statuses after a sync (issue 14
item 5): the Meta plugin against its sandbox on loopback, rows in PostgreSQL.

The tests session installs the Meta plugin (noxfile): a missing plugin fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.client import shared_ssl_context
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import AdNetwork
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.sync import AccountOutcome, DayWindow, StatsSync
from pixecom_core.testing.loopback import LoopbackServer
from tests.db.tenant_rows import insert_seller, seller_scope

# Account 1002 reports in EUR and cuts days in Europe/Berlin (the sandbox's profile 2);
# its "today" is pinned, and NOW is midday of that day there.
ACCOUNT = "1002"
NOW = datetime(2026, 3, 15, 11, 0, tzinfo=UTC)
TOKEN = "EAAGsandboxTOKENentitynames0123456789"


class MetaPlugin:
    def __init__(self, network: MetaAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


@dataclass(frozen=True)
class Sandbox:
    url: str
    control: httpx.AsyncClient

    async def account(self) -> dict[str, list[str]]:
        response = await self.control.get(f"/_sandbox/accounts/{ACCOUNT}")
        response.raise_for_status()
        result: dict[str, list[str]] = response.json()
        return result

    async def change_entity(self, entity_id: str, **changes: str) -> None:
        response = await self.control.put(
            f"/_sandbox/accounts/{ACCOUNT}/entities/{entity_id}", json=changes
        )
        assert response.status_code == 200, response.text


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with (
        LoopbackServer(create_sandbox_app(MetaSandboxSettings())) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10, verify=shared_ssl_context()) as control,
    ):
        pinned = await control.put(f"/_sandbox/accounts/{ACCOUNT}", json={"today": "2026-03-15"})
        pinned.raise_for_status()
        yield Sandbox(url=server.url, control=control)


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    return SecretBox(settings.token_encryption_keys)


@pytest.fixture
async def stats_sync(
    app_engine: AsyncEngine, settings: Settings, box: SecretBox, sandbox: Sandbox
) -> AsyncIterator[StatsSync]:
    network = MetaAdNetwork(
        MetaAdsSettings(
            graph_base=sandbox.url, transient_backoff_seconds=0, max_inline_wait_seconds=0
        )
    )
    manager = create_plugin_manager(load_entry_points=False, plugins=[MetaPlugin(network)])
    try:
        yield StatsSync(
            create_sessionmaker(app_engine), settings, ProviderRegistry(manager), box, manager
        )
    finally:
        await network.aclose()


@dataclass(frozen=True)
class Seller:
    seller_id: uuid.UUID
    account_id: uuid.UUID
    sellpage_id: uuid.UUID


@pytest.fixture
def seller(database_owner_dsn: str, box: SecretBox) -> Seller:
    seller_id = uuid.uuid4()
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            page = conn.execute(
                "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'P') RETURNING id",
                (seller_id, f"p-{uuid.uuid4().hex[:10]}"),
            ).fetchone()
            account = conn.execute(
                "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                " currency, token_ciphertext, token_key_version) VALUES (%s, 'meta', %s, 'M',"
                " 'Europe/Berlin', 'EUR', %s, %s) RETURNING id",
                (seller_id, ACCOUNT, box.encrypt(TOKEN), box.primary_version),
            ).fetchone()
    assert page is not None and account is not None
    return Seller(seller_id=seller_id, account_id=account[0], sellpage_id=page[0])


def hierarchy(dsn: str, seller_id: uuid.UUID) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per table, external id → (name, status, parent's external id)."""
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        campaigns = conn.execute(
            "SELECT external_id, name, status, '' FROM campaigns WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
        adsets = conn.execute(
            "SELECT s.external_id, s.name, s.status, c.external_id FROM adsets AS s"
            " JOIN campaigns AS c ON c.id = s.campaign_id WHERE s.seller_id = %s",
            (seller_id,),
        ).fetchall()
        ads = conn.execute(
            "SELECT x.external_id, x.name, x.status, s.external_id FROM ads AS x"
            " JOIN adsets AS s ON s.id = x.adset_id WHERE x.seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {
        table: {row[0]: tuple(row[1:]) for row in rows}
        for table, rows in (("campaigns", campaigns), ("adsets", adsets), ("ads", ads))
    }


def stat_rows(dsn: str, seller_id: uuid.UUID) -> int:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT count(*) FROM ad_stats_daily WHERE seller_id = %s", (seller_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_sync_names_every_campaign_ad_set_and_ad_as_the_network_does(
    stats_sync: StatsSync, seller: Seller, sandbox: Sandbox, database_owner_dsn: str
) -> None:
    account = await sandbox.account()

    result = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)

    (outcome,) = result.accounts
    assert outcome.outcome is AccountOutcome.SYNCED and outcome.entities_error is None
    rows = hierarchy(database_owner_dsn, seller.seller_id)
    assert rows["campaigns"] == {
        c: (f"Campaign {c}", "ACTIVE", "") for c in account["campaign_ids"]
    }
    assert set(rows["adsets"]) == set(account["adset_ids"])
    assert set(rows["ads"]) == set(account["ad_ids"])
    assert all(
        name == f"Ad {ad}" and status == "ACTIVE" for ad, (name, status, _) in rows["ads"].items()
    )
    assert all(parent in account["campaign_ids"] for _, _, parent in rows["adsets"].values())
    assert outcome.entities_named == sum(len(ids) for ids in rows.values())


async def test_a_rename_and_a_pause_on_the_network_show_after_the_daily_sweep(
    stats_sync: StatsSync, seller: Seller, sandbox: Sandbox, database_owner_dsn: str
) -> None:
    await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)
    account = await sandbox.account()
    campaign, other = account["campaign_ids"][:2]
    ad = account["ad_ids"][-1]
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        with seller_scope(conn, seller.seller_id):
            # the seller's own part of a campaign: its sellpage
            conn.execute(
                "UPDATE campaigns SET sellpage_id = %s WHERE seller_id = %s AND external_id = %s",
                (seller.sellpage_id, seller.seller_id, campaign),
            )
    await sandbox.change_entity(campaign, name="Summer sale", status="PAUSED")
    await sandbox.change_entity(ad, name="Blue shoes, video")

    # A regular cycle that reports nothing new spends no calls on names...
    regular = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)
    assert [a.entities_named for a in regular.accounts] == [0]
    assert hierarchy(database_owner_dsn, seller.seller_id)["campaigns"][campaign][0] == (
        f"Campaign {campaign}"
    )
    # ...the daily restatement sweep (Settings.sweep_window_days) brings them in.
    await stats_sync.sync_seller(seller.seller_id, days_back=28, now=NOW)

    rows = hierarchy(database_owner_dsn, seller.seller_id)
    assert rows["campaigns"][campaign] == ("Summer sale", "PAUSED", "")
    assert rows["campaigns"][other] == (f"Campaign {other}", "ACTIVE", "")
    # an ad set under a paused campaign is paused too (Meta: CAMPAIGN_PAUSED)
    assert {s[1] for s in rows["adsets"].values() if s[2] == campaign} == {"PAUSED"}
    assert rows["ads"][ad][0] == "Blue shoes, video"
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        linked = conn.execute(
            "SELECT sellpage_id FROM campaigns WHERE seller_id = %s AND external_id = %s",
            (seller.seller_id, campaign),
        ).fetchone()
    assert linked == (seller.sellpage_id,)


async def test_a_failing_listing_still_lands_the_numbers(
    stats_sync: StatsSync, seller: Seller, sandbox: Sandbox, database_owner_dsn: str
) -> None:
    fault = {"kind": "permission", "operation": "entities", "scope": ACCOUNT}
    (await sandbox.control.post("/_sandbox/faults", json=fault)).raise_for_status()

    result = await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)

    (outcome,) = result.accounts
    assert outcome.outcome is AccountOutcome.SYNCED
    assert outcome.entities_error and "code 200" in outcome.entities_error
    assert stat_rows(database_owner_dsn, seller.seller_id) > 0
    campaigns = hierarchy(database_owner_dsn, seller.seller_id)["campaigns"]
    # discovered from the insights, named by their id until a listing succeeds
    assert campaigns and all(name == external for external, (name, _, _) in campaigns.items())
    with psycopg.connect(database_owner_dsn) as conn, seller_scope(conn, seller.seller_id):
        state = conn.execute(
            "SELECT needs_reconnect, last_sync_error, sync_failures FROM ad_accounts"
            " WHERE seller_id = %s",
            (seller.seller_id,),
        ).fetchone()
    assert state == (False, None, 0)

    await stats_sync.sync_seller(seller.seller_id, days_back=3, now=NOW)

    campaigns = hierarchy(database_owner_dsn, seller.seller_id)["campaigns"]
    assert all(name == f"Campaign {external}" for external, (name, _, _) in campaigns.items())


async def test_a_backfill_chunk_names_the_entities_too(
    stats_sync: StatsSync, seller: Seller, sandbox: Sandbox, database_owner_dsn: str
) -> None:
    window = DayWindow(NOW.date().replace(day=1), NOW.date().replace(day=7))

    result = await stats_sync.sync_account_days(
        seller.seller_id, seller.account_id, window, now=NOW
    )

    (outcome,) = result.accounts
    assert outcome.outcome is AccountOutcome.SYNCED and outcome.entities_named > 0
    account = await sandbox.account()
    assert set(hierarchy(database_owner_dsn, seller.seller_id)["ads"]) == set(account["ad_ids"])
