"""The Stripe plugin through the reference app: its sandbox handle, the plugin configured for
the sandbox, a published sellpage to buy from.

These tests live with the project's because they need the app; the plugin's own suite
(``plugins/stripe/tests``) runs with core alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.settings import StripeSettings

from pixecom_core import hookimpl
from pixecom_core.providers import PaymentGateway
from pixecom_core.settings import Settings

SECRET_KEY = "sk_test_pixecom_fixture_key_4242"
WEBHOOK_SECRET = "whsec_fixture_current_0000000000000000"
PASSWORD = "correct horse battery staple"


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


def settings_for(url: str) -> StripeSettings:
    """The plugin's settings for the sandbox at ``url``."""
    return StripeSettings(
        api_base=url, secret_key=SECRET_KEY, webhook_secrets=[WEBHOOK_SECRET], timeout_seconds=5
    )


class StripeAtSandbox:
    """The Stripe plugin, configured for the sandbox."""

    def __init__(self, gateway: StripeGateway) -> None:
        self.gateway = gateway

    @hookimpl
    def pixecom_register_payment_gateways(self) -> list[PaymentGateway]:
        return [self.gateway]


async def published_sellpage(client: httpx.AsyncClient, settings: Settings) -> str:
    assert settings.admin_api_key is not None
    email = f"stripe-{uuid.uuid4().hex[:10]}@example.com"
    signup = await client.post(
        "/auth/signup",
        json={"seller_name": "Stripe shop", "email": email, "password": PASSWORD},
        headers={"X-Admin-Key": settings.admin_api_key.get_secret_value()},
    )
    assert signup.status_code == 201, signup.text
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    product = await client.post(
        "/products", json={"sku": f"S-{uuid.uuid4().hex[:8]}", "name": "Mug"}, headers=headers
    )
    await client.post(
        f"/products/{product.json()['id']}/prices",
        json={"price_minor": 5_000, "currency": "USD"},
        headers=headers,
    )
    slug = f"mug-{uuid.uuid4().hex[:8]}"
    page = await client.post(
        "/sellpages",
        json={"slug": slug, "title": "Mug", "product_id": product.json()["id"]},
        headers=headers,
    )
    await client.patch(
        f"/sellpages/{page.json()['id']}", json={"status": "PUBLISHED"}, headers=headers
    )
    return slug
