"""Every dashboard read sends as many SQL statements for many rows as for a few (audit N1:
no query per sellpage, campaign, order or day).

Each case arranges a small and a large seller and counts the statements of their first
(uncached) read: the counts must be equal, while the answers really hold the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.app.catalog.conftest import InstrumentedApi
from tests.app.dashboard_cache.conftest import NewTenant
from tests.app.dashboard_cache.test_dashboard_cache import campaign_spend, stats_day
from tests.app.sellers_data.conftest import Tenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FIRST_DAY = date(2026, 11, 1)
RANGE = "since=2026-11-01&until=2026-11-30"


def orders(tenant: Tenant, count: int) -> str:
    tenant.rows.orders(count, newest=NOW, step=timedelta(minutes=7))
    return "/orders?limit=100"


def order_events(tenant: Tenant, count: int) -> str:
    order = tenant.rows.order(NOW)
    for index in range(count):
        tenant.rows.order_event(order, NOW + timedelta(seconds=index), event_type="NOTE")
    return f"/orders/{order}/events?limit=100"


def days(tenant: Tenant, count: int) -> str:
    for index in range(count):
        stats_day(tenant, FIRST_DAY + timedelta(days=index), net_revenue_minor=100 * index)
    return f"/stats/overview?{RANGE}"


def sellpages(tenant: Tenant, count: int) -> str:
    for _ in range(count):
        tenant.rows.sellpage()
    return f"/stats/sellpages?{RANGE}&limit=100"


def linked_campaigns(tenant: Tenant, count: int) -> list[uuid.UUID]:
    account = tenant.rows.ad_account()
    page = tenant.rows.sellpage()
    made = []
    for index in range(count):
        campaign = tenant.rows.campaign(account, sellpage_id=page, name=f"Campaign {index}")
        row = tenant.rows.fetch_one("SELECT external_id FROM campaigns WHERE id = %s", campaign)
        assert row is not None
        campaign_spend(tenant, str(row[0]), FIRST_DAY, 1_000_000 * (index + 1))
        made.append(campaign)
    return made


def entities(tenant: Tenant, count: int) -> str:
    linked_campaigns(tenant, count)
    return f"/stats/entities?{RANGE}&level=campaign&limit=100"


def campaign_days(tenant: Tenant, count: int) -> str:
    [campaign] = linked_campaigns(tenant, 1)
    row = tenant.rows.fetch_one("SELECT external_id FROM campaigns WHERE id = %s", campaign)
    assert row is not None
    for index in range(1, count):
        campaign_spend(tenant, str(row[0]), FIRST_DAY + timedelta(days=index), 1_000_000)
    return f"/stats/campaigns/{campaign}/days?{RANGE}"


def campaigns(tenant: Tenant, count: int) -> str:
    linked_campaigns(tenant, count)
    return "/campaigns?limit=100"


def ad_accounts(tenant: Tenant, count: int) -> str:
    for _ in range(count):
        tenant.rows.ad_account()
    return "/ad-accounts?limit=100"


def sync_status(tenant: Tenant, count: int) -> str:
    for _ in range(count):
        tenant.rows.ad_account()
    return "/stats/sync-status?limit=100"


@dataclass(frozen=True)
class Case:
    """A dashboard read, how to give a seller ``n`` of its rows, and a small and a large n."""

    arrange: Callable[[Tenant, int], str]
    few: int = 2
    many: int = 20
    #: The answer's list that holds the rows.
    items: str = "items"


CASES = {
    "orders": Case(orders, few=5, many=50),
    "order events": Case(order_events),
    "overview days": Case(days, items="days"),
    "sellpages": Case(sellpages),
    "entities": Case(entities),
    "campaign days": Case(campaign_days, items="days"),
    "campaigns": Case(campaigns),
    "ad accounts": Case(ad_accounts),
    "sync status": Case(sync_status),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_a_dashboard_read_sends_as_many_statements_for_many_rows_as_for_few(
    name: str, api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    case = CASES[name]
    small, large = await new_tenant(), await new_tenant()
    counts, lengths = [], []
    for tenant, rows in ((small, case.few), (large, case.many)):
        url = case.arrange(tenant, rows)
        with api.sql_statements() as statements:
            response = await api.client.get(url, headers=tenant.headers)
        assert response.status_code == 200, response.text
        counts.append(len(statements))
        lengths.append(len(response.json()[case.items]))

    assert lengths == [case.few, case.many]
    assert counts[0] == counts[1], f"{name}: {counts[0]} statements for {case.few} rows, " + (
        f"{counts[1]} for {case.many}"
    )
