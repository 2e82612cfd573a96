"""RateLimiter.hit_and_read: the same moving window as hit, and the keys read with it
in one round trip (issue 18 item 1)."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from pixecom_core.security.rate_limits import Limit, RateLimited, RateLimiter, Vetoed
from pixecom_core.settings import Settings


async def test_hit_and_read_counts_in_hits_window_and_reads_the_keys(settings: Settings) -> None:
    assert settings.redis_url is not None
    prefix = f"pixecom-test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(settings.redis_url)
    limiter = RateLimiter(settings.redis_url, key_prefix=prefix)
    limit = Limit("reads", "3/minute")
    try:
        await client.set(f"{prefix}present", b"value")
        await limiter.hit(limit, "client-a")
        values = await limiter.hit_and_read(
            client, limit, ["client-a"], [f"{prefix}missing", f"{prefix}present", f"{prefix}x"]
        )
        await limiter.hit(limit, "client-a")
        with pytest.raises(RateLimited) as refused:
            await limiter.hit_and_read(client, limit, ["client-a"], [f"{prefix}present"])
        with pytest.raises(RateLimited):
            await limiter.hit(limit, "client-a")
        other = await limiter.hit_and_read(client, limit, ["client-b"], [f"{prefix}present"])

        assert values == [None, b"value", None]
        assert refused.value.limit == "reads"
        assert 1 <= refused.value.retry_after <= 60
        assert other == [b"value"]
        # The window is the library's own key: clear() forgets what hit_and_read counted.
        await limiter.clear(limit, "client-b")
        assert await client.exists(limiter.window_key(limit, "client-b")) == 0
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_an_existing_veto_key_refuses_before_counting(settings: Settings) -> None:
    assert settings.redis_url is not None
    prefix = f"pixecom-test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(settings.redis_url)
    limiter = RateLimiter(settings.redis_url, key_prefix=prefix)
    limit = Limit("seller", "1/minute")
    veto = f"{prefix}revoked"
    try:
        await client.set(veto, b"1")
        for _ in range(3):  # vetoed every time, and never counted
            with pytest.raises(Vetoed):
                await limiter.hit_and_read(client, limit, ["s"], [], unless_exists=[veto])
        await client.delete(veto)
        admitted = await limiter.hit_and_read(client, limit, ["s"], [], unless_exists=[veto])
        with pytest.raises(RateLimited):
            await limiter.hit_and_read(client, limit, ["s"], [], unless_exists=[veto])

        assert admitted == []
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
