"""The public storefront over HTTP: published pages only, served from Redis without SQL,
invalidated by every change a shopper could see, with ETags and a per-IP throttle."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pixecom_core.catalog.storefront import PAGE_TTL_SECONDS
from pixecom_core.settings import Settings
from tests.app.catalog.conftest import (
    InstrumentedApi,
    Json,
    assert_error,
    create_product,
    create_sellpage,
    set_price,
    unique_slug,
)
from tests.app.conftest import ClientFactory, NewSeller, SignedUpSeller


@pytest.fixture
async def shop_seller(instrumented_api: InstrumentedApi, new_seller: NewSeller) -> SignedUpSeller:
    return await new_seller(client=instrumented_api.client)


async def published_page(
    api: InstrumentedApi, seller: SignedUpSeller, *, price_minor: int = 2500, **fields: Any
) -> tuple[Json, Json]:
    """A product with a product-wide price and a published sellpage selling it."""
    product = await create_product(api.client, seller, name="Linen shirt", description="Blue")
    await set_price(api.client, seller, product["id"], price_minor)
    sellpage = await create_sellpage(
        api.client,
        seller,
        product_id=product["id"],
        status="PUBLISHED",
        content={"hero": "Cool in the heat"},
        **fields,
    )
    return product, sellpage


async def read(api: InstrumentedApi, slug: str, **headers: str) -> httpx.Response:
    return await api.client.get(f"/public/sellpages/{slug}", headers=headers)


async def test_a_published_sellpage_shows_its_product_and_current_price(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    product, sellpage = await published_page(instrumented_api, shop_seller, price_minor=2500)

    response = await read(instrumented_api, sellpage["slug"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "slug": sellpage["slug"],
        "title": "Summer sale",
        "content": {"hero": "Cool in the heat"},
        "published_at": sellpage["published_at"],
        "product": {
            "id": product["id"],
            "name": "Linen shirt",
            "description": "Blue",
            "price": {"price_minor": 2500, "currency": "USD"},
        },
        # No pixel configured (issue 17: a destination's id would show here).
        "conversion_destinations": {},
    }
    # Nothing private leaks to shoppers.
    for private in ("sku", "seller_id", "status", sellpage["id"]):
        assert private not in response.text


async def test_the_sellpages_own_price_wins_over_the_product_wide_one(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    api = instrumented_api
    product, sellpage = await published_page(api, shop_seller, price_minor=2500)
    other = await create_sellpage(
        api.client, shop_seller, product_id=product["id"], status="PUBLISHED"
    )
    await set_price(
        api.client, shop_seller, product["id"], 1999, currency="EUR", sellpage_id=sellpage["id"]
    )

    own = (await read(api, sellpage["slug"])).json()["product"]["price"]
    product_wide = (await read(api, other["slug"])).json()["product"]["price"]

    assert own == {"price_minor": 1999, "currency": "EUR"}
    assert product_wide == {"price_minor": 2500, "currency": "USD"}


async def test_a_repeated_read_is_served_from_the_cache_without_sql(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    api = instrumented_api
    _, sellpage = await published_page(api, shop_seller)

    with api.sql_statements() as first_statements:
        first = await read(api, sellpage["slug"])
    with api.sql_statements() as second_statements:
        second = await read(api, sellpage["slug"])

    assert first.status_code == second.status_code == 200
    assert first_statements, "the first read renders from the database"
    assert second_statements == []
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]


async def test_cache_keys_carry_the_deployments_prefix(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller, app_settings: Settings
) -> None:
    api = instrumented_api
    _, sellpage = await published_page(api, shop_seller)
    await read(api, sellpage["slug"])

    prefix = app_settings.redis_key_prefix
    page_key = f"{prefix}storefront:page:{sellpage['slug']}"
    assert await api.resources.redis.exists(page_key) == 1
    assert 0 < await api.resources.redis.ttl(page_key) <= PAGE_TTL_SECONDS
    # Every key this read wrote, whatever its prefix, carries this deployment's.
    written = [key.decode() async for key in api.resources.redis.scan_iter(f"*{sellpage['slug']}")]
    assert {key.removeprefix(prefix) for key in written} == {
        f"storefront:page:{sellpage['slug']}",
        f"storefront:generation:slug:{sellpage['slug']}",
    }
    assert all(key.startswith(prefix) for key in written)


async def test_etag_and_cache_control_and_304_on_a_matching_if_none_match(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller, app_settings: Settings
) -> None:
    api = instrumented_api
    _, sellpage = await published_page(api, shop_seller)

    first = await read(api, sellpage["slug"])
    etag = first.headers["ETag"]
    matching = await read(api, sellpage["slug"], **{"If-None-Match": etag})
    weak = await read(api, sellpage["slug"], **{"If-None-Match": f'"other", W/{etag}'})
    stale = await read(api, sellpage["slug"], **{"If-None-Match": '"not-the-tag"'})

    assert etag == f'"{hashlib.sha256(first.content).hexdigest()[:32]}"'  # strong, of the body
    assert first.headers["Cache-Control"] == (
        f"public, max-age={app_settings.public_cache_seconds}, stale-while-revalidate=30"
    )
    assert matching.status_code == 304
    assert matching.content == b""
    assert matching.headers["ETag"] == etag
    assert matching.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert weak.status_code == 304
    assert stale.status_code == 200
    assert stale.content == first.content


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        pytest.param(
            "price", lambda page: page["product"]["price"]["price_minor"] == 3100, id="price"
        ),
        pytest.param("title", lambda page: page["title"] == "Winter sale", id="title"),
        pytest.param("content", lambda page: page["content"] == {"hero": "Warm"}, id="content"),
        pytest.param("product", lambda page: page["product"]["name"] == "Wool coat", id="product"),
        pytest.param("archive", lambda page: page["product"] is None, id="archived-product"),
    ],
)
async def test_every_visible_change_invalidates_the_cached_page(
    instrumented_api: InstrumentedApi,
    shop_seller: SignedUpSeller,
    change: str,
    expect: Any,
) -> None:
    api = instrumented_api
    headers = shop_seller.headers
    product, sellpage = await published_page(api, shop_seller, price_minor=2500)
    before = await read(api, sellpage["slug"])
    assert before.status_code == 200

    if change == "price":
        await set_price(api.client, shop_seller, product["id"], 3100)
    elif change == "title":
        path = f"/sellpages/{sellpage['id']}"
        await api.client.patch(path, json={"title": "Winter sale"}, headers=headers)
    elif change == "content":
        path = f"/sellpages/{sellpage['id']}"
        await api.client.patch(path, json={"content": {"hero": "Warm"}}, headers=headers)
    elif change == "product":
        path = f"/products/{product['id']}"
        await api.client.patch(path, json={"name": "Wool coat"}, headers=headers)
    else:
        await api.client.delete(f"/products/{product['id']}", headers=headers)

    after = await read(api, sellpage["slug"])
    assert after.status_code == 200, after.text
    assert expect(after.json()), after.json()
    assert after.headers["ETag"] != before.headers["ETag"]
    # The old tag no longer validates a client's copy.
    revalidated = await read(api, sellpage["slug"], **{"If-None-Match": before.headers["ETag"]})
    assert revalidated.status_code == 200


async def test_unpublished_unknown_and_malformed_slugs_are_404(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    api = instrumented_api
    draft = await create_sellpage(api.client, shop_seller)

    for slug in [draft["slug"], unique_slug(), "Not-A-Slug", "a" * 300, "x--y"]:
        response = await read(api, slug)
        assert_error(response, 404, "not_found")
        assert "ETag" not in response.headers
    # The draft and the unknown slug answer alike: a shopper cannot tell them apart.
    draft_message = (await read(api, draft["slug"])).json()["error"]["message"]
    unknown_message = (await read(api, unique_slug())).json()["error"]["message"]
    assert draft_message == unknown_message


async def test_a_cached_404_ends_when_the_slug_is_created_or_published(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    api = instrumented_api
    slug = unique_slug()
    assert_error(await read(api, slug), 404, "not_found")
    with api.sql_statements() as statements:
        assert_error(await read(api, slug), 404, "not_found")
    assert statements == [], "the unknown slug was answered from the cache"

    draft = await create_sellpage(api.client, shop_seller, slug=slug)
    assert_error(await read(api, slug), 404, "not_found")  # a draft is not public

    await api.client.patch(
        f"/sellpages/{draft['id']}", json={"status": "PUBLISHED"}, headers=shop_seller.headers
    )
    published = await read(api, slug)
    assert published.status_code == 200, published.text
    assert published.json()["product"] is None


async def test_unpublishing_renaming_and_deleting_take_effect_at_once(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller
) -> None:
    api = instrumented_api
    headers = shop_seller.headers
    first = await create_sellpage(api.client, shop_seller, status="PUBLISHED")
    second = await create_sellpage(api.client, shop_seller, status="PUBLISHED")
    old_slug = first["slug"]
    assert (await read(api, old_slug)).status_code == 200
    assert (await read(api, second["slug"])).status_code == 200

    new_slug = unique_slug()
    await api.client.patch(f"/sellpages/{first['id']}", json={"slug": new_slug}, headers=headers)
    assert_error(await read(api, old_slug), 404, "not_found")
    assert (await read(api, new_slug)).json()["slug"] == new_slug

    await api.client.patch(f"/sellpages/{first['id']}", json={"status": "DRAFT"}, headers=headers)
    assert_error(await read(api, new_slug), 404, "not_found")

    await api.client.delete(f"/sellpages/{second['id']}", headers=headers)
    assert_error(await read(api, second["slug"]), 404, "not_found")


async def test_a_scheduled_price_shows_only_from_its_start_and_bounds_the_cache(
    instrumented_api: InstrumentedApi, shop_seller: SignedUpSeller, app_settings: Settings
) -> None:
    api = instrumented_api
    product, sellpage = await published_page(api, shop_seller, price_minor=2500)
    starts = datetime.now(UTC) + timedelta(seconds=120)
    await set_price(api.client, shop_seller, product["id"], 1500, effective_from=starts.isoformat())

    page = (await read(api, sellpage["slug"])).json()

    assert page["product"]["price"]["price_minor"] == 2500
    key = f"{app_settings.redis_key_prefix}storefront:page:{sellpage['slug']}"
    assert 0 < await api.resources.redis.ttl(key) <= 120


async def test_public_reads_are_throttled_per_ip(
    app_settings: Settings, api_client_for: ClientFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"public_ip_rate": "3/minute"})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        sellpage = await create_sellpage(client, seller, status="PUBLISHED")
        path = f"/public/sellpages/{sellpage['slug']}"
        shopper = {"X-Forwarded-For": "198.51.100.23"}

        codes = [(await client.get(path, headers=shopper)).status_code for _ in range(3)]
        limited = await client.get(path, headers=shopper)
        elsewhere = await client.get(path, headers={"X-Forwarded-For": "198.51.100.24"})

    assert codes == [200, 200, 200]
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    assert elsewhere.status_code == 200


async def test_the_storefront_needs_no_token_and_ignores_one(
    api_client: httpx.AsyncClient, seller: SignedUpSeller
) -> None:
    sellpage = await create_sellpage(api_client, seller, status="PUBLISHED")
    path = f"/public/sellpages/{sellpage['slug']}"

    anonymous = await api_client.get(path)
    garbage_token = await api_client.get(path, headers={"Authorization": "Bearer nope"})

    assert anonymous.status_code == 200, anonymous.text
    assert garbage_token.status_code == 200
    assert anonymous.content == garbage_token.content
