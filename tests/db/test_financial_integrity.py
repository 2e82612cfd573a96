"""Financial tables hold in the database itself (MONEY-1, MONEY-2).

Append-only ledgers refuse changes from the app role (privileges) and from the owner
(triggers); pricing rules only ever close; a payment is recorded once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import errors, sql

from tests.db.tenant_rows import Connection, TwoSellers, insert_seller, seller_scope

APPEND_ONLY = ("payment_events", "order_events")


def _count(conn: Connection, table: str, seller: uuid.UUID) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE seller_id = %s").format(sql.Identifier(table)),
        (seller,),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {} SET created_at = created_at",
        "DELETE FROM {}",
        "TRUNCATE {}",
    ],
)
def test_app_role_cannot_change_the_ledger(
    app_conn: Connection,
    owner_conn: Connection,
    two_sellers: TwoSellers,
    table: str,
    statement: str,
) -> None:
    before = _count(owner_conn, table, two_sellers.a)
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        with seller_scope(app_conn, two_sellers.a):
            app_conn.execute(sql.SQL(statement).format(sql.Identifier(table)))
    assert _count(owner_conn, table, two_sellers.a) == before


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {} SET created_at = created_at WHERE seller_id = %s",
        "DELETE FROM {} WHERE seller_id = %s",
        "TRUNCATE {}",
    ],
)
def test_owner_cannot_change_the_ledger_either(
    owner_conn: Connection, two_sellers: TwoSellers, table: str, statement: str
) -> None:
    before = _count(owner_conn, table, two_sellers.a)
    params = (two_sellers.a,) if "%s" in statement else ()
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        owner_conn.execute(sql.SQL(statement).format(sql.Identifier(table)), params)
    assert _count(owner_conn, table, two_sellers.a) == before


@pytest.mark.parametrize("partition", ["order_events_default", "order_events_p{month}"])
@pytest.mark.parametrize(
    "statement", ["DELETE FROM {}", "TRUNCATE {}", "UPDATE {} SET payload = '{{}}'"]
)
def test_ledger_partitions_refuse_changes_too(
    owner_conn: Connection, two_sellers: TwoSellers, partition: str, statement: str
) -> None:
    name = partition.format(month=datetime.now(UTC).strftime("%Y%m"))
    with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
        owner_conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
    assert _count(owner_conn, "order_events", two_sellers.a) == two_sellers.rows_a["order_events"]


def test_app_role_can_append_to_the_ledger(app_conn: Connection, two_sellers: TwoSellers) -> None:
    order_id = uuid.uuid4()
    with seller_scope(app_conn, two_sellers.a):
        app_conn.execute(
            "INSERT INTO order_events (seller_id, order_id, event_type, from_status, to_status)"
            " VALUES (%s, %s, 'STATUS_CHANGED', 'PAID', 'SHIPPED')",
            (two_sellers.a, order_id),
        )
        row = app_conn.execute(
            "SELECT to_status FROM order_events WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert row == ("SHIPPED",)


def _payment_event(
    conn: Connection, seller: uuid.UUID, reference: str, event_type: str, *, plain: bool = False
) -> int:
    conflict = (
        ""
        if plain
        else " ON CONFLICT (seller_id, gateway, gateway_reference, event_type) DO NOTHING"
    )
    cursor = conn.execute(
        "INSERT INTO payment_events (seller_id, order_id, gateway, gateway_reference,"
        " event_type, amount_minor, currency, occurred_at)"
        " VALUES (%s, %s, 'stripe', %s, %s, 500, 'USD', now())" + conflict,
        (seller, uuid.uuid4(), reference, event_type),
    )
    return cursor.rowcount


def test_a_payment_fact_is_recorded_once(app_conn: Connection, two_sellers: TwoSellers) -> None:
    reference = f"re_{uuid.uuid4().hex}"
    with seller_scope(app_conn, two_sellers.a):
        assert _payment_event(app_conn, two_sellers.a, reference, "REFUNDED") == 1
        # The same refund announced again (a retried or second webhook type): no-op.
        assert _payment_event(app_conn, two_sellers.a, reference, "REFUNDED") == 0
        # A different fact about the same object is a different row.
        assert _payment_event(app_conn, two_sellers.a, reference, "FAILED") == 1
    with pytest.raises(errors.UniqueViolation, match="uq_payment_events_fact"):
        with seller_scope(app_conn, two_sellers.a):
            _payment_event(app_conn, two_sellers.a, reference, "REFUNDED", plain=True)
    # The key is per seller: another seller's identical reference is its own fact.
    with seller_scope(app_conn, two_sellers.b):
        assert _payment_event(app_conn, two_sellers.b, reference, "REFUNDED") == 1


@pytest.mark.parametrize(
    "bad", [{"amount_minor": -1}, {"currency": "usd"}, {"event_type": "VOIDED"}]
)
def test_payment_event_values_are_checked(
    owner_conn: Connection, two_sellers: TwoSellers, bad: dict[str, object]
) -> None:
    values: dict[str, object] = {
        "seller_id": two_sellers.a,
        "order_id": uuid.uuid4(),
        "gateway": "stripe",
        "gateway_reference": f"pi_{uuid.uuid4().hex}",
        "event_type": "CAPTURED",
        "amount_minor": 1,
        "currency": "USD",
        "occurred_at": datetime.now(UTC),
        **bad,
    }
    with pytest.raises(errors.CheckViolation):
        owner_conn.execute(
            sql.SQL("INSERT INTO payment_events ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder() * len(values)),
            ),
            list(values.values()),
        )


def test_a_gateway_payment_belongs_to_one_order(
    app_conn: Connection, two_sellers: TwoSellers
) -> None:
    # MONEY-2: payment_id is unique (per seller and gateway) in order_payments,
    # because orders is partitioned and cannot carry that unique key.
    payment = f"pi_{uuid.uuid4().hex}"
    first_order, second_order = uuid.uuid4(), uuid.uuid4()
    insert = (
        "INSERT INTO order_payments (seller_id, gateway, payment_id, order_id, order_created_at)"
        " VALUES (%s, %s, %s, %s, now())"
    )
    with seller_scope(app_conn, two_sellers.a):
        app_conn.execute(insert, (two_sellers.a, "stripe", payment, first_order))
        # The same payment id on another gateway is another payment.
        app_conn.execute(insert, (two_sellers.a, "paypal", payment, second_order))
    with pytest.raises(errors.UniqueViolation, match="gateway_payment_id"):
        with seller_scope(app_conn, two_sellers.a):
            app_conn.execute(insert, (two_sellers.a, "stripe", payment, second_order))
    with pytest.raises(errors.UniqueViolation, match="order_id_gateway"):
        with seller_scope(app_conn, two_sellers.a):
            app_conn.execute(
                insert, (two_sellers.a, "stripe", f"pi_{uuid.uuid4().hex}", first_order)
            )


class TestPricingRules:
    """MONEY-1: pricing rules are append-only; the only update closes an open rule."""

    @pytest.fixture
    def product(self, owner_conn: Connection) -> tuple[uuid.UUID, uuid.UUID]:
        seller = uuid.uuid4()
        insert_seller(owner_conn, seller)
        with seller_scope(owner_conn, seller):
            row = owner_conn.execute(
                "INSERT INTO products (seller_id, sku, name) VALUES (%s, 'SKU', 'P') RETURNING id",
                (seller,),
            ).fetchone()
        assert row is not None
        return seller, row[0]

    @staticmethod
    def open_rule(
        conn: Connection, seller: uuid.UUID, product: uuid.UUID, price: int, start: datetime
    ) -> uuid.UUID:
        row = conn.execute(
            "INSERT INTO pricing_rules (seller_id, product_id, price_minor, currency,"
            " effective_from) VALUES (%s, %s, %s, 'USD', %s) RETURNING id",
            (seller, product, price, start),
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    def test_a_price_change_closes_one_rule_and_opens_another(
        self, app_conn: Connection, product: tuple[uuid.UUID, uuid.UUID]
    ) -> None:
        seller, product_id = product
        start = datetime(2026, 1, 1, tzinfo=UTC)
        change = start + timedelta(days=10)
        with seller_scope(app_conn, seller):
            first = self.open_rule(app_conn, seller, product_id, 1000, start)
            app_conn.execute(
                "UPDATE pricing_rules SET effective_until = %s WHERE id = %s", (change, first)
            )
            self.open_rule(app_conn, seller, product_id, 1200, change)
            history = app_conn.execute(
                "SELECT price_minor, effective_until FROM pricing_rules"
                " WHERE product_id = %s ORDER BY effective_from",
                (product_id,),
            ).fetchall()
        assert history == [(1000, change), (1200, None)]

    def test_only_one_rule_is_open(
        self, app_conn: Connection, product: tuple[uuid.UUID, uuid.UUID]
    ) -> None:
        seller, product_id = product
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with pytest.raises(errors.UniqueViolation, match="uq_pricing_rules_open_rule"):
            with seller_scope(app_conn, seller):
                self.open_rule(app_conn, seller, product_id, 1000, start)
                # sellpage_id is NULL on both: NULLS NOT DISTINCT still makes them clash.
                self.open_rule(app_conn, seller, product_id, 1100, start)

    @pytest.mark.parametrize(
        "change",
        [
            "price_minor = 1",
            "currency = 'EUR'",
            "effective_from = effective_from - interval '1 day'",
            "effective_until = effective_from + interval '1 day', price_minor = 1",
        ],
    )
    def test_history_cannot_be_rewritten(
        self,
        app_conn: Connection,
        owner_conn: Connection,
        product: tuple[uuid.UUID, uuid.UUID],
        change: str,
    ) -> None:
        seller, product_id = product
        with seller_scope(owner_conn, seller):
            rule = self.open_rule(owner_conn, seller, product_id, 1000, datetime.now(UTC))
        update = f"UPDATE pricing_rules SET {change} WHERE id = %s"
        # The app role may only update effective_until (column privilege) ...
        with pytest.raises(errors.InsufficientPrivilege):
            with seller_scope(app_conn, seller):
                app_conn.execute(update, (rule,))
        # ... and the trigger holds for the owner too.
        with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(update, (rule,))

    def test_a_closed_rule_stays_closed(
        self, app_conn: Connection, product: tuple[uuid.UUID, uuid.UUID]
    ) -> None:
        seller, product_id = product
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with seller_scope(app_conn, seller):
            rule = self.open_rule(app_conn, seller, product_id, 1000, start)
            app_conn.execute(
                "UPDATE pricing_rules SET effective_until = %s WHERE id = %s",
                (start + timedelta(days=1), rule),
            )
        for until in (start + timedelta(days=5), None):
            with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
                with seller_scope(app_conn, seller):
                    app_conn.execute(
                        "UPDATE pricing_rules SET effective_until = %s WHERE id = %s",
                        (until, rule),
                    )

    def test_a_rule_cannot_close_before_it_opens(
        self, app_conn: Connection, product: tuple[uuid.UUID, uuid.UUID]
    ) -> None:
        seller, product_id = product
        start = datetime(2026, 1, 1, tzinfo=UTC)
        with pytest.raises(errors.CheckViolation, match="ck_pricing_rules_window"):
            with seller_scope(app_conn, seller):
                rule = self.open_rule(app_conn, seller, product_id, 1000, start)
                app_conn.execute(
                    "UPDATE pricing_rules SET effective_until = %s WHERE id = %s",
                    (start - timedelta(seconds=1), rule),
                )

    def test_rules_are_never_deleted(
        self, app_conn: Connection, owner_conn: Connection, product: tuple[uuid.UUID, uuid.UUID]
    ) -> None:
        seller, product_id = product
        with seller_scope(owner_conn, seller):
            self.open_rule(owner_conn, seller, product_id, 1000, datetime.now(UTC))
        with pytest.raises(errors.InsufficientPrivilege):
            with seller_scope(app_conn, seller):
                app_conn.execute("DELETE FROM pricing_rules WHERE product_id = %s", (product_id,))
        for statement in (
            "DELETE FROM pricing_rules WHERE product_id = %s",
            "TRUNCATE pricing_rules",
        ):
            with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
                owner_conn.execute(statement, (product_id,) if "%s" in statement else ())
        assert _count(owner_conn, "pricing_rules", seller) == 1
