"""Uploads: presigned, checked after the fact, deduplicated; the ingest API's keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from pixecom_core.settings import Settings
from tests.app.conftest import ClientFactory, NewSeller, SignedUpSeller
from tests.assets.fakestore import IDENTIFIER, FakeStore, FakeStorePlugin
from tests.ledger import fakepay

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + secrets.token_bytes(200)
CURRENT, NEXT = secrets.token_urlsafe(40), secrets.token_urlsafe(40)


def declared(body: bytes, content_type: str = "image/png") -> dict[str, object]:
    return {
        "content_type": content_type,
        "size_bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def asset_settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(
        update={
            "storage_provider": IDENTIFIER,
            "max_upload_bytes": 10_000,
            "ingest_api_key_current": SecretStr(CURRENT),
            "ingest_api_key_next": SecretStr(NEXT),
        }
    )


async def upload(
    client: httpx.AsyncClient,
    store: FakeStore,
    seller: SignedUpSeller,
    body: bytes,
    *,
    actual: bytes | None = None,
    actual_type: str = "image/png",
) -> httpx.Response:
    """Request an upload for ``body``, put ``actual`` (default: ``body``), confirm."""
    ticket = await client.post("/assets/uploads", json=declared(body), headers=seller.headers)
    assert ticket.status_code == 201, ticket.text
    key = ticket.json()["upload"]["url"].split("fakestore.test/")[1].split("?")[0]
    store.put(key, body if actual is None else actual, actual_type)
    return await client.post(
        f"/assets/{ticket.json()['asset']['id']}/confirm", headers=seller.headers
    )


async def test_upload_is_presigned_checked_and_deduplicated(
    asset_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    store: FakeStore,
) -> None:
    async with api_client_for(asset_settings, plugins=[fakepay, FakeStorePlugin(store)]) as api:
        seller = await new_seller(client=api)
        other = await new_seller(client=api)

        confirmed = await upload(api, store, seller, PNG)
        again = await api.post("/assets/uploads", json=declared(PNG), headers=seller.headers)
        theirs = await upload(api, store, other, PNG)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "READY"
    [request] = store.presigned[:1]
    assert request.key.startswith(f"sellers/{seller.seller_id}/")
    assert request.content_length == len(PNG) and request.content_type == "image/png"
    assert request.expires_in.total_seconds() == 300
    # The same bytes by the same seller: one asset, nothing to upload.
    assert again.json()["duplicate"] is True and again.json()["upload"] is None
    assert again.json()["asset"]["id"] == confirmed.json()["id"]
    # By another seller: an asset of its own.
    assert theirs.json()["status"] == "READY" and theirs.json()["id"] != confirmed.json()["id"]


def html_of_length(length: int) -> bytes:
    page = b"<html><script>alert(1)</script></html>"
    return page + b" " * (length - len(page))


@pytest.mark.parametrize(
    ("make_actual", "actual_type", "reason"),
    [
        (lambda body: body + b"more bytes than declared", "image/png", "declared"),
        (lambda body: html_of_length(len(body)), "image/png", "the bytes are"),
        (lambda body: body[:-1] + bytes([body[-1] ^ 1]), "image/png", "SHA-256"),
        (lambda body: body, "text/html", "stored as text/html"),
    ],
    ids=["oversized", "html-as-png", "other-bytes", "other-type"],
)
async def test_a_mismatched_upload_is_deleted_and_rejected(
    asset_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    store: FakeStore,
    make_actual: Callable[[bytes], bytes],
    actual_type: str,
    reason: str,
) -> None:
    async with api_client_for(asset_settings, plugins=[fakepay, FakeStorePlugin(store)]) as api:
        seller = await new_seller(client=api)
        body = PNG + uuid.uuid4().bytes  # bytes of this test's own
        rejected = await upload(
            api, store, seller, body, actual=make_actual(body), actual_type=actual_type
        )
        listed = await api.get("/assets", headers=seller.headers)

    assert rejected.status_code == 422
    assert rejected.json()["error"]["code"] == "upload_rejected"
    assert reason in rejected.json()["error"]["message"]
    assert store.objects == {} and len(store.deleted) == 1  # quarantined by deletion
    assert [a["status"] for a in listed.json()["items"]] == ["REJECTED"]


async def test_declarations_outside_the_rules_are_refused(
    asset_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    store: FakeStore,
) -> None:
    async with api_client_for(asset_settings, plugins=[fakepay, FakeStorePlugin(store)]) as api:
        seller = await new_seller(client=api)
        html = await api.post(
            "/assets/uploads", json=declared(b"<html>", "text/html"), headers=seller.headers
        )
        huge = await api.post(
            "/assets/uploads", json=declared(b"x" * 10_001), headers=seller.headers
        )

    assert html.json()["error"]["code"] == "content_type_not_allowed"
    assert huge.json()["error"]["code"] == "file_too_large"
    assert store.presigned == []


async def test_ingest_accepts_current_and_next_keys_only(
    asset_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    store: FakeStore,
) -> None:
    async with api_client_for(asset_settings, plugins=[fakepay, FakeStorePlugin(store)]) as api:
        seller = await new_seller(client=api)
        body = {**declared(PNG + b"ingest"), "seller_id": str(seller.seller_id)}
        codes = {
            name: (await api.post("/ingest/assets", json=body, headers=headers)).status_code
            for name, headers in {
                "current": {"X-Api-Key": CURRENT},
                "next": {"X-Api-Key": NEXT},
                "retired": {"X-Api-Key": secrets.token_urlsafe(40)},
                "missing": {},
            }.items()
        }

    assert codes == {"current": 201, "next": 201, "retired": 401, "missing": 401}


async def test_ingest_is_rate_limited(
    asset_settings: Settings, api_client_for: ClientFactory, store: FakeStore
) -> None:
    settings = asset_settings.model_copy(update={"ingest_rate": "2/minute"})
    body = {**declared(PNG), "seller_id": str(uuid.uuid4())}
    async with api_client_for(settings, plugins=[fakepay, FakeStorePlugin(store)]) as api:
        codes = [
            (
                await api.post("/ingest/assets", json=body, headers={"X-Api-Key": "wrong"})
            ).status_code
            for _ in range(3)
        ]
    assert codes == [401, 401, 429]
