"""``pixecom dev``'s demo shopper paying with Stripe: checkout through the reference app,
payment and partial refund at the sandbox (through the plugin's ``demo_payments``), Stripe's
signed webhooks delivered to the API over HTTP, facts in the ledger, revenue re-aggregated.

Runs against real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, else embedded) and the
Stripe sandbox on loopback.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from pixecom_stripe import plugin as stripe_plugin
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.testing import RunningSandbox, settings_for

from pixecom_core import hookimpl
from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import Sandbox
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.sync import StatsSync
from pixecom_core.testing.databases import TestDatabase
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from reference_app.demo_traffic import DemoTrafficConfig, find_payment_sandbox, run_demo_traffic
from tests.stripe.support import StripeAtSandbox, published_sellpage


class StripeSandboxes:
    """The Stripe plugin's real sandbox registration (with its ``demo_payments``)."""

    @hookimpl
    def pixecom_register_sandboxes(self) -> list[Sandbox]:
        return stripe_plugin.pixecom_register_sandboxes()


@pytest.fixture
async def api(
    app_settings: Settings, sandbox: RunningSandbox
) -> AsyncIterator[tuple[str, ProviderRegistry]]:
    """The reference app with the Stripe gateway and sandbox, served on loopback; the
    sandbox sends its webhooks to it."""
    gateway = StripeGateway(settings_for(sandbox.url))
    registry = ProviderRegistry(
        create_plugin_manager(
            load_entry_points=False, plugins=[StripeAtSandbox(gateway), StripeSandboxes()]
        )
    )
    app = create_app(app_settings, plugin_manager=registry.plugin_manager)
    try:
        async with serve(app, lifespan="on") as url:
            await sandbox.configure(webhook_url=f"{url}/webhooks/stripe")
            yield url, registry
    finally:
        await gateway.client.aclose()


def _seller_of(dsn: str, slug: str) -> uuid.UUID:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT seller_id FROM sellpages WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _facts_and_statuses(
    dsn: str, seller_id: uuid.UUID
) -> tuple[dict[str, int], dict[str, int], int]:
    with psycopg.connect(dsn) as conn:
        facts = conn.execute(
            "SELECT event_type, count(*) FROM payment_events WHERE seller_id = %s GROUP BY 1",
            (seller_id,),
        ).fetchall()
        statuses = conn.execute(
            "SELECT status, count(*) FROM orders WHERE seller_id = %s GROUP BY 1", (seller_id,)
        ).fetchall()
        revenue = conn.execute(
            "SELECT coalesce(sum(net_revenue_minor), 0) FROM sellpage_stats_daily"
            " WHERE seller_id = %s",
            (seller_id,),
        ).fetchone()
    assert revenue is not None
    return (
        {str(kind): int(n) for kind, n in facts},
        {str(status): int(n) for status, n in statuses},
        int(revenue[0]),
    )


@pytest.mark.parametrize("auto_deliver", [False, True], ids=["delivered-after", "auto-deliver"])
async def test_demo_traffic_pays_and_refunds_through_signed_stripe_webhooks(
    api: tuple[str, ProviderRegistry],
    app_settings: Settings,
    sandbox: RunningSandbox,
    database: TestDatabase,
    auto_deliver: bool,
) -> None:
    base_url, registry = api
    # Unseeded ids: the shared sandbox's seeded ids repeat after each reset, and this
    # module's database outlives a test.
    await sandbox.configure(auto_deliver=auto_deliver, seed=None)
    assert app_settings.admin_api_key is not None
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        slug = await published_sellpage(client, app_settings)
    seller_id = _seller_of(database.owner_dsn, slug)
    found = find_payment_sandbox(registry, {"stripe": sandbox.url})
    assert found is not None and found.gateway == "stripe"

    tally = await run_demo_traffic(
        DemoTrafficConfig(
            api_url=base_url, slug=slug, interval_seconds=0.01, refund_share=1.0, seed=3
        ),
        found,
        asyncio.Event(),
        max_visits=3,
    )

    assert (tally.orders_placed, tally.payments, tally.refunds, tally.failures) == (3, 3, 3, 0)
    engine = create_engine(app_settings, role="app")
    try:
        sessions = create_sessionmaker(engine)
        inbox = WebhookInbox(sessions, app_settings, registry, Ledger(sessions, app_settings))
        # Auto-delivery runs in the sandbox's background: process what has arrived until
        # every fact is in the ledger (or give up after 10 s and show what is there).
        for _ in range(100):
            for inbox_id in await inbox.due():
                await inbox.process(inbox_id)
            facts, statuses, _ = _facts_and_statuses(database.owner_dsn, seller_id)
            if facts == {"CAPTURED": 3, "REFUNDED": 3}:
                break
            await asyncio.sleep(0.1)
        assert facts == {"CAPTURED": 3, "REFUNDED": 3}
        assert statuses == {"PARTIALLY_REFUNDED": 3}
        # The sandbox made those deliveries, signed, and the API's webhook route took them.
        assert await _delivered_types(sandbox) >= {"payment_intent.succeeded", "charge.refunded"}
        # The ledger marked the days dirty; the seller's scheduled sync re-aggregates them.
        await StatsSync(
            sessions, app_settings, registry, SecretBox(app_settings.token_encryption_keys)
        ).sync_seller(seller_id, days_back=app_settings.sync_window_days)
    finally:
        await engine.dispose()
    _, _, net_revenue = _facts_and_statuses(database.owner_dsn, seller_id)
    assert 0 < net_revenue < 3 * 2 * 5_000  # three orders of two $50 mugs, partly refunded


async def _delivered_types(sandbox: RunningSandbox) -> set[str]:
    response = await sandbox.control.get("/_sandbox/events")
    response.raise_for_status()
    return {event["type"] for event in response.json()["data"] if event["delivered"]}
