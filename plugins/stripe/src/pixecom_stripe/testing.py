"""The Stripe sandbox from a test's side: its keys, a handle, and the plugin set up for it.

Shared by the plugin's own suite (core only) and the project's tests that drive the plugin
through the reference app, so both speak to the sandbox the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from pixecom_core.providers.http import shared_ssl_context
from pixecom_stripe.settings import StripeSettings

#: The sandbox account's secret key and webhook signing secret in tests.
SECRET_KEY = "sk_test_pixecom_fixture_key_4242"
WEBHOOK_SECRET = "whsec_fixture_current_0000000000000000"
#: The platform's Connect client id and its Connect endpoint's signing secret in tests.
CONNECT_CLIENT_ID = "ca_pixecom_fixture_platform"
CONNECT_WEBHOOK_SECRET = "whsec_fixture_connect_000000000000000"


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

    async def inject(self, kind: str, **fault: Any) -> None:
        """Queue a fault (``POST /_sandbox/faults``): the next ``times`` API calls fail."""
        response = await self.control.post("/_sandbox/faults", json={"kind": kind, **fault})
        response.raise_for_status()

    async def act(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a control endpoint (``payment_intents/pi_…/succeed`` …); return its object."""
        response = await self.control.post(f"/_sandbox/{path}", json=body)
        if response.status_code != 200:
            raise AssertionError(f"{path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        form = {"payment_intent": payment_intent}
        if amount is not None:
            form["amount"] = str(amount)
        response = await self.api.post("/v1/refunds", data=form)
        if response.status_code != 200:
            raise AssertionError(f"refund: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def events(self, *types: str) -> list[dict[str, Any]]:
        """Events the sandbox recorded, oldest first, optionally only of ``types``, as their
        deliveries send them."""
        response = await self.control.get("/_sandbox/events")
        response.raise_for_status()
        events = []
        for listed in response.json()["data"]:
            if not types or listed["type"] in types:
                sent = await self.control.get(f"/_sandbox/events/{listed['id']}")
                sent.raise_for_status()
                events.append(sent.json())
        return events


@asynccontextmanager
async def running_sandbox(url: str) -> AsyncIterator[RunningSandbox]:
    """The sandbox at ``url``, reset to its starting configuration with no objects or
    events, with its two clients open for the block."""
    tls = shared_ssl_context()
    async with (
        httpx.AsyncClient(base_url=url, timeout=10, verify=tls) as control,
        httpx.AsyncClient(
            base_url=url,
            timeout=10,
            verify=tls,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        ) as api,
    ):
        (await control.post("/_sandbox/reset")).raise_for_status()
        yield RunningSandbox(url=url, control=control, api=api)


def settings_for(url: str, **overrides: Any) -> StripeSettings:
    """The plugin's settings for the sandbox at ``url`` (API and Connect OAuth), in
    single-account mode (``platform_account_payments``) unless ``overrides`` say not."""
    values: dict[str, Any] = {
        "api_base": url,
        "connect_base": url,
        "secret_key": SECRET_KEY,
        "webhook_secrets": [WEBHOOK_SECRET],
        "connect_client_id": CONNECT_CLIENT_ID,
        "connect_webhook_secrets": [CONNECT_WEBHOOK_SECRET],
        "platform_account_payments": True,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return StripeSettings(**values)
