"""StorefrontCache against real Redis: generation tokens make a page rendered before a
change unservable, whatever order the reader and the writer finish in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pixecom_core.catalog.storefront import RenderedSellpage, StorefrontCache
from pixecom_core.settings import Settings
from tests.app.catalog.conftest import unique_slug

PAGE = RenderedSellpage(body=b'{"title":"old"}', etag='"old"')


@pytest.fixture
async def redis_client(app_settings: Settings) -> AsyncIterator[redis.Redis]:
    assert app_settings.redis_url is not None
    client = redis.Redis.from_url(app_settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def cache(redis_client: redis.Redis, app_settings: Settings) -> StorefrontCache:
    return StorefrontCache(redis_client, app_settings)


async def store(
    cache: StorefrontCache, slug: str, seller: uuid.UUID, tokens: tuple[str, str]
) -> None:
    slug_generation, seller_generation = tokens
    await cache.store_page(
        slug,
        PAGE,
        slug_generation=slug_generation,
        seller_id=seller,
        seller_generation=seller_generation,
        ttl_seconds=60,
    )


async def tokens(cache: StorefrontCache, slug: str, seller: uuid.UUID) -> tuple[str, str]:
    return await cache.slug_generation(slug), await cache.seller_generation(seller)


async def test_a_page_stored_under_current_tokens_is_a_hit(cache: StorefrontCache) -> None:
    slug, seller = unique_slug(), uuid.uuid4()
    await store(cache, slug, seller, await tokens(cache, slug, seller))

    assert (await cache.lookup(slug)).page == PAGE


async def test_a_page_rendered_before_a_seller_change_is_never_served(
    cache: StorefrontCache,
) -> None:
    slug, seller = unique_slug(), uuid.uuid4()
    seen = await tokens(cache, slug, seller)  # the reader takes its tokens, reads the DB...
    await cache.catalog_changed(seller, ())  # ...a change commits and invalidates...
    await store(cache, slug, seller, seen)  # ...and only then the slow reader stores.

    lookup = await cache.lookup(slug)
    assert lookup.page is None
    assert not lookup.missing


async def test_a_change_of_another_seller_leaves_the_page_cached(cache: StorefrontCache) -> None:
    slug, seller = unique_slug(), uuid.uuid4()
    await store(cache, slug, seller, await tokens(cache, slug, seller))

    await cache.catalog_changed(uuid.uuid4(), (unique_slug(),))

    assert (await cache.lookup(slug)).page == PAGE


async def test_a_remembered_404_ends_when_the_slug_is_claimed(cache: StorefrontCache) -> None:
    slug = unique_slug()
    seen = await cache.slug_generation(slug)
    await cache.store_missing(slug, slug_generation=seen)
    assert (await cache.lookup(slug)).missing

    await cache.catalog_changed(uuid.uuid4(), (slug,))
    assert not (await cache.lookup(slug)).missing

    # A reader that looked before the claim committed stores a 404 nobody is served.
    await cache.store_missing(slug, slug_generation=seen)
    assert not (await cache.lookup(slug)).missing


async def test_an_expired_generation_token_is_a_miss_not_a_stale_hit(
    cache: StorefrontCache, redis_client: redis.Redis, app_settings: Settings
) -> None:
    slug, seller = unique_slug(), uuid.uuid4()
    await store(cache, slug, seller, await tokens(cache, slug, seller))

    await redis_client.delete(
        f"{app_settings.redis_key_prefix}storefront:generation:seller:{seller}"
    )

    assert (await cache.lookup(slug)).page is None


async def test_a_redis_failure_during_invalidation_is_logged_not_raised(
    app_settings: Settings, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis(
        host="127.0.0.1", port=closed_port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        with caplog.at_level(logging.ERROR, logger="pixecom_core.catalog.storefront"):
            await StorefrontCache(client, app_settings).catalog_changed(uuid.uuid4(), ("a-b",))
    finally:
        await client.aclose()

    assert "storefront cache not invalidated" in caplog.text
