"""A shopper from a Meta ad pays on the sellpage, end to end (issue 17's must-hold test).

In headless Chromium: open ``/s/{slug}?utm_campaign=…&fbclid=…``, order, pay on the PayPal
sandbox's hosted approval page (``/checkoutnow?token=…``), land on the thanks page; the
order is PAID with its attribution, and the Meta sandbox received exactly one Purchase for
it — a payload Meta accepts, ``event_id`` = the order id — although PayPal delivered every
webhook three times.

The deployment is the multi-seller one: the seller connects their own PayPal REST app
through the API (issue 15), which subscribes the app to the seller's webhook address, and
sets their Meta pixel as a conversion destination (``PUT /conversions/destinations/meta``).
The PayPal and Meta plugins run against their sandboxes on loopback, pointed there by the
sandboxes' own ``environment`` (as ``pixecom dev`` does).

Deliveries are processed in the test, with the services the payments worker runs
(``WebhookInbox.process`` for each stored delivery, then ``ConversionSender.send_due`` for
the seller, which the worker's ``send_conversions`` task calls): the same code as a worker
process, without the seconds one takes to start. Each webhook is delivered once by the
sandbox and twice more as fresh transmissions of the same event (new transmission id,
signed again, as PayPal's retries are); the inbox keeps one.

Nothing depends on today's date: the Meta sandbox refuses an ``event_time`` more than 7
days from its clock, whose default is real time, and the event time is the capture's,
which is real time too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.conversions import ConversionSender
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, WebhookInbox
from pixecom_core.payments import PaymentConnections
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.testing.loopback import LoopbackServer, serve
from reference_app.api import create_app
from tests.db.tenant_rows import seller_scope
from tests_browser.conftest import Shots, api_token
from tests_browser.seed import SeededSeller, sign_up
from tests_browser.test_accessibility import violations
from tests_browser.test_sellpage_page import ORDER_ID, published_sellpage

#: Meta's example click id ("fbp and fbc Parameters"): mixed case, dashes, underscores.
CLICK_ID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
AD_QUERY = f"?utm_source=facebook&utm_campaign=spring&fbclid={CLICK_ID}"
#: Typed with capitals and spaces: Meta matches the hash of the trimmed, lower-case form.
EMAIL = "  Shopper.Linen@Example.com "
DELIVERIES_PER_EVENT = 3
#: The sandboxes the world serves, by name.
SANDBOXES = ("paypal", "meta")


@dataclass(frozen=True)
class CheckoutWorld:
    """The API with the PayPal and Meta plugins, both at their sandboxes."""

    base_url: str
    admin_key: str
    paypal: httpx.AsyncClient
    meta: httpx.AsyncClient
    registry: ProviderRegistry
    settings: Settings
    engine: AsyncEngine

    def inbox(self) -> WebhookInbox:
        sessions = create_sessionmaker(self.engine)
        return WebhookInbox(
            sessions,
            self.settings,
            self.registry,
            Ledger(sessions, self.settings),
            connections=PaymentConnections.for_settings(sessions, self.settings, self.registry),
        )

    def conversions(self) -> ConversionSender:
        return ConversionSender(
            create_sessionmaker(self.engine),
            self.settings,
            self.registry,
            SecretBox(self.settings.token_encryption_keys),
        )


@pytest.fixture
async def world(
    live_settings: Settings,
    admin_key: str,
    app_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[CheckoutWorld]:
    from pixecom_meta_ads import plugin as meta_plugin
    from pixecom_paypal import plugin as paypal_plugin

    plugins = [paypal_plugin, meta_plugin]
    sandboxes = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=plugins))
    servers = {name: LoopbackServer(sandboxes.sandbox(name).create_app()) for name in SANDBOXES}
    for name, server in servers.items():
        environment = sandboxes.sandbox(name).environment
        assert environment is not None
        # The API's URL is not needed: the sellers' apps subscribe their own addresses.
        for variable, value in environment(server.url, "http://127.0.0.1:9").items():
            monkeypatch.setenv(variable, value)
    # Multi-seller: no payment ever lands on the platform's own PayPal app.
    monkeypatch.setenv("PIXECOM_PAYPAL_PLATFORM_ACCOUNT_PAYMENTS", "false")
    manager = create_plugin_manager(load_entry_points=False, plugins=plugins)
    settings = live_settings.model_copy(
        update={"redis_key_prefix": f"pixecom-browser-checkout:{uuid.uuid4().hex}:"}
    )
    with servers["paypal"], servers["meta"]:
        async with (
            serve(create_app(settings, plugin_manager=manager), lifespan="on") as url,
            httpx.AsyncClient(base_url=servers["paypal"].url, timeout=20) as paypal,
            httpx.AsyncClient(base_url=servers["meta"].url, timeout=20) as meta,
        ):
            # The test sends each webhook itself, three times (see deliver_three_times).
            configured = await paypal.post("/_sandbox/config", json={"auto_deliver": False})
            configured.raise_for_status()
            yield CheckoutWorld(
                url, admin_key, paypal, meta, ProviderRegistry(manager), settings, app_engine
            )


@dataclass(frozen=True)
class PayingSeller:
    seller: SeededSeller
    slug: str
    webhook_id: str
    webhook_url: str


async def seller_paid_through_paypal_reporting_to_meta(world: CheckoutWorld) -> PayingSeller:
    """A seller with a published sellpage, their own PayPal app connected and the Meta
    sandbox's demo pixel as conversion destination."""
    from pixecom_meta_ads.sandbox_capi import DEMO_PIXEL_ID, DEMO_PIXEL_TOKEN

    seller = await sign_up(world.base_url, world.admin_key, "Linen Corner", "USD")
    headers = {"Authorization": f"Bearer {await api_token(world.base_url, seller.email)}"}
    app = (await world.paypal.post("/_sandbox/apps", json={"name": seller.email})).json()
    async with httpx.AsyncClient(base_url=world.base_url, headers=headers) as api:
        connected = await api.post(
            "/payments/connections",
            json={
                "gateway": "paypal",
                "credentials": {
                    "client_id": app["client_id"],
                    "client_secret": app["client_secret"],
                },
            },
        )
        assert connected.status_code == 201, connected.text
        destination = await api.put(
            "/conversions/destinations/meta",
            json={"destination_id": DEMO_PIXEL_ID, "access_token": DEMO_PIXEL_TOKEN},
        )
        assert destination.status_code == 200, destination.text
    # Publishing needs a way to pay: after connecting.
    slug = await published_sellpage(world.base_url, seller)
    # The subscription connecting made, as the seller's app lists it.
    token = await world.paypal.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(app["client_id"], app["client_secret"]),
    )
    listed = await world.paypal.get(
        "/v1/notifications/webhooks",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    [webhook] = listed.json()["webhooks"]
    return PayingSeller(seller, slug, webhook["id"], webhook["url"])


async def deliver_three_times(world: CheckoutWorld, paying: PayingSeller) -> list[str]:
    """Send the subscription's pending events: each once by the sandbox, then twice more as
    fresh transmissions; every delivery is answered 200, the repeats as duplicates.
    Answers the events' ids."""
    sent = await world.paypal.post(f"/_sandbox/webhooks/{paying.webhook_id}/deliver")
    assert sent.status_code == 200, sent.text
    attempts = sent.json()
    assert attempts and [attempt["status_code"] for attempt in attempts] == [200] * len(attempts)
    async with httpx.AsyncClient(timeout=20) as http:
        for attempt in attempts:
            for _ in range(DELIVERIES_PER_EVENT - 1):
                transmission = await world.paypal.post(
                    "/_sandbox/webhooks/transmissions", json={"event_id": attempt["event_id"]}
                )
                assert transmission.status_code == 200, transmission.text
                again = await http.post(
                    paying.webhook_url,
                    content=transmission.json()["body"].encode(),
                    headers=transmission.json()["headers"],
                )
                assert again.status_code == 200, again.text
                assert again.json()["duplicate"] is True
    return [str(attempt["event_id"]) for attempt in attempts]


async def process_deliveries(world: CheckoutWorld, dsn: str, event_ids: list[str]) -> None:
    """What the worker's ``process_webhook`` task does for each stored delivery."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id FROM webhook_inbox WHERE gateway = 'paypal' AND event_id = ANY(%s)",
            (event_ids,),
        ).fetchall()
    assert len(rows) == len(event_ids), "one stored delivery per event, whatever was repeated"
    inbox = world.inbox()
    for (inbox_id,) in rows:
        await inbox.process(inbox_id)


def order_row(dsn: str, seller_id: uuid.UUID, order_id: str) -> dict[str, Any]:
    columns = (
        "status",
        "total_minor",
        "currency",
        "customer_email",
        "utm_source",
        "utm_campaign",
        "fbclid",
        "fbc",
        "landing_url",
        "user_agent",
    )
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        row = conn.execute(
            f"SELECT {', '.join(columns)} FROM orders WHERE id = %s", (order_id,)
        ).fetchone()
    assert row is not None, f"no order {order_id}"
    return dict(zip(columns, row, strict=True))


def conversion_deliveries(dsn: str, seller_id: uuid.UUID) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn) as conn, seller_scope(conn, seller_id):
        rows = conn.execute(
            "SELECT order_id::text, network, event_name, status FROM conversion_deliveries"
            " WHERE seller_id = %s",
            (seller_id,),
        ).fetchall()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def fbc_cookie(context: BrowserContext, base_url: str) -> str:
    [cookie] = [c for c in await context.cookies(base_url) if c["name"] == "_fbc"]
    return cookie["value"]


async def order_and_go_to_paypal(page: Page, paypal_url: str) -> str:
    """Place the order on the sellpage and follow its link to PayPal's approval page."""
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_role("button", name="Place order").click()
    order_number = page.get_by_test_id("order-id")
    await expect(order_number).to_have_text(ORDER_ID)
    order_id = await order_number.inner_text()
    await page.get_by_role("link", name="Continue to payment").click()
    await page.wait_for_url(f"{paypal_url}/checkoutnow?token=*")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Pay 19.99 EUR")
    return order_id


async def test_a_shopper_from_a_meta_ad_pays_and_meta_hears_of_the_purchase_once(
    page: Page,
    context: BrowserContext,
    world: CheckoutWorld,
    database_owner_dsn: str,
    shots: Shots,
) -> None:
    from pixecom_meta_ads.sandbox_capi import DEMO_PIXEL_ID

    paying = await seller_paid_through_paypal_reporting_to_meta(world)
    seller_id = paying.seller.seller_id
    landing_url = f"{world.base_url}/s/{paying.slug}{AD_QUERY}"

    # Landing from the ad: the page keeps Meta's click id as the _fbc cookie, as Meta does.
    await page.goto(landing_url)
    await expect(page.get_by_role("button", name="Place order")).to_be_enabled()
    fbc = await fbc_cookie(context, world.base_url)
    prefix, subdomain_index, created_ms, click_id = fbc.split(".", 3)
    assert (prefix, subdomain_index, click_id) == ("fb", "1", CLICK_ID)
    assert created_ms.isdigit() and len(created_ms) == 13  # milliseconds, not seconds

    # Order, pay on PayPal's hosted page, come back to the thanks page.
    order_id = await order_and_go_to_paypal(page, str(world.paypal.base_url).rstrip("/"))
    await shots.take(page, "paypal")
    await page.get_by_role("button", name="Pay now").click()
    await page.wait_for_url(f"{world.base_url}/s/{paying.slug}/thanks?*")
    returned = parse_qs(urlsplit(page.url).query)
    assert returned["order"] == [order_id]  # from the tab's storage, into the address
    assert "token" in returned and "PayerID" in returned  # what PayPal added
    await expect(page.get_by_role("heading", level=1)).to_have_text("Thank you for your order")
    await expect(page.get_by_test_id("order-id")).to_have_text(order_id)
    status = page.get_by_test_id("order-status")
    await expect(status).to_have_attribute("data-status", "PENDING")
    assert await violations(page) == []

    # PayPal notifies the seller's app's address: the approval (the gateway captures on
    # it), then the capture; every notification three times.
    approval = await deliver_three_times(world, paying)
    await process_deliveries(world, database_owner_dsn, approval)
    capture = await deliver_three_times(world, paying)
    await process_deliveries(world, database_owner_dsn, capture)
    # The worker's send_conversions task, kicked after the inbox recorded the capture;
    # run twice, as a retried task or the inbox sweep would: nothing is sent again.
    first = await world.conversions().send_due(seller_id)
    again = await world.conversions().send_due(seller_id)
    assert (first.sent, first.failed, first.errors) == (1, 0, [])
    assert again.sent == 0

    # The thanks page reads the new status on its own.
    await expect(status).to_have_attribute("data-status", "PAID", timeout=20_000)
    await expect(status).to_have_text("Payment received: your order is paid.")
    await shots.take(page, "thanks-paid")
    assert await violations(page) == []

    row = order_row(database_owner_dsn, seller_id, order_id)
    assert row["status"] == "PAID"
    assert (row["total_minor"], row["currency"]) == (1999, "EUR")
    assert (row["utm_source"], row["utm_campaign"], row["fbclid"]) == (
        "facebook",
        "spring",
        CLICK_ID,
    )
    assert row["fbc"] == fbc
    assert row["landing_url"] == landing_url

    received = await world.meta.get(f"/_sandbox/pixels/{DEMO_PIXEL_ID}/events")
    assert received.status_code == 200, received.text
    events = received.json()
    assert (events["received"], events["distinct_events"]) == (1, 1)
    [event] = events["data"]
    assert event["event_name"] == "Purchase"
    assert event["event_id"] == order_id
    assert event["action_source"] == "website"
    assert event["event_source_url"] == landing_url
    assert event["custom_data"]["value"] == 19.99
    assert event["custom_data"]["currency"] == "eur"
    assert event["custom_data"]["order_id"] == order_id
    user = event["user_data"]
    assert user["em"] == [hashlib.sha256(b"shopper.linen@example.com").hexdigest()]
    assert user["fbc"] == fbc
    assert user["client_ip_address"] == "127.0.0.1"
    assert user["client_user_agent"] == row["user_agent"]
    # The sandbox's stand-in for Meta's library sets no _fbp cookie (Meta's own does).
    assert "fbp" not in user
    assert conversion_deliveries(database_owner_dsn, seller_id) == [
        (order_id, "meta", "Purchase", "SENT")
    ]

    # The seller's pixel ran in the shopper's browser too (the sandbox's stand-in for
    # fbevents.js, loaded by Meta's base code): page views of the sellpage and the thanks
    # page, and the Purchase with the order id as eventID — the server event's id, so Meta
    # counts the purchase once.
    async def browser_events() -> list[dict[str, Any]]:
        answer = await world.meta.get(f"/_sandbox/pixels/{DEMO_PIXEL_ID}/browser-events")
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    for _ in range(100):
        seen = await browser_events()
        if any(e["event"] == "Purchase" for e in seen):
            break
        await page.wait_for_timeout(100)
    purchases = [e for e in seen if e["event"] == "Purchase"]
    assert [(e["event_id"], e["value"], e["currency"]) for e in purchases] == [
        (order_id, 19.99, "EUR")
    ]
    views = [e["url"] for e in seen if e["event"] == "PageView"]
    assert any(f"/s/{paying.slug}?" in url for url in views)
    assert any(f"/s/{paying.slug}/thanks" in url for url in views)
    # A reload of the thanks page reports nothing again.
    await page.reload()
    await expect(status).to_have_attribute("data-status", "PAID", timeout=20_000)
    await page.wait_for_timeout(500)
    assert [e for e in await browser_events() if e["event"] == "Purchase"] == purchases


async def test_a_shopper_who_cancels_on_paypal_lands_on_the_cancelled_page(
    page: Page,
    context: BrowserContext,
    world: CheckoutWorld,
    database_owner_dsn: str,
    shots: Shots,
) -> None:
    paying = await seller_paid_through_paypal_reporting_to_meta(world)
    # Arriving from another ad replaces an older click id; the same click keeps its time.
    await context.add_cookies(
        [{"name": "_fbc", "value": "fb.1.1700000000000.OlderClick", "url": world.base_url}]
    )
    await page.goto(f"{world.base_url}/s/{paying.slug}{AD_QUERY}")
    await expect(page.get_by_role("button", name="Place order")).to_be_enabled()
    fbc = await fbc_cookie(context, world.base_url)
    assert fbc.startswith("fb.1.") and fbc.endswith(f".{CLICK_ID}")
    await page.reload()
    await expect(page.get_by_role("button", name="Place order")).to_be_enabled()
    assert await fbc_cookie(context, world.base_url) == fbc

    order_id = await order_and_go_to_paypal(page, str(world.paypal.base_url).rstrip("/"))
    await page.get_by_role("button", name="Cancel").click()

    await page.wait_for_url(f"{world.base_url}/s/{paying.slug}/cancelled?*")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Payment cancelled")
    await expect(page.get_by_test_id("order-id")).to_have_text(order_id)
    await expect(page.get_by_role("link", name="Order again: Spring sale")).to_have_attribute(
        "href", f"/s/{paying.slug}"
    )
    await shots.take(page, "cancelled")
    assert await violations(page) == []
    row = order_row(database_owner_dsn, paying.seller.seller_id, order_id)
    assert (row["status"], row["fbc"]) == ("PENDING", fbc)
