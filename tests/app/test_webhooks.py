"""POST /webhooks/{gateway}: verified, stored once, acknowledged fast; bad ones refused."""

from __future__ import annotations

import json

import httpx
import psycopg

from pixecom_core.providers import PaymentEventKind
from tests.ledger import fakepay


def inbox_rows(dsn: str, event_id: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT gateway, event_type, status FROM webhook_inbox WHERE event_id = %s",
            (event_id,),
        ).fetchall()


async def test_a_signed_delivery_is_stored_once_and_a_replay_acknowledged(
    api_client: httpx.AsyncClient, database_owner_dsn: str
) -> None:
    body, headers = fakepay.delivery([fakepay.fact("fp_1", "ch_1", PaymentEventKind.CAPTURED, 100)])
    event_id = json.loads(body)["id"]

    first = await api_client.post("/webhooks/fakepay", content=body, headers=headers)
    replay = await api_client.post("/webhooks/fakepay", content=body, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json() == {"received": True, "duplicate": False}
    assert replay.status_code == 200
    assert replay.json() == {"received": True, "duplicate": True}
    assert inbox_rows(database_owner_dsn, event_id) == [("fakepay", "fake.facts", "RECEIVED")]


async def test_a_tampered_delivery_is_400_and_stores_nothing(
    api_client: httpx.AsyncClient, database_owner_dsn: str
) -> None:
    body, headers = fakepay.delivery([fakepay.fact("fp_1", "ch_2", PaymentEventKind.CAPTURED, 100)])
    event_id = json.loads(body)["id"]

    tampered = await api_client.post(
        "/webhooks/fakepay", content=body.replace(b"100", b"999"), headers=headers
    )
    unsigned = await api_client.post(
        "/webhooks/fakepay", content=body, headers={"Content-Type": "application/json"}
    )

    for response in (tampered, unsigned):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_signature"
    assert inbox_rows(database_owner_dsn, event_id) == []


async def test_an_unknown_gateway_is_404(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post("/webhooks/nopay", content=b"{}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_provider"
    assert "fakepay" in response.json()["error"]["message"]
