"""POST /orders/{id}/refunds and the order's money in GET /orders/{id} (issue 15 item 3).

Driven through the API against the fakepay gateway, whose refund answers a test chooses
(succeeded, pending, failed, refused, a lost answer). Fakepay never bounds refunds
itself, so every "no more than was captured" outcome here is core's own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger
from pixecom_core.orders.refunds import RefundService
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import GatewayPaymentEvent, PaymentEventKind, RefundState
from pixecom_core.settings import Settings
from tests.app.conftest import NewSeller, SignedUpSeller
from tests.ledger import fakepay
from tests.ledger.conftest import PayableOrder, insert_order

CAPTURED = 10_000


@pytest.fixture(autouse=True)
def fresh_fakepay_refunds() -> Iterator[None]:
    fakepay.GATEWAY.reset_refunds()
    yield
    fakepay.GATEWAY.reset_refunds()


@pytest.fixture
def ledger(app_engine: AsyncEngine, settings: Settings) -> Ledger:
    return Ledger(create_sessionmaker(app_engine), settings)


def fact(
    order: PayableOrder, reference: str, kind: PaymentEventKind, amount: int
) -> GatewayPaymentEvent:
    return GatewayPaymentEvent(
        gateway="fakepay",
        event_id=f"evt_{uuid.uuid4().hex}",
        gateway_reference=order.payment,
        fact_reference=reference,
        kind=kind,
        amount_minor=amount,
        currency="USD",
        occurred_at=datetime.now(UTC),
    )


async def captured_order(
    seller: SignedUpSeller, database_owner_dsn: str, ledger: Ledger, amount: int = CAPTURED
) -> PayableOrder:
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        order = insert_order(conn, seller.seller_id, total_minor=amount)
    await ledger.record([fact(order, f"ch_{uuid.uuid4().hex}", PaymentEventKind.CAPTURED, amount)])
    return order


async def refund(
    client: httpx.AsyncClient,
    seller: SignedUpSeller,
    order: PayableOrder,
    amount: int,
    key: str | None = None,
    reason: str | None = "damaged in transit",
) -> httpx.Response:
    return await client.post(
        f"/orders/{order.order_id}/refunds",
        json={"amount_minor": amount, "reason": reason},
        headers={**seller.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def ledger_refunds(dsn: str, order: PayableOrder) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT gateway_reference, amount_minor FROM payment_events"
            " WHERE order_id = %s AND event_type = 'REFUNDED' ORDER BY recorded_at",
            (order.order_id,),
        ).fetchall()


async def test_a_refund_moves_the_money_once_and_the_order_shows_it(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str, ledger: Ledger
) -> None:
    seller = await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)

    first = await refund(api_client, seller, order, 2_500, key="refund-1")
    again = await refund(api_client, seller, order, 2_500, key="refund-1")
    shown = await api_client.get(f"/orders/{order.order_id}", headers=seller.headers)

    assert first.status_code == 202, first.text
    body = first.json()
    assert body["status"] == "SUCCEEDED"
    assert (body["amount_minor"], body["currency"], body["gateway"]) == (2_500, "USD", "fakepay")
    assert again.status_code == 202 and again.json()["id"] == body["id"]
    # One call at the gateway, under a key derived from the refund, not the seller's key.
    assert [r.idempotency_key for r in fakepay.GATEWAY.refund_requests] == [
        f"pixecom-refund-{body['id']}"
    ]
    assert fakepay.GATEWAY.refund_requests[0].reason == "damaged in transit"
    assert ledger_refunds(database_owner_dsn, order) == [(body["gateway_reference"], 2_500)]
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["status"] == "PARTIALLY_REFUNDED"
    assert detail["money"] == [
        {
            "currency": "USD",
            "captured_minor": CAPTURED,
            "refunded_minor": 2_500,
            "chargeback_minor": 0,
            "chargeback_reversed_minor": 0,
            "net_minor": 7_500,
            "open_refunds_minor": 0,
            "refundable_minor": 7_500,
        }
    ]
    assert [(r["id"], r["status"]) for r in detail["refunds"]] == [(body["id"], "SUCCEEDED")]


async def test_bad_requests_are_refused_before_the_gateway_is_called(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str, ledger: Ledger
) -> None:
    seller, other = await new_seller(), await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)
    with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
        unpaid = insert_order(conn, seller.seller_id)

    too_much = await refund(api_client, seller, order, CAPTURED + 1)
    no_key = await api_client.post(
        f"/orders/{order.order_id}/refunds", json={"amount_minor": 100}, headers=seller.headers
    )
    zero = await refund(api_client, seller, order, 0)
    foreign = await refund(api_client, other, order, 100)
    nothing = await refund(api_client, seller, unpaid, 100)
    done = await refund(api_client, seller, order, 100, key="k")
    reused = await refund(api_client, seller, order, 200, key="k")

    assert too_much.status_code == 409
    assert too_much.json()["error"]["code"] == "refund_exceeds_refundable"
    assert no_key.status_code == 422 and zero.status_code == 422
    assert foreign.status_code == 404
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_refund"
    assert done.status_code == 202
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(fakepay.GATEWAY.refund_requests) == 1
    assert ledger_refunds(database_owner_dsn, order) == [(done.json()["gateway_reference"], 100)]


async def test_ten_concurrent_requests_never_refund_more_than_was_captured(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str, ledger: Ledger
) -> None:
    seller = await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)
    # A slow gateway keeps the requests overlapping while each waits for its answer.
    fakepay.GATEWAY.reset_refunds(delay_seconds=0.05)

    different_keys = await asyncio.gather(
        *(refund(api_client, seller, order, 3_000) for _ in range(10))
    )
    same_key = await asyncio.gather(
        *(refund(api_client, seller, order, 1_000, key="same") for _ in range(10))
    )

    accepted = [r for r in different_keys if r.status_code == 202]
    refused = [r for r in different_keys if r.status_code == 409]
    assert len(accepted) == 3 and len(refused) == 7, [r.text for r in different_keys]
    assert {r.json()["error"]["code"] for r in refused} == {"refund_exceeds_refundable"}
    assert {r.status_code for r in same_key} == {202}
    assert len({r.json()["id"] for r in same_key}) == 1
    refunded = ledger_refunds(database_owner_dsn, order)
    assert sum(int(str(amount)) for _, amount in refunded) == 3 * 3_000 + 1_000
    assert len(fakepay.GATEWAY.refund_requests) == 4


async def test_a_failed_or_refused_refund_returns_nothing_and_frees_the_amount(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str, ledger: Ledger
) -> None:
    seller = await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)

    fakepay.GATEWAY.reset_refunds("failed")
    failed = await refund(api_client, seller, order, CAPTURED)
    fakepay.GATEWAY.reset_refunds("refused")
    refused = await refund(api_client, seller, order, CAPTURED)
    fakepay.GATEWAY.reset_refunds()
    whole = await refund(api_client, seller, order, CAPTURED)

    assert failed.json()["status"] == "FAILED"
    assert failed.json()["failure_reason"] == "fakepay: declined"
    assert refused.json()["status"] == "FAILED"
    assert "disputed" in refused.json()["failure_reason"]
    assert whole.json()["status"] == "SUCCEEDED"
    assert ledger_refunds(database_owner_dsn, order) == [
        (whole.json()["gateway_reference"], CAPTURED)
    ]
    detail = (await api_client.get(f"/orders/{order.order_id}", headers=seller.headers)).json()
    assert detail["status"] == "REFUNDED"
    assert [r["status"] for r in detail["refunds"]] == ["FAILED", "FAILED", "SUCCEEDED"]


async def test_a_lost_answer_keeps_the_amount_reserved_and_a_retry_is_the_same_refund(
    api_client: httpx.AsyncClient, new_seller: NewSeller, database_owner_dsn: str, ledger: Ledger
) -> None:
    seller = await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)
    fakepay.GATEWAY.reset_refunds("timeout")

    lost = await refund(api_client, seller, order, 6_000, key="lost")
    blocked = await refund(api_client, seller, order, 6_000)
    fakepay.GATEWAY.refund_answer = "succeeded"
    retried = await refund(api_client, seller, order, 6_000, key="lost")

    assert lost.status_code == 202 and lost.json()["status"] == "REQUESTED"
    assert blocked.status_code == 409  # 6,000 of 10,000 are reserved by the lost one
    assert retried.json()["id"] == lost.json()["id"]
    assert retried.json()["status"] == "SUCCEEDED"
    keys = [r.idempotency_key for r in fakepay.GATEWAY.refund_requests]
    assert keys == [f"pixecom-refund-{lost.json()['id']}"] * 2  # the same refund, asked twice
    assert len(fakepay.GATEWAY.refunds) == 1
    assert ledger_refunds(database_owner_dsn, order) == [
        (retried.json()["gateway_reference"], 6_000)
    ]


async def test_a_pending_refund_is_recorded_once_whether_webhook_or_answer_comes_first(
    api_client: httpx.AsyncClient,
    new_seller: NewSeller,
    database_owner_dsn: str,
    ledger: Ledger,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    seller = await new_seller()
    order = await captured_order(seller, database_owner_dsn, ledger)
    fakepay.GATEWAY.reset_refunds("pending")
    sessions = create_sessionmaker(app_engine)
    registry = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[fakepay]))
    service = RefundService(
        sessions,
        settings,
        registry,
        ledger,
        PaymentConnections.for_settings(sessions, settings, registry),
    )

    by_webhook = (await refund(api_client, seller, order, 1_000)).json()
    by_answer = (await refund(api_client, seller, order, 2_000)).json()
    pending = (await api_client.get(f"/orders/{order.order_id}", headers=seller.headers)).json()
    # The webhook of the first arrives before anyone asks the gateway again ...
    await ledger.record(
        [fact(order, by_webhook["gateway_reference"], PaymentEventKind.REFUNDED, 1_000)]
    )
    # ... the second settles at the gateway, and both are fetched.
    fakepay.GATEWAY.settle_refund(by_answer["gateway_reference"], RefundState.SUCCEEDED)
    fakepay.GATEWAY.settle_refund(by_webhook["gateway_reference"], RefundState.SUCCEEDED)
    settled = [
        await service.settle(seller.seller_id, uuid.UUID(r["id"])) for r in (by_webhook, by_answer)
    ]
    # and the second's webhook comes late: a duplicate.
    late = await ledger.record(
        [fact(order, by_answer["gateway_reference"], PaymentEventKind.REFUNDED, 2_000)]
    )

    assert {by_webhook["status"], by_answer["status"]} == {"PENDING"}
    assert pending["money"][0]["open_refunds_minor"] == 3_000
    assert pending["money"][0]["refundable_minor"] == 7_000
    assert [s.status.value for s in settled] == ["SUCCEEDED", "SUCCEEDED"]
    assert late.duplicates == 1 and late.recorded == []
    assert sorted(ledger_refunds(database_owner_dsn, order), key=lambda row: str(row[1])) == [
        (by_webhook["gateway_reference"], 1_000),
        (by_answer["gateway_reference"], 2_000),
    ]
    detail = (await api_client.get(f"/orders/{order.order_id}", headers=seller.headers)).json()
    assert detail["money"][0]["open_refunds_minor"] == 0
    assert detail["money"][0]["refundable_minor"] == 7_000


async def test_the_sweep_settles_lost_and_pending_refunds_of_every_seller(
    api_client: httpx.AsyncClient,
    new_seller: NewSeller,
    database_owner_dsn: str,
    ledger: Ledger,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    sellers = [await new_seller(), await new_seller()]
    orders = [await captured_order(s, database_owner_dsn, ledger) for s in sellers]
    fakepay.GATEWAY.reset_refunds("timeout")
    lost = (await refund(api_client, sellers[0], orders[0], 4_000)).json()
    fakepay.GATEWAY.reset_refunds("pending")
    pending = (await refund(api_client, sellers[1], orders[1], 5_000)).json()
    sessions = create_sessionmaker(app_engine)
    registry = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[fakepay]))
    service = RefundService(
        sessions,
        settings,
        registry,
        ledger,
        PaymentConnections.for_settings(sessions, settings, registry),
    )

    # Too recent for a sweep that waits a minute: nothing is asked.
    asked_before = len(fakepay.GATEWAY.refund_requests)
    assert await service.settle_open(quiet_seconds=60) == 0
    fakepay.GATEWAY.refund_answer = "succeeded"
    fakepay.GATEWAY.settle_refund(pending["gateway_reference"], RefundState.SUCCEEDED)
    # Other tests' refunds may be open in this database too: at least these two are swept.
    swept = await service.settle_open(quiet_seconds=0)

    assert (lost["status"], pending["status"]) == ("REQUESTED", "PENDING")
    assert len(fakepay.GATEWAY.refund_requests) == asked_before + 1  # the lost one, same key
    assert swept >= 2
    for seller, order, amount in ((sellers[0], orders[0], 4_000), (sellers[1], orders[1], 5_000)):
        detail = (await api_client.get(f"/orders/{order.order_id}", headers=seller.headers)).json()
        assert [(r["status"], r["amount_minor"]) for r in detail["refunds"]] == [
            ("SUCCEEDED", amount)
        ]
        assert detail["money"][0]["refunded_minor"] == amount
