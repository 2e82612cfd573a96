"""A write makes stale only the dashboard parts it changed (issue 18 item 2): a shopper's
checkout and an order's payment fact make the orders list fresh and leave the campaigns
cached, the ledger's re-aggregation mark makes the stats fresh; the seller's own write,
and a write that names no part, make every part stale."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pixecom_core.dashboard_cache import (
    ALL_PARTS,
    DashboardPart,
    dashboard_changed_on_commit,
    part_of_route,
)
from pixecom_core.ledger import Ledger
from pixecom_core.providers import EntityLevel, GatewayPaymentEvent, PaymentEventKind
from pixecom_core.tenancy import open_seller_scope
from tests.app.catalog.conftest import InstrumentedApi
from tests.app.dashboard_cache.conftest import NewTenant
from tests.app.dashboard_cache.test_dashboard_cache import (
    DAY,
    ORDER,
    RANGE,
    TODAY,
    fakeads_account,
    published_slug,
    read,
    read_counting,
    stats_day,
)
from tests.stats.fakeads import FakeAdNetwork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OVERVIEW = "/stats/overview?since=2026-11-01&until=2026-11-30"


async def test_a_shoppers_checkout_leaves_the_stats_and_campaigns_cached(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    slug = await published_slug(api, tenant)
    stats_day(tenant, DAY, net_revenue_minor=4_000)
    tenant.rows.campaign(tenant.rows.ad_account())
    urls = [OVERVIEW, "/campaigns?limit=50", "/orders?limit=50"]
    first = {url: await read(api, tenant, url) for url in urls}

    placed = await api.client.post(f"/public/sellpages/{slug}/orders", json=ORDER)
    assert placed.status_code == 201, placed.text
    await api.resources.dashboards.settle()
    after = {url: await read_counting(api, tenant, url) for url in urls}

    overview, overview_statements = after[OVERVIEW]
    campaigns, campaigns_statements = after["/campaigns?limit=50"]
    orders, orders_statements = after["/orders?limit=50"]
    assert overview_statements == 0 and overview.content == first[OVERVIEW].content
    assert campaigns_statements == 0 and len(campaigns.json()["items"]) == 1
    assert orders_statements > 0
    assert [o["status"] for o in orders.json()["items"]] == ["PENDING"]


async def test_a_payment_fact_makes_the_orders_and_the_stats_fresh_not_the_campaigns(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    slug = await published_slug(api, tenant)
    placed = await api.client.post(f"/public/sellpages/{slug}/orders", json=ORDER)
    assert placed.status_code == 201, placed.text
    until = datetime.now(UTC).date()
    today = {"since": (until - timedelta(days=6)).isoformat(), "until": until.isoformat()}
    await read(api, tenant, "/stats/overview", **today)
    await read(api, tenant, "/campaigns")
    await read(api, tenant, "/orders")

    await Ledger(api.resources.sessions, api.resources.settings).record(
        [
            GatewayPaymentEvent(
                gateway="fakepay",
                event_id=f"evt_{uuid.uuid4().hex}",
                gateway_reference=placed.json()["gateway_reference"],
                fact_reference="ch_parts",
                kind=PaymentEventKind.CAPTURED,
                amount_minor=5_000,
                currency="USD",
                occurred_at=datetime.now(UTC),
            )
        ]
    )
    await api.resources.dashboards.settle()
    overview, overview_statements = await read_counting(api, tenant, "/stats/overview", **today)
    _, campaigns_statements = await read_counting(api, tenant, "/campaigns")
    orders, orders_statements = await read_counting(api, tenant, "/orders")

    assert overview_statements > 0
    assert overview.json()["pending_days"] == 1  # the paid order's day, being recomputed
    assert orders_statements > 0 and [o["status"] for o in orders.json()["items"]] == ["PAID"]
    assert campaigns_statements == 0


async def test_a_write_that_names_no_part_and_the_sellers_own_write_make_every_part_stale(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    page = tenant.rows.sellpage()
    tenant.rows.orders(1, newest=NOW, step=timedelta(hours=1))
    urls = [OVERVIEW, "/campaigns", "/orders"]
    resources = api.resources

    for url in urls:
        await read(api, tenant, url)
    async with open_seller_scope(
        resources.sessions, tenant.api.seller_id, resources.settings
    ) as scope:
        dashboard_changed_on_commit(scope)
    await resources.dashboards.settle()
    after_mark = [(await read_counting(api, tenant, url))[1] for url in urls]

    renamed = await api.client.patch(
        f"/sellpages/{page}", json={"title": "Winter hats"}, headers=tenant.headers
    )
    assert renamed.status_code == 200, renamed.text
    after_write = [(await read_counting(api, tenant, url))[1] for url in urls]

    assert all(statements > 0 for statements in after_mark), after_mark
    assert all(statements > 0 for statements in after_write), after_write
    assert (await read(api, tenant, "/stats/sellpages", **RANGE)).json()["items"][0][
        "title"
    ] == "Winter hats"


async def test_a_sync_of_named_campaigns_makes_the_stats_fresh_and_keeps_the_campaigns(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    page = tenant.rows.sellpage()
    network = FakeAdNetwork()
    account, sync = fakeads_account(api, tenant, network, "acct_parts")
    tenant.rows.insert(
        "campaigns",
        ad_account_id=account,
        external_id="cmp_parts",
        name="Hats",
        status="ACTIVE",
        sellpage_id=page,
    )
    window = {"since": (TODAY - timedelta(days=2)).isoformat(), "until": TODAY.isoformat()}
    await read(api, tenant, "/stats/sellpages", **window)
    listed = await read(api, tenant, "/campaigns")

    network.set_spend("acct_parts", EntityLevel.CAMPAIGN, "cmp_parts", TODAY, 7_000_000)
    await sync.sync_seller(tenant.api.seller_id, days_back=3, now=NOW)
    await api.resources.dashboards.settle()
    stats, stats_statements = await read_counting(api, tenant, "/stats/sellpages", **window)
    campaigns, campaigns_statements = await read_counting(api, tenant, "/campaigns")

    assert stats_statements > 0
    assert [i["spend_minor"] for i in stats.json()["items"]] == [700]
    assert campaigns_statements == 0 and campaigns.content == listed.content


def test_every_cached_route_has_a_part_and_an_unknown_route_is_refused() -> None:
    assert part_of_route("orders") is DashboardPart.ORDERS
    assert part_of_route("campaigns") is DashboardPart.CAMPAIGNS
    assert part_of_route("stats/campaign-days") is DashboardPart.STATS
    assert ALL_PARTS == {DashboardPart.ORDERS, DashboardPart.CAMPAIGNS, DashboardPart.STATS}
    with pytest.raises(ValueError, match="belongs to no DashboardPart"):
        part_of_route("sellpages")
