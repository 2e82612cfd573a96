"""The login guard on real Redis (issue 12): slots are taken atomically before any
password check, the lock is per (account, address), and the account only slows down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import redis.asyncio as redis

from pixecom_core.security.login_challenges import ChallengeRequired, solve_challenge
from pixecom_core.security.rate_limits import (
    AccountLocked,
    LoginAttempt,
    LoginGuard,
    RateLimiter,
)
from pixecom_core.settings import Settings

GuardFactory = Callable[..., AbstractAsyncContextManager[LoginGuard]]
EMAIL = "owner@example.com"


@pytest.fixture
def guard_for(settings: Settings) -> GuardFactory:
    """A guard with this test's own Redis key prefix and the given setting overrides."""

    @asynccontextmanager
    async def open_guard(**overrides: object) -> AsyncIterator[LoginGuard]:
        configured = settings.model_copy(
            update={
                "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
                "login_ip_rate": "10000/minute",
                **overrides,
            }
        )
        assert configured.redis_url is not None
        client = redis.Redis.from_url(configured.redis_url)
        limiter = RateLimiter(configured.redis_url, key_prefix=configured.redis_key_prefix)
        try:
            yield LoginGuard(client, limiter, configured)
        finally:
            await client.aclose()

    return open_guard


async def admitted(
    guard: LoginGuard, ip: str, *, challenge: str | None = None
) -> LoginAttempt | None:
    """The attempt if ``ip`` got a slot, ``None`` if the pair is locked."""
    try:
        return await guard.admit(email=EMAIL, client_ip=ip, challenge=challenge)
    except AccountLocked:
        return None


async def test_fifty_concurrent_attempts_take_exactly_the_pairs_slots(
    guard_for: GuardFactory,
) -> None:
    async with guard_for(login_max_failures=5, login_challenge_after_failures=1000) as guard:
        results = await asyncio.gather(*(admitted(guard, "203.0.113.7") for _ in range(50)))

        assert sum(result is not None for result in results) == 5
        # Another address still gets its own slots for the same account.
        assert await admitted(guard, "198.51.100.1") is not None


async def test_a_correct_password_clears_the_pair(guard_for: GuardFactory) -> None:
    async with guard_for(login_max_failures=3) as guard:
        for _ in range(2):
            assert await admitted(guard, "203.0.113.7") is not None
        attempt = await admitted(guard, "203.0.113.7")
        assert attempt is not None
        await guard.record_success(attempt)

        again = [await admitted(guard, "203.0.113.7") for _ in range(4)]

    assert [result is not None for result in again] == [True, True, True, False]


async def test_the_account_slows_down_progressively_and_boundedly_for_unknown_addresses(
    guard_for: GuardFactory,
) -> None:
    async with guard_for(
        login_max_failures=100,
        login_slowdown_after_failures=2,
        login_slowdown_base_seconds=0.001,
        login_slowdown_max_seconds=0.004,
        login_challenge_after_failures=1000,
    ) as guard:
        owner = await admitted(guard, "192.0.2.1")
        assert owner is not None and owner.delay_seconds == 0
        await guard.record_success(owner)  # 192.0.2.1 is known from now on

        delays = []
        for i in range(6):
            attempt = await admitted(guard, f"203.0.113.{i}")
            assert attempt is not None
            delays.append(attempt.delay_seconds)
        known = await admitted(guard, "192.0.2.1")

    assert delays == [0, 0, 0.001, 0.002, 0.004, 0.004]
    assert known is not None and known.known_address and known.delay_seconds == 0


async def test_past_the_threshold_only_unknown_addresses_are_challenged(
    guard_for: GuardFactory,
) -> None:
    async with guard_for(
        login_max_failures=100,
        login_slowdown_base_seconds=0,
        login_challenge_after_failures=3,
        login_challenge_max_number=200,
    ) as guard:
        owner = await admitted(guard, "192.0.2.1")
        assert owner is not None
        await guard.record_success(owner)
        for _ in range(3):
            assert await admitted(guard, "203.0.113.7") is not None

        with pytest.raises(ChallengeRequired):
            await guard.admit(email=EMAIL, client_ip="203.0.113.8")
        assert await admitted(guard, "192.0.2.1") is not None
        solution = solve_challenge(guard.issue_challenge().as_json())
        assert await admitted(guard, "203.0.113.8", challenge=solution) is not None
