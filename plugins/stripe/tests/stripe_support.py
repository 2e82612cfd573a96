"""Helpers of the Stripe plugin's tests: the sandbox handle, signing events the way Stripe
does (sandboxes are served by ``pixecom_core.testing.loopback``)."""

import json
from typing import Any

from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import signature_header
from pixecom_stripe.testing import (
    CONNECT_CLIENT_ID,
    CONNECT_WEBHOOK_SECRET,
    SECRET_KEY,
    WEBHOOK_SECRET,
    RunningSandbox,
    settings_for,
)

from pixecom_core.providers import GatewayPaymentEvent
from pixecom_core.testing.sandbox_kit import WebhookReceiver

OLD_WEBHOOK_SECRET = "whsec_fixture_previous_111111111111111"

__all__ = [
    "CONNECT_CLIENT_ID",
    "CONNECT_WEBHOOK_SECRET",
    "SECRET_KEY",
    "WEBHOOK_SECRET",
    "RunningSandbox",
    "settings_for",
]


def signed(event: dict[str, Any], *secrets: str, timestamp: int | None = None) -> tuple[bytes, str]:
    """``event`` as Stripe sends it: pretty-printed JSON and its Stripe-Signature."""
    payload = json.dumps(event, indent=2)
    header = signature_header(payload, secrets or (WEBHOOK_SECRET,), timestamp=timestamp)
    return payload.encode("utf-8"), header


async def facts_of(gateway: StripeGateway, event: dict[str, Any]) -> list[GatewayPaymentEvent]:
    """Sign ``event``, verify it through the gateway and parse it: the path core takes."""
    body, header = signed(event)
    webhook = await gateway.verify_webhook(body=body, headers={"stripe-signature": header})
    return await gateway.parse_events(webhook)


def received_events(receiver: WebhookReceiver, event_id: str | None = None) -> list[Any]:
    """The events ``receiver`` got, in arrival order (only ``event_id``'s when given)."""
    received = [json.loads(webhook.body) for webhook in receiver.received]
    return [e for e in received if event_id is None or e["id"] == event_id]
