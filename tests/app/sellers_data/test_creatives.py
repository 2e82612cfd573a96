"""Creatives and assets over HTTP: CRUD, delete-or-archive, asset links, usage, isolation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from pixecom_core.creatives import MAX_ASSETS_PER_CREATIVE
from tests.app.sellers_data.conftest import Tenant
from tests.app.sellers_data.rows import assert_error


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _creative_row(tenant: Tenant, creative_id: uuid.UUID | str) -> tuple[Any, ...] | None:
    return tenant.rows.fetch_one(
        "SELECT name, status, headline, primary_text, call_to_action FROM creatives WHERE id = %s",
        uuid.UUID(str(creative_id)),
    )


def _links(tenant: Tenant, creative_id: uuid.UUID | str) -> list[tuple[Any, ...]]:
    return tenant.rows.fetch_all(
        "SELECT asset_id, role, position FROM creative_assets WHERE creative_id = %s"
        " ORDER BY position",
        uuid.UUID(str(creative_id)),
    )


async def _create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/creatives", json={"name": "Creative", **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- CRUD -----------------------------------------------------------------------------------


async def test_create_then_read_a_creative(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    created = await _create(
        api_client,
        seller_a,
        name="Summer hero",
        headline="Beat the heat",
        primary_text="Cool fans, 30% off.",
        call_to_action="SHOP_NOW",
    )

    assert created["status"] == "DRAFT"
    assert created["assets"] == []
    assert _creative_row(seller_a, created["id"]) == (
        "Summer hero",
        "DRAFT",
        "Beat the heat",
        "Cool fans, 30% off.",
        "SHOP_NOW",
    )
    read = await api_client.get(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert read.status_code == 200, read.text
    assert read.json() == created


async def test_list_creatives_filters_by_status(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    draft = await _create(api_client, seller_a)
    ready = await _create(api_client, seller_a, status="READY")
    archived = seller_a.rows.creative(status="ARCHIVED")

    everything = await api_client.get("/creatives", headers=seller_a.headers)
    only_ready = await api_client.get(
        "/creatives", params={"status": "READY"}, headers=seller_a.headers
    )
    only_archived = await api_client.get(
        "/creatives", params={"status": "ARCHIVED"}, headers=seller_a.headers
    )

    assert _ids(everything) == [draft["id"], ready["id"], str(archived)]
    assert _ids(only_ready) == [ready["id"]]
    assert _ids(only_archived) == [str(archived)]


async def test_patch_changes_only_the_fields_sent(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a, headline="Old", primary_text="Keep me")

    patched = await api_client.patch(
        f"/creatives/{created['id']}",
        json={"name": "Renamed", "headline": None, "status": "READY"},
        headers=seller_a.headers,
    )

    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Renamed"
    assert datetime.fromisoformat(patched.json()["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    assert _creative_row(seller_a, created["id"]) == ("Renamed", "READY", None, "Keep me", None)
    unchanged = await api_client.patch(
        f"/creatives/{created['id']}", json={}, headers=seller_a.headers
    )
    assert unchanged.status_code == 200
    assert unchanged.json()["updated_at"] == patched.json()["updated_at"]


async def test_bad_creative_bodies_are_422(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    created = await _create(api_client, seller_a)
    headers = seller_a.headers

    for body in [
        {},
        {"name": ""},
        {"name": "x", "status": "LIVE"},
        {"name": "x", "headline": "h" * 256},
        {"name": "x", "unknown": 1},
    ]:
        assert_error(
            await api_client.post("/creatives", json=body, headers=headers),
            422,
            "validation_failed",
        )
    for body in [{"name": None}, {"status": None}, {"status": "archived"}, {"colour": "red"}]:
        response = await api_client.patch(f"/creatives/{created['id']}", json=body, headers=headers)
        assert_error(response, 422, "validation_failed")
    listed = await api_client.get("/creatives", params={"status": "GONE"}, headers=headers)
    assert_error(listed, 422, "validation_failed")
    assert _creative_row(seller_a, created["id"]) == ("Creative", "DRAFT", None, None, None)


async def test_deleting_an_unused_creative_removes_it_and_its_links(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a)
    asset = seller_a.rows.asset()
    seller_a.rows.creative_asset(uuid.UUID(created["id"]), asset)

    deleted = await api_client.delete(f"/creatives/{created['id']}", headers=seller_a.headers)

    assert deleted.status_code == 204 and deleted.content == b""
    assert _creative_row(seller_a, created["id"]) is None
    assert _links(seller_a, created["id"]) == []
    # The asset itself stays.
    assert (await api_client.get(f"/assets/{asset}", headers=seller_a.headers)).status_code == 200
    gone = await api_client.get(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert_error(gone, 404, "not_found")
    again = await api_client.delete(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert_error(again, 404, "not_found")


async def test_deleting_a_creative_an_ad_uses_archives_it(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a, status="ACTIVE")
    asset = seller_a.rows.asset()
    seller_a.rows.creative_asset(uuid.UUID(created["id"]), asset)
    adset = seller_a.rows.adset(seller_a.rows.campaign(seller_a.rows.ad_account()))
    ad = seller_a.rows.ad(adset, creative_id=uuid.UUID(created["id"]))

    deleted = await api_client.delete(f"/creatives/{created['id']}", headers=seller_a.headers)

    assert deleted.status_code == 204
    read = await api_client.get(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "ARCHIVED"
    assert [link["asset_id"] for link in read.json()["assets"]] == [str(asset)]
    ad_now = await api_client.get(f"/ads/{ad}", headers=seller_a.headers)
    assert ad_now.json()["creative_id"] == created["id"]
    # Restoring is a status change.
    restored = await api_client.patch(
        f"/creatives/{created['id']}", json={"status": "READY"}, headers=seller_a.headers
    )
    assert restored.json()["status"] == "READY"


async def test_another_seller_cannot_touch_a_creative(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    created = await _create(api_client, seller_a, name="Mine")
    path = f"/creatives/{created['id']}"

    assert_error(await api_client.get(path, headers=seller_b.headers), 404, "not_found")
    patch = await api_client.patch(path, json={"name": "Stolen"}, headers=seller_b.headers)
    assert_error(patch, 404, "not_found")
    assert_error(await api_client.delete(path, headers=seller_b.headers), 404, "not_found")
    assert _ids(await api_client.get("/creatives", headers=seller_b.headers)) == []
    assert _creative_row(seller_a, created["id"]) == ("Mine", "DRAFT", None, None, None)


# -- a creative's assets --------------------------------------------------------------------


async def test_attach_is_idempotent_and_assets_come_in_position_order(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a)
    image, thumbnail = seller_a.rows.asset(), seller_a.rows.asset()
    base = f"/creatives/{created['id']}/assets"

    first = await api_client.put(
        f"{base}/{image}", json={"role": "PRIMARY", "position": 5}, headers=seller_a.headers
    )
    second = await api_client.put(
        f"{base}/{thumbnail}", json={"role": "THUMBNAIL", "position": 1}, headers=seller_a.headers
    )
    moved = await api_client.put(
        f"{base}/{image}", json={"role": "VARIANT", "position": 0}, headers=seller_a.headers
    )

    assert first.status_code == 200, first.text
    assert first.json()["role"] == "PRIMARY" and first.json()["position"] == 5
    assert second.status_code == 200, second.text
    assert moved.json()["role"] == "VARIANT" and moved.json()["position"] == 0
    assert _links(seller_a, created["id"]) == [(image, "VARIANT", 0), (thumbnail, "THUMBNAIL", 1)]
    read = await api_client.get(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert [link["asset_id"] for link in read.json()["assets"]] == [str(image), str(thumbnail)]
    defaults = await api_client.put(f"{base}/{thumbnail}", json={}, headers=seller_a.headers)
    assert defaults.json()["role"] == "PRIMARY" and defaults.json()["position"] == 0


async def test_detach_removes_the_link_only(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a)
    asset = seller_a.rows.asset()
    path = f"/creatives/{created['id']}/assets/{asset}"
    await api_client.put(path, json={}, headers=seller_a.headers)

    detached = await api_client.delete(path, headers=seller_a.headers)

    assert detached.status_code == 204
    assert _links(seller_a, created["id"]) == []
    assert (await api_client.get(f"/assets/{asset}", headers=seller_a.headers)).status_code == 200
    assert_error(
        await api_client.delete(path, headers=seller_a.headers), 404, "creative_asset_not_found"
    )


async def test_attach_refuses_assets_not_ready_and_archived_creatives(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a)
    archived = seller_a.rows.creative(status="ARCHIVED")
    ready = seller_a.rows.asset()
    headers = seller_a.headers

    for status in ("PENDING", "REJECTED"):
        asset = seller_a.rows.asset(status=status)
        response = await api_client.put(
            f"/creatives/{created['id']}/assets/{asset}", json={}, headers=headers
        )
        assert_error(response, 409, "asset_not_ready")
    to_archived = await api_client.put(
        f"/creatives/{archived}/assets/{ready}", json={}, headers=headers
    )
    assert_error(to_archived, 409, "creative_archived")
    assert _links(seller_a, created["id"]) == [] and _links(seller_a, archived) == []


async def test_a_creative_has_a_bounded_number_of_assets(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    created = await _create(api_client, seller_a)
    assets = [seller_a.rows.asset() for _ in range(MAX_ASSETS_PER_CREATIVE + 1)]
    for position, asset in enumerate(assets[:-1]):
        seller_a.rows.creative_asset(uuid.UUID(created["id"]), asset, position=position)

    one_too_many = await api_client.put(
        f"/creatives/{created['id']}/assets/{assets[-1]}", json={}, headers=seller_a.headers
    )
    # Changing an asset already used is still allowed at the cap.
    existing = await api_client.put(
        f"/creatives/{created['id']}/assets/{assets[0]}",
        json={"position": 99},
        headers=seller_a.headers,
    )

    assert_error(one_too_many, 409, "too_many_assets")
    assert existing.status_code == 200, existing.text
    assert len(_links(seller_a, created["id"])) == MAX_ASSETS_PER_CREATIVE
    read = await api_client.get(f"/creatives/{created['id']}", headers=seller_a.headers)
    assert len(read.json()["assets"]) == MAX_ASSETS_PER_CREATIVE


async def test_attach_across_sellers_is_not_found(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    mine = await _create(api_client, seller_a)
    my_asset = seller_a.rows.asset()
    their_asset = seller_b.rows.asset()
    their_creative = seller_b.rows.creative()

    foreign_asset = await api_client.put(
        f"/creatives/{mine['id']}/assets/{their_asset}", json={}, headers=seller_a.headers
    )
    foreign_creative = await api_client.put(
        f"/creatives/{their_creative}/assets/{my_asset}", json={}, headers=seller_a.headers
    )
    foreign_detach = await api_client.delete(
        f"/creatives/{their_creative}/assets/{their_asset}", headers=seller_a.headers
    )

    assert_error(foreign_asset, 404, "asset_not_found")
    assert_error(foreign_creative, 404, "not_found")
    assert_error(foreign_detach, 404, "not_found")
    assert _links(seller_a, mine["id"]) == [] and _links(seller_b, their_creative) == []


async def test_bad_attach_requests_are_422(api_client: httpx.AsyncClient, seller_a: Tenant) -> None:
    created = await _create(api_client, seller_a)
    asset = seller_a.rows.asset()
    path = f"/creatives/{created['id']}/assets/{asset}"

    for body in [{"role": "HERO"}, {"position": -1}, {"position": "first"}, {"size": 1}]:
        response = await api_client.put(path, json=body, headers=seller_a.headers)
        assert_error(response, 422, "validation_failed")
    bad_id = await api_client.put(
        f"/creatives/{created['id']}/assets/nope", json={}, headers=seller_a.headers
    )
    assert_error(bad_id, 422, "validation_failed")
    assert _links(seller_a, created["id"]) == []


# -- assets ---------------------------------------------------------------------------------


async def test_assets_filter_by_status_and_content_type(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    png = seller_a.rows.asset()
    video = seller_a.rows.asset(content_type="video/mp4")
    pending = seller_a.rows.asset(status="PENDING")

    async def listed(**params: str) -> list[str]:
        return _ids(await api_client.get("/assets", params=params, headers=seller_a.headers))

    assert await listed() == [str(png), str(video), str(pending)]
    assert await listed(status="READY") == [str(png), str(video)]
    assert await listed(content_type="video/mp4") == [str(video)]
    assert await listed(status="PENDING", content_type="image/png") == [str(pending)]
    assert await listed(content_type="image/gif") == []

    one = await api_client.get(f"/assets/{video}", headers=seller_a.headers)
    assert one.status_code == 200, one.text
    assert one.json()["content_type"] == "video/mp4"
    assert one.json()["size_bytes"] == 2048
    assert "storage_key" not in one.json()


async def test_asset_usage_lists_the_creatives_that_use_it(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    asset, unused = seller_a.rows.asset(), seller_a.rows.asset()
    users = [seller_a.rows.creative(name=f"User {index}") for index in range(3)]
    seller_a.rows.creative()  # uses nothing
    for index, creative in enumerate(users):
        seller_a.rows.creative_asset(creative, asset, role="THUMBNAIL", position=index)

    first = await api_client.get(
        f"/assets/{asset}/usage", params={"limit": 2}, headers=seller_a.headers
    )
    rest = await api_client.get(
        f"/assets/{asset}/usage",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=seller_a.headers,
    )
    nothing = await api_client.get(f"/assets/{unused}/usage", headers=seller_a.headers)

    assert first.status_code == 200 and rest.status_code == 200, (first.text, rest.text)
    usages = first.json()["items"] + rest.json()["items"]
    assert [usage["creative"]["id"] for usage in usages] == [str(c) for c in users]
    assert [usage["position"] for usage in usages] == [0, 1, 2]
    assert {usage["role"] for usage in usages} == {"THUMBNAIL"}
    assert rest.json()["next_cursor"] is None
    assert nothing.status_code == 200, nothing.text
    assert nothing.json()["items"] == [] and nothing.json()["next_cursor"] is None


async def test_another_sellers_assets_are_not_found(
    api_client: httpx.AsyncClient, seller_a: Tenant, seller_b: Tenant
) -> None:
    asset = seller_a.rows.asset()
    seller_a.rows.creative_asset(seller_a.rows.creative(), asset)

    assert_error(
        await api_client.get(f"/assets/{asset}", headers=seller_b.headers), 404, "not_found"
    )
    usage = await api_client.get(f"/assets/{asset}/usage", headers=seller_b.headers)
    assert_error(usage, 404, "not_found")
    assert _ids(await api_client.get("/assets", headers=seller_b.headers)) == []


async def test_bad_asset_requests_are_refused(
    api_client: httpx.AsyncClient, seller_a: Tenant
) -> None:
    headers = seller_a.headers
    for params in [{"status": "DONE"}, {"content_type": "PNG"}, {"content_type": "image/"}]:
        response = await api_client.get("/assets", params=params, headers=headers)
        assert_error(response, 422, "validation_failed")
    asset = seller_a.rows.asset()
    for path in ["/assets", f"/assets/{asset}/usage", "/creatives"]:
        response = await api_client.get(path, params={"cursor": "W10"}, headers=headers)
        assert_error(response, 400, "invalid_cursor")
    assert_error(await api_client.get(f"/assets/{uuid.uuid4()}", headers=headers), 404, "not_found")
    assert_error(await api_client.get("/assets"), 401, "unauthenticated")
    assert_error(await api_client.post("/creatives", json={"name": "x"}), 401, "unauthenticated")
