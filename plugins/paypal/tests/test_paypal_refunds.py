"""Refunds through the gateway against the sandbox: what reaches PayPal, what comes back, and
PayPal's refusals and failures as core's error classes."""

import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.client import PayPalAPIError
from pixecom_paypal.gateway import PayPalGateway
from pixecom_paypal.sandbox import LoopbackTLS

from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentEventKind,
    PaymentRequest,
    ProviderAuthError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
    RefundRequest,
    RefundState,
    VerifiedWebhook,
)
from pixecom_core.testing.sandbox_kit import WebhookReceiver


@dataclass(frozen=True)
class Paid:
    """A captured PayPal payment: the order (core's payment reference), the capture."""

    order_reference: str
    capture_id: str
    order_id: uuid.UUID
    currency: str


async def paid(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    *,
    amount_minor: int = 1999,
    currency: str = "USD",
) -> Paid:
    order_id = uuid.uuid4()
    session = await gateway.create_payment(
        PaymentRequest(
            idempotency_key=f"pay-{uuid.uuid4()}",
            seller_id=uuid.uuid4(),
            order_id=order_id,
            amount_minor=amount_minor,
            currency=currency,
            return_url="https://shop.example/paid",
            cancel_url="https://shop.example/cancelled",
        )
    )
    capture_id = sandbox.capture(session.gateway_reference)
    return Paid(session.gateway_reference, capture_id, order_id, currency)


def refund_request(
    payment: Paid,
    amount_minor: int,
    *,
    idempotency_key: str | None = None,
    reason: str | None = "Arrived broken",
) -> RefundRequest:
    return RefundRequest(
        idempotency_key=idempotency_key or f"refund-{uuid.uuid4()}",
        seller_id=uuid.uuid4(),
        order_id=payment.order_id,
        refund_id=uuid.uuid4(),
        payment_reference=payment.order_reference,
        capture_reference=payment.capture_id,
        amount_minor=amount_minor,
        currency=payment.currency,
        reason=reason,
    )


def recording_client(
    sandbox: SandboxControl, loopback_tls: LoopbackTLS, sent: list[httpx.Request]
) -> httpx.AsyncClient:
    """An httpx client on the sandbox that keeps every request it sends, as sent."""

    async def keep(request: httpx.Request) -> None:
        await request.aread()
        sent.append(request)

    return httpx.AsyncClient(
        base_url=sandbox.url,
        verify=ssl.create_default_context(cafile=str(loopback_tls.ca_file)),
        event_hooks={"request": [keep]},
    )


# -- refunds that go through ---------------------------------------------------------------


async def test_a_partial_refund_then_the_rest(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)

    first = await gateway.refund(refund_request(payment, 500))
    rest = await gateway.refund(refund_request(payment, 1499))

    assert (first.gateway, first.state) == ("paypal", RefundState.SUCCEEDED)
    assert (first.amount_minor, first.currency) == (500, "USD")
    assert (rest.state, rest.amount_minor) == (RefundState.SUCCEEDED, 1499)
    assert first.refund_reference != rest.refund_reference
    assert first.failure_reason is None
    refunds = sandbox.state.refunds
    assert set(refunds) == {first.refund_reference, rest.refund_reference}
    assert refunds[first.refund_reference]["amount"] == {"currency_code": "USD", "value": "5.00"}
    assert sandbox.state.captures[payment.capture_id]["status"] == "REFUNDED"


async def test_the_refund_carries_core_ids_and_the_reason(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    request = refund_request(payment, 700, reason="x" * 400)

    answer = await gateway.refund(request)

    refund = sandbox.state.refunds[answer.refund_reference]
    assert refund["custom_id"] == str(payment.order_id)  # the webhook names the order
    assert refund["invoice_id"] == str(request.refund_id)
    assert refund["note_to_payer"] == "x" * 255  # PayPal's limit
    created = refund["create_time"].replace("Z", "+00:00")
    assert answer.occurred_at.isoformat() == created


@pytest.mark.parametrize(
    ("currency", "amount_minor", "refund_minor", "value"),
    [("USD", 1999, 5, "0.05"), ("JPY", 2000, 1500, "1500"), ("KWD", 12345, 1005, "1.005")],
)
async def test_the_wire_request_has_the_key_and_paypals_decimal_amount(
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
    loopback_tls: LoopbackTLS,
    currency: str,
    amount_minor: int,
    refund_minor: int,
    value: str,
) -> None:
    sent: list[httpx.Request] = []
    async with recording_client(sandbox, loopback_tls, sent) as http:
        gateway = PayPalGateway(make_gateway().settings, http=http)
        payment = await paid(gateway, sandbox, amount_minor=amount_minor, currency=currency)
        request = refund_request(payment, refund_minor, idempotency_key=f"key-{currency}")

        answer = await gateway.refund(request)

    [wire] = [r for r in sent if r.url.path.endswith("/refund")]
    assert wire.method == "POST"
    assert wire.url.path == f"/v2/payments/captures/{payment.capture_id}/refund"
    assert wire.headers["paypal-request-id"] == f"key-{currency}"
    assert wire.headers["prefer"] == "return=representation"
    assert json.loads(wire.content) == {
        "amount": {"currency_code": currency, "value": value},
        "custom_id": str(payment.order_id),
        "invoice_id": str(request.refund_id),
        "note_to_payer": "Arrived broken",
    }
    assert (answer.amount_minor, answer.currency) == (refund_minor, currency)


async def test_a_minimal_answer_is_completed_by_reading_the_refund(
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
    loopback_tls: LoopbackTLS,
) -> None:
    # PayPal answers id, status and links only unless asked for the representation.
    async def no_prefer(request: httpx.Request) -> None:
        request.headers.pop("prefer", None)

    async with httpx.AsyncClient(
        base_url=sandbox.url,
        verify=ssl.create_default_context(cafile=str(loopback_tls.ca_file)),
        event_hooks={"request": [no_prefer]},
    ) as http:
        gateway = PayPalGateway(make_gateway().settings, http=http)
        payment = await paid(gateway, sandbox)

        answer = await gateway.refund(refund_request(payment, 250))

    assert (answer.state, answer.amount_minor, answer.currency) == (
        RefundState.SUCCEEDED,
        250,
        "USD",
    )
    assert sandbox.calls("get_refund", path=f"/v2/payments/refunds/{answer.refund_reference}")


# -- idempotency ---------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_is_the_same_refund(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    request = refund_request(payment, 900, idempotency_key="refund-once")

    first = await gateway.refund(request)
    again = await gateway.refund(request)

    assert again == first
    assert list(sandbox.state.refunds) == [first.refund_reference]
    assert sandbox.calls("refund_capture") == 2
    assert [e["type"] for e in sandbox.events()].count("PAYMENT.CAPTURE.REFUNDED") == 1


async def test_a_refund_retried_after_a_timeout_refunds_once(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    gateway = make_gateway(timeout_seconds=0.3)
    payment = await paid(gateway, sandbox)
    request = refund_request(payment, 1999, idempotency_key="slow-refund")
    sandbox.configure(latency_seconds=0.8)

    with pytest.raises(ProviderTransientError, match="did not answer POST"):
        await gateway.refund(request)
    deadline = time.monotonic() + 10
    while not sandbox.state.refunds:  # PayPal made the refund after the client gave up
        assert time.monotonic() < deadline, "the sandbox never processed the slow refund"
        time.sleep(0.05)
    [made] = sandbox.state.refunds
    sandbox.configure(latency_seconds=0)

    retried = await gateway.refund(request)

    assert retried.refund_reference == made
    assert list(sandbox.state.refunds) == [made]


async def test_a_key_longer_than_paypal_takes_still_deduplicates(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    request = refund_request(payment, 100, idempotency_key="k" * 255)

    first = await gateway.refund(request)
    again = await gateway.refund(request)

    assert again.refund_reference == first.refund_reference
    assert len(sandbox.state.refunds) == 1


# -- PayPal's refusals ----------------------------------------------------------------------


async def test_more_than_is_left_is_refused_with_paypals_issue(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    await gateway.refund(refund_request(payment, 1500))

    with pytest.raises(ProviderRefused) as raised:
        await gateway.refund(refund_request(payment, 500))

    message = str(raised.value)
    assert "REFUND_AMOUNT_EXCEEDED" in message
    assert "less than or equal to the capture amount that has not yet been refunded" in message
    assert "5.00 USD" in message and payment.capture_id in message
    assert raised.value.provider == "paypal"
    cause = raised.value.__cause__
    assert isinstance(cause, PayPalAPIError) and cause.status_code == 422
    assert len(sandbox.state.refunds) == 1


async def test_a_fully_refunded_capture_is_refused(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    await gateway.refund(refund_request(payment, 1999))

    with pytest.raises(ProviderRefused, match="CAPTURE_FULLY_REFUNDED"):
        await gateway.refund(refund_request(payment, 1))


async def test_an_unknown_capture_is_refused(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = Paid("NO-SUCH-ORDER", "NO-SUCH-CAPTURE", uuid.uuid4(), "USD")

    with pytest.raises(ProviderRefused, match="INVALID_RESOURCE_ID"):
        await gateway.refund(refund_request(payment, 100))

    assert sandbox.calls("refund_capture") == 1


async def test_a_fraction_paypal_cannot_take_is_refused_before_calling(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox, amount_minor=150000, currency="HUF")

    with pytest.raises(ProviderRefused, match="whole units"):
        await gateway.refund(refund_request(payment, 150050))

    assert sandbox.calls("refund_capture") == 0


# -- failures that are not refusals ---------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_transient_and_the_retry_refunds_once(
    gateway: PayPalGateway, sandbox: SandboxControl, status: int
) -> None:
    payment = await paid(gateway, sandbox)
    request = refund_request(payment, 300)
    sandbox.fault("transient", "refund_capture", status=status)

    with pytest.raises(ProviderTransientError, match=f"with {status}") as raised:
        await gateway.refund(request)
    assert not isinstance(raised.value, ProviderRefused)
    answer = await gateway.refund(request)

    assert list(sandbox.state.refunds) == [answer.refund_reference]


async def test_a_rate_limit_is_throttled(gateway: PayPalGateway, sandbox: SandboxControl) -> None:
    payment = await paid(gateway, sandbox)
    sandbox.fault("throttled", "refund_capture", retry_after_seconds=3)

    with pytest.raises(ProviderThrottled) as raised:
        await gateway.refund(refund_request(payment, 300))

    assert raised.value.retry_after_seconds == 3.0
    assert sandbox.state.refunds == {}


async def test_refused_credentials_are_an_auth_error(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    payment = await paid(make_gateway(), sandbox)
    wrong = make_gateway(client_secret="not-the-secret")

    with pytest.raises(ProviderAuthError, match="invalid_client"):
        await wrong.refund(refund_request(payment, 300))

    assert sandbox.calls("refund_capture") == 0


async def test_a_token_refused_twice_is_an_auth_error(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    sandbox.fault("auth", "refund_capture", times=2)

    with pytest.raises(ProviderAuthError):
        await gateway.refund(refund_request(payment, 300))

    assert sandbox.state.refunds == {}


async def test_a_refund_the_app_may_not_make_is_an_auth_error(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    payment = await paid(gateway, sandbox)
    sandbox.fault("not_authorized", "refund_capture")

    with pytest.raises(ProviderAuthError, match="NOT_AUTHORIZED"):
        await gateway.refund(refund_request(payment, 300))


# -- pending refunds, fetched later ---------------------------------------------------------


async def refund_events(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: tuple[str, WebhookReceiver]
) -> list[GatewayPaymentEvent]:
    """Deliver the sandbox's pending events; the REFUNDED facts they parse into."""
    url, recorder = receiver
    sandbox.deliver(url=url)
    events: list[GatewayPaymentEvent] = []
    for received in recorder.received:
        webhook = await gateway.verify_webhook(body=received.body, headers=received.headers)
        events += await gateway.parse_events(webhook)
    recorder.received.clear()
    return [event for event in events if event.kind is PaymentEventKind.REFUNDED]


async def test_a_pending_refund_is_fetched_until_it_completes(
    gateway: PayPalGateway, sandbox: SandboxControl, receiver: tuple[str, WebhookReceiver]
) -> None:
    payment = await paid(gateway, sandbox)
    await refund_events(gateway, sandbox, receiver)  # the capture's own events
    sandbox.configure(refund_status="PENDING")

    answer = await gateway.refund(refund_request(payment, 800))
    pending = await gateway.fetch_refund(
        payment_reference=payment.order_reference, refund_reference=answer.refund_reference
    )
    assert (answer.state, pending.state) == (RefundState.PENDING, RefundState.PENDING)
    assert await refund_events(gateway, sandbox, receiver) == []
    with pytest.raises(ProviderRefused, match="REFUND_AMOUNT_EXCEEDED"):
        await gateway.refund(refund_request(payment, 1999 - 800 + 1))  # pending money is held

    sandbox.call("POST", f"/refunds/{answer.refund_reference}/settle", json={})
    done = await gateway.fetch_refund(
        payment_reference=payment.order_reference, refund_reference=answer.refund_reference
    )

    assert (done.state, done.amount_minor, done.currency) == (RefundState.SUCCEEDED, 800, "USD")
    assert done.refund_reference == answer.refund_reference
    [event] = await refund_events(gateway, sandbox, receiver)
    assert (event.fact_reference, event.gateway_reference, event.amount_minor) == (
        answer.refund_reference,
        payment.order_reference,
        800,
    )
    assert event.order_reference == str(payment.order_id)


@pytest.mark.parametrize(
    ("status", "reason"), [("FAILED", "FAILED (ECHECK)"), ("CANCELLED", "CANCELLED")]
)
async def test_a_pending_refund_that_fails_frees_its_amount(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    receiver: tuple[str, WebhookReceiver],
    status: str,
    reason: str,
) -> None:
    payment = await paid(gateway, sandbox)
    await refund_events(gateway, sandbox, receiver)
    sandbox.configure(refund_status="PENDING")
    answer = await gateway.refund(refund_request(payment, 1999))

    sandbox.call("POST", f"/refunds/{answer.refund_reference}/settle", json={"status": status})
    failed = await gateway.fetch_refund(
        payment_reference=payment.order_reference, refund_reference=answer.refund_reference
    )

    assert (failed.state, failed.failure_reason) == (RefundState.FAILED, reason)
    assert await refund_events(gateway, sandbox, receiver) == []
    sandbox.configure(refund_status="COMPLETED")
    again = await gateway.refund(refund_request(payment, 1999))
    assert again.state is RefundState.SUCCEEDED


async def test_fetching_an_unknown_refund_is_an_error_not_a_refusal(
    gateway: PayPalGateway,
) -> None:
    with pytest.raises(PayPalAPIError, match="RESOURCE_NOT_FOUND") as raised:
        await gateway.fetch_refund(payment_reference="ANY", refund_reference="NO-SUCH-REFUND")

    assert not isinstance(raised.value, ProviderRefused | ProviderTransientError)


async def test_fetching_when_paypal_is_down_is_transient(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("transient", "get_refund")

    with pytest.raises(ProviderTransientError):
        await gateway.fetch_refund(payment_reference="ANY", refund_reference="ANY")


async def test_a_pending_refund_announced_by_paypal_is_no_fact_yet(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    # PayPal documents no event for a pending refund; should one arrive, it moves no money.
    payment = await paid(gateway, sandbox)
    body = {
        "id": "WH-PENDING",
        "event_type": "PAYMENT.CAPTURE.REFUNDED",
        "resource": {
            "id": "PENDINGREFUND1",
            "status": "PENDING",
            "status_details": {"reason": "ECHECK"},
            "amount": {"currency_code": "USD", "value": "1.00"},
            "create_time": "2026-01-01T00:00:00Z",
            "links": [
                {
                    "href": f"{sandbox.url}/v2/payments/captures/{payment.capture_id}",
                    "rel": "up",
                }
            ],
        },
    }
    raw = json.dumps(body).encode()
    webhook = VerifiedWebhook(
        gateway="paypal",
        event_id="WH-PENDING",
        event_type="PAYMENT.CAPTURE.REFUNDED",
        body=raw,
        headers={},
        received_at="2026-01-01T00:00:01Z",
    )

    assert await gateway.parse_events(webhook) == []
