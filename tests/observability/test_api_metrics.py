"""``GET /metrics`` on the API: scraped over HTTP after real requests (issue 7)."""

from __future__ import annotations

import re
import uuid

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

from pixecom_core.plugins import create_plugin_manager
from pixecom_core.providers.errors import ProviderTransientError
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from reference_app.api import create_app
from reference_app.worker.broker import Queue, build_broker, kick_process_webhook, stream_name
from tests.app.conftest import ClientFactory, NewSeller

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_latency_histogram_counts_requests_by_route_template(
    api_client: httpx.AsyncClient, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    route = "/orders/{order_id}"
    before = value(
        await scrape(api_client),
        "pixecom_http_request_duration_seconds_count",
        method="GET",
        route=route,
        status_class="4xx",
    )
    missing = [uuid.uuid4() for _ in range(3)]
    for order_id in missing:
        answer = await api_client.get(f"/orders/{order_id}", headers=seller.headers)
        assert answer.status_code == 404
    text = await scrape(api_client)

    after = value(
        text,
        "pixecom_http_request_duration_seconds_count",
        method="GET",
        route=route,
        status_class="4xx",
    )
    assert after == (before or 0) + 3
    # Sign-up and login were counted under their own templates, with their status class.
    assert (
        value(
            text,
            "pixecom_http_request_duration_seconds_count",
            method="POST",
            route="/auth/login",
            status_class="2xx",
        )
        or 0
    ) >= 1
    # The scrape itself is in flight while it renders; nothing else is.
    assert value(text, "pixecom_http_requests_in_flight") == 1
    # No id of any kind in any label: not the orders asked for, not the seller.
    for name, labels in samples(text):
        for label_value in dict(labels).values():
            assert not UUID_PATTERN.search(label_value), (name, label_value)
    assert str(seller.seller_id) not in text
    assert all(str(order_id) not in text for order_id in missing)


async def test_unmatched_paths_share_one_label(api_client: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await api_client.get(f"/no-such-thing/{uuid.uuid4()}")).status_code == 404
    text = await scrape(api_client)
    assert (
        value(
            text,
            "pixecom_http_request_duration_seconds_count",
            method="GET",
            route="<unmatched>",
            status_class="4xx",
        )
        == 2
    )
    assert "no-such-thing" not in text


async def test_pool_queue_and_breaker_gauges(
    app_settings: Settings, api_client_for: ClientFactory
) -> None:
    # A real queued task (no worker runs it) and a real opened breaker, in this test's
    # own Redis key prefix.
    broker = build_broker(app_settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        for inbox_id in (1, 2):
            await kick_process_webhook(broker, inbox_id)
    finally:
        await broker.shutdown()
    breakers = ProviderBreakers(app_settings.model_copy(update={"breaker_failure_threshold": 1}))
    with pytest.raises(ProviderTransientError):
        async with breakers.guard("tracker", "faketrack"):
            raise ProviderTransientError("down", provider="faketrack")
    assert await breakers.state("tracker", "faketrack") == "opened"

    configured = app_settings.model_copy(
        update={"tracking_provider": "faketrack", "storage_provider": "fakestore"}
    )
    async with api_client_for(configured) as api_client:
        text = await scrape(api_client)

    assert value(text, "pixecom_queue_stream_length", queue="payments") == 2
    assert value(text, "pixecom_queue_undelivered_tasks", queue="payments") == 2
    assert value(text, "pixecom_queue_pending_tasks", queue="payments") == 0
    assert value(text, "pixecom_queue_stream_length", queue="stats-high") == 0
    assert (
        value(text, "pixecom_breaker_state", kind="tracker", provider="faketrack", state="opened")
        == 1
    )
    assert (
        value(text, "pixecom_breaker_state", kind="tracker", provider="faketrack", state="closed")
        == 0
    )
    assert value(text, "pixecom_metrics_source_up", source="queues") == 1
    # The storage breaker was never used: closed.
    assert (
        value(text, "pixecom_breaker_state", kind="storage", provider="fakestore", state="closed")
        == 1
    )
    assert value(text, "pixecom_db_pool_size_connections") == app_settings.db_pool_size
    # The requests before this scrape returned their connections.
    assert value(text, "pixecom_db_pool_checked_out_connections") == 0


async def test_pending_counts_a_delivered_unacknowledged_task(
    app_settings: Settings, api_client: httpx.AsyncClient
) -> None:
    broker = build_broker(app_settings, Queue.PAYMENTS)
    await broker.startup()
    try:
        await kick_process_webhook(broker, 7)
    finally:
        await broker.shutdown()
    assert app_settings.redis_url
    client = aioredis.Redis.from_url(app_settings.redis_url)
    try:
        # What a worker does when it takes a task and has not acknowledged it yet.
        await client.xreadgroup(
            f"{app_settings.redis_key_prefix}workers",
            "probe",
            {stream_name(app_settings, Queue.PAYMENTS): ">"},
            count=1,
        )
    finally:
        await client.aclose()
    text = await scrape(api_client)
    assert value(text, "pixecom_queue_pending_tasks", queue="payments") == 1
    assert value(text, "pixecom_queue_undelivered_tasks", queue="payments") == 0


async def test_pool_gauge_counts_a_checked_out_connection(
    app_settings: Settings, database_owner_dsn: str
) -> None:
    app = create_app(
        app_settings, plugin_manager=create_plugin_manager(load_entry_points=False, plugins=[])
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://pixecom.test"
        ) as client,
    ):
        engine = app.state.observability.engine
        async with engine.connect() as held:
            pid = (await held.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            text_held = await scrape(client)
            with psycopg.connect(database_owner_dsn) as conn:
                row = conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
        text_idle = await scrape(client)
    assert value(text_held, "pixecom_db_pool_checked_out_connections") == 1
    assert value(text_idle, "pixecom_db_pool_checked_out_connections") == 0
    assert value(text_idle, "pixecom_db_pool_size_connections") == app_settings.db_pool_size
    # One connection opened of a pool of size N: overflow is 1 - N (SQLAlchemy's count).
    assert value(text_idle, "pixecom_db_pool_overflow_connections") == 1 - app_settings.db_pool_size
    # The API's connections say who they are in pg_stat_activity.
    assert row is not None and row[0] == "pixecom-api"


async def test_metrics_refused_outside_the_allowed_networks(
    app_settings: Settings, api_client_for: ClientFactory
) -> None:
    # The test client's peer is 127.0.0.1, a trusted proxy; the forwarded client is not
    # in the allowed networks, as for a request from the internet through nginx.
    async with api_client_for(app_settings) as client:
        refused = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "metrics_forbidden"
        assert "pixecom_" not in refused.text
    narrowed = app_settings.model_copy(update={"metrics_allowed_networks": ["10.0.0.0/8"]})
    async with api_client_for(narrowed) as client:
        assert (await client.get("/metrics")).status_code == 403
    allowed = app_settings.model_copy(
        update={"metrics_allowed_networks": ["127.0.0.1/32", "203.0.113.0/24"]}
    )
    async with api_client_for(allowed) as client:
        forwarded = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status_code == 200


async def test_metrics_bearer_token(app_settings: Settings, api_client_for: ClientFactory) -> None:
    token = "metrics-" + uuid.uuid4().hex + uuid.uuid4().hex
    with_token = app_settings.model_copy(update={"metrics_bearer_token": SecretStr(token)})
    async with api_client_for(with_token) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "pixecom_http_request_duration_seconds" in right.text


async def test_queue_depth_failure_marks_the_source_down(
    app_settings: Settings, api_client_for: ClientFactory, closed_port: int
) -> None:
    # The API starts with Redis down (readiness says so); /metrics still answers and says
    # which source it could not read.
    down = app_settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{closed_port}/0",
            # A breaker to read: core guards none unless a tracker or storage is chosen.
            "tracking_provider": "faketrack",
        }
    )
    async with api_client_for(down) as client:
        text = await scrape(client)
    assert value(text, "pixecom_metrics_source_up", source="queues") == 0
    assert value(text, "pixecom_metrics_source_up", source="breakers") == 0
