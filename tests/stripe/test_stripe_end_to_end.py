"""Stripe end to end: two sellers connect their own Stripe accounts (Connect), checkout
through the reference app charges each on their own account, the sandbox's signed webhooks
are delivered over HTTP (duplicated, shuffled, one stale) and each lands in its seller's
ledger exactly once, a delivery about one seller's account naming another seller's payment
is refused, and a refund from the API is made on the seller's account.

Runs against real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else embedded) and the
Stripe sandbox on loopback; it lives with the project's tests because
it needs the reference app, which the plugin's own test environment does not install.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.testing import CONNECT_WEBHOOK_SECRET, RunningSandbox, settings_for

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from tests.stripe.support import StripeAtSandbox, stripe_seller


@pytest.fixture
async def api(
    app_settings: Settings, sandbox: RunningSandbox
) -> AsyncIterator[tuple[str, StripeGateway]]:
    """The reference app with the Stripe plugin, served on loopback (the sandbox must
    reach it over HTTP)."""
    # Connect only: a payment without the seller's account is refused by the plugin.
    gateway = StripeGateway(settings_for(sandbox.url, platform_account_payments=False))
    # Fresh ids: a seeded sandbox restarts its ids at each reset, and a connected account's
    # id must stay unique in this run's database as it is at Stripe.
    await sandbox.configure(seed=None)
    manager = create_plugin_manager(load_entry_points=False, plugins=[StripeAtSandbox(gateway)])
    app = create_app(app_settings, plugin_manager=manager)
    try:
        async with serve(app, lifespan="on") as url:
            yield url, gateway
    finally:
        await gateway.client.aclose()


def ledger_and_status(dsn: str, order_id: str) -> tuple[list[tuple[Any, ...]], str]:
    with psycopg.connect(dsn) as conn:
        facts = conn.execute(
            "SELECT event_type, amount_minor FROM payment_events WHERE order_id = %s"
            " ORDER BY event_type",
            (order_id,),
        ).fetchall()
        status = conn.execute("SELECT status FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert status is not None
    return facts, str(status[0])


def sign_connect(body: bytes) -> str:
    """A ``Stripe-Signature`` for ``body`` under the Connect endpoint's secret, made now
    (Stripe's scheme: HMAC-SHA256 of ``"{t}.{body}"``)."""
    timestamp = int(time.time())
    digest = hmac.new(
        CONNECT_WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


async def test_two_sellers_are_each_paid_and_refunded_on_their_own_stripe_account(
    api: tuple[str, StripeGateway],
    app_settings: Settings,
    sandbox: RunningSandbox,
    database: TestDatabase,
) -> None:
    base_url, gateway = api
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        alice = await stripe_seller(client, app_settings)
        bob = await stripe_seller(client, app_settings)
        orders = {}
        for seller, quantity in ((alice, 2), (bob, 1)):
            placed = await client.post(
                f"/public/sellpages/{seller.slug}/orders",
                json={
                    "gateway": "stripe",
                    "customer_email": "buyer@example.com",
                    "quantity": quantity,
                    "return_url": "https://shop.example.com/ok",
                    "cancel_url": "https://shop.example.com/cart",
                },
            )
            assert placed.status_code == 201, placed.text
            orders[seller.account_id] = placed.json()
        alice_order, bob_order = orders[alice.account_id], orders[bob.account_id]
        # Each PaymentIntent lives on its seller's account: not the platform's, not the other's.
        for seller, order in ((alice, alice_order), (bob, bob_order)):
            intent = f"/v1/payment_intents/{order['gateway_reference']}"
            own = await sandbox.api.get(intent, headers={"Stripe-Account": seller.account_id})
            other = alice if seller is bob else bob
            elsewhere = await sandbox.api.get(intent, headers={"Stripe-Account": other.account_id})
            platform = await sandbox.api.get(intent)
            assert own.status_code == 200, own.text
            assert (elsewhere.status_code, platform.status_code) == (404, 404)
            await sandbox.act(f"payment_intents/{order['gateway_reference']}/succeed")

        webhook_url = f"{base_url}/webhooks/stripe"
        # A replayed old delivery is refused before anything is stored.
        stale = await sandbox.control.post(
            "/_sandbox/deliver",
            json={"url": webhook_url, "signing": {"timestamp_offset_seconds": -3_600}},
        )
        assert {d["status_code"] for d in stale.json()["deliveries"]} == {400}
        # Stripe delivers at least once and in any order.
        delivered = await sandbox.control.post(
            "/_sandbox/deliver",
            json={
                "url": webhook_url,
                "include_delivered": True,
                "duplicates": 1,
                "shuffle": True,
                "seed": 3,
            },
        )
        assert {d["status_code"] for d in delivered.json()["deliveries"]} == {200}
        # A delivery about Alice's account naming Bob's payment (signed with the Connect
        # secret, so only the account check can stop it).
        [bob_paid] = [
            event
            for event in await sandbox.events("payment_intent.succeeded")
            if event["account"] == bob.account_id
        ]
        forged = dict(bob_paid, id=f"evt_forged_{uuid.uuid4().hex[:12]}", account=alice.account_id)
        body = json.dumps(forged).encode()
        stored = await client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Content-Type": "application/json", "Stripe-Signature": sign_connect(body)},
        )
        assert stored.status_code == 200, stored.text

        engine = create_engine(app_settings, role="app")
        try:
            sessions = create_sessionmaker(engine)
            registry = ProviderRegistry(
                create_plugin_manager(load_entry_points=False, plugins=[StripeAtSandbox(gateway)])
            )
            inbox = WebhookInbox(
                sessions,
                app_settings,
                registry,
                Ledger(sessions, app_settings),
                connections=PaymentConnections.for_settings(sessions, app_settings, registry),
            )
            for inbox_id in await inbox.due():
                await inbox.process(inbox_id)
        finally:
            await engine.dispose()

        # Alice refunds part of her order from the API: on her account, recorded once.
        refunded = await client.post(
            f"/orders/{alice_order['order_id']}/refunds",
            json={"amount_minor": 1_500, "reason": "chipped"},
            headers={**alice.headers, "Idempotency-Key": "alice-refund-1"},
        )
        assert refunded.status_code == 202, refunded.text
        assert refunded.json()["status"] == "SUCCEEDED"
        refund_id = refunded.json()["gateway_reference"]
        on_alice = await sandbox.api.get(
            f"/v1/refunds/{refund_id}", headers={"Stripe-Account": alice.account_id}
        )
        assert on_alice.status_code == 200, on_alice.text

    assert ledger_and_status(database.owner_dsn, alice_order["order_id"]) == (
        [("CAPTURED", 10_000), ("REFUNDED", 1_500)],
        "PARTIALLY_REFUNDED",
    )
    assert ledger_and_status(database.owner_dsn, bob_order["order_id"]) == (
        [("CAPTURED", 5_000)],
        "PAID",
    )
    with psycopg.connect(database.owner_dsn) as conn:
        refused = conn.execute(
            "SELECT status, last_error FROM webhook_inbox WHERE event_id = %s", (forged["id"],)
        ).fetchone()
    assert refused is not None and refused[0] == "FAILED"
    assert "never connected that account" in str(refused[1])


async def test_a_seller_who_removes_the_platform_at_stripe_can_no_longer_be_paid(
    api: tuple[str, StripeGateway],
    app_settings: Settings,
    sandbox: RunningSandbox,
) -> None:
    base_url, gateway = api
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        seller = await stripe_seller(client, app_settings)
        order = {
            "gateway": "stripe",
            "customer_email": "buyer@example.com",
            "quantity": 1,
            "return_url": "https://shop.example.com/ok",
            "cancel_url": "https://shop.example.com/cart",
        }
        before = await client.post(f"/public/sellpages/{seller.slug}/orders", json=order)
        # The seller removes PixEcom from their Stripe Dashboard: Stripe sends
        # account.application.deauthorized to the Connect endpoint.
        await sandbox.act(f"accounts/{seller.account_id}/deauthorize")
        delivered = await sandbox.control.post(
            "/_sandbox/deliver", json={"url": f"{base_url}/webhooks/stripe"}
        )
        assert {d["status_code"] for d in delivered.json()["deliveries"]} == {200}

        engine = create_engine(app_settings, role="app")
        try:
            sessions = create_sessionmaker(engine)
            registry = ProviderRegistry(
                create_plugin_manager(load_entry_points=False, plugins=[StripeAtSandbox(gateway)])
            )
            inbox = WebhookInbox(
                sessions,
                app_settings,
                registry,
                Ledger(sessions, app_settings),
                connections=PaymentConnections.for_settings(sessions, app_settings, registry),
            )
            for inbox_id in await inbox.due():
                await inbox.process(inbox_id)
        finally:
            await engine.dispose()

        after = await client.post(f"/public/sellpages/{seller.slug}/orders", json=order)
        connections = await client.get("/payments/connections", headers=seller.headers)
        problems = await client.get("/problems", headers=seller.headers)

    assert before.status_code == 201, before.text
    assert after.status_code == 409, after.text
    assert after.json()["error"]["code"] == "payment_connection_required"
    assert [(c["status"], c["account_id"]) for c in connections.json()] == [
        ("REVOKED", seller.account_id)
    ]
    assert [(p["kind"], p["state"]) for p in problems.json()["items"]] == [
        ("payment_connection", "revoked")
    ]
