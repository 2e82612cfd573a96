"""Products over HTTP: round trips, conflicts, validation, unknown ids, bounded lists."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx

from pixecom_core.settings import Settings
from tests.app.catalog.conftest import assert_error, create_product, unique_sku
from tests.app.conftest import ClientFactory, NewSeller, SignedUpSeller


async def test_create_get_update_and_archive_a_product(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    sku = unique_sku()
    created = await create_product(
        api_client, seller, sku=sku, name="Linen shirt", description="Blue, slim fit"
    )
    assert created["sku"] == sku
    assert created["status"] == "ACTIVE"
    path = f"/products/{created['id']}"

    fetched = await api_client.get(path, headers=seller.headers)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == created

    changed = await api_client.patch(
        path, json={"name": "Linen shirt II", "description": None}, headers=seller.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Linen shirt II"
    assert changed.json()["description"] is None
    assert changed.json()["sku"] == sku  # not sent, not changed
    updated_at = datetime.fromisoformat(changed.json()["updated_at"])
    assert updated_at > datetime.fromisoformat(created["updated_at"])

    deleted = await api_client.delete(path, headers=seller.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    archived = await api_client.get(path, headers=seller.headers)
    assert archived.json()["status"] == "ARCHIVED"
    # Deleting again is harmless.
    assert (await api_client.delete(path, headers=seller.headers)).status_code == 204


async def test_list_filters_by_status(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    active = await create_product(api_client, seller)
    inactive = await create_product(api_client, seller, status="INACTIVE")

    everything = await api_client.get("/products", headers=seller.headers)
    only_inactive = await api_client.get("/products?status=INACTIVE", headers=seller.headers)
    bad_status = await api_client.get("/products?status=GONE", headers=seller.headers)

    assert [p["id"] for p in everything.json()["items"]] == [active["id"], inactive["id"]]
    assert everything.json()["next_cursor"] is None
    assert [p["id"] for p in only_inactive.json()["items"]] == [inactive["id"]]
    assert_error(bad_status, 422, "validation_failed")


async def test_a_taken_sku_is_a_conflict(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    first = await create_product(api_client, seller)
    second = await create_product(api_client, seller)

    again = await api_client.post(
        "/products", json={"sku": first["sku"], "name": "Copy"}, headers=seller.headers
    )
    renamed = await api_client.patch(
        f"/products/{second['id']}", json={"sku": first["sku"]}, headers=seller.headers
    )

    assert_error(again, 409, "sku_taken")
    assert_error(renamed, 409, "sku_taken")
    unchanged = await api_client.get(f"/products/{second['id']}", headers=seller.headers)
    assert unchanged.json()["sku"] == second["sku"]
    # SKUs are unique per seller only.
    await create_product(api_client, other_seller, sku=first["sku"])


async def test_unknown_and_malformed_ids(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    path = f"/products/{uuid.uuid4()}"

    assert_error(await api_client.get(path, headers=seller.headers), 404, "not_found")
    patched = await api_client.patch(path, json={"name": "x"}, headers=seller.headers)
    assert_error(patched, 404, "not_found")
    assert_error(await api_client.delete(path, headers=seller.headers), 404, "not_found")
    malformed = await api_client.get("/products/not-a-uuid", headers=seller.headers)
    assert_error(malformed, 422, "validation_failed")


async def test_invalid_bodies_are_refused(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    path = f"/products/{product['id']}"
    bad_creates = [
        {"name": "no sku"},
        {"sku": "", "name": "empty sku"},
        {"sku": " padded ", "name": "x"},
        {"sku": unique_sku(), "name": ""},
        {"sku": unique_sku(), "name": "x", "status": "SOLD"},
        {"sku": unique_sku(), "name": "x", "price": 100},  # unknown field
    ]
    for body in bad_creates:
        response = await api_client.post("/products", json=body, headers=seller.headers)
        assert_error(response, 422, "validation_failed")
    for body in [{"name": None}, {"sku": None}, {"status": None}, {"owner": "me"}]:
        response = await api_client.patch(path, json=body, headers=seller.headers)
        assert_error(response, 422, "validation_failed")

    assert (await api_client.get(path, headers=seller.headers)).json() == product


async def test_catalog_routes_need_a_token(api_client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/products"),
        ("POST", "/products"),
        ("GET", f"/products/{uuid.uuid4()}"),
        ("GET", "/sellpages"),
        ("GET", f"/pricing-rules/{uuid.uuid4()}"),
    ]:
        response = await api_client.request(method, path, json={})
        assert_error(response, 401, "unauthenticated")


async def test_lists_are_bounded_and_a_cursor_walk_returns_every_row_once(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"max_page_size": 5, "default_page_size": 3})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        created = [(await create_product(client, seller))["id"] for _ in range(12)]

        first = await client.get("/products?limit=10000", headers=seller.headers)
        assert first.status_code == 200, first.text
        assert len(first.json()["items"]) == 5
        assert first.json()["limit"] == 5
        assert first.json()["next_cursor"]
        default = await client.get("/products", headers=seller.headers)
        assert len(default.json()["items"]) == 3

        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"limit": "10000", **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/products", params=params, headers=seller.headers)).json()
            seen.extend(item["id"] for item in page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == created
        assert pages == 3


async def test_a_forged_cursor_or_a_zero_limit_is_refused(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    forged = await api_client.get("/products?cursor=bm90LWEtY3Vyc29y", headers=seller.headers)
    zero = await api_client.get("/products?limit=0", headers=seller.headers)
    huge = await api_client.get("/products?cursor=" + "a" * 600, headers=seller.headers)

    assert_error(forged, 400, "invalid_cursor")
    assert_error(zero, 422, "validation_failed")
    assert_error(huge, 422, "validation_failed")
