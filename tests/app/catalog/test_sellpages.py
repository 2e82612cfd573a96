"""Sellpages over HTTP: round trips, publishing, global slugs, product references, delete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from tests.app.catalog.conftest import (
    assert_error,
    create_product,
    create_sellpage,
    set_price,
    unique_slug,
)
from tests.app.conftest import SignedUpSeller


async def test_create_get_update_list_and_delete_a_sellpage(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    slug = unique_slug()
    created = await create_sellpage(
        api_client,
        seller,
        slug=slug,
        title="Summer sale",
        product_id=product["id"],
        content={"hero": "Linen for hot days", "blocks": [1, 2]},
    )
    assert created["status"] == "DRAFT"
    assert created["published_at"] is None
    assert created["content"] == {"hero": "Linen for hot days", "blocks": [1, 2]}
    path = f"/sellpages/{created['id']}"
    assert (await api_client.get(path, headers=seller.headers)).json() == created

    new_slug = unique_slug()
    changed = await api_client.patch(
        path,
        json={"slug": new_slug, "title": "Autumn sale", "product_id": None},
        headers=seller.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["slug"] == new_slug
    assert changed.json()["title"] == "Autumn sale"
    assert changed.json()["product_id"] is None
    assert changed.json()["content"] == created["content"]

    listed = await api_client.get("/sellpages", headers=seller.headers)
    assert [s["id"] for s in listed.json()["items"]] == [created["id"]]

    deleted = await api_client.delete(path, headers=seller.headers)
    assert deleted.status_code == 204
    assert_error(await api_client.get(path, headers=seller.headers), 404, "not_found")
    assert_error(await api_client.delete(path, headers=seller.headers), 404, "not_found")


async def test_publishing_sets_and_unpublishing_clears_published_at(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    sellpage = await create_sellpage(api_client, seller)
    path = f"/sellpages/{sellpage['id']}"
    before = datetime.now(UTC)

    published = await api_client.patch(path, json={"status": "PUBLISHED"}, headers=seller.headers)
    assert published.status_code == 200, published.text
    published_at = datetime.fromisoformat(published.json()["published_at"])
    assert published_at >= before

    # Changing something else keeps the publication time.
    retitled = await api_client.patch(path, json={"title": "New"}, headers=seller.headers)
    assert retitled.json()["published_at"] == published.json()["published_at"]
    only_published = await api_client.get("/sellpages?status=PUBLISHED", headers=seller.headers)
    assert [s["id"] for s in only_published.json()["items"]] == [sellpage["id"]]

    unpublished = await api_client.patch(path, json={"status": "DRAFT"}, headers=seller.headers)
    assert unpublished.json()["status"] == "DRAFT"
    assert unpublished.json()["published_at"] is None
    none_published = await api_client.get("/sellpages?status=PUBLISHED", headers=seller.headers)
    assert none_published.json()["items"] == []

    born_published = await create_sellpage(api_client, seller, status="PUBLISHED")
    assert born_published["published_at"] is not None


async def test_a_slug_is_taken_across_all_sellers(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    mine = await create_sellpage(api_client, seller)
    second = await create_sellpage(api_client, seller)

    same_seller = await api_client.post(
        "/sellpages", json={"slug": mine["slug"], "title": "x"}, headers=seller.headers
    )
    other = await api_client.post(
        "/sellpages", json={"slug": mine["slug"], "title": "x"}, headers=other_seller.headers
    )
    theirs = await create_sellpage(api_client, other_seller)
    renamed_onto_theirs = await api_client.patch(
        f"/sellpages/{second['id']}", json={"slug": theirs["slug"]}, headers=seller.headers
    )

    assert_error(same_seller, 409, "slug_taken")
    assert_error(other, 409, "slug_taken")
    assert_error(renamed_onto_theirs, 409, "slug_taken")
    unchanged = await api_client.get(f"/sellpages/{second['id']}", headers=seller.headers)
    assert unchanged.json() == second


async def test_deleting_a_sellpage_frees_its_slug(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    sellpage = await create_sellpage(api_client, seller)
    assert (
        await api_client.delete(f"/sellpages/{sellpage['id']}", headers=seller.headers)
    ).status_code == 204

    await create_sellpage(api_client, other_seller, slug=sellpage["slug"])


async def test_renaming_a_sellpage_frees_its_old_slug(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    sellpage = await create_sellpage(api_client, seller)
    renamed = await api_client.patch(
        f"/sellpages/{sellpage['id']}", json={"slug": unique_slug()}, headers=seller.headers
    )
    assert renamed.status_code == 200, renamed.text

    await create_sellpage(api_client, other_seller, slug=sellpage["slug"])


async def test_a_priced_sellpage_cannot_be_deleted_but_can_be_archived(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    product = await create_product(api_client, seller)
    sellpage = await create_sellpage(api_client, seller, product_id=product["id"])
    await set_price(api_client, seller, product["id"], 1999, sellpage_id=sellpage["id"])
    path = f"/sellpages/{sellpage['id']}"

    refused = await api_client.delete(path, headers=seller.headers)

    assert_error(refused, 409, "sellpage_in_use")
    assert (await api_client.get(path, headers=seller.headers)).json() == sellpage
    archived = await api_client.patch(path, json={"status": "ARCHIVED"}, headers=seller.headers)
    assert archived.json()["status"] == "ARCHIVED"


async def test_a_sellpage_must_reference_one_of_the_sellers_products(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    theirs = await create_product(api_client, other_seller)
    mine = await create_sellpage(api_client, seller)

    unknown = await api_client.post(
        "/sellpages",
        json={"slug": unique_slug(), "title": "x", "product_id": str(uuid.uuid4())},
        headers=seller.headers,
    )
    foreign = await api_client.post(
        "/sellpages",
        json={"slug": unique_slug(), "title": "x", "product_id": theirs["id"]},
        headers=seller.headers,
    )
    foreign_patch = await api_client.patch(
        f"/sellpages/{mine['id']}", json={"product_id": theirs["id"]}, headers=seller.headers
    )

    assert_error(unknown, 404, "not_found")
    assert_error(foreign, 404, "not_found")
    assert_error(foreign_patch, 404, "not_found")
    assert (await api_client.get(f"/sellpages/{mine['id']}", headers=seller.headers)).json() == mine
    assert (await api_client.get("/sellpages", headers=seller.headers)).json()["items"] == [mine]


async def test_invalid_sellpages_are_refused(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    sellpage = await create_sellpage(api_client, seller)
    for slug in ["Upper-Case", "double--hyphen", "-leading", "trailing-", "spa ce", "", "a" * 201]:
        response = await api_client.post(
            "/sellpages", json={"slug": slug, "title": "x"}, headers=seller.headers
        )
        assert_error(response, 422, "validation_failed")
    for body in [
        {"slug": "ok-slug", "title": ""},
        {"slug": unique_slug(), "title": "x", "status": "LIVE"},
        {"slug": unique_slug(), "title": "x", "content": ["not", "an", "object"]},
    ]:
        response = await api_client.post("/sellpages", json=body, headers=seller.headers)
        assert_error(response, 422, "validation_failed")
    path = f"/sellpages/{sellpage['id']}"
    for patch in [{"slug": None}, {"title": None}, {"content": None}, {"slug": "Bad Slug"}]:
        response = await api_client.patch(path, json=patch, headers=seller.headers)
        assert_error(response, 422, "validation_failed")
    assert_error(
        await api_client.get(f"/sellpages/{uuid.uuid4()}", headers=seller.headers), 404, "not_found"
    )
    assert_error(
        await api_client.patch(f"/sellpages/{uuid.uuid4()}", json={}, headers=seller.headers),
        404,
        "not_found",
    )
    assert (await api_client.get(path, headers=seller.headers)).json() == sellpage
