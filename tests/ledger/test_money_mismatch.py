"""A capture that does not match its order never marks it paid (issue 12, item 4).

The status is derived from the facts *against the order's total and currency*: a short,
excessive or foreign-currency capture leaves the order UNDERPAID or NEEDS_REVIEW, the
facts stay recorded as they came, the order's history says why, and the seller sees it
in their problems until it is settled.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import MoneyState, ProcessResult, WebhookInbox, decide_status
from pixecom_core.models.orders import OrderStatus
from pixecom_core.problems import ProblemReports
from pixecom_core.providers import PaymentEventKind
from pixecom_core.settings import Settings
from pixecom_core.tenancy import PageRequest, SellerContext
from tests.ledger import fakepay
from tests.ledger.conftest import OrderFactory, PayableOrder

K = PaymentEventKind


def usd(captured: int = 0, refunded: int = 0) -> MoneyState:
    return MoneyState(currency="USD", captured_minor=captured, refunded_minor=refunded)


@pytest.mark.parametrize(
    ("states", "status", "mismatch"),
    [
        ({"USD": usd(3_000)}, OrderStatus.PAID, None),
        ({"USD": usd(1)}, OrderStatus.UNDERPAID, "captured 0.01 USD of the order's 30.00 USD"),
        (
            {"JPY": MoneyState(currency="JPY", captured_minor=3_000)},
            OrderStatus.NEEDS_REVIEW,
            "captured 3000 JPY on an order of 30.00 USD",
        ),
        (
            {"USD": usd(6_000)},
            OrderStatus.NEEDS_REVIEW,
            "kept 60.00 USD, more than the order's total of 30.00 USD",
        ),
        # The duplicate refunded: nothing more than the total is kept any longer.
        ({"USD": usd(6_000, refunded=3_000)}, OrderStatus.PARTIALLY_REFUNDED, None),
        ({"USD": usd(3_000, refunded=1_000)}, OrderStatus.PARTIALLY_REFUNDED, None),
        ({"USD": usd(1, refunded=1)}, OrderStatus.REFUNDED, None),
        # A foreign capture refunded in full is no longer kept: the order's own money is
        # judged, and a refund happened.
        (
            {
                "USD": usd(3_000),
                "EUR": MoneyState(currency="EUR", captured_minor=5, refunded_minor=5),
            },
            OrderStatus.PARTIALLY_REFUNDED,
            None,
        ),
    ],
)
def test_the_status_is_judged_against_the_orders_total_and_currency(
    states: dict[str, MoneyState], status: OrderStatus, mismatch: str | None
) -> None:
    decision = decide_status(OrderStatus.PENDING, states, total_minor=3_000, currency="USD")

    assert decision.status is status
    assert decision.mismatch == mismatch


def order_state(dsn: str, order: PayableOrder) -> tuple[str, list[Any], list[Any]]:
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(
            "SELECT set_config('app.current_seller_id', %s, true)", (str(order.seller_id),)
        )
        row = conn.execute("SELECT status FROM orders WHERE id = %s", (order.order_id,)).fetchone()
        history = conn.execute(
            "SELECT to_status, payload->>'reason' FROM order_events WHERE order_id = %s"
            " AND event_type = 'STATUS_CHANGED' ORDER BY created_at, id",
            (order.order_id,),
        ).fetchall()
        facts = conn.execute(
            "SELECT event_type, amount_minor, currency FROM payment_events WHERE order_id = %s"
            " ORDER BY recorded_at, id",
            (order.order_id,),
        ).fetchall()
    assert row is not None
    return str(row[0]), history, facts


async def pay(inbox: WebhookInbox, *facts: dict[str, Any]) -> None:
    for one in facts:
        body, headers = fakepay.delivery([one])
        receipt = await inbox.receive("fakepay", body=body, headers=headers)
        assert await inbox.process(receipt.inbox_id) is ProcessResult.PROCESSED


async def test_one_cent_on_a_3000_cent_order_leaves_it_underpaid(
    inbox: WebhookInbox, payable_order: OrderFactory, database_owner_dsn: str
) -> None:
    order = payable_order(total_minor=3_000)
    await pay(inbox, fakepay.fact(order.payment, "ch_1", K.CAPTURED, 1))

    status, history, facts = order_state(database_owner_dsn, order)
    assert status == "UNDERPAID"
    assert facts == [("CAPTURED", 1, "USD")]  # the fact is kept as it came
    assert history == [
        (
            "UNDERPAID",
            "payment does not match the order: captured 0.01 USD of the order's 30.00 USD",
        )
    ]


async def test_the_rest_of_an_underpaid_order_makes_it_paid(
    inbox: WebhookInbox, payable_order: OrderFactory, database_owner_dsn: str
) -> None:
    order = payable_order(total_minor=3_000)
    await pay(
        inbox,
        fakepay.fact(order.payment, "ch_1", K.CAPTURED, 1_000),
        fakepay.fact(order.payment, "ch_2", K.CAPTURED, 2_000),
    )

    status, history, _ = order_state(database_owner_dsn, order)
    assert status == "PAID"
    assert [to for to, _ in history] == ["UNDERPAID", "PAID"]


async def test_3000_yen_on_a_3000_dollar_order_needs_review(
    inbox: WebhookInbox, payable_order: OrderFactory, database_owner_dsn: str
) -> None:
    order = payable_order(total_minor=300_000, currency="USD")
    await pay(inbox, fakepay.fact(order.payment, "ch_1", K.CAPTURED, 300_000, currency="JPY"))

    status, history, facts = order_state(database_owner_dsn, order)
    assert status == "NEEDS_REVIEW"
    assert facts == [("CAPTURED", 300_000, "JPY")]
    assert "captured 300000 JPY on an order of 3000.00 USD" in history[-1][1]


async def test_a_second_capture_under_another_charge_needs_review_not_double_paid(
    inbox: WebhookInbox, payable_order: OrderFactory, database_owner_dsn: str
) -> None:
    order = payable_order(total_minor=3_000)
    await pay(inbox, fakepay.fact(order.payment, "ch_1", K.CAPTURED, 3_000))
    assert order_state(database_owner_dsn, order)[0] == "PAID"

    await pay(inbox, fakepay.fact(order.payment, "ch_2", K.CAPTURED, 3_000))
    status, history, _ = order_state(database_owner_dsn, order)
    assert status == "NEEDS_REVIEW"
    assert "kept 60.00 USD, more than the order's total of 30.00 USD" in history[-1][1]

    # The seller refunds the duplicate: no more than the total is kept.
    await pay(inbox, fakepay.fact(order.payment, "re_1", K.REFUNDED, 3_000))
    assert order_state(database_owner_dsn, order)[0] == "PARTIALLY_REFUNDED"


async def seller_problems(
    app_engine: AsyncEngine, settings: Settings, seller_id: uuid.UUID
) -> list[tuple[str, str, str, str | None]]:
    context = SellerContext(
        seller_id=seller_id,
        user_id=uuid.uuid4(),
        sessions=create_sessionmaker(app_engine),
        settings=settings,
    )
    page = await ProblemReports(context).open_problems(PageRequest())
    return [(p.kind.value, p.key, p.state, p.error) for p in page.items]


async def test_the_seller_is_shown_the_mismatch_until_it_is_settled(
    inbox: WebhookInbox,
    payable_order: OrderFactory,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    short = payable_order(total_minor=3_000)
    foreign = payable_order(seller_id=short.seller_id, total_minor=300_000)
    paid = payable_order(seller_id=short.seller_id, total_minor=500)
    await pay(
        inbox,
        fakepay.fact(short.payment, "ch_1", K.CAPTURED, 1),
        fakepay.fact(foreign.payment, "ch_2", K.CAPTURED, 300_000, currency="JPY"),
        fakepay.fact(paid.payment, "ch_3", K.CAPTURED, 500),
    )

    problems = await seller_problems(app_engine, settings, short.seller_id)
    assert sorted(problems) == sorted(
        [
            (
                "payment_mismatch",
                str(short.order_id),
                "UNDERPAID",
                "Captured 0.01 USD of the order's 30.00 USD. Ask the shopper for the rest, "
                "or cancel and refund the order.",
            ),
            (
                "payment_mismatch",
                str(foreign.order_id),
                "NEEDS_REVIEW",
                "Captured 300000 JPY on an order of 3000.00 USD. Check the payment at your "
                "gateway and refund what was not due.",
            ),
        ]
    )
    # Another seller sees none of it.
    other = payable_order()
    assert await seller_problems(app_engine, settings, other.seller_id) == []

    # The rest arrives: the short order is paid, and its problem goes away.
    await pay(inbox, fakepay.fact(short.payment, "ch_4", K.CAPTURED, 2_999))
    problems = await seller_problems(app_engine, settings, short.seller_id)
    assert [key for _, key, _, _ in problems] == [str(foreign.order_id)]
