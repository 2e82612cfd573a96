"""With Redis unreachable the dashboard cache never fails a read or a write: a read is a
miss (computed from the database, not stored), an invalidation is logged."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis.asyncio as redis

from pixecom_core.dashboard_cache import DashboardCache
from pixecom_core.settings import Settings


async def test_an_unreachable_redis_is_a_miss_and_invalidation_is_logged(
    app_settings: Settings, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=0.5)
    cache = DashboardCache(client, app_settings)
    seller = uuid.uuid4()
    try:
        with caplog.at_level(logging.WARNING, logger="pixecom_core.dashboard_cache"):
            lookup = await cache.lookup(seller, "orders", "limit=50")
            await cache.store(seller, "orders", "limit=50", b"{}", generation="g")
            await cache.sellers_changed({seller})
            cache.sellers_changed_soon({seller})
            await cache.settle()
    finally:
        await client.aclose()

    assert lookup.body is None and lookup.generation is None
    messages = [record.getMessage() for record in caplog.records]
    assert any("reading the database" in m for m in messages)
    assert any("not cached" in m for m in messages)
    assert sum("not invalidated" in m for m in messages) == 2
