"""A seller's only ad account commits the seller's roll-up with its numbers (issue 18 item
3: a sync costs a fifth), and a seller whose only account fails still has its marked days
re-aggregated.

Against the Meta sandbox on loopback (no latency); real PostgreSQL and Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import psycopg
import pytest
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.sandbox import create_sandbox_app
from pixecom_meta_ads.settings import MetaAdsSettings, MetaSandboxSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import StatsAggregationSummary
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import mark_days_dirty
from pixecom_core.stats.sync import AccountOutcome, SellerSync, StatsSync
from pixecom_core.tenancy import open_seller_scope
from pixecom_core.testing.loopback import LoopbackServer
from tests.db.tenant_rows import seller_scope
from tests.stats.test_parallel_accounts import MetaPlugin, seller_with_meta_accounts

#: A fixed clock: the window is 2026-03-08..10 whatever today is.
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
WINDOW = [date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)]
#: A day far outside the window, marked for re-aggregation before the sync.
MARKED = date(2026, 1, 15)


class Announcements:
    """Collects ``pixecom_on_stats_aggregated``."""

    def __init__(self) -> None:
        self.summaries: list[StatsAggregationSummary] = []

    @hookimpl
    def pixecom_on_stats_aggregated(self, summary: StatsAggregationSummary) -> None:
        self.summaries.append(summary)


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    app = create_sandbox_app(MetaSandboxSettings(latency_seconds=0, campaigns_per_account=2))
    async with LoopbackServer(app) as server:
        yield server.url


@pytest.fixture
async def network(sandbox_url: str) -> AsyncIterator[MetaAdNetwork]:
    meta = MetaAdNetwork(MetaAdsSettings(graph_base=sandbox_url, transient_retries=0))
    yield meta
    await meta.aclose()


@pytest.fixture
def announcements() -> Announcements:
    return Announcements()


@pytest.fixture
def stats_sync(
    app_engine: AsyncEngine,
    settings: Settings,
    network: MetaAdNetwork,
    announcements: Announcements,
) -> StatsSync:
    manager = create_plugin_manager(
        load_entry_points=False, plugins=[MetaPlugin(network), announcements]
    )
    return StatsSync(
        create_sessionmaker(app_engine),
        settings,
        ProviderRegistry(manager),
        SecretBox(settings.token_encryption_keys),
        manager,
    )


async def mark(app_engine: AsyncEngine, settings: Settings, seller_id: uuid.UUID) -> None:
    async with open_seller_scope(create_sessionmaker(app_engine), seller_id, settings) as scope:
        assert await mark_days_dirty(scope, [MARKED]) == 1


def marked_days(dsn: str, seller_id: uuid.UUID) -> list[date]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT stat_date FROM seller_stats_daily WHERE seller_id = %s"
            " AND needs_reaggregation ORDER BY stat_date",
            (seller_id,),
        ).fetchall()
    return [row[0] for row in rows]


def synced_at(dsn: str, seller_id: uuid.UUID, account_id: uuid.UUID) -> datetime | None:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            "SELECT last_synced_at FROM ad_accounts WHERE id = %s", (account_id,)
        ).fetchone()
    assert row is not None
    value: datetime | None = row[0]
    return value


async def test_an_only_account_commits_the_sellers_roll_up_in_its_own_transaction(
    stats_sync: StatsSync,
    app_engine: AsyncEngine,
    settings: Settings,
    database_owner_dsn: str,
    announcements: Announcements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seller_id, ids = seller_with_meta_accounts(database_owner_dsn, settings, [1608])
    await mark(app_engine, settings, seller_id)

    async def no_separate_roll_up(*_: object) -> None:
        raise AssertionError("the only account's write transaction re-aggregates the seller")

    monkeypatch.setattr(stats_sync, "_aggregate_sellpages", no_separate_roll_up)
    result = await stats_sync.sync_seller(seller_id, days_back=3, now=NOW)

    assert [a.outcome for a in result.accounts] == [AccountOutcome.SYNCED]
    assert result.accounts[0].daily_rows > 0
    assert result.sellpage_days == (MARKED, *WINDOW)
    assert marked_days(database_owner_dsn, seller_id) == []
    # the account's success is recorded in the same statement as its discovered campaigns
    assert synced_at(database_owner_dsn, seller_id, ids[1608]) is not None
    (summary,) = announcements.summaries
    assert (summary.seller_id, summary.since, summary.until) == (seller_id, MARKED, WINDOW[-1])
    assert summary.reporting_currency == "USD"
    assert summary.ad_entity_days == result.accounts[0].daily_rows


async def test_a_failed_only_account_still_has_the_sellers_marked_days_rolled_up(
    stats_sync: StatsSync,
    app_engine: AsyncEngine,
    settings: Settings,
    database_owner_dsn: str,
    sandbox_url: str,
    announcements: Announcements,
) -> None:
    seller_id, ids = seller_with_meta_accounts(database_owner_dsn, settings, [1616])
    await mark(app_engine, settings, seller_id)
    async with httpx.AsyncClient(base_url=sandbox_url) as control:
        queued = await control.post(
            "/_sandbox/faults", json={"kind": "permission", "scope": "act_1616", "times": 10}
        )
    assert queued.status_code < 300, queued.text

    result: SellerSync = await stats_sync.sync_seller(seller_id, days_back=3, now=NOW)

    assert [a.outcome for a in result.accounts] == [AccountOutcome.NEEDS_RECONNECT]
    # nothing of the window landed, but the marked day is recomputed after the account
    assert result.sellpage_days == (MARKED,)
    assert marked_days(database_owner_dsn, seller_id) == []
    assert synced_at(database_owner_dsn, seller_id, ids[1616]) is None
    (summary,) = announcements.summaries
    assert (summary.since, summary.until) == (MARKED, MARKED)


async def test_a_seller_of_two_accounts_rolls_up_once_after_both(
    stats_sync: StatsSync,
    settings: Settings,
    database_owner_dsn: str,
    announcements: Announcements,
) -> None:
    seller_id, _ = seller_with_meta_accounts(database_owner_dsn, settings, [1624, 1632])

    result = await stats_sync.sync_seller(seller_id, days_back=3, now=NOW + timedelta(hours=1))

    assert [a.outcome for a in result.accounts] == [AccountOutcome.SYNCED] * 2
    assert result.sellpage_days == tuple(WINDOW)
    (summary,) = announcements.summaries
    assert summary.ad_entity_days == sum(a.daily_rows for a in result.accounts)
