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

from pixecom_core import hookimpl
from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentEventKind,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
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

    def __init__(self) -> None:
        self.created: list[PaymentRequest] = []

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        self.created.append(request)
        return PaymentSession(
            gateway=IDENTIFIER,
            gateway_reference=f"fp_{request.idempotency_key.replace(':', '_')}",
            approval_url=f"https://fakepay.test/approve/{request.order_id}",
        )

    async def verify_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> VerifiedWebhook:
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

    async def parse_events(self, webhook: VerifiedWebhook) -> list[GatewayPaymentEvent]:
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


async def _sandbox_app(scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG001
    """A one-route sandbox: answers which API it would send webhooks to."""
    if scope["type"] != "http":
        return
    body = json.dumps({"sandbox": IDENTIFIER, "api": os.environ.get(SANDBOX_API_ENV)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
        )
    ]
