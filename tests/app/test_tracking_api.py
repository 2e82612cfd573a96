"""Tracking over HTTP: add a number, pushes through /webhooks/tracking/{tracker}."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from pixecom_core.providers import TrackingStatus
from pixecom_core.settings import Settings
from pixecom_core.tracking import tag_for
from tests.app.conftest import ClientFactory, NewSeller
from tests.db.tenant_rows import seller_scope
from tests.ledger import fakepay
from tests.ledger.conftest import insert_order
from tests.tracking.faketrack import IDENTIFIER, FakeTracker, FakeTrackPlugin, push


async def test_add_tracking_then_pushes_update_it_once(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    tracker = FakeTracker()
    settings = app_settings.model_copy(update={"tracking_provider": IDENTIFIER})
    async with api_client_for(settings, plugins=[fakepay, FakeTrackPlugin(tracker)]) as client:
        seller = await new_seller(client=client)
        other = await new_seller(client=client)
        with psycopg.connect(database_owner_dsn, autocommit=True) as conn:
            order = insert_order(conn, seller.seller_id)
            with seller_scope(conn, seller.seller_id):
                conn.execute("UPDATE orders SET status = 'PAID' WHERE id = %s", (order.order_id,))
        url = f"/orders/{order.order_id}/tracking"
        number = f"TRK{uuid.uuid4().hex[:8].upper()}"

        added = await client.post(
            url, json={"carrier": "usps", "tracking_number": number}, headers=seller.headers
        )
        duplicate = await client.post(
            url, json={"carrier": "usps", "tracking_number": number}, headers=seller.headers
        )
        foreign = await client.post(
            url, json={"carrier": "usps", "tracking_number": "TRK0000"}, headers=other.headers
        )
        body, headers = push(
            number,
            tag_for(seller.seller_id, order.order_id),
            TrackingStatus.DELIVERED,
            datetime.now(UTC),
        )
        first = await client.post(f"/webhooks/tracking/{IDENTIFIER}", content=body, headers=headers)
        again = await client.post(f"/webhooks/tracking/{IDENTIFIER}", content=body, headers=headers)
        forged = await client.post(
            f"/webhooks/tracking/{IDENTIFIER}", content=body + b" ", headers=headers
        )
        listed = await client.get(url, headers=seller.headers)

    assert added.status_code == 201, added.text
    assert added.json()["status"] == "not_found"
    assert duplicate.status_code == 409
    assert foreign.status_code == 404
    assert (first.json(), again.json()) == ({"updated": 1}, {"updated": 0})
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_signature"
    assert [item["status"] for item in listed.json()] == ["delivered"]
    assert tracker.registered[number].tag == tag_for(seller.seller_id, order.order_id)
