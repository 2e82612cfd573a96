"""``fakepay``: a minimal payment gateway plugin for core's ledger and inbox tests.

Core's tests run without any gateway distribution installed, so they use this one: its
deliveries are JSON carrying ready-made facts, signed with HMAC-SHA256 of the body in the
``x-fakepay-signature`` header. It is also importable by a worker process through
``PIXECOM_PLUGIN_MODULES=tests.ledger.fakepay``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from pixecom_core import hookimpl
from pixecom_core.providers import (
    DemoPayment,
    GatewayPaymentEvent,
    GatewayRefund,
    MerchantAccount,
    PaymentEventKind,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    ProviderRefused,
    ProviderTransientError,
    RefundRequest,
    RefundState,
    Sandbox,
    VerifiedWebhook,
    WebhookVerificationError,
)
from pixecom_core.providers.sandboxes import Receive, Scope, Send

IDENTIFIER = "fakepay"
SECRET = os.environ.get("PIXECOM_FAKEPAY_SECRET", "fakepay-test-secret").encode()
#: Seconds parse_events sleeps (set by a test that needs a delivery to take a while).
SLOW_PARSE_ENV = "PIXECOM_FAKEPAY_PARSE_SECONDS"


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def fact(
    payment: str,
    fact_reference: str,
    kind: PaymentEventKind,
    amount_minor: int,
    currency: str = "USD",
) -> dict[str, Any]:
    """One fact as a delivery carries it."""
    return {
        "payment": payment,
        "fact": fact_reference,
        "kind": kind.value,
        "amount_minor": amount_minor,
        "currency": currency,
    }


def delivery(
    facts: list[dict[str, Any]], *, event_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed delivery: (body, headers)."""
    body = json.dumps(
        {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": "fake.facts", "facts": facts}
    ).encode()
    return body, {"Content-Type": "application/json", "X-Fakepay-Signature": sign(body)}


class FakePayGateway:
    """Implements :class:`pixecom_core.providers.PaymentGateway` with no network at all."""

    identifier = IDENTIFIER
    display_name = "FakePay"
    webhook_headers = frozenset({"x-fakepay-signature"})

    def __init__(self) -> None:
        self.created: list[PaymentRequest] = []
        self.reset_refunds()

    def reset_refunds(self, answer: str = "succeeded", *, delay_seconds: float = 0.0) -> None:
        """Forget every refund; answer the next ones ``answer``: a :class:`RefundState`
        value, ``"refused"`` (``ProviderRefused``) or ``"timeout"``
        (``ProviderTransientError``, after creating the refund, as a lost answer would).

        Fakepay never bounds refunds itself, so tests see core's own bound."""
        self.refund_answer = answer
        self.refund_delay_seconds = delay_seconds
        self.refund_requests: list[RefundRequest] = []
        self.refunds: dict[str, GatewayRefund] = {}  # by idempotency key

    def settle_refund(self, reference: str, state: RefundState) -> None:
        """Move a refund to ``state``, as the gateway settling it later would."""
        for key, refund in self.refunds.items():
            if refund.refund_reference == reference:
                self.refunds[key] = refund.model_copy(update={"state": state})

    async def refund(self, request: RefundRequest) -> GatewayRefund:
        self.refund_requests.append(request)
        if self.refund_delay_seconds:
            await asyncio.sleep(self.refund_delay_seconds)
        if self.refund_answer == "refused":
            raise ProviderRefused("fakepay: the charge was disputed", provider=IDENTIFIER)
        refund = self.refunds.get(request.idempotency_key)
        if refund is None:
            answer = "succeeded" if self.refund_answer == "timeout" else self.refund_answer
            refund = GatewayRefund(
                gateway=IDENTIFIER,
                refund_reference=f"fprf_{uuid.uuid4().hex}",
                state=RefundState(answer),
                amount_minor=request.amount_minor,
                currency=request.currency,
                occurred_at=datetime.now(UTC),
                failure_reason="fakepay: declined" if answer == "failed" else None,
            )
            self.refunds[request.idempotency_key] = refund
        if self.refund_answer == "timeout":
            raise ProviderTransientError("fakepay: read timed out", provider=IDENTIFIER)
        return refund

    async def fetch_refund(
        self,
        *,
        payment_reference: str,  # noqa: ARG002 (the contract names it; fakepay needs only the refund)
        refund_reference: str,
        account: MerchantAccount | None = None,  # noqa: ARG002 (fakepay has no connections)
    ) -> GatewayRefund:
        for refund in self.refunds.values():
            if refund.refund_reference == refund_reference:
                return refund
        raise ProviderRefused(f"fakepay: no refund {refund_reference}", provider=IDENTIFIER)

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        self.created.append(request)
        return PaymentSession(
            gateway=IDENTIFIER,
            gateway_reference=f"fp_{request.idempotency_key.replace(':', '_')}",
            approval_url=f"https://fakepay.test/approve/{request.order_id}",
        )

    async def verify_webhook(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        account: MerchantAccount | None = None,  # noqa: ARG002 (fakepay has no connections)
    ) -> VerifiedWebhook:
        signature = headers.get("x-fakepay-signature", "")
        if not hmac.compare_digest(signature, sign(body)):
            raise WebhookVerificationError("bad fakepay signature", provider=IDENTIFIER)
        try:
            payload = json.loads(body)
            event_id = str(payload["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookVerificationError("not a fakepay delivery", provider=IDENTIFIER) from exc
        return VerifiedWebhook(
            gateway=IDENTIFIER,
            event_id=event_id,
            event_type=str(payload.get("type", "")),
            body=body,
            headers=dict(headers),
            received_at=datetime.now(UTC),
        )

    async def parse_events(
        self,
        webhook: VerifiedWebhook,
        *,
        account: MerchantAccount | None = None,  # noqa: ARG002 (fakepay has no connections)
    ) -> list[GatewayPaymentEvent]:
        delay = float(os.environ.get(SLOW_PARSE_ENV, "0") or 0)
        if delay:
            await asyncio.sleep(delay)
        payload = json.loads(webhook.body)
        return [
            GatewayPaymentEvent(
                gateway=IDENTIFIER,
                event_id=webhook.event_id,
                gateway_reference=item["payment"],
                fact_reference=item["fact"],
                kind=PaymentEventKind(item["kind"]),
                amount_minor=item["amount_minor"],
                currency=item["currency"],
                occurred_at=webhook.received_at,
            )
            for item in payload["facts"]
        ]


GATEWAY = FakePayGateway()


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def _request_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


#: ``POST /payments/{reference}/{capture|refund}`` with ``{"amount_minor", "currency"}``.
_PAYMENT_ACTIONS = {"capture": PaymentEventKind.CAPTURED, "refund": PaymentEventKind.REFUNDED}


async def _sandbox_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A small sandbox: ``GET /`` answers which API it sends webhooks to; ``POST
    /payments/{reference}/capture`` (or ``/refund``) delivers a signed fact about that
    payment to ``{api}/webhooks/fakepay``, as a real gateway's sandbox would, and answers
    with the API's status code."""
    if scope["type"] != "http":
        return
    api = os.environ.get(SANDBOX_API_ENV)
    parts = scope["path"].strip("/").split("/")
    if scope["method"] == "GET" and parts == [""]:
        await _answer(send, 200, {"sandbox": IDENTIFIER, "api": api})
        return
    if scope["method"] != "POST" or len(parts) != 3 or parts[0] != "payments":
        await _answer(send, 404, {"error": "not found"})
        return
    reference, action = parts[1], parts[2]
    try:
        kind = _PAYMENT_ACTIONS[action]
        request = json.loads(await _request_body(receive))
        amount, currency = int(request["amount_minor"]), str(request["currency"])
    except (KeyError, ValueError, TypeError):
        await _answer(send, 400, {"error": "expected {amount_minor, currency}"})
        return
    if api is None:
        await _answer(send, 409, {"error": f"{SANDBOX_API_ENV} is not set"})
        return
    reference_of_fact = f"{reference}:{action}:{uuid.uuid4().hex}"
    body, headers = delivery([fact(reference, reference_of_fact, kind, amount, currency)])
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                f"{api}/webhooks/{IDENTIFIER}", content=body, headers=headers
            )
    except httpx.TransportError as exc:
        # The API is unreachable (e.g. `pixecom dev` stopping): say so, as a gateway's
        # sandbox reports a failed delivery, instead of failing with a traceback.
        await _answer(send, 502, {"error": f"could not deliver the webhook: {exc!r}"})
        return
    await _answer(send, 200, {"status_code": answer.status_code})


class FakePayDemoPayments:
    """:class:`pixecom_core.providers.DemoPayments` for the fakepay sandbox at ``url``."""

    def __init__(self, url: str) -> None:
        self._client = httpx.AsyncClient(base_url=url, timeout=20)

    async def _act(self, reference: str, action: str, amount_minor: int, currency: str) -> None:
        answer = await self._client.post(
            f"/payments/{reference}/{action}",
            json={"amount_minor": amount_minor, "currency": currency},
        )
        answer.raise_for_status()
        delivered = answer.json()["status_code"]
        if delivered != 200:
            raise RuntimeError(f"the API answered the fakepay webhook with {delivered}")

    async def pay(self, payment: DemoPayment) -> None:
        await self._act(
            payment.gateway_reference, "capture", payment.amount_minor, payment.currency
        )

    async def refund(self, payment: DemoPayment, amount_minor: int) -> None:
        await self._act(payment.gateway_reference, "refund", amount_minor, payment.currency)

    async def aclose(self) -> None:
        await self._client.aclose()


#: Set by the dev deployment from the sandbox's ``environment``.
SANDBOX_API_ENV = "PIXECOM_FAKEPAY_SANDBOX_API"


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    return [GATEWAY]


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    return [
        Sandbox(
            name=IDENTIFIER,
            provider=IDENTIFIER,
            create_app=lambda: _sandbox_app,
            environment=lambda _sandbox_url, api_url: {SANDBOX_API_ENV: api_url},
            demo_payments=FakePayDemoPayments,
        )
    ]
