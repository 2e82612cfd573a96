"""The roll-up queries use their indexes: plans at a realistic size (issue 16).

A database of this module's own is filled, with set-based SQL as the owner, to the size of
a busy installation — 200 sellers with 20 campaigns each, 60 days of campaign spend
(240,000 ``ad_stats_daily`` rows), 100,000 orders over twelve monthly partitions with
their captures, refunds and chargebacks, two years of rates for 30 currencies, a year of
``seller_stats_daily`` and 60 days of entity and sellpage roll-ups — and analyzed. Then
the statements the application itself sends are captured from the engine while it runs
:func:`aggregate_sellpages` and each :class:`StatsReports` read for one seller, and are
EXPLAINed with the parameters it bound, as the application role in that seller's scope.

No plan may read a big table with a ``Seq Scan``, nor through an index other than the
one meant for it (an index on ``seller_id`` alone would still walk all of the seller's
rows per lookup). Which index serves which statement (``SERVING_INDEXES``):

- ``RECOMPUTE_DAYS``: the days' stored roll-ups it compares with and deletes from,
  ``sellpage_stats_daily`` by ``pk_sellpage_stats_daily`` and ``entity_stats_daily`` by
  ``ix_entity_stats_daily_seller_id_stat_date`` or ``pk_entity_stats_daily``;
  ``ad_stats_daily`` by ``ix_ad_stats_daily_seller_id_stat_date`` (or
  ``pk_ad_stats_daily``, whose first column is the seller); ``orders`` by
  ``ix_orders_seller_id_created_at``, its partitions pruned to the window's months by the
  ``created_at`` bounds; ``payment_events`` by
  ``ix_payment_events_seller_id_order_id_recorded_at``; ``fx_rates`` by ``pk_fx_rates``
  (a range of ``rate_date`` with both currencies checked in the index: at most 8 days ×
  30 currencies per lookup); ``seller_fx_rates`` by ``pk_seller_fx_rates``; the
  attribution's ``campaigns``, ``adsets`` and ``ads`` by their ``(seller_id, …)`` keys.
- ``_OVERVIEW`` and ``_UNATTRIBUTED``: ``pk_seller_stats_daily``; ``_SELLPAGES``:
  ``pk_sellpage_stats_daily``; ``_ENTITIES``: ``pk_entity_stats_daily``, then
  ``pk_ad_stats_daily`` for the page's own numbers.

None of them needed a new index. The loaded months are full: a partition the planner
believes nearly empty (the current month on its first day) is read sequentially whatever
its indexes, which is no defect, so the windows stay clear of one. The plans are the
custom plans of the bound values (what psycopg gets for a statement it has not prepared).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.providers import EntityLevel
from pixecom_core.stats import aggregate_sellpages, lock_sellpage_aggregation
from pixecom_core.stats.reports import StatsReports
from pixecom_core.tenancy import PageRequest, SellerContext, bind_seller_scope, open_seller_scope
from pixecom_core.testing.databases import TestDatabase, provision_test_database

#: The last day of spend and roll-ups; orders run from 2025-12-01 to here.
LAST_DAY = date(2026, 11, 30)
SELLERS = 200
CAMPAIGNS = 20
SPEND_DAYS = 60
ORDERS = 100_000
#: Seller 18 reports in USD from a SEK ad account (converted across EUR) in New York.
SELLER = 18

#: Tables that grow with sellers × days (or orders): never read sequentially.
BIG_TABLES = frozenset(
    {
        "orders",
        "payment_events",
        "ad_stats_daily",
        "entity_stats_daily",
        "sellpage_stats_daily",
        "seller_stats_daily",
        "fx_rates",
    }
)
#: The indexes meant for each big table (partitions named by their parent's index).
SERVING_INDEXES = {
    "orders": frozenset({"ix_orders_seller_id_created_at"}),
    "payment_events": frozenset({"ix_payment_events_seller_id_order_id_recorded_at"}),
    "ad_stats_daily": frozenset({"ix_ad_stats_daily_seller_id_stat_date", "pk_ad_stats_daily"}),
    "entity_stats_daily": frozenset(
        {"ix_entity_stats_daily_seller_id_stat_date", "pk_entity_stats_daily"}
    ),
    "sellpage_stats_daily": frozenset({"pk_sellpage_stats_daily"}),
    "seller_stats_daily": frozenset({"pk_seller_stats_daily"}),
    "fx_rates": frozenset({"pk_fx_rates"}),
    "seller_fx_rates": frozenset({"pk_seller_fx_rates"}),
}
assert BIG_TABLES <= SERVING_INDEXES.keys()
#: Tables a plan may read sequentially: one row per seller (``sellers``), a seller's few ad
#: accounts (``ad_accounts``, a couple of pages in all here). Any other table must be
#: reached through an index.
SMALL_LOOKUPS = frozenset({"sellers", "ad_accounts"})

_CURRENCIES = "ARRAY['USD', 'EUR', 'GBP', 'SEK', 'JPY']"
_ECB_QUOTES = (
    "USD JPY BGN CZK DKK GBP HUF PLN RON SEK CHF ISK NOK TRY AUD BRL CAD CNY HKD IDR ILS INR"
    " KRW MXN MYR NZD PHP SGD THB ZAR"
).split()
_PARTITIONED = ("orders", "ad_stats_daily", "entity_stats_daily", "sellpage_stats_daily")
_LOADED = (
    "sellers",
    "ad_accounts",
    "sellpages",
    "campaigns",
    "adsets",
    "ads",
    "ad_stats_daily",
    "orders",
    "payment_events",
    "seller_stats_daily",
    "entity_stats_daily",
    "sellpage_stats_daily",
    "seller_fx_rates",
)
# Ids are md5 digests of a name ("s18" is seller 18), so every statement can find the
# rows of the ones before without carrying ids around. Rows go in in key order: a btree
# fills much faster that way.
_LOAD = [
    f"""
    INSERT INTO sellers (id, name, reporting_currency, timezone)
    SELECT md5('s' || n)::uuid, 'seller ' || n, (ARRAY['USD', 'EUR', 'GBP'])[1 + n % 3],
           (ARRAY['UTC', 'America/New_York', 'Asia/Tokyo'])[1 + n % 7 % 3]
      FROM generate_series(1, {SELLERS}) AS n
    """,
    f"""
    INSERT INTO ad_accounts (seller_id, id, network, external_id, name, timezone, currency)
    SELECT md5('s' || n)::uuid, md5('a' || n)::uuid, 'meta', 'act_' || n, 'account', 'UTC',
           ({_CURRENCIES})[1 + n % 5]
      FROM generate_series(1, {SELLERS}) AS n
    """,
    f"""
    INSERT INTO sellpages (seller_id, id, slug, title)
    SELECT md5('s' || n)::uuid, md5('p' || n || '-' || k)::uuid, 'page-' || n || '-' || k,
           'Page'
      FROM generate_series(1, {SELLERS}) AS n, generate_series(0, 2) AS k
    """,
    # A quarter of the campaigns are linked to no sellpage.
    f"""
    INSERT INTO campaigns (seller_id, id, ad_account_id, external_id, name, sellpage_id)
    SELECT md5('s' || n)::uuid, md5('c' || n || '-' || k)::uuid, md5('a' || n)::uuid,
           'cmp_' || n || '_' || k, 'Campaign ' || k,
           CASE WHEN k % 4 <> 0 THEN md5('p' || n || '-' || k % 3)::uuid END
      FROM generate_series(1, {SELLERS}) AS n, generate_series(1, {CAMPAIGNS}) AS k
    """,
    f"""
    INSERT INTO adsets (seller_id, id, campaign_id, external_id, name)
    SELECT md5('s' || n)::uuid, md5('as' || n || '-' || k)::uuid,
           md5('c' || n || '-' || k)::uuid, 'set_' || n || '_' || k, 'Ad set ' || k
      FROM generate_series(1, {SELLERS}) AS n, generate_series(1, {CAMPAIGNS}) AS k
    """,
    f"""
    INSERT INTO ads (seller_id, id, adset_id, external_id, name)
    SELECT md5('s' || n)::uuid, md5('ad' || n || '-' || k)::uuid,
           md5('as' || n || '-' || k)::uuid, 'ad_' || n || '_' || k, 'Ad ' || k
      FROM generate_series(1, {SELLERS}) AS n, generate_series(1, {CAMPAIGNS}) AS k
    """,
    f"""
    INSERT INTO ad_stats_daily (seller_id, network, entity_type, entity_id, stat_date,
        snapshot_fetched_at, ad_account_id, spend_micros, impressions, clicks, purchases,
        purchase_value_micros, currency)
    SELECT md5('s' || n)::uuid, 'meta', 'campaign', 'cmp_' || n || '_' || k, day::date,
           day + interval '1 day', md5('a' || n)::uuid,
           (n * 7919 + k * 104729 + extract(doy FROM day)::int * 31) % 90000000, 1000, 10, 1,
           0, ({_CURRENCIES})[1 + n % 5]
      FROM generate_series(1, {SELLERS}) AS n, generate_series(1, {CAMPAIGNS}) AS k,
           generate_series(date '{LAST_DAY}' - {SPEND_DAYS - 1}, date '{LAST_DAY}',
                           interval '1 day') AS g(day)
     ORDER BY 1, 4, 5
    """,
    # A year of orders, a minute apart in a scrambled order; some name a campaign by id or
    # by name, an ad, or no sellpage.
    f"""
    INSERT INTO orders (seller_id, id, created_at, status, sellpage_id, currency,
        subtotal_minor, total_minor, customer_email, payment_gateway, payment_id,
        utm_campaign, campaign_ref, ad_ref)
    SELECT md5('s' || s)::uuid, md5('o' || i)::uuid, at, 'PAID',
           CASE WHEN i % 10 <> 0 THEN md5('p' || s || '-' || i % 3)::uuid END,
           ({_CURRENCIES})[1 + i % 5], 5000, 5000, 'buyer@example.com', 'fakepay',
           'pay_' || i,
           CASE i % 5 WHEN 1 THEN 'cmp_' || s || '_' || 1 + i % {CAMPAIGNS}
                      WHEN 2 THEN 'Campaign ' || 1 + i % {CAMPAIGNS} END,
           CASE WHEN i % 7 = 3 THEN 'cmp_' || s || '_' || 1 + i % {CAMPAIGNS} END,
           CASE WHEN i % 11 = 4 THEN 'ad_' || s || '_' || 1 + i % {CAMPAIGNS} END
      FROM generate_series(1, {ORDERS}) AS i,
           LATERAL (SELECT 1 + i % {SELLERS} AS s,
                           timestamptz '{LAST_DAY + timedelta(days=1)} 00:00+00'
                           - (1 + i * 7919 % 525599) * interval '1 minute' AS at) AS x
     ORDER BY 1, 2
    """,
    """
    INSERT INTO payment_events (seller_id, order_id, gateway, gateway_reference, event_type,
        amount_minor, currency, occurred_at)
    SELECT o.seller_id, o.id, 'fakepay', o.payment_id, e.kind, e.amount, o.currency,
           o.created_at
      FROM orders AS o
     CROSS JOIN LATERAL (VALUES ('CAPTURED', 5000, true),
                                ('REFUNDED', 1500, right(o.payment_id, 1) IN ('3', '7')),
                                ('CHARGEBACK', 5000, right(o.payment_id, 2) = '41'))
           AS e(kind, amount, present)
     WHERE e.present
     ORDER BY 1, 2
    """,
    # The ECB's shape: EUR against 30 currencies, every calendar day for two years.
    f"""
    INSERT INTO fx_rates (rate_date, base_currency, quote_currency, rate, source)
    SELECT day::date, 'EUR', q,
           0.5 + (ascii(q) + ascii(substr(q, 2)) + extract(doy FROM day)) % 97 / 50.0, 'ecb'
      FROM generate_series(date '{LAST_DAY}' - 729, date '{LAST_DAY}', interval '1 day')
           AS g(day),
           unnest(ARRAY{_ECB_QUOTES!r}) AS q
     ORDER BY 1, 2, 3
    """,
    # One seller in ten keeps a manual rate for a currency the source lacks.
    f"""
    INSERT INTO seller_fx_rates (seller_id, rate_date, base_currency, quote_currency, rate,
        set_by)
    SELECT md5('s' || n)::uuid, day::date, 'ARS', 'USD', 0.001, 'owner'
      FROM generate_series(1, {SELLERS}, 10) AS n,
           generate_series(date '{LAST_DAY}' - 364, date '{LAST_DAY}', interval '1 day')
           AS g(day)
     ORDER BY 1, 2
    """,
    f"""
    INSERT INTO seller_stats_daily (seller_id, stat_date, reporting_currency, spend_minor,
        unlinked_spend_minor, gross_revenue_minor, refunds_minor, chargebacks_minor,
        net_revenue_minor, orders_count, no_sellpage_net_revenue_minor,
        no_sellpage_orders_count, no_campaign_net_revenue_minor, no_campaign_orders_count)
    SELECT md5('s' || n)::uuid, day::date, 'USD', 100, 10, 200, 0, 0, 200, 2, 0, 0, 0, 0
      FROM generate_series(1, {SELLERS}) AS n,
           generate_series(date '{LAST_DAY}' - 364, date '{LAST_DAY}', interval '1 day')
           AS g(day)
     ORDER BY 1, 2
    """,
    f"""
    INSERT INTO entity_stats_daily (seller_id, entity_type, network, entity_id, stat_date,
        reporting_currency, spend_minor, gross_revenue_minor, refunds_minor,
        chargebacks_minor, net_revenue_minor, orders_count)
    SELECT md5('s' || n)::uuid, 'campaign', 'meta', 'cmp_' || n || '_' || k, day::date,
           'USD', 100, 50, 0, 0, 50, 1
      FROM generate_series(1, {SELLERS}) AS n, generate_series(1, {CAMPAIGNS}) AS k,
           generate_series(date '{LAST_DAY}' - {SPEND_DAYS - 1}, date '{LAST_DAY}',
                           interval '1 day') AS g(day)
     ORDER BY 1, 4, 5
    """,
    f"""
    INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date, reporting_currency,
        spend_minor, gross_revenue_minor, refunds_minor, chargebacks_minor,
        net_revenue_minor, orders_count)
    SELECT md5('s' || n)::uuid, md5('p' || n || '-' || k)::uuid, day::date, 'USD', 100, 50,
           0, 0, 50, 1
      FROM generate_series(1, {SELLERS}) AS n, generate_series(0, 2) AS k,
           generate_series(date '{LAST_DAY}' - {SPEND_DAYS - 1}, date '{LAST_DAY}',
                           interval '1 day') AS g(day)
     ORDER BY 1, 2, 3
    """,
]


def seller_uuid(n: int) -> uuid.UUID:
    """The id the load gave seller ``n``."""
    return uuid.UUID(hashlib.md5(f"s{n}".encode()).hexdigest())


@contextmanager
def unforced(conn: psycopg.Connection[Any], tables: tuple[str, ...]) -> Iterator[None]:
    """Lift FORCE ROW LEVEL SECURITY from ``tables`` for the owner's set-based load (a
    load across sellers cannot run in one seller's scope), and put it back."""
    for table in tables:
        conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    try:
        yield
    finally:
        for table in tables:
            conn.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


@dataclass(frozen=True)
class Loaded:
    database: TestDatabase
    engine: AsyncEngine
    #: Partition (or table) name → the partitioned table it belongs to.
    roots: dict[str, str]


@pytest.fixture(scope="module")
def loaded_database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """A database of this module's own at realistic size, dropped afterwards: the volume
    never slows the tests sharing the session's database."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as database:
        with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
            first_month = date(LAST_DAY.year - 1, LAST_DAY.month, 1)
            for table in _PARTITIONED:
                conn.execute(
                    "SELECT count(*) FROM pixecom_ensure_partitions(%s, %s, %s)",
                    (table, first_month, LAST_DAY + timedelta(days=31)),
                )
            with conn.transaction(), unforced(conn, _LOADED):
                for statement in _LOAD:
                    conn.execute(statement)
            conn.execute("ANALYZE " + ", ".join(("fx_rates", *_LOADED)))
        yield database


@pytest.fixture(scope="module")
async def loaded(loaded_database: TestDatabase) -> AsyncIterator[Loaded]:
    with psycopg.connect(loaded_database.owner_dsn, autocommit=True) as conn:
        roots: dict[str, str] = dict(
            conn.execute(
                "SELECT relname::text, pg_partition_root(oid)::regclass::text FROM pg_class"
                " WHERE relkind IN ('r', 'p', 'i', 'I') AND relnamespace = 'public'::regnamespace"
            ).fetchall()
        )
    engine = create_engine(loaded_database.settings, role="app")
    yield Loaded(
        database=loaded_database,
        engine=engine,
        roots={name: root or name for name, root in roots.items()},
    )
    await engine.dispose()


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine sends meanwhile, with the parameters it binds."""
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", keep)


@dataclass(frozen=True)
class Scan:
    node: str
    relation: str
    table: str
    index: str | None


def scans(plan: dict[str, Any], roots: dict[str, str]) -> list[Scan]:
    """Every node of ``plan`` reading a relation, with the table it (a partition) is of."""
    found = []
    children = plan.get("Plans", [])
    if "Relation Name" in plan and plan["Node Type"] != "ModifyTable":
        relation = plan["Relation Name"]
        # A bitmap heap scan names its index on the Bitmap Index Scan below it.
        index = plan.get("Index Name") or next(
            (c["Index Name"] for c in children if c["Node Type"] == "Bitmap Index Scan"), None
        )
        found.append(
            Scan(
                node=plan["Node Type"],
                relation=relation,
                table=roots[relation],
                index=roots.get(index, index) if index else None,
            )
        )
    for child in children:
        found.extend(scans(child, roots))
    return found


async def explained(
    loaded: Loaded, seller_id: uuid.UUID, statements: list[tuple[str, Any]]
) -> list[tuple[str, list[Scan]]]:
    """The plan of each captured statement that reads a table (scope binding, locks and
    the like left out), as the application role in the seller's scope; rolled back."""
    sessions = create_sessionmaker(loaded.engine)
    plans = []
    async with sessions() as session:
        await session.begin()
        async with bind_seller_scope(session, seller_id, loaded.database.settings):
            connection = await session.connection()
            for statement, parameters in statements:
                if "set_config" in statement or "pg_advisory" in statement:
                    continue
                plan = (
                    await connection.exec_driver_sql(
                        "EXPLAIN (FORMAT JSON) " + statement, parameters
                    )
                ).scalar_one()
                plans.append((statement, scans(plan[0]["Plan"], loaded.roots)))
        await session.rollback()
    return plans


def wrong_reads(plans: list[tuple[str, list[Scan]]]) -> list[tuple[str, Scan]]:
    """Reads that are not what the docstring promises, with their statement's start: a
    Seq Scan on anything but the small lookups, or a big table read through an index
    other than the one meant for it (an index on ``seller_id`` alone would still walk
    every row of the seller)."""
    return [
        (" ".join(statement.split())[:90], scan)
        for statement, found in plans
        for scan in found
        if (scan.node == "Seq Scan" and scan.table not in SMALL_LOOKUPS)
        or (scan.table in SERVING_INDEXES and scan.index not in SERVING_INDEXES[scan.table])
    ]


def tables_read(plans: list[tuple[str, list[Scan]]]) -> set[str]:
    return {scan.table for _, found in plans for scan in found}


@pytest.mark.parametrize(
    "days",
    [
        # The regular sync's window (Settings.sweep_window_days), ending two days before
        # the last loaded day so no month the planner sees nearly empty is touched.
        [LAST_DAY - timedelta(days=2 + back) for back in range(28)],
        # A revenue refresh after one payment, and dirty days scattered over the window.
        [LAST_DAY - timedelta(days=15)],
        [LAST_DAY - timedelta(days=back) for back in (40, 33, 12, 5)],
    ],
    ids=["sync-window", "one-day", "scattered-days"],
)
async def test_recomputing_days_reads_every_big_table_through_its_index(
    loaded: Loaded, days: list[date]
) -> None:
    seller_id = seller_uuid(SELLER)
    sessions = create_sessionmaker(loaded.engine)
    with captured(loaded.engine) as statements:
        async with open_seller_scope(sessions, seller_id, loaded.database.settings) as scope:
            await lock_sellpage_aggregation(scope)
            written = await aggregate_sellpages(scope, days)
    assert written.rows_written > 0 and written.entity_rows > 0  # the data is the seller's

    plans = await explained(loaded, seller_id, statements)

    assert wrong_reads(plans) == []
    assert {
        "orders",
        "payment_events",
        "ad_stats_daily",
        "fx_rates",
        "seller_fx_rates",
        "entity_stats_daily",
        "sellpage_stats_daily",
    } <= tables_read(plans)
    # The created_at bounds prune the orders to the window's months (one or two of 13).
    order_partitions = {s.relation for _, found in plans for s in found if s.table == "orders"}
    months = {(day.year, day.month) for day in days}
    assert 1 <= len(order_partitions) <= len(months) + 1, order_partitions


async def test_reports_read_the_rollups_through_their_keys(loaded: Loaded) -> None:
    seller_id = seller_uuid(SELLER)
    context = SellerContext(
        seller_id=seller_id,
        sessions=create_sessionmaker(loaded.engine),
        settings=loaded.database.settings,
    )
    reports = StatsReports(context)
    since, until = LAST_DAY - timedelta(days=29), LAST_DAY
    with captured(loaded.engine) as statements:
        overview = await reports.overview(since, until)
        await reports.unattributed(since, until)
        sellpages = await reports.sellpages(since, until, PageRequest(limit=50))
        for level in EntityLevel:
            await reports.entities(level, since, until, PageRequest(limit=50))
        # A year: the longest range a report covers.
        await reports.overview(LAST_DAY - timedelta(days=365), LAST_DAY)
    assert len(overview.days) == 30 and len(sellpages.items) == 3

    plans = await explained(loaded, seller_id, statements)

    assert wrong_reads(plans) == []
    assert {
        "seller_stats_daily",
        "sellpage_stats_daily",
        "entity_stats_daily",
        "ad_stats_daily",
    } <= tables_read(plans)
