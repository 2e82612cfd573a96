"""Tenant isolation of the catalog API: another seller's ids behave as unknown ones, and
trying to read, change or delete them changes nothing."""

from __future__ import annotations

import httpx

from tests.app.catalog.conftest import (
    Json,
    assert_error,
    create_product,
    create_sellpage,
    set_price,
    unique_slug,
)
from tests.app.conftest import SignedUpSeller


async def sellers_catalog(
    client: httpx.AsyncClient, seller: SignedUpSeller
) -> tuple[Json, Json, Json]:
    product = await create_product(client, seller)
    sellpage = await create_sellpage(client, seller, product_id=product["id"], status="PUBLISHED")
    rule = await set_price(client, seller, product["id"], 4200, sellpage_id=sellpage["id"])
    return product, sellpage, rule


async def test_another_sellers_rows_are_404_and_stay_unchanged(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    product, sellpage, rule = await sellers_catalog(api_client, seller)
    intruder = other_seller.headers
    attempts = [
        ("GET", f"/products/{product['id']}", None),
        ("PATCH", f"/products/{product['id']}", {"name": "Hijacked"}),
        ("DELETE", f"/products/{product['id']}", None),
        ("GET", f"/products/{product['id']}/prices", None),
        ("POST", f"/products/{product['id']}/prices", {"price_minor": 1, "currency": "USD"}),
        ("GET", f"/sellpages/{sellpage['id']}", None),
        ("PATCH", f"/sellpages/{sellpage['id']}", {"title": "Hijacked", "status": "DRAFT"}),
        ("DELETE", f"/sellpages/{sellpage['id']}", None),
        ("GET", f"/pricing-rules/{rule['id']}", None),
    ]

    for method, path, body in attempts:
        response = await api_client.request(method, path, json=body, headers=intruder)
        assert_error(response, 404, "not_found")

    owner = seller.headers
    assert (await api_client.get(f"/products/{product['id']}", headers=owner)).json() == product
    assert (await api_client.get(f"/sellpages/{sellpage['id']}", headers=owner)).json() == sellpage
    assert (await api_client.get(f"/pricing-rules/{rule['id']}", headers=owner)).json() == rule
    prices = await api_client.get(f"/products/{product['id']}/prices", headers=owner)
    assert [r["id"] for r in prices.json()["items"]] == [rule["id"]]
    public = await api_client.get(f"/public/sellpages/{sellpage['slug']}")
    assert public.json()["product"]["price"]["price_minor"] == 4200


async def test_another_sellers_rows_cannot_be_referenced(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    product, sellpage, _ = await sellers_catalog(api_client, seller)
    own_product = await create_product(api_client, other_seller)
    own_sellpage = await create_sellpage(api_client, other_seller)
    intruder = other_seller.headers

    borrowed_product = await api_client.post(
        "/sellpages",
        json={"slug": unique_slug(), "title": "x", "product_id": product["id"]},
        headers=intruder,
    )
    repointed = await api_client.patch(
        f"/sellpages/{own_sellpage['id']}", json={"product_id": product["id"]}, headers=intruder
    )
    borrowed_sellpage = await api_client.post(
        f"/products/{own_product['id']}/prices",
        json={"price_minor": 1, "currency": "USD", "sellpage_id": sellpage["id"]},
        headers=intruder,
    )

    assert_error(borrowed_product, 404, "not_found")
    assert_error(repointed, 404, "not_found")
    assert_error(borrowed_sellpage, 404, "not_found")
    assert (
        await api_client.get(f"/sellpages/{own_sellpage['id']}", headers=intruder)
    ).json() == own_sellpage


async def test_lists_show_only_the_callers_rows(
    api_client: httpx.AsyncClient, seller: SignedUpSeller, other_seller: SignedUpSeller
) -> None:
    mine = await sellers_catalog(api_client, seller)
    theirs = await sellers_catalog(api_client, other_seller)

    for who, (product, sellpage, _) in ((seller, mine), (other_seller, theirs)):
        products = await api_client.get("/products?limit=10000", headers=who.headers)
        sellpages = await api_client.get("/sellpages?limit=10000", headers=who.headers)
        assert [p["id"] for p in products.json()["items"]] == [product["id"]]
        assert [s["id"] for s in sellpages.json()["items"]] == [sellpage["id"]]
