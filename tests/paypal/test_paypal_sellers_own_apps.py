"""PayPal through the reference app with sellers' own REST apps (issue 15): two sellers each
connect their app's credentials, each checkout is an order of the seller's own app, each
app notifies its own PixEcom address and its captures land in its seller's ledger only, a
notice addressed to the wrong seller is refused, and an API refund is made on the seller's
app. The PayPal plugin and its sandbox over real HTTP on loopback, as ``pixecom dev`` runs
them (webhooks checked through PayPal's verify-webhook-signature API), with single-account
mode off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.testing.loopback import LoopbackServer, serve
from reference_app.api import create_app

PASSWORD = "correct horse battery staple"


@dataclass
class World:
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    settings: Settings
    registry: ProviderRegistry


@pytest.fixture
async def world(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    from pixecom_paypal import plugin

    sandbox = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[plugin]))
    served = LoopbackServer(sandbox.sandbox("paypal").create_app())
    environment = sandbox.sandbox("paypal").environment
    assert environment is not None
    for name, value in environment(served.url, "http://127.0.0.1:9").items():
        monkeypatch.setenv(name, value)
    # A multi-seller deployment: no payment ever on the platform's own app.
    monkeypatch.setenv("PIXECOM_PAYPAL_PLATFORM_ACCOUNT_PAYMENTS", "false")
    manager = create_plugin_manager(load_entry_points=False, plugins=[plugin])
    with served:
        async with (
            serve(create_app(app_settings, plugin_manager=manager), lifespan="on") as api_url,
            httpx.AsyncClient(base_url=api_url, timeout=20) as api,
            httpx.AsyncClient(base_url=served.url, timeout=20) as control,
        ):
            # Sellers' apps notify their subscriptions as events happen, as PayPal does.
            (await control.post("/_sandbox/config", json={"auto_deliver": True})).raise_for_status()
            yield World(api, control, app_settings, ProviderRegistry(manager))


async def seller_with_app(world: World) -> tuple[dict[str, str], dict[str, Any], str]:
    """A seller who connected a new REST app of their own and published a sellpage."""
    assert world.settings.admin_api_key is not None
    email = f"paypal-{uuid.uuid4().hex[:10]}@example.com"
    signup = await world.api.post(
        "/auth/signup",
        json={"seller_name": "PayPal shop", "email": email, "password": PASSWORD},
        headers={"X-Admin-Key": world.settings.admin_api_key.get_secret_value()},
    )
    assert signup.status_code == 201, signup.text
    login = await world.api.post("/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    app = (await world.sandbox.post("/_sandbox/apps", json={"name": email})).json()
    connected = await world.api.post(
        "/payments/connections",
        json={
            "gateway": "paypal",
            "credentials": {"client_id": app["client_id"], "client_secret": app["client_secret"]},
        },
        headers=headers,
    )
    assert connected.status_code == 201, connected.text
    assert connected.json()["status"] == "ACTIVE"
    assert app["client_secret"] not in connected.text
    product = await world.api.post(
        "/products", json={"sku": f"P-{uuid.uuid4().hex[:8]}", "name": "Mug"}, headers=headers
    )
    await world.api.post(
        f"/products/{product.json()['id']}/prices",
        json={"price_minor": 2_500, "currency": "USD"},
        headers=headers,
    )
    slug = f"mug-{uuid.uuid4().hex[:8]}"
    page = await world.api.post(
        "/sellpages",
        json={
            "slug": slug,
            "title": "Mug",
            "product_id": product.json()["id"],
            "status": "PUBLISHED",
        },
        headers=headers,
    )
    assert page.status_code == 201, page.text
    return headers, {**app, "account_id": connected.json()["account_id"]}, slug


async def inbox_for(world: World) -> tuple[WebhookInbox, Any]:
    engine = create_engine(world.settings, role="app")
    sessions = create_sessionmaker(engine)
    inbox = WebhookInbox(
        sessions,
        world.settings,
        world.registry,
        Ledger(sessions, world.settings),
        connections=PaymentConnections.for_settings(sessions, world.settings, world.registry),
    )
    return inbox, engine


async def test_two_sellers_are_paid_and_notified_on_their_own_paypal_apps(
    world: World, database: TestDatabase
) -> None:
    alice_headers, alice_app, alice_slug = await seller_with_app(world)
    bob_headers, bob_app, bob_slug = await seller_with_app(world)
    orders = {}
    for name, slug in (("alice", alice_slug), ("bob", bob_slug)):
        placed = await world.api.post(
            f"/public/sellpages/{slug}/orders",
            json={
                "gateway": "paypal",
                "customer_email": "buyer@example.com",
                "quantity": 1,
                "return_url": "https://shop.example.com/ok",
                "cancel_url": "https://shop.example.com/cart",
            },
        )
        assert placed.status_code == 201, placed.text
        orders[name] = placed.json()
    # Each order is its seller's app's: the other app cannot see it.
    for name, app, other in (("alice", alice_app, bob_app), ("bob", bob_app, alice_app)):
        order_id = orders[name]["gateway_reference"]
        for owner, expected in ((app, 200), (other, 404)):
            token = await world.sandbox.post(
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(owner["client_id"], owner["client_secret"]),
            )
            seen = await world.sandbox.get(
                f"/v2/checkout/orders/{order_id}",
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            assert seen.status_code == expected, (name, seen.text)
        # The buyer pays; the seller's app notifies its own PixEcom address.
        captured = await world.sandbox.post(
            f"/_sandbox/orders/{order_id}/capture", json={"status": "COMPLETED"}
        )
        assert captured.status_code == 201, captured.text

    accounts = (alice_app["account_id"], bob_app["account_id"])
    # The sandbox delivers in the background: wait for both captures' notices to be stored
    # (other tests' deliveries may be in this database too).
    for _ in range(150):
        with psycopg.connect(database.owner_dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM webhook_inbox WHERE gateway = 'paypal'"
                " AND event_type = 'PAYMENT.CAPTURE.COMPLETED'"
                " AND headers->>'pixecom-account' IN (%s, %s)",
                accounts,
            ).fetchone()
        if row is not None and row[0] >= 2:
            break
        await asyncio.sleep(0.1)
    inbox, engine = await inbox_for(world)
    try:
        for inbox_id in await inbox.due():
            await inbox.process(inbox_id)
    finally:
        await engine.dispose()

    with psycopg.connect(database.owner_dsn) as conn:
        addressed = conn.execute(
            "SELECT DISTINCT headers->>'pixecom-account' FROM webhook_inbox"
            " WHERE gateway = 'paypal' AND headers->>'pixecom-account' IN (%s, %s)",
            (alice_app["account_id"], bob_app["account_id"]),
        ).fetchall()
    assert sorted(row[0] for row in addressed) == sorted(
        [alice_app["account_id"], bob_app["account_id"]]
    )
    for name, headers in (("alice", alice_headers), ("bob", bob_headers)):
        shown = await world.api.get(f"/orders/{orders[name]['order_id']}", headers=headers)
        assert shown.json()["status"] == "PAID", (name, shown.text)
        assert shown.json()["money"][0]["captured_minor"] == 2_500

    # Bob's app's genuine notice, sent to Alice's address, does not verify as Alice's; to
    # Bob's it is the delivery already stored.
    with psycopg.connect(database.owner_dsn) as conn:
        bob_event = conn.execute(
            "SELECT event_id FROM webhook_inbox WHERE gateway = 'paypal'"
            " AND headers->>'pixecom-account' = %s LIMIT 1",
            (bob_app["account_id"],),
        ).fetchone()
    assert bob_event is not None
    transmission = (
        await world.sandbox.post(
            "/_sandbox/webhooks/transmissions", json={"event_id": bob_event[0]}
        )
    ).json()
    sent = {"content": transmission["body"].encode(), "headers": transmission["headers"]}
    to_alice = await world.api.post(f"/webhooks/paypal/accounts/{alice_app['account_id']}", **sent)
    to_bob = await world.api.post(f"/webhooks/paypal/accounts/{bob_app['account_id']}", **sent)
    assert to_alice.status_code == 400, to_alice.text
    assert to_bob.status_code == 200 and to_bob.json()["duplicate"] is True

    # Alice refunds part of her order from the API: on her own app.
    refunded = await world.api.post(
        f"/orders/{orders['alice']['order_id']}/refunds",
        json={"amount_minor": 1_000, "reason": "late"},
        headers={**alice_headers, "Idempotency-Key": "alice-paypal-1"},
    )
    assert refunded.status_code == 202, refunded.text
    assert refunded.json()["status"] == "SUCCEEDED", refunded.text
    shown = await world.api.get(f"/orders/{orders['alice']['order_id']}", headers=alice_headers)
    assert shown.json()["money"][0]["refunded_minor"] == 1_000
