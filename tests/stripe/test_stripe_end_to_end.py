"""Stripe end to end: checkout through the reference app, the sandbox's signed webhooks
delivered over HTTP (duplicated, shuffled, one stale), facts recorded exactly once.

Runs against real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else embedded) and the
Stripe sandbox on loopback; it lives with the project's tests because
it needs the reference app, which the plugin's own test environment does not install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.testing import RunningSandbox, settings_for

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from tests.stripe.support import StripeAtSandbox, published_sellpage


@pytest.fixture
async def api(
    app_settings: Settings, sandbox: RunningSandbox
) -> AsyncIterator[tuple[str, StripeGateway]]:
    """The reference app with the Stripe plugin, served on loopback (the sandbox must
    reach it over HTTP)."""
    gateway = StripeGateway(settings_for(sandbox.url))
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


async def test_checkout_capture_refund_through_signed_webhooks(
    api: tuple[str, StripeGateway],
    app_settings: Settings,
    sandbox: RunningSandbox,
    database: TestDatabase,
) -> None:
    base_url, gateway = api
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        slug = await published_sellpage(client, app_settings)
        placed = await client.post(
            f"/public/sellpages/{slug}/orders",
            json={
                "gateway": "stripe",
                "customer_email": "buyer@example.com",
                "quantity": 2,
                "return_url": "https://shop.example.com/ok",
                "cancel_url": "https://shop.example.com/cart",
            },
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["gateway_reference"].startswith("pi_") and order["client_secret"]

        await sandbox.act(f"payment_intents/{order['gateway_reference']}/succeed")
        await sandbox.refund(order["gateway_reference"], amount=1_500)
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

    engine = create_engine(app_settings, role="app")
    try:
        sessions = create_sessionmaker(engine)
        manager = create_plugin_manager(load_entry_points=False, plugins=[StripeAtSandbox(gateway)])
        inbox = WebhookInbox(
            sessions, app_settings, ProviderRegistry(manager), Ledger(sessions, app_settings)
        )
        for inbox_id in await inbox.due():
            await inbox.process(inbox_id)
    finally:
        await engine.dispose()

    facts, status = ledger_and_status(database.owner_dsn, order["order_id"])
    assert facts == [("CAPTURED", 10_000), ("REFUNDED", 1_500)]
    assert status == "PARTIALLY_REFUNDED"
