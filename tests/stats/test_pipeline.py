"""The stats pipeline: latest snapshots (never sums), and sellpage money net of refunds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import EntityLevel, GatewayPaymentEvent, InsightRow, PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_daily, aggregate_sellpages, dirty_days, ingest_raw
from pixecom_core.tenancy import open_seller_scope
from tests.db.tenant_rows import insert_seller, seller_scope
from tests.ledger import fakepay
from tests.ledger.conftest import insert_order

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def insight(
    entity: str,
    day: date,
    fetched_at: datetime,
    spend_micros: int,
    *,
    level: EntityLevel = EntityLevel.CAMPAIGN,
    currency: str = "USD",
) -> InsightRow:
    return InsightRow(
        network="meta",
        entity_type=level,
        entity_id=entity,
        date_start=day,
        date_stop=day,
        spend_micros=spend_micros,
        impressions=1000,
        clicks=10,
        purchases=1,
        purchase_value_micros=spend_micros * 3,
        currency=currency,
        fetched_at=fetched_at,
    )


@dataclass(frozen=True)
class Shop:
    seller_id: uuid.UUID
    sellpage_id: uuid.UUID
    campaign: str


@pytest.fixture
def sessions(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(app_engine)


def make_shop(dsn: str, *, reporting: str = "USD", account_currency: str = "USD") -> Shop:
    """A seller with a sellpage and one campaign linked to it, on one ad account."""
    seller_id = uuid.uuid4()
    campaign = f"cmp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_seller(conn, seller_id)
        with seller_scope(conn, seller_id):
            conn.execute(
                "UPDATE sellers SET reporting_currency = %s WHERE id = %s", (reporting, seller_id)
            )
            page = conn.execute(
                "INSERT INTO sellpages (seller_id, slug, title) VALUES (%s, %s, 'Page')"
                " RETURNING id",
                (seller_id, f"page-{uuid.uuid4().hex[:10]}"),
            ).fetchone()
            account = conn.execute(
                "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                " currency) VALUES (%s, 'meta', %s, 'acct', 'UTC', %s) RETURNING id",
                (seller_id, f"act_{uuid.uuid4().hex[:8]}", account_currency),
            ).fetchone()
            assert page is not None and account is not None
            conn.execute(
                "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name, sellpage_id)"
                " VALUES (%s, %s, %s, 'Campaign', %s)",
                (seller_id, account[0], campaign, page[0]),
            )
    return Shop(seller_id=seller_id, sellpage_id=page[0], campaign=campaign)


def daily(dsn: str, seller_id: uuid.UUID) -> dict[tuple[str, date], int]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        # The test owner may be a superuser (RLS bypassed): filter on the seller too.
        rows = conn.execute(
            "SELECT entity_id, stat_date, spend_micros FROM ad_stats_daily WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return {(row[0], row[1]): row[2] for row in rows}


def sellpage_day(dsn: str, shop: Shop, day: date = DAY) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn, seller_scope(conn, shop.seller_id):
        # The day's marks live on the seller's day (issue 16), beside its sellpage figures.
        cursor = conn.execute(
            "SELECT p.spend_minor, p.gross_revenue_minor, p.refunds_minor, p.chargebacks_minor,"
            " p.net_revenue_minor, p.orders_count, p.roas, d.needs_reaggregation,"
            " d.fx_pending_currencies, p.reporting_currency"
            " FROM seller_stats_daily AS d LEFT JOIN sellpage_stats_daily AS p"
            " ON p.seller_id = d.seller_id AND p.stat_date = d.stat_date AND p.sellpage_id = %s"
            " WHERE d.seller_id = %s AND d.stat_date = %s",
            (shop.sellpage_id, shop.seller_id, day),
        )
        row = cursor.fetchone()
        names = [column.name for column in cursor.description or []]
    return dict(zip(names, row, strict=True)) if row else None


async def ingest_and_aggregate(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    seller_id: uuid.UUID,
    rows: list[InsightRow],
    since: date = DAY - timedelta(days=2),
    until: date = DAY + timedelta(days=2),
) -> int:
    async with open_seller_scope(sessions, seller_id, settings) as scope:
        await ingest_raw(scope, rows)
        return await aggregate_daily(scope, network="meta", since=since, until=until)


async def test_a_restated_day_replaces_the_snapshot_and_a_rerun_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, database_owner_dsn: str
) -> None:
    shop = make_shop(database_owner_dsn)
    first = [insight(shop.campaign, DAY, T0, 10_000_000)]
    restated = [insight(shop.campaign, DAY, T0 + timedelta(hours=1), 12_000_000)]

    await ingest_and_aggregate(sessions, settings, shop.seller_id, first)
    await ingest_and_aggregate(sessions, settings, shop.seller_id, restated)
    again = await ingest_and_aggregate(sessions, settings, shop.seller_id, restated)

    assert daily(database_owner_dsn, shop.seller_id) == {(shop.campaign, DAY): 12_000_000}
    assert again == 0  # the same cycle twice: nothing written


async def test_a_retried_fetch_is_stored_once(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, database_owner_dsn: str
) -> None:
    shop = make_shop(database_owner_dsn)
    rows = [insight(shop.campaign, DAY - timedelta(days=d), T0, 5_000_000) for d in range(3)]

    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        first = await ingest_raw(scope, rows)
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        retry = await ingest_raw(scope, rows)

    assert (first.rows_received, first.rows_inserted) == (3, 3)
    assert (retry.rows_received, retry.rows_inserted, retry.duplicates) == (3, 0, 3)


async def test_an_older_snapshot_arriving_late_does_not_overwrite_a_newer_one(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, database_owner_dsn: str
) -> None:
    shop = make_shop(database_owner_dsn)
    newer = [insight(shop.campaign, DAY, T0 + timedelta(hours=2), 9_000_000)]
    older = [insight(shop.campaign, DAY, T0, 4_000_000)]

    await ingest_and_aggregate(sessions, settings, shop.seller_id, newer)
    written = await ingest_and_aggregate(sessions, settings, shop.seller_id, older)

    assert written == 0
    assert daily(database_owner_dsn, shop.seller_id) == {(shop.campaign, DAY): 9_000_000}


@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_overlapping_windows_retries_and_restarts_never_double_count(
    data: st.DataObject,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_owner_dsn: str,
) -> None:
    shop = make_shop(database_owner_dsn)
    entities = [shop.campaign, "adset_1", "ad_1"]
    # Each fetch: a window of days at one fetch time, with numbers of its own.
    # Distinct fetch times: one fetch at one instant returns one set of numbers.
    fetches = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 10),  # fetch hour
                st.integers(0, 5),  # window start offset
                st.integers(1, 4),  # window length
                st.integers(1, 1_000),  # spend seed
            ),
            min_size=1,
            max_size=6,
            unique_by=lambda fetch: fetch[0],
        ),
        label="fetches",
    )
    batches = []
    for hour, start, length, seed in fetches:
        fetched_at = T0 + timedelta(hours=hour)
        batches.append(
            [
                insight(
                    entity,
                    DAY - timedelta(days=start + offset),
                    fetched_at,
                    seed * 1_000 + offset * 7 + index,
                )
                for offset in range(length)
                for index, entity in enumerate(entities)
            ]
        )
    # Retries (the same batch again) and any order of arrival; aggregation after each.
    arrivals = data.draw(
        st.permutations(batches + data.draw(st.lists(st.sampled_from(batches), max_size=3))),
        label="arrivals",
    )
    for batch in arrivals:
        await ingest_and_aggregate(
            sessions, settings, shop.seller_id, batch, DAY - timedelta(days=12), DAY
        )

    latest: dict[tuple[str, date], tuple[datetime, int]] = {}
    for batch in batches:
        for row in batch:
            key = (row.entity_id, row.date_start)
            if key not in latest or latest[key][0] < row.fetched_at:
                latest[key] = (row.fetched_at, row.spend_micros)
    expected = {key: spend for key, (_, spend) in latest.items()}
    stored = daily(database_owner_dsn, shop.seller_id)
    assert stored == expected


async def record(
    ledger: Ledger, payment: str, fact: str, kind: PaymentEventKind, amount: int, currency: str
) -> None:
    await ledger.record(
        [
            GatewayPaymentEvent(
                gateway="fakepay",
                event_id=f"evt_{fact}",
                gateway_reference=payment,
                fact_reference=fact,
                kind=kind,
                amount_minor=amount,
                currency=currency,
                occurred_at=T0,
            )
        ]
    )


@pytest.fixture
def ledger(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Ledger:
    registry = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[fakepay]))
    return Ledger(sessions, settings, registry.plugin_manager)


def paid_order_on(dsn: str, shop: Shop, currency: str = "USD") -> str:
    """An order on the shop's sellpage, created on DAY; its payment reference."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        order = insert_order(
            conn,
            shop.seller_id,
            currency=currency,
            created_at=datetime(2026, 11, 20, 15, tzinfo=UTC),
            sellpage_id=shop.sellpage_id,
        )
    return order.payment


async def aggregate_day(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, shop: Shop
) -> list[date]:
    async with open_seller_scope(sessions, shop.seller_id, settings) as scope:
        days = sorted({DAY, *await dirty_days(scope)})
        await aggregate_sellpages(scope, days)
    return days


async def test_a_refund_after_aggregation_lowers_that_days_revenue_and_roas(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,
) -> None:
    shop = make_shop(database_owner_dsn)
    await ingest_and_aggregate(
        sessions, settings, shop.seller_id, [insight(shop.campaign, DAY, T0, 20_000_000)]
    )
    payment = paid_order_on(database_owner_dsn, shop)
    await record(ledger, payment, "ch_1", PaymentEventKind.CAPTURED, 8_000, "USD")
    await aggregate_day(sessions, settings, shop)
    before = sellpage_day(database_owner_dsn, shop)
    assert before is not None
    assert (before["spend_minor"], before["net_revenue_minor"], before["orders_count"]) == (
        2_000,
        8_000,
        1,
    )
    assert before["roas"] == Decimal("4.000000") and not before["needs_reaggregation"]

    await record(ledger, payment, "re_1", PaymentEventKind.REFUNDED, 3_000, "USD")
    marked = sellpage_day(database_owner_dsn, shop)
    assert marked is not None and marked["needs_reaggregation"]
    await aggregate_day(sessions, settings, shop)

    after = sellpage_day(database_owner_dsn, shop)
    assert after is not None
    assert (after["gross_revenue_minor"], after["refunds_minor"], after["net_revenue_minor"]) == (
        8_000,
        3_000,
        5_000,
    )
    assert after["roas"] == Decimal("2.500000") and not after["needs_reaggregation"]


async def test_zero_spend_gives_a_null_roas(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,
) -> None:
    shop = make_shop(database_owner_dsn)
    payment = paid_order_on(database_owner_dsn, shop)
    await record(ledger, payment, "ch_z", PaymentEventKind.CAPTURED, 5_000, "USD")

    await aggregate_day(sessions, settings, shop)

    row = sellpage_day(database_owner_dsn, shop)
    assert row is not None
    assert (row["spend_minor"], row["net_revenue_minor"], row["roas"]) == (0, 5_000, None)


@pytest.fixture
def fx_rates(database_owner_dsn: str) -> Iterator[None]:
    rates = [(DAY - timedelta(days=1), "EUR", "USD", "1.1000"), (DAY, "GBP", "USD", "1.2500")]
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        for rate_date, base, quote, rate in rates:
            conn.execute(
                "INSERT INTO fx_rates (rate_date, base_currency, quote_currency, rate, source)"
                " VALUES (%s, %s, %s, %s, 'test') ON CONFLICT DO NOTHING",
                (rate_date, base, quote, rate),
            )
    yield


async def test_two_currencies_are_converted_never_added_raw(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_owner_dsn: str,
    ledger: Ledger,
    fx_rates: None,  # noqa: ARG001 (arranges the rates)
) -> None:
    # Spend in EUR (rate of the day before applies), revenue in GBP, reported in USD.
    shop = make_shop(database_owner_dsn, reporting="USD", account_currency="EUR")
    await ingest_and_aggregate(
        sessions,
        settings,
        shop.seller_id,
        [insight(shop.campaign, DAY, T0, 10_000_000, currency="EUR")],
    )
    payment = paid_order_on(database_owner_dsn, shop, currency="GBP")
    await record(ledger, payment, "ch_gbp", PaymentEventKind.CAPTURED, 4_000, "GBP")

    await aggregate_day(sessions, settings, shop)

    row = sellpage_day(database_owner_dsn, shop)
    assert row is not None
    assert row["reporting_currency"] == "USD"
    assert row["spend_minor"] == 1_100  # 10.00 EUR × 1.10
    assert row["gross_revenue_minor"] == 5_000  # 40.00 GBP × 1.25, not 4,000 + anything
    assert row["roas"] == Decimal("4.545455")


async def test_a_missing_fx_rate_is_marked_not_guessed(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    database_owner_dsn: str,
) -> None:
    shop = make_shop(database_owner_dsn, reporting="USD", account_currency="SEK")
    await ingest_and_aggregate(
        sessions,
        settings,
        shop.seller_id,
        [insight(shop.campaign, DAY, T0, 10_000_000, currency="SEK")],
    )

    await aggregate_day(sessions, settings, shop)

    row = sellpage_day(database_owner_dsn, shop)
    assert row is not None
    # Nothing could be converted, so the sellpage has no figures that day (no guess)...
    assert row["spend_minor"] is None and row["roas"] is None
    # ...and the day says which currency it waits for.
    assert row["fx_pending_currencies"] == ["SEK"] and not row["needs_reaggregation"]
