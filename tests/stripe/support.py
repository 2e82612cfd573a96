"""The Stripe plugin through the reference app: its sandbox handle, the plugin configured for
the sandbox, a published sellpage to buy from.

These tests live with the project's because they need the app; the plugin's own suite
(``plugins/stripe/tests``) runs with core alone.
"""

from __future__ import annotations

import uuid

import httpx
from pixecom_stripe.gateway import StripeGateway

from pixecom_core import hookimpl
from pixecom_core.providers import PaymentGateway
from pixecom_core.settings import Settings

PASSWORD = "correct horse battery staple"


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
