"""Every view of a seller's money adds up, over random data (issue 16, hypothesis).

Each example arranges a seller with a reporting currency, one or two ad accounts in other
currencies, campaigns linked to a sellpage or to none (one maybe not synced at all, names
possibly shared), random spend per campaign-day (mirrored at ad-set level, which must not
count twice) and orders with random captures, refunds and chargebacks in random
currencies, some naming a campaign by id, by name or by ``campaign_ref``. Every day of the
window has its rates. After :func:`aggregate_sellpages`, over any sub-range, the reports
(:class:`StatsReports`, paged two items at a time) agree with each other, and the total
spend agrees with an oracle computed here from the spend and the stored rates: each
campaign-day converted at its day's rate and rounded half-even once.

Random amounts rarely land exactly on half a minor unit, so one such case is pinned below
(:func:`test_a_conversion_landing_on_half_a_cent_rounds_to_even`); with ECB rates of four
decimals and round amounts it is common in practice.

The window, 2025-05-05 to 2025-05-18, is no other test's: ``fx_rates`` is shared.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.ledger import Ledger
from pixecom_core.providers import EntityLevel, GatewayPaymentEvent, PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_sellpages, lock_sellpage_aggregation
from pixecom_core.stats.reports import EntityFigures, Overview, SellpageFigures, StatsReports
from pixecom_core.tenancy import PageRequest, SellerContext, open_seller_scope
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.ledger.conftest import insert_order
from tests.stats.test_pipeline import ledger, sessions  # noqa: F401 (fixtures)

FIRST_DAY = date(2025, 5, 5)
WINDOW = [FIRST_DAY + timedelta(days=offset) for offset in range(14)]
#: EUR → currency on the first day: the ECB's shape (4 decimals, EUR as the only base),
#: so every other pair is converted across EUR. A whole or round amount times a rate of 4
#: decimals often lands on half a cent: the rounding mode shows.
EUR_RATES = {"USD": Decimal("1.1205"), "GBP": Decimal("0.8435"), "SEK": Decimal("10.8765")}
EUR_RATES_JPY = Decimal("163.25")
ACCOUNT_CURRENCIES = ("USD", "EUR", "GBP", "SEK", "JPY")
REPORTING_CURRENCIES = ("USD", "EUR", "GBP")
#: Minor units per major unit (the reporting currencies, and JPY with none).
MINOR = {"USD": 100, "EUR": 100, "GBP": 100, "SEK": 100, "JPY": 1}
CAMPAIGN_NAMES = ("Prospecting", "Retargeting", "Lookalike")
EXAMPLE_SETTINGS = hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def eur_rate(currency: str, day: date) -> Decimal:
    """The stored EUR → ``currency`` rate of ``day``: it moves a little every day."""
    base = EUR_RATES_JPY if currency == "JPY" else EUR_RATES[currency]
    return base + Decimal("0.0005") * (day - FIRST_DAY).days


@pytest.fixture
def window_rates(database_owner_dsn: str) -> Iterator[dict[tuple[date, str], Decimal]]:
    """Rates for every day of the window and the week before it, as the ECB loader stores
    them; yields them as read back from ``fx_rates``."""
    days = [FIRST_DAY - timedelta(days=7) + timedelta(days=n) for n in range(21)]
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        for day in days:
            for currency in ("USD", "GBP", "SEK", "JPY"):
                conn.execute(
                    "INSERT INTO fx_rates (rate_date, base_currency, quote_currency, rate,"
                    " source) VALUES (%s, 'EUR', %s, %s, 'test') ON CONFLICT DO NOTHING",
                    (day, currency, eur_rate(currency, day)),
                )
        stored = conn.execute(
            "SELECT rate_date, quote_currency, rate FROM fx_rates WHERE base_currency = 'EUR'"
            " AND rate_date BETWEEN %s AND %s",
            (days[0], days[-1]),
        ).fetchall()
    yield {(day, quote.strip()): rate for day, quote, rate in stored}


def conversion(
    rates: dict[tuple[date, str], Decimal], day: date, currency: str, reporting: str
) -> Decimal:
    """The oracle's rate ``currency`` → ``reporting`` of ``day``, exactly, across EUR."""
    with localcontext() as exact:
        exact.prec = 60
        per_eur = {"EUR": Decimal(1)} | {q: r for (d, q), r in rates.items() if d == day}
        return per_eur[reporting] / per_eur[currency]


def spend_oracle(
    rates: dict[tuple[date, str], Decimal], reporting: str, micros: int, currency: str, day: date
) -> int:
    """Micros of ``currency`` in minor units of ``reporting``, rounded half-even once."""
    with localcontext() as exact:
        exact.prec = 60
        major = Decimal(micros) / 1_000_000 * conversion(rates, day, currency, reporting)
        return int((major * MINOR[reporting]).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class Campaign:
    external_id: str
    name: str
    account: int
    #: Index of the sellpage it is linked to; None: linked to none.
    sellpage: int | None
    #: False: the network reports its spend but the hierarchy sync has not seen it.
    synced: bool
    #: Day offset in the window → spend in micros of its account's currency.
    spend: dict[int, int]


@dataclass(frozen=True)
class Order:
    day: int
    hour: int
    sellpage: int | None
    currency: str
    #: How the landing URL named a campaign: (column, value) or None.
    attribution: tuple[str, str] | None
    facts: list[tuple[PaymentEventKind, int, str]]


@dataclass
class Arranged:
    seller_id: uuid.UUID
    reporting: str
    accounts: list[str]
    campaigns: list[Campaign]
    orders: list[Order] = field(default_factory=list)


# Networks report spend in cents (micros a multiple of 10,000), budgets are often whole
# units; any micros otherwise.
_MICROS = st.one_of(
    st.integers(0, 2_000).map(lambda units: units * 1_000_000),
    st.integers(0, 200_000).map(lambda cents: cents * 10_000),
    st.integers(0, 2_000_000_000),
)


def draw_shop(data: st.DataObject) -> Arranged:
    reporting = data.draw(st.sampled_from(REPORTING_CURRENCIES), label="reporting")
    accounts = data.draw(
        st.lists(st.sampled_from(ACCOUNT_CURRENCIES), min_size=1, max_size=2, unique=True),
        label="account currencies",
    )
    campaigns = []
    for index in range(data.draw(st.integers(1, 4), label="campaigns")):
        campaigns.append(
            Campaign(
                external_id=f"cmp_{index}_{uuid.uuid4().hex[:8]}",
                name=data.draw(st.sampled_from(CAMPAIGN_NAMES)),
                account=data.draw(st.integers(0, len(accounts) - 1)),
                sellpage=data.draw(st.sampled_from([None, 0, 1])),
                synced=data.draw(st.sampled_from([True, True, True, False])),
                spend=data.draw(
                    st.dictionaries(st.integers(0, len(WINDOW) - 1), _MICROS, max_size=6)
                ),
            )
        )
    shop = Arranged(
        seller_id=uuid.uuid4(), reporting=reporting, accounts=accounts, campaigns=campaigns
    )
    naming = st.one_of(
        st.none(),
        st.sampled_from(campaigns).map(lambda c: ("utm_campaign", c.external_id)),
        st.sampled_from(campaigns).map(lambda c: ("utm_campaign", c.name)),
        st.sampled_from(campaigns).map(lambda c: ("campaign_ref", c.external_id)),
        st.just(("utm_campaign", "cmp_never_synced")),
    )
    fact = st.tuples(
        st.sampled_from(
            [
                PaymentEventKind.CAPTURED,
                PaymentEventKind.REFUNDED,
                PaymentEventKind.CHARGEBACK,
                PaymentEventKind.CHARGEBACK_REVERSED,
            ]
        ),
        st.integers(1, 50_000),
        st.sampled_from(ACCOUNT_CURRENCIES),
    )
    shop.orders = data.draw(
        st.lists(
            st.builds(
                Order,
                # Days 1 to 12: whatever the seller's time zone, the order's day is in the
                # window.
                day=st.integers(1, len(WINDOW) - 2),
                hour=st.integers(0, 23),
                sellpage=st.sampled_from([None, 0, 1]),
                currency=st.sampled_from(ACCOUNT_CURRENCIES),
                attribution=naming,
                facts=st.lists(fact, min_size=1, max_size=3),
            ),
            max_size=6,
        ),
        label="orders",
    )
    return shop


async def arrange(
    shop: Arranged,
    dsn: str,
    ledger: Ledger,  # noqa: F811
    timezone: str,
) -> None:
    """Write the shop as the sync and the checkout would have, and record its payments."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, shop.seller_id)
        with seller_scope(conn, shop.seller_id):
            conn.execute(
                "UPDATE sellers SET reporting_currency = %s, timezone = %s WHERE id = %s",
                (shop.reporting, timezone, shop.seller_id),
            )
            pages = [
                conn.execute(
                    "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'Page')"
                    " RETURNING id",
                    (shop.seller_id, f"page-{uuid.uuid4().hex[:10]}"),
                ).fetchone()[0]  # type: ignore[index]
                for _ in range(2)
            ]
            accounts = [
                conn.execute(
                    "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                    " currency) VALUES (%s, 'meta', %s, 'acct', 'UTC', %s) RETURNING id",
                    (shop.seller_id, f"act_{uuid.uuid4().hex[:8]}", currency),
                ).fetchone()[0]  # type: ignore[index]
                for currency in shop.accounts
            ]
            for campaign in shop.campaigns:
                account = accounts[campaign.account]
                currency = shop.accounts[campaign.account]
                if campaign.synced:
                    conn.execute(
                        "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name,"
                        " sellpage_id) VALUES (%s, %s, %s, %s, %s)",
                        (
                            shop.seller_id,
                            account,
                            campaign.external_id,
                            campaign.name,
                            None if campaign.sellpage is None else pages[campaign.sellpage],
                        ),
                    )
                for offset, micros in campaign.spend.items():
                    for level, entity in (
                        ("campaign", campaign.external_id),
                        ("adset", f"set_{campaign.external_id}"),
                    ):
                        conn.execute(
                            "INSERT INTO ad_stats_daily (seller_id, network, entity_type,"
                            " entity_id, stat_date, snapshot_fetched_at, ad_account_id,"
                            " spend_micros, impressions, clicks, purchases,"
                            " purchase_value_micros, currency) VALUES (%s, 'meta', %s, %s, %s,"
                            " now(), %s, %s, 100, 1, 0, 0, %s)",
                            (
                                shop.seller_id,
                                level,
                                entity,
                                WINDOW[offset],
                                account,
                                micros,
                                currency,
                            ),
                        )
        events = []
        for order in shop.orders:
            placed = insert_order(
                conn,
                shop.seller_id,
                currency=order.currency,
                created_at=datetime.combine(WINDOW[order.day], time(order.hour), UTC),
                sellpage_id=None if order.sellpage is None else pages[order.sellpage],
            )
            if order.attribution is not None:
                column, value = order.attribution
                with seller_scope(conn, shop.seller_id):
                    conn.execute(
                        f"UPDATE orders SET {column} = %s WHERE seller_id = %s AND id = %s",
                        (value, shop.seller_id, placed.order_id),
                    )
            for kind, amount, currency in order.facts:
                fact = f"fact_{uuid.uuid4().hex}"
                events.append(
                    GatewayPaymentEvent(
                        gateway="fakepay",
                        event_id=f"evt_{fact}",
                        gateway_reference=placed.payment,
                        fact_reference=fact,
                        kind=kind,
                        amount_minor=amount,
                        currency=currency,
                        occurred_at=placed.created_at + timedelta(minutes=5),
                    )
                )
    if events:
        await ledger.record(events)


@dataclass(frozen=True)
class Views:
    overview: Overview
    sellpages: list[SellpageFigures]
    campaigns: list[EntityFigures]


async def read_views(reports: StatsReports, since: date, until: date) -> Views:
    """The overview, and every sellpage and campaign, two per page."""
    sellpages: list[SellpageFigures] = []
    campaigns: list[EntityFigures] = []
    cursor: str | None = None
    while True:
        page = await reports.sellpages(since, until, PageRequest(limit=2, cursor=cursor))
        sellpages.extend(page.items)
        if (cursor := page.next_cursor) is None:
            break
    while True:
        entities = await reports.entities(
            EntityLevel.CAMPAIGN, since, until, PageRequest(limit=2, cursor=cursor)
        )
        campaigns.extend(entities.items)
        if (cursor := entities.next_cursor) is None:
            break
    return Views(await reports.overview(since, until), sellpages, campaigns)


async def aggregated_reports(
    data: st.DataObject,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    dsn: str,
    ledger: Ledger,  # noqa: F811
) -> tuple[Arranged, StatsReports]:
    shop = draw_shop(data)
    timezone = data.draw(st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]), label="tz")
    await arrange(shop, dsn, ledger, timezone)
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await lock_sellpage_aggregation(scope)
        await aggregate_sellpages(scope, WINDOW)
    context = SellerContext(seller_id=shop.seller_id, sessions=sessions, settings=settings)
    return shop, StatsReports(context)


def draw_range(data: st.DataObject) -> tuple[date, date]:
    first = data.draw(st.integers(0, len(WINDOW) - 1), label="since")
    last = data.draw(st.integers(first, len(WINDOW) - 1), label="until")
    return WINDOW[first], WINDOW[last]


@EXAMPLE_SETTINGS
@given(data=st.data())
async def test_campaigns_sellpages_and_the_unattributed_add_up_to_the_overview(
    data: st.DataObject,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,  # noqa: F811
    window_rates: dict[tuple[date, str], Decimal],  # noqa: ARG001 (arranges the rates)
) -> None:
    _, reports = await aggregated_reports(data, sessions, settings, database_owner_dsn, ledger)
    since, until = draw_range(data)

    views = await read_views(reports, since, until)

    totals, unattributed = views.overview.totals, views.overview.unattributed
    assert views.overview.pending_days == 0  # every day had its rates
    assert sum(c.figures.spend_minor for c in views.campaigns) == totals.spend_minor
    assert (
        sum(p.figures.spend_minor for p in views.sellpages) + unattributed.spend_minor
        == totals.spend_minor
    )
    assert (
        sum(p.figures.net_revenue_minor for p in views.sellpages)
        + unattributed.no_sellpage_net_revenue_minor
        == totals.net_revenue_minor
    )
    assert (
        sum(c.figures.net_revenue_minor for c in views.campaigns)
        + unattributed.no_campaign_net_revenue_minor
        == totals.net_revenue_minor
    )
    assert await reports.unattributed(since, until) == unattributed


@EXAMPLE_SETTINGS
@given(data=st.data())
async def test_total_spend_is_each_campaign_day_converted_at_its_rate_and_rounded_once(
    data: st.DataObject,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,  # noqa: F811
    window_rates: dict[tuple[date, str], Decimal],
) -> None:
    shop, reports = await aggregated_reports(data, sessions, settings, database_owner_dsn, ledger)
    since, until = draw_range(data)

    overview = await reports.overview(since, until)

    oracle = sum(
        spend_oracle(
            window_rates, shop.reporting, micros, shop.accounts[campaign.account], WINDOW[offset]
        )
        for campaign in shop.campaigns
        for offset, micros in campaign.spend.items()
        if since <= WINDOW[offset] <= until
    )
    assert overview.totals.spend_minor == oracle


async def test_a_conversion_landing_on_half_a_cent_rounds_to_even(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,  # noqa: F811
    window_rates: dict[tuple[date, str], Decimal],
) -> None:
    # 10.00 EUR at the first day's 1.1205 USD is 1120.5 cents, spent or paid; 2.00 EUR at
    # the next day's 1.1210 is 224.2 cents. One tie, one not.
    shop = Arranged(
        seller_id=uuid.uuid4(),
        reporting="USD",
        accounts=["EUR"],
        campaigns=[
            Campaign(
                external_id=f"cmp_{uuid.uuid4().hex[:8]}",
                name="Prospecting",
                account=0,
                sellpage=0,
                synced=True,
                spend={0: 10_000_000, 1: 2_000_000},
            )
        ],
        orders=[
            Order(
                day=0,
                hour=12,
                sellpage=0,
                currency="EUR",
                attribution=None,
                facts=[(PaymentEventKind.CAPTURED, 1_000, "EUR")],
            )
        ],
    )
    await arrange(shop, database_owner_dsn, ledger, "UTC")
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        await lock_sellpage_aggregation(scope)
        await aggregate_sellpages(scope, WINDOW)
    context = SellerContext(seller_id=shop.seller_id, sessions=sessions, settings=settings)

    overview = await StatsReports(context).overview(WINDOW[0], WINDOW[1])

    assert conversion(window_rates, WINDOW[0], "EUR", "USD") == Decimal("1.1205")
    by_day = {d.day: d.figures.spend_minor for d in overview.days}
    assert by_day == {
        WINDOW[0]: spend_oracle(window_rates, "USD", 10_000_000, "EUR", WINDOW[0]),
        WINDOW[1]: spend_oracle(window_rates, "USD", 2_000_000, "EUR", WINDOW[1]),
    }
    assert by_day[WINDOW[0]] == 1_120  # half-even; half away from zero would say 1,121
    assert overview.days[0].figures.gross_revenue_minor == 1_120
