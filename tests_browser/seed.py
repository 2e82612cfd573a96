"""Real numbers for the dashboard tests, made by core's own pipeline.

A seller signs up through the live API; its ad-side numbers go through the stats
pipeline (``ingest_raw`` COPY → ``aggregate_daily`` latest snapshots), its revenue through
the payment ledger (``Ledger.record``: captures and a refund, as webhook processing records
them) and ``aggregate_sellpages`` joins both per sellpage and day. Only what has no write
path in core — catalog rows, ad accounts and campaigns as a sync would have created them,
orders as checkout would have, tracking records, a dead letter — is inserted as the schema
owner inside the seller's scope (so row-level security still vets each row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.ledger import Ledger
from pixecom_core.providers import EntityLevel, GatewayPaymentEvent, InsightRow, PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.stats import aggregate_daily, aggregate_sellpages, ingest_raw
from pixecom_core.tenancy import open_seller_scope
from tests.db.tenant_rows import seller_scope
from tests.ledger.conftest import insert_order

PASSWORD = "correct horse battery staple"


@dataclass
class SeededSeller:
    """A seller with real numbers, and the names a leak would show."""

    seller_id: uuid.UUID
    email: str
    name: str
    campaigns: dict[str, uuid.UUID] = field(default_factory=dict)  # name -> id
    sellpages: dict[str, uuid.UUID] = field(default_factory=dict)  # title -> id
    account_names: list[str] = field(default_factory=list)
    tracking_numbers: list[str] = field(default_factory=list)
    order_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def private_strings(self) -> list[str]:
        """Strings only this seller's pages may contain."""
        return [
            self.name,
            self.email,
            *self.campaigns,
            *self.sellpages,
            *self.account_names,
            *self.tracking_numbers,
            *(str(i) for i in self.campaigns.values()),
            *(str(i)[:8] for i in self.order_ids),
        ]


async def sign_up(base_url: str, admin_key: str, name: str, currency: str) -> SeededSeller:
    """Create the seller and its owner through the live API."""
    email = f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=base_url) as client:
        created = await client.post(
            "/auth/signup",
            json={
                "seller_name": name,
                "reporting_currency": currency,
                "email": email,
                "password": PASSWORD,
            },
            headers={"X-Admin-Key": admin_key},
        )
    assert created.status_code == 201, created.text
    return SeededSeller(seller_id=uuid.UUID(created.json()["seller"]["id"]), email=email, name=name)


def insight(campaign: str, day: date, spend_micros: int, currency: str) -> InsightRow:
    return InsightRow(
        network="meta",
        entity_type=EntityLevel.CAMPAIGN,
        entity_id=campaign,
        date_start=day,
        date_stop=day,
        spend_micros=spend_micros,
        impressions=1_000 + spend_micros // 10_000,
        clicks=10 + spend_micros // 1_000_000,
        purchases=1,
        purchase_value_micros=spend_micros * 2,
        currency=currency,
        fetched_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class Plan:
    """What to create for one seller (``days`` are offsets back from today)."""

    prefix: str
    currency: str
    sellpage_count: int
    campaigns: tuple[str, ...]
    #: (days back, campaign index, spend in major units)
    spend: tuple[tuple[int, int, int], ...]
    #: (days back, sellpage index, captured minor units, refunded minor units)
    orders: tuple[tuple[int, int, int, int], ...]


async def seed(
    seller: SeededSeller,
    plan: Plan,
    *,
    owner_dsn: str,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ledger: Ledger,
    today: date,
) -> None:
    """Create ``plan``'s rows and numbers for ``seller``."""
    sid = seller.seller_id
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        with seller_scope(conn, sid):
            for index in range(plan.sellpage_count):
                title = f"{plan.prefix} Page {index + 1:02d}"
                tag = uuid.uuid4().hex[:8]
                product = conn.execute(
                    "INSERT INTO products (seller_id, sku, name) VALUES (%s, %s, %s) RETURNING id",
                    (sid, f"SKU-{tag}", title),
                ).fetchone()
                assert product is not None
                page = conn.execute(
                    "INSERT INTO sellpages (seller_id, slug, title, product_id)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
                    (sid, f"{plan.prefix.lower()}-page-{tag}", title, product[0]),
                ).fetchone()
                assert page is not None
                seller.sellpages[title] = page[0]
            account_name = f"{plan.prefix} Main account"
            account = conn.execute(
                "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                " currency, last_synced_at) VALUES (%s, 'meta', %s, %s, 'UTC', %s,"
                " now() - interval '7 minutes') RETURNING id",
                (sid, f"act_{uuid.uuid4().hex[:10]}", account_name, plan.currency),
            ).fetchone()
            assert account is not None
            seller.account_names.append(account_name)
            # A second account the network throttles, whose last sync failed.
            throttled_name = f"{plan.prefix} Throttled account"
            conn.execute(
                "INSERT INTO ad_accounts (seller_id, network, external_id, name, timezone,"
                " currency, last_synced_at, last_sync_attempt_at, last_sync_error,"
                " sync_failures, throttled_until) VALUES (%s, 'meta', %s, %s, 'UTC', %s,"
                " now() - interval '3 hours', now() - interval '2 minutes',"
                " %s, 2, now() + interval '1 hour')",
                (
                    sid,
                    f"act_{uuid.uuid4().hex[:10]}",
                    throttled_name,
                    plan.currency,
                    f"{plan.prefix} rate limited (code 17)",
                ),
            )
            seller.account_names.append(throttled_name)
            externals = []
            titles = list(seller.sellpages)
            for index, name in enumerate(plan.campaigns):
                external = f"cmp_{uuid.uuid4().hex[:10]}"
                row = conn.execute(
                    "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name,"
                    " sellpage_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (sid, account[0], external, name, seller.sellpages[titles[index]]),
                ).fetchone()
                assert row is not None
                seller.campaigns[name] = row[0]
                externals.append(external)
        # A job of this seller that failed for good.
        conn.execute(
            "INSERT INTO dead_letters (task_name, task_id, seller_id, error, attempts)"
            " VALUES ('stats.sync_seller', %s, %s, %s, 3)",
            (uuid.uuid4().hex, sid, f"{plan.prefix} sync crashed: ProviderError"),
        )
        payments: list[tuple[str, int, int, date]] = []
        for back, page_index, captured, refunded in plan.orders:
            day = today - timedelta(days=back)
            order = insert_order(
                conn,
                sid,
                total_minor=captured,
                currency=plan.currency,
                created_at=datetime.combine(day, time(12), UTC),
                sellpage_id=seller.sellpages[titles[page_index]],
            )
            seller.order_ids.append(order.order_id)
            payments.append((order.payment, captured, refunded, day))
        # Two parcels: one on its way, one delivered.
        with seller_scope(conn, sid):
            for order_id, status in zip(
                seller.order_ids[:2], ("in_transit", "delivered"), strict=False
            ):
                number = f"{plan.prefix.upper()}{uuid.uuid4().hex[:10].upper()}"
                conn.execute(
                    "INSERT INTO tracking_records (seller_id, order_id, carrier, tracking_number,"
                    " status) VALUES (%s, %s, 'usps', %s, %s)",
                    (sid, order_id, number, status),
                )
                seller.tracking_numbers.append(number)

    for payment, captured, refunded, day in payments:
        moment = datetime.combine(day, time(13), UTC)
        events = [
            GatewayPaymentEvent(
                gateway="fakepay",
                event_id=f"evt_{uuid.uuid4().hex}",
                gateway_reference=payment,
                fact_reference=f"ch_{uuid.uuid4().hex}",
                kind=PaymentEventKind.CAPTURED,
                amount_minor=captured,
                currency=plan.currency,
                occurred_at=moment,
            )
        ]
        if refunded:
            events.append(
                GatewayPaymentEvent(
                    gateway="fakepay",
                    event_id=f"evt_{uuid.uuid4().hex}",
                    gateway_reference=payment,
                    fact_reference=f"re_{uuid.uuid4().hex}",
                    kind=PaymentEventKind.REFUNDED,
                    amount_minor=refunded,
                    currency=plan.currency,
                    occurred_at=moment + timedelta(hours=1),
                )
            )
        await ledger.record(events)

    rows = [
        insight(externals[campaign], today - timedelta(days=back), major * 1_000_000, plan.currency)
        for back, campaign, major in plan.spend
    ]
    days = sorted({today - timedelta(days=back) for back, *_ in (*plan.spend, *plan.orders)})
    async with open_seller_scope(sessions, sid, settings) as scope:
        await ingest_raw(scope, rows)
        await aggregate_daily(scope, network="meta", since=days[0], until=days[-1])
        await aggregate_sellpages(scope, days)


#: Seller A: three campaigns, twelve sellpages (two table pages), nine days of numbers,
#: one day with revenue but no spend (ROAS "—"), one refund.
PLAN_A = Plan(
    prefix="Acme",
    currency="USD",
    sellpage_count=12,
    campaigns=("Acme Alpha Boots", "Acme Beta Hats", "Acme Gamma Scarves"),
    spend=(
        (9, 0, 40),
        (8, 0, 35),
        (7, 1, 20),
        (6, 0, 50),
        (5, 2, 12),
        (4, 1, 33),
        (3, 0, 27),
        (2, 2, 18),
        (2, 1, 5),
    ),
    orders=(
        (9, 0, 12_999, 0),
        (8, 0, 8_450, 0),
        (7, 1, 5_000, 1_500),
        (6, 0, 19_900, 0),
        (4, 1, 7_700, 0),
        (3, 0, 6_100, 0),
        (2, 2, 4_250, 0),
        (1, 3, 9_900, 0),  # a day with revenue and no spend: ROAS "—"
    ),
)

#: Seller B: different names and numbers, so any leak of A's would be visible.
PLAN_B = Plan(
    prefix="Bravo",
    currency="EUR",
    sellpage_count=2,
    campaigns=("Bravo Only Campaign",),
    spend=((5, 0, 9), (3, 0, 11)),
    orders=((5, 0, 3_300, 0), (3, 1, 2_200, 0)),
)


#: Issue 16's numbers on fixed days (never today's), so pages are read with a fixed range.
ATTRIBUTION_DAYS = (date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4))


@dataclass
class AttributedNumbers:
    """What :func:`seed_attributed_numbers` created: campaign external ids by name, the
    days it seeded, and the currency whose rate is not published (the pending day's)."""

    campaigns: dict[str, str] = field(default_factory=dict)  # name -> network id
    days: tuple[date, ...] = ATTRIBUTION_DAYS
    unpublished_currency: str = "UAH"


async def seed_attributed_numbers(
    seller: SeededSeller,
    *,
    owner_dsn: str,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ledger: Ledger,
) -> AttributedNumbers:
    """Spend and revenue that a sellpage or a campaign cannot all claim (issue 16), for a
    USD seller, through the same pipeline as :func:`seed` (``aggregate_sellpages``
    recomputes the three roll-ups from ``ad_stats_daily``, orders and the ledger).

    Two sellpages (Lamp, Rug); a USD account with a campaign linked to Lamp and one linked
    to no sellpage; a UAH account (a currency no reference source publishes, and no rate
    in the database) whose campaign spends on the third day, which stays pending. In USD:

    ====== ================== ==================== ===========================================
    day    linked spend       unlinked spend       orders (net)
    ====== ================== ==================== ===========================================
    Mar 2  40                 25                   Lamp 120 − 20 refund, campaign Linked;
                                                   Rug 50, campaign Unlinked
    Mar 3  10                 5                    Lamp 30, no campaign; no sellpage 15
    Mar 4  (UAH 1,000, no rate: left out, pending)
    ====== ================== ==================== ===========================================

    Totals: spend 80.00 (unattributed 30.00), net revenue 195.00 in 4 orders; without a
    campaign 2 orders, 45.00; without a sellpage 1 order, 15.00.
    """
    sid = seller.seller_id
    prefix = seller.name.split()[0]
    first, second, third = ATTRIBUTION_DAYS
    numbers = AttributedNumbers()
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        with seller_scope(conn, sid):
            for title in (f"{prefix} Lamp", f"{prefix} Rug"):
                tag = uuid.uuid4().hex[:8]
                product = conn.execute(
                    "INSERT INTO products (seller_id, sku, name) VALUES (%s, %s, %s) RETURNING id",
                    (sid, f"SKU-{tag}", title),
                ).fetchone()
                assert product is not None
                page = conn.execute(
                    "INSERT INTO sellpages (seller_id, slug, title, product_id)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
                    (sid, f"{prefix.lower()}-{tag}", title, product[0]),
                ).fetchone()
                assert page is not None
                seller.sellpages[title] = page[0]
            lamp, rug = seller.sellpages[f"{prefix} Lamp"], seller.sellpages[f"{prefix} Rug"]
            campaigns = (
                (f"{prefix} Main account", "USD", f"{prefix} Linked", lamp),
                (f"{prefix} Main account", "USD", f"{prefix} Unlinked", None),
                (f"{prefix} Kyiv account", "UAH", f"{prefix} Kyiv", rug),
            )
            accounts: dict[str, uuid.UUID] = {}
            for account_name, currency, name, sellpage in campaigns:
                if account_name not in accounts:
                    account = conn.execute(
                        "INSERT INTO ad_accounts (seller_id, network, external_id, name,"
                        " timezone, currency, last_synced_at) VALUES (%s, 'meta', %s, %s,"
                        " 'UTC', %s, now()) RETURNING id",
                        (sid, f"act_{uuid.uuid4().hex[:10]}", account_name, currency),
                    ).fetchone()
                    assert account is not None
                    accounts[account_name] = account[0]
                    seller.account_names.append(account_name)
                external = f"cmp_{uuid.uuid4().hex[:10]}"
                row = conn.execute(
                    "INSERT INTO campaigns (seller_id, ad_account_id, external_id, name,"
                    " sellpage_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (sid, accounts[account_name], external, name, sellpage),
                ).fetchone()
                assert row is not None
                seller.campaigns[name] = row[0]
                numbers.campaigns[name] = external
        linked = numbers.campaigns[f"{prefix} Linked"]
        unlinked = numbers.campaigns[f"{prefix} Unlinked"]
        # (day, sellpage, campaign the landing URL named, captured, refunded), in cents.
        orders = (
            (first, lamp, linked, 12_000, 2_000),
            (first, rug, unlinked, 5_000, 0),
            (second, lamp, None, 3_000, 0),
            (second, None, None, 1_500, 0),
        )
        payments: list[tuple[str, int, int, date]] = []
        for day, sellpage, campaign_ref, captured, refunded in orders:
            order = insert_order(
                conn,
                sid,
                total_minor=captured,
                currency="USD",
                created_at=datetime.combine(day, time(12), UTC),
                sellpage_id=sellpage,
            )
            if campaign_ref:
                with seller_scope(conn, sid):
                    conn.execute(
                        "UPDATE orders SET utm_source = 'facebook', campaign_ref = %s"
                        " WHERE seller_id = %s AND id = %s",
                        (campaign_ref, sid, order.order_id),
                    )
            seller.order_ids.append(order.order_id)
            payments.append((order.payment, captured, refunded, day))

    for payment, captured, refunded, day in payments:
        moment = datetime.combine(day, time(13), UTC)
        facts = [(PaymentEventKind.CAPTURED, captured, "ch")]
        if refunded:
            facts.append((PaymentEventKind.REFUNDED, refunded, "re"))
        await ledger.record(
            [
                GatewayPaymentEvent(
                    gateway="fakepay",
                    event_id=f"evt_{uuid.uuid4().hex}",
                    gateway_reference=payment,
                    fact_reference=f"{kind_prefix}_{uuid.uuid4().hex}",
                    kind=kind,
                    amount_minor=amount,
                    currency="USD",
                    occurred_at=moment + timedelta(hours=index),
                )
                for index, (kind, amount, kind_prefix) in enumerate(facts)
            ]
        )

    rows = [
        insight(linked, first, 40_000_000, "USD"),
        insight(unlinked, first, 25_000_000, "USD"),
        insight(linked, second, 10_000_000, "USD"),
        insight(unlinked, second, 5_000_000, "USD"),
        insight(numbers.campaigns[f"{prefix} Kyiv"], third, 1_000_000_000, "UAH"),
    ]
    async with open_seller_scope(sessions, sid, settings) as scope:
        await ingest_raw(scope, rows)
        await aggregate_daily(scope, network="meta", since=first, until=third)
        await aggregate_sellpages(scope, list(ATTRIBUTION_DAYS))
    return numbers
