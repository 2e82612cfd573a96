"""A repeated dashboard read that hits the seller's cache is answered before routing
(issue 18 item 1): the same bytes and headers as the route's, labelled with the route, the
seller's quota counted once whether it hits or goes on to the route, and nothing served
to a request the route would refuse."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from pixecom_core.settings import Settings
from reference_app.api import create_app
from reference_app.api import dependencies as seller_dependencies
from reference_app.api.dashboard_reads import dashboard_reader
from reference_app.api.resources import get_resources
from tests.app.catalog.conftest import InstrumentedApi
from tests.app.dashboard_cache.conftest import NewTenant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORDERS = "/orders?limit=50"
#: The seller's quota in this module: a test can tell one count per request from two.
QUOTA = 4


@pytest.fixture
def app_settings(app_settings: Settings) -> Settings:
    """The tests' settings with a small per-seller quota."""
    return app_settings.model_copy(update={"seller_request_rate": f"{QUOTA}/minute"})


def _orders_requests(metrics: str) -> float:
    found = re.search(
        r'pixecom_http_request_duration_seconds_count\{method="GET",route="/orders",'
        r'status_class="2xx"\} ([0-9.]+)',
        metrics,
    )
    return float(found.group(1)) if found else 0.0


async def test_a_hit_answers_the_routes_bytes_and_headers_labelled_with_its_route(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(3, newest=NOW, step=timedelta(hours=1))
    routed = await api.client.get(ORDERS, headers=tenant.headers)
    before = _orders_requests((await api.client.get("/metrics")).text)

    with api.sql_statements() as statements:
        hit = await api.client.get(ORDERS, headers=tenant.headers)

    after = _orders_requests((await api.client.get("/metrics")).text)
    assert routed.status_code == hit.status_code == 200
    assert statements == []
    assert hit.content == routed.content and len(hit.json()["items"]) == 3
    for name in ("content-type", "content-length"):
        assert hit.headers[name] == routed.headers[name]
    assert hit.headers["x-request-id"]
    assert after == before + 1


async def test_the_quota_counts_each_read_once_whether_it_hits_or_misses(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(1, newest=NOW, step=timedelta(hours=1))
    assert (await api.client.get(ORDERS, headers=tenant.headers)).status_code == 200  # 1: routed
    assert (await api.client.get(ORDERS, headers=tenant.headers)).status_code == 200  # 2: a hit
    await api.resources.dashboards.sellers_changed({tenant.api.seller_id})
    with api.sql_statements() as statements:
        missed = await api.client.get(ORDERS, headers=tenant.headers)  # 3: stale, routed
    assert missed.status_code == 200 and statements, "a stale entry is recomputed"
    assert (await api.client.get(ORDERS, headers=tenant.headers)).status_code == 200  # 4: a hit

    refused = await api.client.get(ORDERS, headers=tenant.headers)

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


async def test_an_invalid_or_missing_token_gets_the_routes_401_not_the_entry(
    api: InstrumentedApi, new_tenant: NewTenant
) -> None:
    tenant = await new_tenant()
    tenant.rows.orders(1, newest=NOW, step=timedelta(hours=1))
    for _ in range(2):
        assert (await api.client.get(ORDERS, headers=tenant.headers)).status_code == 200
    signed, _, signature = tenant.api.access_token.rpartition(".")
    forged = f"{signed}.{'A' * len(signature)}"

    answers = [
        await api.client.get(ORDERS, headers={"Authorization": f"Bearer {forged}"}),
        await api.client.get(ORDERS, headers={"Authorization": f"Basic {tenant.api.access_token}"}),
        await api.client.get(ORDERS),
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert [answer.json()["error"]["code"] for answer in answers] == [
        "invalid_token",
        "unauthenticated",
        "unauthenticated",
    ]


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def test_every_cached_read_depends_on_nothing_a_hit_before_routing_would_skip(
    app_settings: Settings,
) -> None:
    """A hit skips the route's dependencies: a cached read may take only those that
    admit the seller (done before routing too) or build values from the request."""
    allowed: set[object] = {
        dashboard_reader,
        get_resources,
        seller_dependencies.access_claims,
        seller_dependencies.current_seller,
        seller_dependencies.reporting_seller,
        seller_dependencies.page_request,
        seller_dependencies._bearer,
    }
    cached_reads = {
        context.path: list(_calls(context.dependant))[1:]  # the route's own handler first
        for context in iter_route_contexts(create_app(app_settings).routes)
        if isinstance(context.original_route, APIRoute)
        and context.dependant is not None
        and dashboard_reader in set(_calls(context.dependant))
    }

    assert set(cached_reads) >= {"/orders", "/campaigns", "/stats/overview"}
    others = {
        path: sorted(getattr(call, "__qualname__", repr(call)) for call in set(calls) - allowed)
        for path, calls in cached_reads.items()
    }
    assert others == dict.fromkeys(cached_reads, [])
