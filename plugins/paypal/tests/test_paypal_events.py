"""PayPal's notifications, delivered over HTTP by the sandbox, verified and normalised.

Every test drives money through the sandbox, lets it deliver the webhooks PayPal would send
to a loopback receiver, and checks what ``parse_events`` makes of them: which payment
(``gateway_reference``), which money movement (``fact_reference``), how much.
"""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.gateway import PayPalGateway

from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentEventKind,
    PaymentRequest,
    ProviderError,
    ProviderTransientError,
    VerifiedWebhook,
)
from pixecom_core.testing.sandbox_kit import WebhookReceiver

Receiver = tuple[str, WebhookReceiver]
Parsed = list[tuple[VerifiedWebhook, list[GatewayPaymentEvent]]]


async def deliver(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver, **options: object
) -> Parsed:
    """Have the sandbox deliver its pending events; verify and parse each one received."""
    url, recorder = receiver
    sandbox.deliver(url=url, **options)
    parsed = []
    for received in recorder.received:
        webhook = await gateway.verify_webhook(body=received.body, headers=received.headers)
        parsed.append((webhook, await gateway.parse_events(webhook)))
    recorder.received.clear()
    return parsed


def events_of(parsed: Parsed, event_type: str | None = None) -> list[GatewayPaymentEvent]:
    return [
        event
        for webhook, events in parsed
        if event_type is None or webhook.event_type == event_type
        for event in events
    ]


def facts(events: list[GatewayPaymentEvent]) -> set[tuple[str, str, PaymentEventKind, int]]:
    """What core's ledger keeps: one row per (fact_reference, kind), whatever the delivery."""
    return {
        (event.gateway_reference, event.fact_reference, event.kind, event.amount_minor)
        for event in events
    }


async def paid_order(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    receiver: Receiver,
    *,
    amount_minor: int = 10000,
    currency: str = "USD",
) -> tuple[str, str, uuid.UUID]:
    """A PayPal order approved by the buyer and captured; its webhooks already consumed.

    Returns the PayPal order id, the capture id and core's order id.
    """
    order_id = uuid.uuid4()
    session = await gateway.create_payment(
        PaymentRequest(
            idempotency_key=f"attempt-{order_id}",
            seller_id=uuid.uuid4(),
            order_id=order_id,
            amount_minor=amount_minor,
            currency=currency,
            return_url="https://shop.example/paid",
            cancel_url="https://shop.example/cancelled",
        )
    )
    capture_id = sandbox.capture(session.gateway_reference)
    await deliver(gateway, sandbox, receiver)
    return session.gateway_reference, capture_id, order_id


async def test_approval_moves_no_money_and_the_capture_is_recorded(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order_id = uuid.uuid4()
    session = await gateway.create_payment(
        PaymentRequest(
            idempotency_key="attempt-1",
            seller_id=uuid.uuid4(),
            order_id=order_id,
            amount_minor=1999,
            currency="USD",
            return_url="https://shop.example/paid",
            cancel_url="https://shop.example/cancelled",
        )
    )
    sandbox.approve(session.gateway_reference)

    approved = await deliver(gateway, sandbox, receiver)
    # The gateway captured the approved order while parsing the approval.
    captured = await deliver(gateway, sandbox, receiver)

    assert [(w.event_type, events) for w, events in approved] == [("CHECKOUT.ORDER.APPROVED", [])]
    [(webhook, [event])] = captured
    [capture_id] = sandbox.state.captures
    assert webhook.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert event.kind is PaymentEventKind.CAPTURED
    assert event.gateway == "paypal"
    assert event.event_id == webhook.event_id
    assert event.gateway_reference == session.gateway_reference
    assert event.fact_reference == capture_id
    assert (event.amount_minor, event.currency) == (1999, "USD")
    assert event.order_reference == str(order_id)
    assert event.occurred_at.tzinfo is not None


async def test_approval_is_not_captured_when_the_storefront_captures(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl, receiver: Receiver
) -> None:
    gateway = make_gateway(capture_on_approval=False)
    sandbox.approve(sandbox.create_order("5.00"))

    parsed = await deliver(gateway, sandbox, receiver)

    assert events_of(parsed) == []
    assert sandbox.state.captures == {}


async def test_a_denied_capture_is_a_failed_payment(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order = sandbox.create_order("12.00", custom_id="core-order-7")
    capture_id = sandbox.capture(order, status="DENIED")

    [event] = events_of(await deliver(gateway, sandbox, receiver), "PAYMENT.CAPTURE.DENIED")

    assert event.kind is PaymentEventKind.FAILED
    assert (event.gateway_reference, event.fact_reference) == (order, capture_id)
    assert (event.amount_minor, event.order_reference) == (1200, "core-order-7")
    assert event.metadata["reason"] == "DECLINED_BY_RISK_FRAUD_FILTERS"


async def test_two_partial_refunds_are_two_facts_of_their_own_amounts(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order, capture_id, core_order = await paid_order(gateway, sandbox, receiver)
    first = sandbox.refund(capture_id, "5.00")
    second = sandbox.api(
        "POST",
        f"/v2/payments/captures/{capture_id}/refund",
        json={"amount": {"currency_code": "USD", "value": "7.25"}},
    )

    refunds = events_of(await deliver(gateway, sandbox, receiver))

    assert facts(refunds) == {
        (order, first["id"], PaymentEventKind.REFUNDED, 500),
        (order, second["id"], PaymentEventKind.REFUNDED, 725),
    }
    assert {event.order_reference for event in refunds} == {str(core_order)}
    assert {event.metadata["capture_id"] for event in refunds} == {capture_id}


async def test_a_refund_of_a_capture_this_process_never_saw_asks_paypal_once(
    gateway: PayPalGateway,
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
    receiver: Receiver,
) -> None:
    order, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    sandbox.refund(capture_id, "1.00")
    sandbox.refund(capture_id, "2.00")
    other_worker = make_gateway()

    refunds = events_of(await deliver(other_worker, sandbox, receiver))

    assert {event.gateway_reference for event in refunds} == {order}
    assert sandbox.calls("get_capture", path=f"/v2/payments/captures/{capture_id}") == 1


@pytest.mark.parametrize(
    ("currency", "amount_minor", "refund_value", "refund_minor"),
    [("JPY", 1500, "700", 700), ("KWD", 12345, "1.005", 1005), ("USD", 10000, None, 10000)],
)
async def test_refund_amounts_are_exact_minor_units(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    receiver: Receiver,
    currency: str,
    amount_minor: int,
    refund_value: str | None,
    refund_minor: int,
) -> None:
    _, capture_id, _ = await paid_order(
        gateway, sandbox, receiver, amount_minor=amount_minor, currency=currency
    )
    sandbox.refund(capture_id, refund_value)

    [event] = events_of(await deliver(gateway, sandbox, receiver))

    assert (event.amount_minor, event.currency) == (refund_minor, currency)


async def test_a_reversal_without_a_dispute_is_a_chargeback_of_its_own(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    reversal = sandbox.reverse(capture_id)

    [event] = events_of(await deliver(gateway, sandbox, receiver))

    assert event.kind is PaymentEventKind.CHARGEBACK
    assert (event.gateway_reference, event.fact_reference) == (order, reversal["id"])
    assert event.amount_minor == 10000
    assert "dispute_id" not in event.metadata


async def test_a_dispute_won_by_the_seller_is_charged_back_then_given_back(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order, capture_id, core_order = await paid_order(gateway, sandbox, receiver)
    dispute = sandbox.open_dispute(capture_id, value="40.00")
    opened = events_of(await deliver(gateway, sandbox, receiver))
    sandbox.resolve_dispute(dispute["dispute_id"], "RESOLVED_SELLER_FAVOUR")

    closed = events_of(await deliver(gateway, sandbox, receiver))

    assert facts(opened) == {(order, dispute["dispute_id"], PaymentEventKind.CHARGEBACK, 4000)}
    assert facts(closed) == {
        (order, dispute["dispute_id"], PaymentEventKind.CHARGEBACK_REVERSED, 4000)
    }
    assert opened[0].order_reference == str(core_order)
    assert opened[0].metadata["reason"] == "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
    assert closed[0].metadata["outcome_code"] == "RESOLVED_SELLER_FAVOUR"


async def test_a_bank_chargeback_announced_twice_is_one_fact(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    dispute = sandbox.open_dispute(capture_id, stage="CHARGEBACK", channel="EXTERNAL", reverse=True)

    parsed = await deliver(gateway, sandbox, receiver, shuffle=True, seed=3)

    assert sorted(webhook.event_type for webhook, _ in parsed) == [
        "CUSTOMER.DISPUTE.CREATED",
        "PAYMENT.CAPTURE.REVERSED",
    ]
    assert facts(events_of(parsed)) == {
        (order, dispute["dispute_id"], PaymentEventKind.CHARGEBACK, 10000)
    }
    [reversal_event] = events_of(parsed, "PAYMENT.CAPTURE.REVERSED")
    assert reversal_event.metadata["dispute_id"] == dispute["dispute_id"]


async def test_a_dispute_lost_by_the_seller_is_charged_back_once(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    order, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    dispute = sandbox.open_dispute(capture_id)
    sandbox.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")

    parsed = await deliver(gateway, sandbox, receiver)

    assert [webhook.event_type for webhook, _ in parsed] == [
        "CUSTOMER.DISPUTE.CREATED",
        "PAYMENT.CAPTURE.REVERSED",
        "CUSTOMER.DISPUTE.RESOLVED",
    ]
    assert events_of(parsed, "CUSTOMER.DISPUTE.RESOLVED") == []
    assert facts(events_of(parsed)) == {
        (order, dispute["dispute_id"], PaymentEventKind.CHARGEBACK, 10000)
    }


async def test_a_duplicate_delivery_carries_the_same_event_id(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    _, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    sandbox.refund(capture_id, "3.00")

    parsed = await deliver(gateway, sandbox, receiver, duplicates=1)

    [(first, first_events), (second, second_events)] = parsed
    assert first.event_id == second.event_id
    assert first.headers["paypal-transmission-id"] != second.headers["paypal-transmission-id"]
    assert first_events == second_events


async def test_shuffled_duplicated_deliveries_give_the_same_facts(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    _, first_capture, _ = await paid_order(gateway, sandbox, receiver)
    _, second_capture, _ = await paid_order(gateway, sandbox, receiver)
    sandbox.refund(first_capture, "1.00")
    sandbox.refund(first_capture, "2.00")
    sandbox.reverse(second_capture, "50.00")
    in_order = facts(events_of(await deliver(gateway, sandbox, receiver)))
    resent = [event["id"] for event in sandbox.events()[-3:]]

    # PayPal resends the three, jumbled, twice each
    jumbled = await deliver(
        gateway, sandbox, receiver, event_ids=resent, duplicates=1, shuffle=True, seed=11
    )

    assert len(jumbled) == 6
    assert facts(events_of(jumbled)) == in_order


async def test_a_failed_delivery_is_retried_with_the_same_event_id(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    url, recorder = receiver
    sandbox.approve(sandbox.create_order("5.00"))
    recorder.status_code = 503

    sandbox.deliver(url=url)
    recorder.status_code = 200
    sandbox.deliver(url=url)

    first, retry = recorder.received
    assert json.loads(first.body)["id"] == json.loads(retry.body)["id"]
    assert [event["delivered"] for event in sandbox.events()] == [True]
    assert (await gateway.verify_webhook(body=retry.body, headers=retry.headers)).event_id


# -- events that do not add up ----------------------------------------------------------


def webhook(body: object) -> VerifiedWebhook:
    """A webhook as if verified, for shapes the sandbox never sends."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return VerifiedWebhook(
        gateway="paypal",
        event_id="WH-TEST",
        event_type="",
        body=raw,
        headers={},
        received_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    "event_type",
    ["PAYMENT.CAPTURE.PENDING", "CHECKOUT.ORDER.COMPLETED", "CUSTOMER.DISPUTE.UPDATED", None],
)
async def test_events_core_does_not_track_give_nothing(
    gateway: PayPalGateway, event_type: str | None
) -> None:
    assert await gateway.parse_events(webhook({"id": "WH-1", "event_type": event_type})) == []


@pytest.mark.parametrize(
    "outcome", ["RESOLVED_BUYER_FAVOUR", "ACCEPTED", "RESOLVED_WITH_PAYOUT", "NONE", None]
)
async def test_a_resolution_that_leaves_the_chargeback_gives_nothing(
    gateway: PayPalGateway, outcome: str | None
) -> None:
    resolved = {
        "id": "WH-2",
        "event_type": "CUSTOMER.DISPUTE.RESOLVED",
        "resource": {"dispute_id": "PP-D-1", "dispute_outcome": {"outcome_code": outcome}},
    }

    assert await gateway.parse_events(webhook(resolved)) == []


async def test_a_body_that_is_not_json_is_an_error(gateway: PayPalGateway) -> None:
    with pytest.raises(ProviderError, match="not JSON"):
        await gateway.parse_events(webhook(b"not json"))


@pytest.mark.parametrize(
    ("event_type", "resource", "problem"),
    [
        ("PAYMENT.CAPTURE.COMPLETED", None, "no resource"),
        ("PAYMENT.CAPTURE.COMPLETED", {"amount": {"currency_code": "USD", "value": "1"}}, "id"),
        ("PAYMENT.CAPTURE.COMPLETED", {"id": "C1"}, "money object"),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            {"id": "C1", "amount": {"currency_code": "USD", "value": "1.001"}},
            "finer than",
        ),
        (
            "PAYMENT.CAPTURE.REFUNDED",
            {"id": "R1", "amount": {"currency_code": "USD", "value": "1.00"}, "links": []},
            "'up' link",
        ),
        (
            "CUSTOMER.DISPUTE.CREATED",
            {"dispute_id": "PP-D-1", "dispute_amount": {"currency_code": "USD", "value": "1"}},
            "seller_transaction_id",
        ),
    ],
)
async def test_an_event_missing_what_its_type_carries_is_an_error(
    gateway: PayPalGateway, event_type: str, resource: object, problem: str
) -> None:
    body = {"id": "WH-3", "event_type": event_type, "create_time": "2026-01-01T00:00:00Z"}
    if resource is not None:
        body["resource"] = resource

    with pytest.raises(ProviderError, match=problem):
        await gateway.parse_events(webhook(body))


def refund_of(capture_id: str) -> dict[str, object]:
    return {
        "id": "WH-4",
        "event_type": "PAYMENT.CAPTURE.REFUNDED",
        "resource": {
            "id": "REFUND1",
            "amount": {"currency_code": "USD", "value": "1.00"},
            "create_time": "2026-01-01T00:00:00Z",
            "links": [
                {"href": f"https://api-m.paypal.com/v2/payments/captures/{capture_id}", "rel": "up"}
            ],
        },
    }


@pytest.mark.usefixtures("sandbox")
async def test_a_refund_of_an_unknown_capture_is_an_error(gateway: PayPalGateway) -> None:
    with pytest.raises(ProviderError, match="could not be read") as raised:
        await gateway.parse_events(webhook(refund_of("NO-SUCH-CAPTURE")))

    assert not isinstance(raised.value, ProviderTransientError)


async def test_a_refund_whose_capture_cannot_be_fetched_now_is_transient(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("transient", "get_capture")

    with pytest.raises(ProviderTransientError):
        await gateway.parse_events(webhook(refund_of("ANY")))


async def test_a_reversal_whose_disputes_cannot_be_listed_now_is_transient(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: Receiver
) -> None:
    _, capture_id, _ = await paid_order(gateway, sandbox, receiver)
    sandbox.reverse(capture_id)
    sandbox.fault("transient", "list_disputes", status=500)

    with pytest.raises(ProviderTransientError):
        await deliver(gateway, sandbox, receiver)


def completed_capture(**resource: object) -> dict[str, object]:
    return {
        "id": "WH-5",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "create_time": "2026-01-01T00:00:01Z",
        "resource": {
            "amount": {"currency_code": "USD", "value": "2.51"},
            "create_time": "2026-01-01T00:00:00Z",
            **resource,
        },
    }


async def test_a_capture_names_its_order_by_its_up_link(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    # Older deliveries carry no supplementary_data; the "up" link names the order.
    up = {"href": "https://api-m.paypal.com/v2/checkout/orders/5O190127TN364715T", "rel": "up"}

    [event] = await gateway.parse_events(webhook(completed_capture(id="CAP1", links=[up])))

    assert (event.gateway_reference, event.fact_reference) == ("5O190127TN364715T", "CAP1")
    assert event.amount_minor == 251
    assert sandbox.calls("get_capture") == 0


async def test_a_capture_that_names_no_order_is_looked_up(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    order = sandbox.create_order("2.51")
    capture_id = sandbox.capture(order)

    [event] = await gateway.parse_events(webhook(completed_capture(id=capture_id)))

    assert event.gateway_reference == order
    assert sandbox.calls("get_capture", path=f"/v2/payments/captures/{capture_id}") == 1


async def test_a_capture_of_an_authorization_is_not_an_order(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    # Intent AUTHORIZE captures link "up" to an authorization: not an order id to use.
    up = {"href": "https://api-m.paypal.com/v2/payments/authorizations/7W5147081L658180V"}
    up["rel"] = "up"

    # The sandbox knows no CAP2: the gateway asks for it and is answered 404.
    with pytest.raises(ProviderError, match="could not be read"):
        await gateway.parse_events(webhook(completed_capture(id="CAP2", links=[up])))

    assert sandbox.calls("get_capture", path="/v2/payments/captures/CAP2") == 1
