"""Issue 16's promises, end to end on real PostgreSQL and the ECB plugin's sandbox.

A seller reporting in EUR with a USD ad account and GBP and USD payments sees, once the
rates are loaded, exactly the converted sums — the oracle is computed here from the XML
the sandbox serves, never from PixEcom's own tables — and no pending day. A rate not
published yet marks its day and is filled in when it arrives. Spend of a campaign linked
to no sellpage is in the totals and on the unattributed line, and orders whose landing
URL named a campaign give it exactly the oracle's revenue and ROAS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
import psycopg
import pytest
from pixecom_ecb_rates import plugin as ecb_plugin
from pixecom_ecb_rates.eurofxref import parse_reference_rates
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.ledger import Ledger
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import CurrencyRateSource, EntityLevel, PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import (
    aggregate_daily,
    aggregate_sellpages,
    ingest_raw,
    lock_sellpage_aggregation,
    refresh_dirty_days,
)
from pixecom_core.stats.fx_rates import load_rates
from pixecom_core.stats.reports import StatsReports
from pixecom_core.tenancy import PageRequest, SellerContext, open_seller_scope
from pixecom_core.testing.loopback import LoopbackServer
from tests.db.tenant_rows import seller_scope
from tests.ledger.conftest import insert_order
from tests.stats.test_pipeline import (  # noqa: F401 (fixtures)
    Shop,
    insight,
    ledger,
    make_shop,
    record,
    sessions,
)

#: The sandbox's clock: Friday 2026-08-14, its rates out. fx_rates is shared by every
#: test of the session: these weeks are no other test's.
TODAY = date(2026, 8, 14)
MONDAY = date(2026, 8, 10)
SATURDAY = date(2026, 8, 8)  # no ECB publication: carries Friday the 7th
FRIDAY_BEFORE = date(2026, 8, 7)
NEXT_MONDAY = date(2026, 8, 17)
T0 = datetime(2026, 8, 14, 18, 0, tzinfo=UTC)


@dataclass
class Ecb:
    url: str
    source: CurrencyRateSource
    control: httpx.AsyncClient

    async def rates(self) -> dict[date, dict[str, Decimal]]:
        """The oracle's rates: EUR → currency per publication day, from the served XML."""
        body = (await self.control.get("/stats/eurofxref/eurofxref-hist-90d.xml")).content
        return {p.published_on: dict(p.rates) for p in parse_reference_rates(body)}


@pytest.fixture
async def ecb(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Ecb]:
    monkeypatch.setenv("PIXECOM_ECB_SANDBOX_TODAY", TODAY.isoformat())
    monkeypatch.setenv("PIXECOM_ECB_SANDBOX_TODAY_PUBLISHED", "true")
    monkeypatch.setenv("PIXECOM_ECB_SANDBOX_HISTORY_STARTS_ON", "2026-06-01")
    manager = create_plugin_manager(load_entry_points=False, plugins=[ecb_plugin])
    sandbox = ProviderRegistry(manager).sandbox("ecb")
    async with LoopbackServer(sandbox.create_app()) as served:
        assert sandbox.environment is not None
        for name, value in sandbox.environment(served.url, "http://127.0.0.1:9").items():
            monkeypatch.setenv(name, value)
        source = ProviderRegistry(
            create_plugin_manager(load_entry_points=False, plugins=[ecb_plugin])
        ).currency_rates()
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as control:
            yield Ecb(url=served.url, source=source, control=control)
        await source.aclose()


def to_eur(amount_minor: int, currency: str, rates: dict[str, Decimal]) -> int:
    """The oracle: minor units of ``currency`` in euro cents, rounded half-even once."""
    euros = Decimal(amount_minor) / 100 / rates[currency]
    return int((euros * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def attributed_order(
    dsn: str, shop: Shop, at: datetime, currency: str, campaign: str | None
) -> str:
    """An order of the shop's sellpage whose landing URL had ``utm_campaign=campaign``;
    its gateway payment id."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        order = insert_order(
            conn, shop.seller_id, currency=currency, created_at=at, sellpage_id=shop.sellpage_id
        )
        with seller_scope(conn, shop.seller_id):
            conn.execute(
                "UPDATE orders SET utm_campaign = %s WHERE seller_id = %s AND id = %s",
                (campaign, shop.seller_id, order.order_id),
            )
    return order.payment


async def test_eur_seller_with_usd_spend_and_gbp_and_usd_payments_sees_exact_sums(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,  # noqa: F811
    ecb: Ecb,
) -> None:
    shop = make_shop(database_owner_dsn, reporting="EUR", account_currency="USD")
    # A second campaign on the same account, linked to no sellpage.
    with (
        psycopg.connect(database_owner_dsn, autocommit=True) as conn,
        seller_scope(conn, shop.seller_id),
    ):
        conn.execute(
            "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name)"
            " SELECT seller_id, ad_account_id, 'cmp_unlinked', 'Prospecting' FROM campaigns"
            " WHERE seller_id = %s",
            (shop.seller_id,),
        )
    spend = {
        (shop.campaign, MONDAY): 123_456_789,
        (shop.campaign, SATURDAY): 45_670_000,
        ("cmp_unlinked", MONDAY): 9_990_000,
    }
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await ingest_raw(
            scope,
            [
                insight(entity, day, T0, micros, currency="USD")
                for (entity, day), micros in spend.items()
            ],
        )
        await aggregate_daily(scope, network="meta", since=SATURDAY, until=MONDAY)
    # Monday: a GBP order from the linked campaign's ad, a USD order without attribution
    # and with a partial refund; Saturday: a USD order naming the campaign by name.
    gbp = attributed_order(
        database_owner_dsn,
        shop,
        datetime(2026, 8, 10, 10, tzinfo=UTC),
        "GBP",
        shop.campaign,
    )
    usd = attributed_order(
        database_owner_dsn, shop, datetime(2026, 8, 10, 11, tzinfo=UTC), "USD", None
    )
    weekend = attributed_order(
        database_owner_dsn,
        shop,
        datetime(2026, 8, 8, 12, tzinfo=UTC),
        "USD",
        "Campaign",
    )
    await record(ledger, gbp, "ch_gbp", PaymentEventKind.CAPTURED, 4_321, "GBP")
    await record(ledger, usd, "ch_usd", PaymentEventKind.CAPTURED, 10_000, "USD")
    await record(ledger, usd, "re_usd", PaymentEventKind.REFUNDED, 2_501, "USD")
    await record(ledger, weekend, "ch_wk", PaymentEventKind.CAPTURED, 7_777, "USD")

    # Before any rate: nothing foreign can be converted, and the days say so.
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await refresh_dirty_days(scope)
    context = SellerContext(seller_id=shop.seller_id, sessions=sessions, settings=settings)
    waiting = await StatsReports(context).overview(SATURDAY, MONDAY)
    assert waiting.pending_days == 2 and waiting.totals.spend_minor == 0
    assert {d.day: d.fx_pending_currencies for d in waiting.days}[MONDAY] == ("GBP", "USD")

    load = await load_rates(sessions, settings, ecb.source, FRIDAY_BEFORE, TODAY)
    assert load.stored_through == TODAY
    assert load.carried_days == 2  # the weekend, under Friday's rates
    assert shop.seller_id in load.sellers_marked
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await refresh_dirty_days(scope)

    rates = await ecb.rates()
    monday, saturday = rates[MONDAY], rates[FRIDAY_BEFORE]
    # Spend is converted from micros (123.456789 USD), rounded once per campaign-day.
    linked_monday = int(
        (Decimal("123.456789") / monday["USD"] * 100).quantize(Decimal(1), ROUND_HALF_EVEN)
    )
    oracle_spend = {
        MONDAY: linked_monday + to_eur(999, "USD", monday),
        SATURDAY: to_eur(4_567, "USD", saturday),
    }
    gross = {
        MONDAY: to_eur(4_321, "GBP", monday) + to_eur(10_000, "USD", monday),
        SATURDAY: to_eur(7_777, "USD", saturday),
    }
    refunds = {MONDAY: to_eur(2_501, "USD", monday), SATURDAY: 0}

    overview = await StatsReports(context).overview(SATURDAY, MONDAY)
    assert overview.reporting_currency == "EUR"
    assert overview.pending_days == 0
    by_day = {d.day: d.figures for d in overview.days}
    for day in (SATURDAY, MONDAY):
        assert by_day[day].spend_minor == oracle_spend[day], day
        assert by_day[day].gross_revenue_minor == gross[day], day
        assert by_day[day].refunds_minor == refunds[day], day
    assert overview.totals.net_revenue_minor == sum(gross.values()) - sum(refunds.values())
    assert overview.totals.spend_minor == sum(oracle_spend.values())
    # Every cent of spend: the unlinked campaign is in the totals and on its own line.
    assert overview.unattributed.spend_minor == to_eur(999, "USD", monday)
    # The order without attribution counts at sellpage level only.
    assert overview.unattributed.no_campaign_orders == 1
    assert overview.unattributed.no_campaign_net_revenue_minor == to_eur(
        10_000, "USD", monday
    ) - to_eur(2_501, "USD", monday)

    # Per campaign: the linked one earned the two attributed orders, over its own spend.
    page = await StatsReports(context).entities(
        EntityLevel.CAMPAIGN, SATURDAY, MONDAY, PageRequest(limit=50)
    )
    campaigns = {item.entity_id: item for item in page.items}
    linked = campaigns[shop.campaign].figures
    campaign_spend = linked_monday + oracle_spend[SATURDAY]
    campaign_net = to_eur(4_321, "GBP", monday) + to_eur(7_777, "USD", saturday)
    assert (linked.spend_minor, linked.net_revenue_minor, linked.orders) == (
        campaign_spend,
        campaign_net,
        2,
    )
    assert linked.roas == (Decimal(campaign_net) / Decimal(campaign_spend)).quantize(
        Decimal("0.000001")
    )
    assert campaigns["cmp_unlinked"].figures.net_revenue_minor == 0
    # The campaigns' spend adds up to the overview's, to the cent.
    assert sum(item.figures.spend_minor for item in page.items) == overview.totals.spend_minor


async def test_a_rate_not_published_yet_marks_its_day_until_it_arrives(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    ecb: Ecb,
) -> None:
    shop = make_shop(database_owner_dsn, reporting="EUR", account_currency="USD")
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await ingest_raw(
            scope, [insight(shop.campaign, NEXT_MONDAY, T0, 50_000_000, currency="USD")]
        )
        await aggregate_daily(scope, network="meta", since=NEXT_MONDAY, until=NEXT_MONDAY)
    # fx_rates is shared by every test: this one uses the week after the other's.
    # Monday morning in Frankfurt: Monday's rates come out at 16:00.
    clock = {"today": NEXT_MONDAY.isoformat(), "today_published": False}
    assert (await ecb.control.post("/_sandbox/config", json=clock)).status_code == 200

    first = await load_rates(sessions, settings, ecb.source, TODAY, NEXT_MONDAY)
    # The weekend is final (Friday's rates, carried); Monday is not published yet.
    assert first.stored_through == NEXT_MONDAY - timedelta(days=1)
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await refresh_dirty_days(scope)
        await lock_sellpage_aggregation(scope)
        await aggregate_sellpages(scope, [NEXT_MONDAY])
    context = SellerContext(seller_id=shop.seller_id, sessions=sessions, settings=settings)
    pending = await StatsReports(context).overview(NEXT_MONDAY, NEXT_MONDAY)
    assert pending.pending_days == 1
    assert pending.days[0].fx_pending_currencies == ("USD",)
    rates = await ecb.rates()
    # Converted provisionally at the latest earlier rate meanwhile (Friday's, carried).
    assert pending.totals.spend_minor == to_eur(5_000, "USD", rates[TODAY])

    published = {"today_published": True}
    assert (await ecb.control.post("/_sandbox/config", json=published)).status_code == 200
    second = await load_rates(sessions, settings, ecb.source, TODAY, NEXT_MONDAY)
    assert second.stored_through == NEXT_MONDAY
    assert shop.seller_id in second.sellers_marked
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        refreshed = await refresh_dirty_days(scope)
    assert NEXT_MONDAY in refreshed.days
    filled = await StatsReports(context).overview(NEXT_MONDAY, NEXT_MONDAY)
    rates = await ecb.rates()
    assert filled.pending_days == 0
    assert filled.totals.spend_minor == to_eur(5_000, "USD", rates[NEXT_MONDAY])

    # Loading again changes nothing and marks nobody.
    again = await load_rates(sessions, settings, ecb.source, TODAY, NEXT_MONDAY)
    assert again.rows_changed == 0 and again.sellers_marked == ()
