"""Shared arrangement for database tests: one row (or more) in every table with a seller.

Rows are written as the schema owner, inside the seller's scope, so the helpers work for
an owner subject to FORCE ROW LEVEL SECURITY as well as for a superuser.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

Connection = psycopg.Connection[tuple[Any, ...]]

#: A day no migration-time partition covers: rows for it land in the default partition.
FAR_FUTURE = datetime(2099, 1, 15, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class TwoSellers:
    """Two sellers with rows in every seller-owned table, and how many rows each has."""

    a: uuid.UUID
    b: uuid.UUID
    rows_a: dict[str, int]
    rows_b: dict[str, int]


@contextmanager
def seller_scope(conn: Connection, seller_id: uuid.UUID | str | None) -> Iterator[Connection]:
    """A transaction on ``conn`` with ``app.current_seller_id`` set (``SET LOCAL`` style).

    ``None`` opens a transaction with no scope at all.
    """
    with conn.transaction():
        if seller_id is not None:
            conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        yield conn


#: What identifies a row of a table without an ``id`` column (revision 0020).
_ROW_KEYS = {"ad_stats_raw": "(network, entity_type, entity_id, date_start, fetched_at)"}


def _insert(conn: Connection, table: str, values: dict[str, Any]) -> Any:
    """Insert one row; answer its ``id`` (or, for a table without one, its key as a tuple)."""
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    returning = _ROW_KEYS.get(table, "id")
    row = conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {returning}",
        list(values.values()),
    ).fetchone()
    assert row is not None
    return row[0]


#: A seller's day (``seller_stats_daily``) with nothing on it; tests name what they need.
EMPTY_SELLER_DAY: dict[str, Any] = {
    "reporting_currency": "USD",
    **dict.fromkeys(
        (
            "spend_minor",
            "unlinked_spend_minor",
            "gross_revenue_minor",
            "refunds_minor",
            "chargebacks_minor",
            "net_revenue_minor",
            "orders_count",
            "no_sellpage_net_revenue_minor",
            "no_sellpage_orders_count",
            "no_campaign_net_revenue_minor",
            "no_campaign_orders_count",
        ),
        0,
    ),
}


def insert_seller_day(conn: Connection, seller_id: uuid.UUID, day: date, **values: Any) -> None:
    """A ``seller_stats_daily`` row of ``seller_id`` for ``day`` (zeros but ``values``), as
    the roll-up writes it; call it inside the seller's scope."""
    _insert(
        conn,
        "seller_stats_daily",
        {"seller_id": seller_id, "stat_date": day, **EMPTY_SELLER_DAY, **values},
    )


def insert_seller(conn: Connection, seller_id: uuid.UUID, *, name: str = "seller") -> None:
    """The tenant row itself."""
    with seller_scope(conn, seller_id):
        conn.execute(
            "INSERT INTO sellers (id, name, reporting_currency) VALUES (%s, %s, 'USD')",
            (seller_id, name),
        )


def insert_seller_rows(conn: Connection, seller_id: uuid.UUID) -> dict[str, int]:
    """Create ``seller_id`` and rows in every seller-owned table; return rows per table.

    Partitioned tables get one row in a current monthly partition and one in the default
    partition (a far-future month), so tests can look at both kinds of partition.
    """
    insert_seller(conn, seller_id)
    ids = insert_rows_for(conn, seller_id)
    return {table: len(table_ids) for table, table_ids in ids.items()}


def insert_rows_for(conn: Connection, seller_id: uuid.UUID) -> dict[str, list[Any]]:
    """Rows in every seller-owned table for an existing seller; their ids per table."""
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    today = now.date()
    ids: dict[str, list[Any]] = {}

    def add(table: str, values: dict[str, Any]) -> Any:
        row_id = _insert(conn, table, {"seller_id": seller_id, **values})
        ids.setdefault(table, []).append(row_id)
        return row_id

    with seller_scope(conn, seller_id):
        user = add("users", {"email": f"user-{tag}@example.com", "password_hash": "argon2-hash"})
        add(
            "refresh_tokens",
            {
                "user_id": user,
                "family_id": uuid.uuid4(),
                "token_hash": f"hash-{tag}",
                "expires_at": now + timedelta(days=30),
            },
        )
        product = add("products", {"sku": f"SKU-{tag}", "name": "Widget"})
        sellpage = add(
            "sellpages", {"slug": f"page-{tag}", "title": "Widget page", "product_id": product}
        )
        add(
            "pricing_rules",
            {
                "product_id": product,
                "price_minor": 1999,
                "currency": "USD",
                "effective_from": now,
            },
        )
        orders = [
            add(
                "orders",
                {
                    "created_at": created_at,
                    "sellpage_id": sellpage,
                    "status": "PAID",
                    "currency": "USD",
                    "subtotal_minor": 1999,
                    "total_minor": 1999,
                    "customer_email": "shopper@example.com",
                },
            )
            for created_at in (now, FAR_FUTURE)
        ]
        add(
            "order_payments",
            {
                "gateway": "stripe",
                "payment_id": f"pi_{tag}",
                "order_id": orders[0],
                "order_created_at": now,
            },
        )
        for created_at in (now, FAR_FUTURE):
            add(
                "order_events",
                {"created_at": created_at, "order_id": orders[0], "event_type": "CREATED"},
            )
        add(
            "payment_events",
            {
                "order_id": orders[0],
                "gateway": "stripe",
                "gateway_reference": f"pi_{tag}",
                "event_type": "CAPTURED",
                "amount_minor": 1999,
                "currency": "USD",
                "occurred_at": now,
            },
        )
        add(
            "refunds",
            {
                "order_id": orders[0],
                "order_created_at": now,
                "gateway": "stripe",
                "idempotency_key": f"refund_{tag}",
                "amount_minor": 500,
                "currency": "USD",
            },
        )
        add(
            "payment_connections",
            {
                "gateway": "stripe",
                "status": "ACTIVE",
                "state_nonce": f"pay_nonce_{tag}",
                "state_expires_at": now,
                "account_id": f"acct_{tag}",
            },
        )
        connection = add(
            "ad_connections",
            {
                "network": "meta",
                "state_nonce": f"nonce_{tag}",
                "state_expires_at": now + timedelta(minutes=10),
            },
        )
        account = add(
            "ad_accounts",
            {
                "network": "meta",
                "external_id": f"act_{tag}",
                "name": "Main account",
                "timezone": "UTC",
                "currency": "USD",
                "connection_id": connection,
            },
        )
        page = add("pages", {"network": "meta", "external_id": f"page_{tag}", "name": "Page"})
        post = add("ad_posts", {"page_id": page, "external_id": f"post_{tag}"})
        campaign = add(
            "campaigns",
            {
                "ad_account_id": account,
                "external_id": f"cmp_{tag}",
                "name": "Campaign",
                "sellpage_id": sellpage,
            },
        )
        adset = add("adsets", {"campaign_id": campaign, "external_id": f"as_{tag}", "name": "Set"})
        creative = add("creatives", {"name": "Creative"})
        add(
            "ads",
            {
                "adset_id": adset,
                "creative_id": creative,
                "ad_post_id": post,
                "external_id": f"ad_{tag}",
                "name": "Ad",
            },
        )
        asset = add(
            "assets",
            {
                "sha256": uuid.uuid4().hex + uuid.uuid4().hex,
                "storage_key": f"assets/{tag}.png",
                "content_type": "image/png",
                "size_bytes": 1024,
            },
        )
        add("creative_assets", {"creative_id": creative, "asset_id": asset})
        for day in (today, FAR_FUTURE.date()):
            add("ad_stats_raw", raw_stats_values(day, entity_id=f"ad_{tag}"))
            add(
                "ad_stats_daily",
                {
                    "network": "meta",
                    "entity_type": "ad",
                    "entity_id": f"ad_{tag}",
                    "stat_date": day,
                    "snapshot_fetched_at": now,
                    "spend_micros": 5_000_000,
                    "impressions": 1000,
                    "clicks": 10,
                    "purchases": 1,
                    "purchase_value_micros": 19_990_000,
                    "currency": "USD",
                },
            )
            add(
                "sellpage_stats_daily",
                {
                    "sellpage_id": sellpage,
                    "stat_date": day,
                    "reporting_currency": "USD",
                    "spend_minor": 500,
                    "gross_revenue_minor": 1999,
                    "refunds_minor": 0,
                    "chargebacks_minor": 0,
                    "net_revenue_minor": 1999,
                    "orders_count": 1,
                    "roas": "3.998",
                },
            )
            add(
                "seller_stats_daily",
                {
                    "stat_date": day,
                    "reporting_currency": "USD",
                    "spend_minor": 500,
                    "unlinked_spend_minor": 0,
                    "gross_revenue_minor": 1999,
                    "refunds_minor": 0,
                    "chargebacks_minor": 0,
                    "net_revenue_minor": 1999,
                    "orders_count": 1,
                    "no_sellpage_net_revenue_minor": 0,
                    "no_sellpage_orders_count": 0,
                    "no_campaign_net_revenue_minor": 0,
                    "no_campaign_orders_count": 0,
                },
            )
            add(
                "entity_stats_daily",
                {
                    "entity_type": "campaign",
                    "network": "meta",
                    "entity_id": f"cmp_{tag}",
                    "stat_date": day,
                    "reporting_currency": "USD",
                    "spend_minor": 500,
                    "gross_revenue_minor": 1999,
                    "refunds_minor": 0,
                    "chargebacks_minor": 0,
                    "net_revenue_minor": 1999,
                    "orders_count": 1,
                },
            )
        add(
            "seller_fx_rates",
            {
                "rate_date": today,
                "base_currency": "EUR",
                "quote_currency": "VND",
                "rate": "27000.5",
                "set_by": "test",
            },
        )
        add(
            "seller_fx_rate_changes",
            {
                "rate_date": today,
                "base_currency": "EUR",
                "quote_currency": "VND",
                "new_rate": "27000.5",
                "changed_by": "test",
            },
        )
        add(
            "tracking_records",
            {"order_id": orders[0], "carrier": "usps", "tracking_number": f"TRK{tag}"},
        )
        add(
            "conversion_destinations",
            {
                "network": "meta",
                "destination_id": f"px_{tag}",
                "token_ciphertext": b"sealed",
                "token_key_version": 1,
            },
        )
        add(
            "conversion_deliveries",
            {
                "order_id": orders[0],
                "order_created_at": now,
                "network": "meta",
                "event_name": "Purchase",
                "attempts": 0,
            },
        )
        # The system tables whose rows name their seller once known (migration 0010).
        add(
            "webhook_inbox",
            {
                "gateway": "fakepay",
                "event_id": f"evt_{tag}",
                "event_type": "charge.refunded",
                "body": b'{"email": "shopper@example.com"}',
                "status": "FAILED",
                "attempts": 3,
                "last_error": "UnknownPaymentError",
            },
        )
        add(
            "dead_letters",
            {
                "task_name": "pixecom.sync_seller",
                "task_id": f"task-{tag}",
                "error": "boom",
                "attempts": 3,
            },
        )
        add("sync_runs", {"task_id": f"task-{tag}", "days_back": 3, "worker": "host:1"})
    return ids


def insert_unattributed_rows(conn: Connection) -> dict[str, Any]:
    """A webhook delivery and a dead letter of no seller (``seller_id`` NULL); their ids.

    Written as the owner with ``pixecom.unscoped_rows`` on, the switch the owner
    functions use, so this works for an owner under FORCE ROW LEVEL SECURITY too.
    """
    tag = uuid.uuid4().hex[:12]
    with conn.transaction():
        conn.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
        inbox = conn.execute(
            "INSERT INTO webhook_inbox (gateway, event_id, body, status, attempts)"
            " VALUES ('fakepay', %s, 'unparseable', 'FAILED', 5) RETURNING id",
            (f"evt_nobody_{tag}",),
        ).fetchone()
        letter = conn.execute(
            "INSERT INTO dead_letters (task_name, task_id, error, attempts)"
            " VALUES ('pixecom.unknown', %s, 'boom', 1) RETURNING id",
            (f"task-nobody-{tag}",),
        ).fetchone()
    assert inbox is not None and letter is not None
    return {"webhook_inbox": inbox[0], "dead_letters": letter[0]}


def raw_stats_values(
    day: date, *, entity_id: str, fetched_at: datetime | None = None
) -> dict[str, Any]:
    """Column values of one ``ad_stats_raw`` row (one entity, one day, one fetch)."""
    return {
        "network": "meta",
        "entity_type": "ad",
        "entity_id": entity_id,
        "date_start": day,
        "date_stop": day,
        "fetched_at": fetched_at or datetime(2026, 1, 1, tzinfo=UTC),
        "spend_micros": 5_000_000,
        "impressions": 1000,
        "clicks": 10,
        "purchases": 1,
        "purchase_value_micros": 19_990_000,
        "currency": "USD",
    }
