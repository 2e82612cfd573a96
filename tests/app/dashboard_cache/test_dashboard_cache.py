"""Dashboard reads cached per seller (issue 18 item 1, SCALE-6).

A repeated read answers from Redis without SQL; every write that changes what a dashboard
shows makes the next read fresh — checkout, a ledger fact, a link, a roll-up, a sync, any
successful write through the API — and a failed or rolled-back write leaves the cache
alone; a seller never gets another seller's cached body.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from pixecom_core import hookimpl
from pixecom_core.dashboard_cache import dashboard_changed_on_commit
from pixecom_core.ledger import Ledger
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import (
    AdAccountCredentials,
    AdEntity,
    AdEntityStatus,
    AdNetwork,
    EntityLevel,
    GatewayPaymentEvent,
    PaymentEventKind,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import refresh_dirty_days
from pixecom_core.stats.sync import StatsSync
from pixecom_core.tenancy import open_seller_scope
from tests.app.catalog.conftest import InstrumentedApi
from tests.app.dashboard_cache.conftest import ApiFactory, NewTenant
from tests.app.sellers_data.conftest import Tenant
from tests.db.tenant_rows import insert_seller_day, seller_scope
from tests.stats.fakeads import FakeAdNetwork

#: A fixed clock: every day below is in the past of any run.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
DAY = date(2026, 11, 20)
RANGE = {"since": "2026-11-01", "until": "2026-11-30"}


def stats_day(tenant: Tenant, day: date, *, net_revenue_minor: int) -> None:
    """The seller's day as the roll-up writes it."""
    with seller_scope(tenant.rows.conn, tenant.api.seller_id):
        insert_seller_day(
            tenant.rows.conn,
            tenant.api.seller_id,
            day,
            reporting_currency="USD",
            gross_revenue_minor=net_revenue_minor,
            net_revenue_minor=net_revenue_minor,
            orders_count=1,
        )


def campaign_spend(tenant: Tenant, external_id: str, day: date, micros: int) -> None:
    """A campaign's day as the sync writes it (and its entity roll-up)."""
    with seller_scope(tenant.rows.conn, tenant.api.seller_id) as conn:
        conn.execute(
            "INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id, stat_date,"
            " snapshot_fetched_at, spend_micros, impressions, clicks, purchases,"
            " purchase_value_micros, currency) VALUES (%s, 'meta', 'campaign', %s, %s, now(),"
            " %s, 100, 4, 0, 0, 'USD')",
            (tenant.api.seller_id, external_id, day, micros),
        )
        conn.execute(
            "INSERT INTO entity_stats_daily (seller_id, entity_type, network, entity_id,"
            " stat_date, reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,"
            " chargebacks_minor, net_revenue_minor, orders_count)"
            " VALUES (%s, 'campaign', 'meta', %s, %s, 'USD', %s, 0, 0, 0, 0, 0)",
            (tenant.api.seller_id, external_id, day, micros // 10_000),
        )


def external_id(tenant: Tenant, campaign_id: uuid.UUID) -> str:
    row = tenant.rows.fetch_one("SELECT external_id FROM campaigns WHERE id = %s", campaign_id)
    assert row is not None
    return str(row[0])


def dashboard_urls(campaign_id: uuid.UUID) -> list[str]:
    """Every cached dashboard read, with a query."""
    query = "since=2026-11-01&until=2026-11-30"
    return [
        f"/stats/overview?{query}",
        f"/stats/sellpages?{query}",
        f"/stats/entities?{query}&level=campaign",
        f"/stats/campaigns/{campaign_id}/days?{query}",
        "/orders?limit=50",
        "/campaigns?limit=50",
    ]


async def read(api: InstrumentedApi, tenant: Tenant, url: str, **params: Any) -> httpx.Response:
    response = await api.client.get(url, params=params or None, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response


async def read_counting(
    api: InstrumentedApi, tenant: Tenant, url: str, **params: Any
) -> tuple[httpx.Response, int]:
    """The answer and how many SQL statements the app sent for it."""
    with api.sql_statements() as statements:
        response = await read(api, tenant, url, **params)
    return response, len(statements)


# -- hits ----------------------------------------------------------------------------------


async def test_a_second_read_of_each_dashboard_route_runs_no_sql(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    page = tenant.rows.sellpage()
    campaign = tenant.rows.campaign(tenant.rows.ad_account(), sellpage_id=page)
    campaign_spend(tenant, external_id(tenant, campaign), DAY, 12_000_000)
    stats_day(tenant, DAY, net_revenue_minor=4_000)
    tenant.rows.orders(3, newest=NOW, step=timedelta(hours=1))

    for url in dashboard_urls(campaign):
        first, first_statements = await read_counting(api, tenant, url)
        second, second_statements = await read_counting(api, tenant, url)

        assert first_statements > 0, url
        assert second_statements == 0, url
        assert second.content == first.content, url
        assert second.headers["content-type"] == "application/json", url
    orders = (await read(api, tenant, "/orders?limit=50")).json()
    assert len(orders["items"]) == 3
    overview = (await read(api, tenant, "/stats/overview", **RANGE)).json()
    assert [(d["day"], d["net_revenue_minor"]) for d in overview["days"]] == [("2026-11-20", 4000)]


async def test_the_same_read_spelt_differently_shares_one_entry(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(2, newest=NOW, step=timedelta(hours=1))
    start = "2026-11-01T00:00:00Z"
    await read(api, tenant, "/orders", status=["PAID", "REFUNDED"], created_from=start)

    again, statements = await read_counting(
        api,
        tenant,
        "/orders",
        status=["REFUNDED", "PAID"],
        created_from="2026-11-01T01:00:00+01:00",
    )
    other_status, other_statements = await read_counting(api, tenant, "/orders", status="PENDING")

    assert statements == 0  # same statuses, same instant
    assert len(again.json()["items"]) == 2
    assert other_statements > 0 and other_status.json()["items"] == []


async def test_errors_are_not_cached(api: InstrumentedApi, new_tenant: NewTenant) -> None:
    tenant = await new_tenant()
    reversed_range = {"since": "2026-11-30", "until": "2026-11-01"}
    unknown = f"/stats/campaigns/{uuid.uuid4()}/days"

    for _ in range(2):
        refused = await api.client.get(
            "/stats/overview", params=reversed_range, headers=tenant.headers
        )
        missing = await api.client.get(unknown, params=RANGE, headers=tenant.headers)
        assert refused.status_code == 422 and refused.json()["error"]["code"]
        assert missing.status_code == 404
    unauthenticated = await api.client.get("/stats/overview", params=RANGE)
    assert unauthenticated.status_code == 401


# -- tenancy -------------------------------------------------------------------------------


async def test_a_seller_never_gets_another_sellers_cached_body(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    a, b = await new_tenant(), await new_tenant()
    a.rows.orders(4, newest=NOW, step=timedelta(hours=1))
    stats_day(a, DAY, net_revenue_minor=9_000)
    b.rows.orders(1, newest=NOW, step=timedelta(hours=1))

    for url in ("/orders?limit=50", "/stats/overview?since=2026-11-01&until=2026-11-30"):
        a_first = await read(api, a, url)
        b_first, b_statements = await read_counting(api, b, url)
        b_again, b_again_statements = await read_counting(api, b, url)
        a_again = await read(api, a, url)

        assert b_statements > 0, url  # a's entry was not b's hit
        assert b_again_statements == 0, url
        assert b_first.content != a_first.content, url
        assert b_again.content == b_first.content and a_again.content == a_first.content
    assert len((await read(api, b, "/orders?limit=50")).json()["items"]) == 1
    assert (await read(api, b, "/stats/overview", **RANGE)).json()["days"] == []
    keys = [key.decode() async for key in api.resources.redis.scan_iter(match="*dashboard:*")]
    prefix = api.resources.settings.redis_key_prefix
    mine = [key for key in keys if key.startswith(prefix)]
    assert mine and all(str(a.api.seller_id) in key or str(b.api.seller_id) in key for key in mine)


# -- invalidation by the writes that change a dashboard -------------------------------------


async def published_slug(api: InstrumentedApi, tenant: Tenant) -> str:
    headers = tenant.headers
    product = await api.client.post(
        "/products", json={"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Hat"}, headers=headers
    )
    assert product.status_code == 201, product.text
    price = await api.client.post(
        f"/products/{product.json()['id']}/prices",
        json={"price_minor": 2_500, "currency": "USD"},
        headers=headers,
    )
    assert price.status_code == 201, price.text
    page = await api.client.post(
        "/sellpages",
        json={
            "slug": f"hats-{uuid.uuid4().hex[:10]}",
            "title": "Hats",
            "product_id": product.json()["id"],
            "status": "PUBLISHED",
        },
        headers=headers,
    )
    assert page.status_code == 201, page.text
    return str(page.json()["slug"])


ORDER = {
    "gateway": "fakepay",
    "customer_email": "shopper@example.com",
    "quantity": 2,
    "return_url": "https://shop.example.com/thanks",
    "cancel_url": "https://shop.example.com/cart",
}


async def test_checkout_and_a_ledger_fact_make_the_next_orders_read_fresh(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    slug = await published_slug(api, tenant)
    before = (await read(api, tenant, "/orders")).json()
    _, cached_statements = await read_counting(api, tenant, "/orders")

    placed = await api.client.post(f"/public/sellpages/{slug}/orders", json=ORDER)
    assert placed.status_code == 201, placed.text
    after_checkout = (await read(api, tenant, "/orders")).json()

    payment = placed.json()["gateway_reference"]
    resources = api.resources
    ledger = Ledger(resources.sessions, resources.settings)
    await ledger.record(
        [
            GatewayPaymentEvent(
                gateway="fakepay",
                event_id=f"evt_{uuid.uuid4().hex}",
                gateway_reference=payment,
                fact_reference="ch_dashboard",
                kind=PaymentEventKind.CAPTURED,
                amount_minor=5_000,
                currency="USD",
                occurred_at=datetime.now(UTC),
            )
        ]
    )
    await resources.dashboards.settle()
    after_payment = (await read(api, tenant, "/orders")).json()

    assert before["items"] == [] and cached_statements == 0
    assert [(o["status"], o["payment_id"]) for o in after_checkout["items"]] == [
        ("PENDING", payment)
    ]
    assert [o["status"] for o in after_payment["items"]] == ["PAID"]


async def test_a_rolled_back_write_leaves_the_cache_alone(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(1, newest=NOW, step=timedelta(hours=1))
    await read(api, tenant, "/orders")
    resources = api.resources

    with pytest.raises(RuntimeError, match="changed my mind"):
        async with open_seller_scope(
            resources.sessions, tenant.api.seller_id, resources.settings
        ) as scope:
            dashboard_changed_on_commit(scope)
            raise RuntimeError("changed my mind")
    await resources.dashboards.settle()
    _, statements = await read_counting(api, tenant, "/orders")

    async with open_seller_scope(
        resources.sessions, tenant.api.seller_id, resources.settings
    ) as scope:
        dashboard_changed_on_commit(scope)
    await resources.dashboards.settle()
    _, after_commit = await read_counting(api, tenant, "/orders")

    assert statements == 0
    assert after_commit > 0


async def test_a_savepoint_rolled_back_keeps_what_its_transaction_marked_before(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    await read(api, tenant, "/orders")
    resources = api.resources

    async with open_seller_scope(
        resources.sessions, tenant.api.seller_id, resources.settings
    ) as scope:
        dashboard_changed_on_commit(scope)
        with pytest.raises(RuntimeError, match="undo the savepoint"):
            async with scope.session.begin_nested():
                raise RuntimeError("undo the savepoint")
    await resources.dashboards.settle()
    _, statements = await read_counting(api, tenant, "/orders")

    assert statements > 0


async def test_linking_then_the_roll_up_make_the_next_stats_reads_fresh(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    page = tenant.rows.sellpage()
    campaign = tenant.rows.campaign(tenant.rows.ad_account())
    campaign_spend(tenant, external_id(tenant, campaign), DAY, 20_000_000)
    stats_day(tenant, DAY, net_revenue_minor=0)
    unlinked = (await read(api, tenant, "/stats/sellpages", **RANGE)).json()
    overview = (await read(api, tenant, "/stats/overview", **RANGE)).json()

    linked = await api.client.patch(
        f"/campaigns/{campaign}", json={"sellpage_id": str(page)}, headers=tenant.headers
    )
    assert linked.status_code == 200, linked.text
    overview_after_link = (await read(api, tenant, "/stats/overview", **RANGE)).json()
    _, cached = await read_counting(api, tenant, "/stats/overview", **RANGE)

    resources = api.resources
    async with open_seller_scope(
        resources.sessions, tenant.api.seller_id, resources.settings
    ) as scope:
        aggregation = await refresh_dirty_days(scope)
    await resources.dashboards.settle()
    rolled_up = (await read(api, tenant, "/stats/sellpages", **RANGE)).json()
    overview_after_roll_up = (await read(api, tenant, "/stats/overview", **RANGE)).json()

    assert [i["spend_minor"] for i in unlinked["items"]] == [0]
    assert [d["needs_reaggregation"] for d in overview["days"]] == [False]
    assert [d["needs_reaggregation"] for d in overview_after_link["days"]] == [True]
    assert cached == 0
    assert aggregation.days == (DAY,)
    assert [i["spend_minor"] for i in rolled_up["items"]] == [2_000]
    assert [d["needs_reaggregation"] for d in overview_after_roll_up["days"]] == [False]


class FakeAdsPlugin:
    def __init__(self, network: FakeAdNetwork) -> None:
        self.network = network

    @hookimpl
    def pixecom_register_ad_networks(self) -> list[AdNetwork]:
        return [self.network]


def fakeads_account(
    api: InstrumentedApi, tenant: Tenant, network: FakeAdNetwork, external_id: str
) -> tuple[uuid.UUID, StatsSync]:
    """An ad account of ``tenant`` at the fake network, and a sync that reaches it."""
    resources = api.resources
    box = SecretBox(resources.settings.token_encryption_keys)
    account = tenant.rows.insert(
        "ad_accounts",
        network="fakeads",
        external_id=external_id,
        name="Main",
        timezone="UTC",
        currency="USD",
        token_ciphertext=box.encrypt(f"token-{external_id}"),
        token_key_version=box.primary_version,
    )
    manager = create_plugin_manager(load_entry_points=False, plugins=[FakeAdsPlugin(network)])
    sync = StatsSync(resources.sessions, resources.settings, ProviderRegistry(manager), box)
    return account, sync


async def test_a_sync_makes_the_next_stats_read_fresh(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    resources = api.resources
    page = tenant.rows.sellpage()
    network = FakeAdNetwork()
    account, sync = fakeads_account(api, tenant, network, "acct_dash")
    tenant.rows.insert(
        "campaigns",
        ad_account_id=account,
        external_id="cmp_dash",
        name="Hats",
        status="ACTIVE",
        sellpage_id=page,
    )
    window = {"since": (TODAY - timedelta(days=2)).isoformat(), "until": TODAY.isoformat()}
    before = (await read(api, tenant, "/stats/sellpages", **window)).json()

    network.set_spend("acct_dash", EntityLevel.CAMPAIGN, "cmp_dash", TODAY, 7_000_000)
    await sync.sync_seller(tenant.api.seller_id, days_back=3, now=NOW)
    await resources.dashboards.settle()
    after = (await read(api, tenant, "/stats/sellpages", **window)).json()
    entities = (await read(api, tenant, "/stats/entities", **window)).json()

    assert [i["spend_minor"] for i in before["items"]] == [0]
    assert [i["spend_minor"] for i in after["items"]] == [700]
    assert [(e["entity_id"], e["spend_minor"]) for e in entities["items"]] == [("cmp_dash", 700)]


class NamingAdNetwork(FakeAdNetwork):
    """The fake network, also naming its campaigns (``AdNetworkEntities``)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}
        #: Awaited when the listing starts: a dashboard read landing just then.
        self.meanwhile: Callable[[], Awaitable[object]] | None = None

    async def list_entities(
        self,
        account: AdAccountCredentials,  # noqa: ARG002 (the protocol's signature)
        *,
        level: EntityLevel,
    ) -> AsyncIterator[AdEntity]:
        if level is EntityLevel.CAMPAIGN:
            if self.meanwhile is not None:
                await self.meanwhile()
            for entity_id, name in self.names.items():
                yield AdEntity(
                    entity_type=level,
                    entity_id=entity_id,
                    name=name,
                    status=AdEntityStatus.ACTIVE,
                )


async def test_a_sync_that_discovers_and_names_campaigns_makes_the_next_campaigns_read_fresh(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    """The naming calls run after the account's numbers (and its roll-up) committed: the
    campaign list a seller reads in between must not stay cached with the bare id."""
    tenant = await new_tenant()
    resources = api.resources
    network = NamingAdNetwork()
    _, sync = fakeads_account(api, tenant, network, "acct_names")
    before = (await read(api, tenant, "/campaigns", limit=50)).json()
    seen_while_naming: list[Any] = []

    async def read_while_naming() -> None:
        await resources.dashboards.settle()
        seen_while_naming.append((await read(api, tenant, "/campaigns", limit=50)).json())

    network.meanwhile = read_while_naming

    network.set_spend("acct_names", EntityLevel.CAMPAIGN, "cmp_new", TODAY, 3_000_000)
    network.names["cmp_new"] = "Winter hats"
    await sync.sync_seller(tenant.api.seller_id, days_back=3, now=NOW)
    await resources.dashboards.settle()
    after, statements = await read_counting(api, tenant, "/campaigns", limit=50)

    assert before["items"] == []
    assert [c["name"] for c in seen_while_naming[0]["items"]] == ["cmp_new"]
    assert statements > 0
    assert [(c["external_id"], c["name"]) for c in after.json()["items"]] == [
        ("cmp_new", "Winter hats")
    ]

    # A rename reaches core on the daily sweep (a window of the sweep's length).
    network.names["cmp_new"] = "Winter hats, 20 % off"
    sweep_days = resources.settings.sweep_window_days
    await sync.sync_seller(tenant.api.seller_id, days_back=sweep_days, now=NOW)
    await resources.dashboards.settle()
    renamed = (await read(api, tenant, "/campaigns", limit=50)).json()
    assert [c["name"] for c in renamed["items"]] == ["Winter hats, 20 % off"]


async def test_a_successful_api_write_makes_the_sellers_next_read_fresh_a_failed_one_does_not(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant, other = await new_tenant(), await new_tenant()
    page = tenant.rows.sellpage()
    await read(api, tenant, "/stats/sellpages", **RANGE)
    await read(api, other, "/stats/sellpages", **RANGE)

    refused = await api.client.patch(
        f"/sellpages/{page}", json={"title": ""}, headers=tenant.headers
    )
    _, after_refusal = await read_counting(api, tenant, "/stats/sellpages", **RANGE)
    renamed = await api.client.patch(
        f"/sellpages/{page}", json={"title": "Winter hats"}, headers=tenant.headers
    )
    fresh, after_rename = await read_counting(api, tenant, "/stats/sellpages", **RANGE)
    _, others_read = await read_counting(api, other, "/stats/sellpages", **RANGE)

    assert refused.status_code == 422
    assert after_refusal == 0
    assert renamed.status_code == 200, renamed.text
    assert after_rename > 0
    assert [i["title"] for i in fresh.json()["items"]] == ["Winter hats"]
    assert others_read == 0  # another seller's write leaves this one's cache alone


async def test_with_the_cache_off_every_read_runs_its_sql(
    new_tenant: NewTenant, api_for: ApiFactory, app_settings: Settings
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(2, newest=NOW, step=timedelta(hours=1))

    async with api_for(app_settings.model_copy(update={"dashboard_cache_seconds": 0})) as uncached:
        first, first_statements = await read_counting(uncached, tenant, "/orders")
        second, second_statements = await read_counting(uncached, tenant, "/orders")

    assert first_statements > 0 and second_statements == first_statements
    assert second.content == first.content and len(first.json()["items"]) == 2
