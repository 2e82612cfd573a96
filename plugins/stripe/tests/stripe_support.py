"""Helpers of the Stripe plugin's tests: the sandbox handle, signing events the way Stripe
does (sandboxes are served by ``pixecom_core.testing.loopback``)."""

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import signature_header
from pixecom_stripe.settings import StripeSettings

from pixecom_core.providers import GatewayPaymentEvent

SECRET_KEY = "sk_test_pixecom_fixture_key_4242"
WEBHOOK_SECRET = "whsec_fixture_current_0000000000000000"
OLD_WEBHOOK_SECRET = "whsec_fixture_previous_111111111111111"


@dataclass
class RunningSandbox:
    """A sandbox on loopback: ``url`` for the gateway, ``control`` for ``/_sandbox/`` calls
    and for Stripe API calls made as the account owner (``api``)."""

    url: str
    control: httpx.AsyncClient
    api: httpx.AsyncClient

    async def configure(self, **changes: Any) -> None:
        response = await self.control.post("/_sandbox/config", json=changes)
        response.raise_for_status()

    async def act(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a control endpoint (``payment_intents/pi_…/succeed`` …); return its object."""
        response = await self.control.post(f"/_sandbox/{path}", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        form = {"payment_intent": payment_intent}
        if amount is not None:
            form["amount"] = str(amount)
        response = await self.api.post("/v1/refunds", data=form)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events(self, *types: str) -> list[dict[str, Any]]:
        """Events the sandbox recorded, oldest first, optionally only of ``types``."""
        response = await self.control.get("/_sandbox/events")
        response.raise_for_status()
        events = []
        for event in response.json()["data"]:
            event.pop("delivered")
            if not types or event["type"] in types:
                events.append(event)
        return events


def settings_for(url: str, **overrides: Any) -> StripeSettings:
    values: dict[str, Any] = {
        "api_base": url,
        "secret_key": SECRET_KEY,
        "webhook_secrets": [WEBHOOK_SECRET],
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return StripeSettings(**values)


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


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request: a status, after a wait (longer than the
    sender's timeout: no answer in time)."""

    status_code: int = 200
    delay_seconds: float = 0.0


@dataclass
class Receiver:
    """A webhook endpoint on loopback that records what it receives (as it arrives) and
    answers the next requests as ``script`` says, then with ``status_code``."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status_code: int = 200
    script: list[Answer] = field(default_factory=list)

    def next_answer(self) -> Answer:
        return self.script.pop(0) if self.script else Answer(self.status_code)

    def events(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """The events received, in arrival order (only ``event_id``'s when given)."""
        received = [json.loads(body) for _, body in self.requests]
        return [e for e in received if event_id is None or e["id"] == event_id]
