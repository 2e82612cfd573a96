"""Storefront cache hits answered before routing (issue 18 item 1): one Redis round
trip, the route's exact answer, counted once against the client's limit, labelled with
the route's template."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as redis

from pixecom_core.settings import Settings
from tests.app.catalog.conftest import (
    InstrumentedApi,
    InstrumentedFactory,
    assert_error,
    create_sellpage,
    unique_slug,
)
from tests.app.conftest import NewSeller
from tests.observability.test_api_metrics import scrape, value

ROUTE = "/public/sellpages/{slug}"
SHOPPER = {"X-Forwarded-For": "198.51.100.77"}


def answer_headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]


async def test_a_hit_is_the_routes_answer_in_one_round_trip(
    instrumented_api: InstrumentedApi, new_seller: NewSeller, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = instrumented_api
    seller = await new_seller(client=api.client)
    sellpage = await create_sellpage(api.client, seller, status="PUBLISHED")
    path = f"/public/sellpages/{sellpage['slug']}"
    before = value(
        await scrape(api.client),
        "pixecom_http_request_duration_seconds_count",
        method="GET",
        route=ROUTE,
        status_class="2xx",
    )

    rendered = await api.client.get(path, headers=SHOPPER)  # a miss: the route renders
    learned = await api.client.get(path, headers=SHOPPER)  # the slug's seller now known
    with api.redis_commands(monkeypatch) as sent, api.sql_statements() as statements:
        hit = await api.client.get(path, headers=SHOPPER)
        not_modified = await api.client.get(
            path, headers={**SHOPPER, "If-None-Match": hit.headers["ETag"]}
        )

    assert rendered.status_code == learned.status_code == hit.status_code == 200
    assert hit.content == learned.content == rendered.content
    assert answer_headers(hit) == answer_headers(rendered)
    assert hit.headers["x-request-id"] != rendered.headers["x-request-id"]
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["ETag"] == hit.headers["ETag"]
    # One script per request: the rate limit counted and the cache read together.
    assert sent == ["EVALSHA", "EVALSHA"], sent
    assert statements == []
    after = value(
        await scrape(api.client),
        "pixecom_http_request_duration_seconds_count",
        method="GET",
        route=ROUTE,
        status_class="2xx",
    )
    assert after == (before or 0) + 3


async def test_a_request_is_counted_once_whether_it_hits_or_not(
    app_settings: Settings, instrumented_api_for: InstrumentedFactory, new_seller: NewSeller
) -> None:
    settings = app_settings.model_copy(update={"public_ip_rate": "2/minute"})
    async with instrumented_api_for(settings) as api:
        seller = await new_seller(client=api.client)
        sellpage = await create_sellpage(api.client, seller, status="PUBLISHED")
        page = f"/public/sellpages/{sellpage['slug']}"
        unknown = f"/public/sellpages/{unique_slug()}"
        # A hit, then a remembered 404 that the route answers after the hit path counted.
        first = [(await api.client.get(page, headers=SHOPPER)).status_code for _ in range(2)]
        other = {"X-Forwarded-For": "198.51.100.78"}
        second = [(await api.client.get(unknown, headers=other)).status_code for _ in range(2)]
        refused_hit = await api.client.get(page, headers=SHOPPER)
        refused_miss = await api.client.get(unknown, headers=other)

    assert first == [200, 200]
    assert second == [404, 404]
    for refused in (refused_hit, refused_miss):
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) > 0


async def test_a_hit_path_without_redis_leaves_the_answer_to_the_route(
    instrumented_api: InstrumentedApi, new_seller: NewSeller, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = instrumented_api
    seller = await new_seller(client=api.client)
    sellpage = await create_sellpage(api.client, seller, status="PUBLISHED")
    path = f"/public/sellpages/{sellpage['slug']}"
    cached = await api.client.get(path)
    limiter = api.resources.limiter

    async def unavailable(*_args: object, **_options: object) -> list[bytes | None]:
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(limiter, "hit_and_read", unavailable)
    answered = await api.client.get(path)

    # The route counted and read the cache itself.
    assert answered.status_code == 200
    assert answered.content == cached.content
