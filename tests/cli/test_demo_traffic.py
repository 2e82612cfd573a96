"""The demo shopper of ``pixecom dev``, provider-neutral, against the fakepay test gateway.

The API and the gateway's sandbox are served on loopback; the shopper orders through the
public API and pays and refunds at the sandbox, which posts its signed webhooks to the API.
The webhooks are then processed and the seller's days re-aggregated with the same code the
payments worker and the scheduled sync run, and the outcomes are read where they land:
orders rows, ledger facts, and /stats/overview.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as redis
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pixecom_core.dashboard_cache import DashboardCache
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import Sandbox
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Mode, Settings
from pixecom_core.stats.sync import StatsSync
from pixecom_core.testing.loopback import serve
from reference_app.api import create_app
from reference_app.demo_traffic import (
    DemoShopper,
    DemoTrafficConfig,
    DemoTrafficTally,
    PaymentSandbox,
    find_payment_sandbox,
    run_demo_traffic,
)
from tests.ledger import fakepay

PASSWORD = "correct horse battery staple"
PRICE_MINOR = 2_500

OwnerConnection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class Shop:
    """A seller with a published sellpage, the API and the fakepay sandbox on loopback."""

    api_url: str
    sandbox_url: str
    settings: Settings
    registry: ProviderRegistry
    seller_id: uuid.UUID
    email: str
    slug: str

    def config(self, **overrides: Any) -> DemoTrafficConfig:
        values: dict[str, Any] = {
            "api_url": self.api_url,
            "slug": self.slug,
            "login": (self.email, PASSWORD),
            "interval_seconds": 0.01,
            "seed": 7,
        }
        values.update(overrides)
        return DemoTrafficConfig(**values)

    def payment_sandbox(self) -> PaymentSandbox:
        found = find_payment_sandbox(self.registry, {"fakepay": self.sandbox_url})
        assert found is not None
        return found


async def _open_shop(client: httpx.AsyncClient, admin_key: str) -> tuple[uuid.UUID, str, str]:
    email = f"demo-traffic-{uuid.uuid4().hex[:10]}@example.com"
    signup = await client.post(
        "/auth/signup",
        json={"seller_name": "Demo traffic shop", "email": email, "password": PASSWORD},
        headers={"X-Admin-Key": admin_key},
    )
    assert signup.status_code == 201, signup.text
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    product = await client.post(
        "/products", json={"sku": f"D-{uuid.uuid4().hex[:8]}", "name": "Mug"}, headers=headers
    )
    assert product.status_code == 201, product.text
    price = await client.post(
        f"/products/{product.json()['id']}/prices",
        json={"price_minor": PRICE_MINOR, "currency": "USD"},
        headers=headers,
    )
    assert price.status_code == 201, price.text
    slug = f"demo-{uuid.uuid4().hex[:8]}"
    page = await client.post(
        "/sellpages",
        json={"slug": slug, "title": "Mug", "product_id": product.json()["id"]},
        headers=headers,
    )
    assert page.status_code == 201, page.text
    published = await client.patch(
        f"/sellpages/{page.json()['id']}", json={"status": "PUBLISHED"}, headers=headers
    )
    assert published.status_code == 200, published.text
    return uuid.UUID(signup.json()["seller"]["id"]), email, slug


@pytest.fixture
async def shop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Shop]:
    admin_key = secrets.token_urlsafe(48)
    dev = settings.model_copy(
        update={
            "mode": Mode.DEV,
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "admin_api_key": SecretStr(admin_key),
        }
    )
    # Built from the environment, as `pixecom dev` builds it: core tests load fakepay only.
    registry = ProviderRegistry(create_plugin_manager())
    app = create_app(dev, plugin_manager=registry.plugin_manager)
    async with serve(app, lifespan="on") as api_url:
        sandbox: Sandbox = registry.sandbox("fakepay")
        assert sandbox.environment is not None
        for name, value in sandbox.environment("http://unused", api_url).items():
            monkeypatch.setenv(name, value)
        async with (
            serve(sandbox.create_app()) as sandbox_url,
            httpx.AsyncClient(base_url=api_url, timeout=20) as client,
        ):
            seller_id, email, slug = await _open_shop(client, admin_key)
            yield Shop(api_url, sandbox_url, dev, registry, seller_id, email, slug)


@asynccontextmanager
async def _worker_sessions(
    shop: Shop, engine: AsyncEngine
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions as a worker's: their commits make the seller's cached dashboard reads
    stale (the API answers the overview from that cache)."""
    sessions = create_sessionmaker(engine)
    assert shop.settings.redis_url is not None
    client = redis.Redis.from_url(shop.settings.redis_url)
    cache = DashboardCache(client, shop.settings)
    cache.watch(sessions)
    try:
        yield sessions
    finally:
        await cache.settle()
        await client.aclose()


async def _process_webhooks(shop: Shop, engine: AsyncEngine) -> None:
    """What the payments worker's task does with each stored delivery."""
    async with _worker_sessions(shop, engine) as sessions:
        ledger = Ledger(sessions, shop.settings)
        inbox = WebhookInbox(sessions, shop.settings, shop.registry, ledger)
        for inbox_id in await inbox.due():
            await inbox.process(inbox_id)


async def _sync(shop: Shop, engine: AsyncEngine) -> None:
    """What the seller's next scheduled sync does (it re-aggregates the dirty days)."""
    async with _worker_sessions(shop, engine) as sessions:
        sync = StatsSync(
            sessions,
            shop.settings,
            shop.registry,
            SecretBox(shop.settings.token_encryption_keys),
            shop.registry.plugin_manager,
        )
        await sync.sync_seller(shop.seller_id, days_back=shop.settings.sync_window_days)


async def _overview(shop: Shop) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=shop.api_url, timeout=20) as client:
        login = await client.post("/auth/login", json={"email": shop.email, "password": PASSWORD})
        answer = await client.get(
            "/stats/overview",
            params={
                "since": str(today - timedelta(days=1)),
                "until": str(today + timedelta(days=1)),
            },
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
    assert answer.status_code == 200, answer.text
    overview: dict[str, Any] = answer.json()
    return overview


async def _visits(shop: Shop, visits: int, **overrides: Any) -> DemoTrafficTally:
    return await run_demo_traffic(
        shop.config(**overrides), shop.payment_sandbox(), asyncio.Event(), max_visits=visits
    )


def _ledger(owner_conn: OwnerConnection, seller_id: uuid.UUID) -> dict[str, int]:
    rows = owner_conn.execute(
        "SELECT event_type, count(*) FROM payment_events WHERE seller_id = %s GROUP BY 1",
        (seller_id,),
    ).fetchall()
    return {str(kind): int(count) for kind, count in rows}


def _orders(owner_conn: OwnerConnection, seller_id: uuid.UUID) -> dict[str, int]:
    rows = owner_conn.execute(
        "SELECT status, count(*) FROM orders WHERE seller_id = %s AND sellpage_id IS NOT NULL"
        " GROUP BY 1",
        (seller_id,),
    ).fetchall()
    return {str(status): int(count) for status, count in rows}


async def test_the_shopper_orders_pays_refunds_and_the_overview_grows(
    shop: Shop, app_engine: AsyncEngine, owner_conn: OwnerConnection
) -> None:
    first = await _visits(shop, 4, refund_share=1.0, tracking_share=1.0)

    assert first == DemoTrafficTally(
        orders_placed=4, payments=4, refunds=4, tracking_numbers=4, failures=0
    )
    # The sandbox delivered signed webhooks; nothing is in the ledger until they are processed.
    assert _ledger(owner_conn, shop.seller_id) == {}
    await _process_webhooks(shop, app_engine)
    assert _ledger(owner_conn, shop.seller_id) == {"CAPTURED": 4, "REFUNDED": 4}
    orders = _orders(owner_conn, shop.seller_id)
    assert sum(orders.values()) == 4 and "PENDING" not in orders, orders
    # The ledger marked the day for re-aggregation; the scheduled sync re-aggregates it.
    assert (await _overview(shop))["pending_days"] >= 1
    await _sync(shop, app_engine)
    before = await _overview(shop)
    assert before["pending_days"] == 0
    assert before["totals"]["orders"] == 4
    assert before["totals"]["gross_revenue_minor"] >= 4 * PRICE_MINOR
    assert 0 < before["totals"]["refunds_minor"] < before["totals"]["gross_revenue_minor"]

    second = await _visits(shop, 3, refund_share=0.0, tracking_share=0.0, seed=8)
    await _process_webhooks(shop, app_engine)
    await _sync(shop, app_engine)
    after = await _overview(shop)

    assert second.payments == 3 and second.refunds == 0 and second.failures == 0
    assert after["totals"]["orders"] == 7
    assert after["totals"]["gross_revenue_minor"] >= before["totals"]["gross_revenue_minor"] + (
        3 * PRICE_MINOR
    )
    assert after["totals"]["net_revenue_minor"] > before["totals"]["net_revenue_minor"]
    assert _ledger(owner_conn, shop.seller_id) == {"CAPTURED": 7, "REFUNDED": 4}


async def test_a_refused_checkout_is_counted_and_the_shopper_keeps_going(
    shop: Shop, owner_conn: OwnerConnection
) -> None:
    tally = await _visits(shop, 3, slug="no-such-sellpage")

    assert tally == DemoTrafficTally(failures=3)
    assert _orders(owner_conn, shop.seller_id) == {}


async def test_a_wrong_demo_login_fails_the_shipping_step_but_not_the_sale(
    shop: Shop, app_engine: AsyncEngine, owner_conn: OwnerConnection
) -> None:
    tally = await _visits(
        shop, 2, login=(shop.email, "not the password"), tracking_share=1.0, refund_share=0.0
    )

    assert tally.payments == 2 and tally.tracking_numbers == 0 and tally.failures == 2
    await _process_webhooks(shop, app_engine)
    assert _ledger(owner_conn, shop.seller_id) == {"CAPTURED": 2}


async def test_the_shopper_waits_for_the_api_and_stops_when_told(shop: Shop) -> None:
    stop = asyncio.Event()
    config = shop.config(api_url="http://127.0.0.1:9", interval_seconds=1.0)
    running = asyncio.create_task(run_demo_traffic(config, shop.payment_sandbox(), stop))
    await asyncio.sleep(1.0)
    assert not running.done()

    stop.set()

    assert await asyncio.wait_for(running, timeout=5) == DemoTrafficTally()


def test_no_payment_sandbox_means_no_demo_traffic(shop: Shop) -> None:
    # fakepay's sandbox is installed but not served: nothing to pay with.
    assert find_payment_sandbox(shop.registry, {}) is None
    # A registry without any gateway offers nothing either.
    bare = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[]))
    assert find_payment_sandbox(bare, {"fakepay": shop.sandbox_url}) is None


async def test_the_sandbox_refuses_a_payment_without_an_amount(shop: Shop) -> None:
    async with httpx.AsyncClient(base_url=shop.sandbox_url, timeout=10) as client:
        answer = await client.post("/payments/fp_x/capture", json={"currency": "USD"})
        unknown = await client.post("/payments/fp_x/steal", json={})

    assert answer.status_code == 400
    assert unknown.status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval_seconds", 0.0),
        ("jitter", 1.0),
        ("refund_share", 1.5),
        ("tracking_share", -0.1),
        ("max_quantity", 0),
    ],
)
def test_nonsense_settings_are_refused(field: str, value: float) -> None:
    options: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        DemoTrafficConfig(api_url="http://127.0.0.1:1", slug="x", **options)


async def test_waits_keep_within_the_jitter() -> None:
    config = DemoTrafficConfig(api_url="http://x", slug="x", interval_seconds=4, jitter=0.25)
    payments = fakepay.FakePayDemoPayments("http://x")
    async with httpx.AsyncClient() as client:
        shopper = DemoShopper(config, client, PaymentSandbox("fakepay", payments))
        waits = [shopper.next_wait() for _ in range(500)]
    await payments.aclose()

    assert 3.0 <= min(waits) and max(waits) <= 5.0
    assert max(waits) - min(waits) > 1.5  # spread, not a metronome


@pytest.mark.parametrize("mode", [Mode.PRODUCTION, Mode.TEST])
def test_demo_traffic_never_starts_outside_dev_mode(
    settings: Settings, mode: Mode, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading
    from contextlib import ExitStack

    from reference_app.dev import DevDeployment, demo_traffic

    with ExitStack() as stack:
        demo_traffic(
            DevDeployment(
                settings=settings.model_copy(update={"mode": mode}),
                stack=stack,
                demo_traffic_seconds=1.0,
                sandbox_urls={"fakepay": "http://127.0.0.1:1"},
            )
        )
        threads = [thread.name for thread in threading.enumerate()]

    assert "pixecom dev: demo traffic off" in capsys.readouterr().out
    assert "demo-traffic" not in threads
