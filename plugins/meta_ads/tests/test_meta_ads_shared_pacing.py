"""The pacing state in Redis (issue 18 item 4): what it stores and for how long, that a
block one process saved survives another's write, that a malformed value or an unreachable
Redis never fails a call, and which state the plugin's hook chooses.

A real Redis (``REDIS_URL``, else an embedded Valkey); each test under its own key prefix.
"""

import asyncio
import logging
import socket
from typing import Any

import pytest
import redis.asyncio as redis
from meta_ads_support import FakeTime
from pixecom_meta_ads.client import MetaGraphClient, pacer_state_for
from pixecom_meta_ads.pacing import (
    AccountPacer,
    AccountUsage,
    InMemoryPacerState,
    RateLimitUsage,
    RedisPacerState,
)
from pixecom_meta_ads.settings import MetaAdsSettings

from pixecom_core.providers import ProviderThrottled

MEMORY_SECONDS = 300.0


@pytest.fixture
def state(redis_url: str, redis_key_prefix: str, fake_time: FakeTime) -> RedisPacerState:
    return _state(redis_url, redis_key_prefix, fake_time)


def _state(url: str, prefix: str, fake_time: FakeTime) -> RedisPacerState:
    return RedisPacerState(
        url,
        key_prefix=f"{prefix}meta:pacing:",
        memory_seconds=MEMORY_SECONDS,
        clock=fake_time.clock,
    )


def _pacer(state: RedisPacerState, fake_time: FakeTime) -> AccountPacer:
    return AccountPacer(
        state,
        slow_down_at_pct=75,
        max_pace_delay_seconds=20,
        max_inline_wait_seconds=0,
        usage_memory_seconds=MEMORY_SECONDS,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


# -- what is stored, and for how long --------------------------------------------------------


async def test_a_saved_state_reads_back_from_one_hash_per_account(
    state: RedisPacerState,
    redis_client: redis.Redis,
    redis_key_prefix: str,
    fake_time: FakeTime,
) -> None:
    usage = AccountUsage(
        usage_pct=87.5, observed_at=fake_time.now, blocked_until=fake_time.now + 42.25
    )

    await state.save("1002", usage)

    assert await state.load("1002") == usage
    assert await state.load("1003") is None
    stored = await redis_client.hgetall(f"{redis_key_prefix}meta:pacing:1002")
    assert {name: float(value) for name, value in stored.items()} == {
        "usage_pct": 87.5,
        "observed_at": fake_time.now,
        "blocked_until": fake_time.now + 42.25,
    }
    await state.aclose()


async def test_an_account_without_a_block_is_stored_without_one(
    state: RedisPacerState, fake_time: FakeTime
) -> None:
    usage = AccountUsage(usage_pct=10, observed_at=fake_time.now)

    await state.save("1002", usage)

    assert await state.load("1002") == usage
    await state.aclose()


async def test_a_state_lives_as_long_as_the_usage_memory(
    state: RedisPacerState, redis_client: redis.Redis, fake_time: FakeTime
) -> None:
    await state.save("1002", AccountUsage(usage_pct=50, observed_at=fake_time.now))

    ttl_ms = await redis_client.pttl(state.key("1002"))

    assert MEMORY_SECONDS * 1000 - 2000 < ttl_ms <= MEMORY_SECONDS * 1000
    await state.aclose()


async def test_a_block_longer_than_the_memory_keeps_the_state_until_it_ends(
    state: RedisPacerState, redis_client: redis.Redis, fake_time: FakeTime
) -> None:
    # a short memory must not forget a long block: the key would vanish mid-block
    await state.save(
        "1002",
        AccountUsage(usage_pct=100, observed_at=fake_time.now, blocked_until=fake_time.now + 900),
    )

    ttl_ms = await redis_client.pttl(state.key("1002"))

    assert 898_000 < ttl_ms <= 900_000
    await state.aclose()


# -- several processes writing ---------------------------------------------------------------


async def test_a_block_saved_by_one_process_survives_another_processs_write(
    redis_url: str, redis_key_prefix: str, fake_time: FakeTime
) -> None:
    first, second = (_state(redis_url, redis_key_prefix, fake_time) for _ in range(2))
    now = fake_time.now
    # the second worker loaded the account before the first was told to back off …
    assert await second.load("1002") is None
    await first.save("1002", AccountUsage(usage_pct=100, observed_at=now, blocked_until=now + 600))
    # … and saves what it computed from that stale read: a fresh usage, no block
    await second.save("1002", AccountUsage(usage_pct=40, observed_at=now + 1))

    assert await first.load("1002") == AccountUsage(
        usage_pct=40, observed_at=now + 1, blocked_until=now + 600
    )
    await first.aclose()
    await second.aclose()


async def test_the_later_block_and_the_later_usage_win(
    state: RedisPacerState, fake_time: FakeTime
) -> None:
    now = fake_time.now
    await state.save("1002", AccountUsage(usage_pct=90, observed_at=now, blocked_until=now + 600))
    # an older observation with a shorter block changes nothing
    await state.save(
        "1002", AccountUsage(usage_pct=20, observed_at=now - 5, blocked_until=now + 100)
    )
    assert await state.load("1002") == AccountUsage(
        usage_pct=90, observed_at=now, blocked_until=now + 600
    )

    # a longer block replaces the shorter one
    await state.save(
        "1002", AccountUsage(usage_pct=100, observed_at=now + 2, blocked_until=now + 900)
    )

    assert await state.load("1002") == AccountUsage(
        usage_pct=100, observed_at=now + 2, blocked_until=now + 900
    )
    await state.aclose()


async def test_a_pacer_is_held_back_by_the_block_another_pacer_was_told_about(
    redis_url: str, redis_key_prefix: str, fake_time: FakeTime
) -> None:
    told = _pacer(_state(redis_url, redis_key_prefix, fake_time), fake_time)
    other = _pacer(_state(redis_url, redis_key_prefix, fake_time), fake_time)

    await told.observe("1002", RateLimitUsage(highest_pct=100, regain_access_seconds=120))
    # the other pacer's next answer reports a low usage and no wait: the block still holds
    await other.observe("1002", RateLimitUsage(highest_pct=5))
    fake_time.now += 20

    with pytest.raises(ProviderThrottled) as raised:
        await other.before_call("1002")
    assert raised.value.retry_after_seconds == 100
    await other.before_call("1003")  # only that account
    fake_time.now += 101
    await other.before_call("1002")
    assert fake_time.sleeps == []
    await told.aclose()
    await other.aclose()


async def test_concurrent_saves_never_lose_the_longest_block(
    redis_url: str, redis_key_prefix: str, fake_time: FakeTime
) -> None:
    states = [_state(redis_url, redis_key_prefix, fake_time) for _ in range(8)]
    now = fake_time.now

    await asyncio.gather(
        *(
            state.save(
                "1002",
                AccountUsage(
                    usage_pct=float(index),
                    observed_at=now,
                    blocked_until=now + 60 * index if index % 2 else None,
                ),
            )
            for index, state in enumerate(states)
        )
    )

    stored = await states[0].load("1002")
    assert stored is not None and stored.blocked_until == now + 60 * 7
    for state in states:
        await state.aclose()


# -- bad paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"usage_pct": "lots", "observed_at": "1700000000"},
        {"usage_pct": "50", "observed_at": "nan"},
        {"usage_pct": "50", "observed_at": "1700000000", "blocked_until": "soon"},
        {"usage_pct": "50", "observed_at": "1700000000", "blocked_until": "inf"},
        {"blocked_until": "1700000100"},
    ],
)
async def test_a_malformed_hash_is_ignored_then_replaced(
    state: RedisPacerState,
    redis_client: redis.Redis,
    fake_time: FakeTime,
    fields: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in fields.items():
        await redis_client.hset(state.key("1002"), name, value)

    with caplog.at_level(logging.WARNING, logger="pixecom_meta_ads.pacing"):
        assert await state.load("1002") is None
    assert "malformed" in caplog.text

    usage = AccountUsage(usage_pct=30, observed_at=fake_time.now, blocked_until=fake_time.now + 9)
    await state.save("1002", usage)
    assert await state.load("1002") == usage
    await state.aclose()


async def test_a_value_of_another_type_is_ignored_then_replaced(
    state: RedisPacerState,
    redis_client: redis.Redis,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await redis_client.set(state.key("1002"), "not a hash")

    with caplog.at_level(logging.WARNING, logger="pixecom_meta_ads.pacing"):
        assert await state.load("1002") is None
    assert "cannot read" in caplog.text

    usage = AccountUsage(usage_pct=30, observed_at=fake_time.now)
    await state.save("1002", usage)
    assert await state.load("1002") == usage
    await state.aclose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_redis_lets_calls_through_and_says_so(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    state = RedisPacerState(
        f"redis://127.0.0.1:{_closed_port()}/0",
        key_prefix="pixecom-test:",
        memory_seconds=MEMORY_SECONDS,
        clock=fake_time.clock,
        connect_timeout_seconds=1,
    )
    pacer = _pacer(state, fake_time)

    with caplog.at_level(logging.WARNING, logger="pixecom_meta_ads.pacing"):
        await pacer.observe("1002", RateLimitUsage(highest_pct=100, regain_access_seconds=60))
        await pacer.before_call("1002")

    assert fake_time.sleeps == []
    assert "cannot save" in caplog.text and "cannot read" in caplog.text
    await pacer.aclose()


def test_the_state_refuses_a_memory_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="memory_seconds"):
        RedisPacerState("redis://127.0.0.1:6379/0", key_prefix="p:", memory_seconds=0)


async def test_closing_is_idempotent_and_a_later_call_reconnects(
    state: RedisPacerState, fake_time: FakeTime
) -> None:
    usage = AccountUsage(usage_pct=1, observed_at=fake_time.now)
    await state.save("1002", usage)

    await state.aclose()
    await state.aclose()

    assert await state.load("1002") == usage
    await state.aclose()


# -- which state the plugin uses ---------------------------------------------------------------


def test_the_deployments_redis_shares_the_pacing_state(redis_key_prefix: str) -> None:
    settings = MetaAdsSettings(
        redis_url="redis://127.0.0.1:6379/3", redis_key_prefix=redis_key_prefix
    )

    state = pacer_state_for(settings)

    assert isinstance(state, RedisPacerState)
    assert state.key("1002") == f"{redis_key_prefix}meta:pacing:1002"


@pytest.mark.parametrize(
    "overrides",
    [{"redis_url": None}, {"redis_url": "redis://127.0.0.1:6379/0", "shared_pacing": False}],
)
def test_without_redis_or_with_sharing_off_each_process_paces_alone(
    overrides: dict[str, Any],
) -> None:
    assert isinstance(pacer_state_for(MetaAdsSettings(**overrides)), InMemoryPacerState)


def test_the_environment_names_the_redis_and_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw@127.0.0.1:6379/2")
    monkeypatch.setenv("PIXECOM_REDIS_KEY_PREFIX", "shop-7:")
    monkeypatch.delenv("PIXECOM_META_SHARED_PACING", raising=False)

    settings = MetaAdsSettings()

    assert settings.pacing_redis_url == "redis://:pw@127.0.0.1:6379/2"
    assert settings.pacing_key_prefix == "shop-7:meta:pacing:"
    assert "pw@" not in repr(settings)
    monkeypatch.setenv("PIXECOM_META_SHARED_PACING", "false")
    assert MetaAdsSettings().pacing_redis_url is None


async def test_closing_the_client_closes_the_pacing_connections(
    redis_url: str, redis_key_prefix: str, redis_client: redis.Redis, fake_time: FakeTime
) -> None:
    name = f"pacing-test-{redis_key_prefix.split(':')[1]}"
    state = RedisPacerState(
        redis_url,
        key_prefix=redis_key_prefix,
        memory_seconds=MEMORY_SECONDS,
        clock=fake_time.clock,
        client_name=name,
    )
    client = MetaGraphClient(MetaAdsSettings(), pacer_state=state, clock=fake_time.clock)
    await client.pacer.block("1002", 30)
    assert await _connections_named(redis_client, name) == 1

    await client.aclose()

    assert await _connections_named(redis_client, name, settle=True) == 0
    await client.aclose()  # idempotent


async def _connections_named(client: redis.Redis, name: str, *, settle: bool = False) -> int:
    """Connections the server lists under ``name``; with ``settle``, after giving closing
    ones up to a second to go."""
    for _ in range(50 if settle else 1):
        count = sum(1 for entry in await client.client_list() if entry["name"] == name)
        if count == 0:
            break
        await asyncio.sleep(0.02)
    return count
