"""The Stripe plugin through the reference app: its sandbox handle, the plugin configured for
the sandbox, a seller who connected their own Stripe account (Connect, through the
sandbox's consent page) and a published sellpage to buy from.

These tests live with the project's because they need the app; the plugin's own suite
(``plugins/stripe/tests``) runs with core alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox_connect import approve_consent

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


@dataclass(frozen=True)
class StripeSeller:
    """A seller with a published sellpage, paid into their own connected Stripe account."""

    headers: dict[str, str]
    account_id: str
    slug: str


async def connect_stripe(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """Connect a new Stripe account for the seller through Connect's consent page (the
    sandbox's), as the seller would from the dashboard; return its ``acct_…``."""
    started = await client.post(
        "/payments/connections", json={"gateway": "stripe"}, headers=headers
    )
    assert started.status_code == 201, started.text
    callback = await approve_consent(started.json()["authorization_url"])
    back = await client.get(callback, headers=headers)
    assert back.status_code == 303, back.text
    listed = await client.get("/payments/connections", headers=headers)
    [active] = [c for c in listed.json() if c["status"] == "ACTIVE"]
    account_id: str = active["account_id"]
    assert account_id.startswith("acct_")
    return account_id


async def published_sellpage(client: httpx.AsyncClient, settings: Settings) -> str:
    """A new seller's published sellpage, paid into their own connected Stripe account."""
    return (await stripe_seller(client, settings)).slug


async def stripe_seller(client: httpx.AsyncClient, settings: Settings) -> StripeSeller:
    """A new seller who connected their own Stripe account and published a sellpage."""
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
    refused = await client.patch(
        f"/sellpages/{page.json()['id']}", json={"status": "PUBLISHED"}, headers=headers
    )
    assert refused.status_code == 409, refused.text  # no Stripe account connected yet
    account_id = await connect_stripe(client, headers)
    published = await client.patch(
        f"/sellpages/{page.json()['id']}", json={"status": "PUBLISHED"}, headers=headers
    )
    assert published.status_code == 200, published.text
    return StripeSeller(headers=headers, account_id=account_id, slug=slug)
