"""Checkout from a published sellpage, then the gateway's webhook makes the order PAID."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.ledger import Ledger, ProcessResult, WebhookInbox
from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import PaymentEventKind
from pixecom_core.settings import Settings
from tests.app.catalog.conftest import create_product, create_sellpage, set_price
from tests.app.conftest import NewSeller, SignedUpSeller
from tests.ledger import fakepay

ORDER = {
    "gateway": "fakepay",
    "customer_email": "shopper@example.com",
    "quantity": 3,
    "return_url": "https://shop.example.com/thanks",
    "cancel_url": "https://shop.example.com/cart",
}


async def published_page(client: httpx.AsyncClient, seller: SignedUpSeller) -> str:
    product = await create_product(client, seller)
    await set_price(client, seller, product["id"], 2_499, currency="EUR")
    page = await create_sellpage(client, seller, product_id=product["id"])
    published = await client.patch(
        f"/sellpages/{page['id']}", json={"status": "PUBLISHED"}, headers=seller.headers
    )
    assert published.status_code == 200, published.text
    return str(page["slug"])


def order_row(dsn: str, seller_id: uuid.UUID, order_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_seller_id', %s, true)", (str(seller_id),))
        return conn.execute(
            "SELECT status, total_minor, currency, payment_id, sellpage_id IS NOT NULL"
            " FROM orders WHERE id = %s",
            (order_id,),
        ).fetchone()


async def test_checkout_then_capture_webhook_makes_the_order_paid(
    api_client: httpx.AsyncClient,
    new_seller: NewSeller,
    database_owner_dsn: str,
    app_engine: AsyncEngine,
    settings: Settings,
) -> None:
    seller = await new_seller()
    slug = await published_page(api_client, seller)

    placed = await api_client.post(f"/public/sellpages/{slug}/orders", json=ORDER)

    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["amount_minor"], body["currency"], body["gateway"]) == (7_497, "EUR", "fakepay")
    assert body["approval_url"].endswith(body["order_id"])
    payment = body["gateway_reference"]
    assert order_row(database_owner_dsn, seller.seller_id, body["order_id"]) == (
        "PENDING",
        7_497,
        "EUR",
        payment,
        True,
    )
    # The gateway's webhook arrives through the API and is processed by the worker's code.
    delivery, headers = fakepay.delivery(
        [fakepay.fact(payment, "ch_checkout", PaymentEventKind.CAPTURED, 7_497, "EUR")]
    )
    ack = await api_client.post("/webhooks/fakepay", content=delivery, headers=headers)
    assert ack.status_code == 200, ack.text
    registry = ProviderRegistry(create_plugin_manager(load_entry_points=False, plugins=[fakepay]))
    sessions = create_sessionmaker(app_engine)
    inbox = WebhookInbox(sessions, settings, registry, Ledger(sessions, settings))
    processed = [await inbox.process(inbox_id) for inbox_id in await inbox.due()]
    assert ProcessResult.PROCESSED in processed

    assert order_row(database_owner_dsn, seller.seller_id, body["order_id"])[0] == "PAID"  # type: ignore[index]
    events = await api_client.get(f"/orders/{body['order_id']}/events", headers=seller.headers)
    assert [e["event_type"] for e in events.json()["items"]] == [
        "CREATED",
        "PAYMENT_RECORDED",
        "STATUS_CHANGED",
    ]


async def test_checkout_refuses_what_cannot_be_sold(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    draft = await create_sellpage(api_client, seller)
    slug = await published_page(api_client, seller)

    unknown_page = await api_client.post("/public/sellpages/no-such-page/orders", json=ORDER)
    draft_page = await api_client.post(f"/public/sellpages/{draft['slug']}/orders", json=ORDER)
    unknown_gateway = await api_client.post(
        f"/public/sellpages/{slug}/orders", json={**ORDER, "gateway": "nopay"}
    )
    too_many = await api_client.post(
        f"/public/sellpages/{slug}/orders", json={**ORDER, "quantity": 1001}
    )
    price_in_body = await api_client.post(
        f"/public/sellpages/{slug}/orders", json={**ORDER, "amount_minor": 1}
    )

    assert unknown_page.status_code == 404
    assert draft_page.status_code == 404
    assert unknown_gateway.status_code == 404
    assert unknown_gateway.json()["error"]["code"] == "unknown_provider"
    assert too_many.status_code == 422
    # An amount in the request is ignored: the price comes from the database.
    assert price_in_body.status_code == 201
    assert price_in_body.json()["amount_minor"] == 7_497
