"""Provider circuit breakers: open after failures, shared across processes, half-open."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pixecom_core.providers.errors import (
    ProviderAuthError,
    ProviderTransientError,
    ProviderUnavailable,
)
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings


@pytest.fixture
def breaker_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"pixecom-test:{uuid.uuid4().hex}:",
            "breaker_failure_threshold": 2,
            "breaker_reset_seconds": 0.5,
        }
    )


async def fail_with(breakers: ProviderBreakers, error: Exception) -> None:
    with pytest.raises(type(error)):
        async with breakers.guard("tracker", "slowtrack"):
            raise error


async def test_breaker_opens_is_shared_and_half_opens(breaker_settings: Settings) -> None:
    worker_a = ProviderBreakers(breaker_settings)
    worker_b = ProviderBreakers(breaker_settings)  # another process, same Redis
    calls = 0

    for _ in range(2):
        await fail_with(worker_a, ProviderTransientError("timeout", provider="slowtrack"))

    # Open: in the other worker too, and the call is not even attempted.
    with pytest.raises(ProviderUnavailable, match="slowtrack"):
        async with worker_b.guard("tracker", "slowtrack"):
            calls += 1
    assert calls == 0
    assert await worker_b.state("tracker", "slowtrack") == "opened"

    await asyncio.sleep(0.6)  # past the reset time: one trial call goes through
    async with worker_b.guard("tracker", "slowtrack"):
        calls += 1
    assert calls == 1
    assert await worker_a.state("tracker", "slowtrack") == "closed"


async def test_a_refused_token_never_opens_the_breaker(breaker_settings: Settings) -> None:
    breakers = ProviderBreakers(breaker_settings)

    for _ in range(5):
        await fail_with(breakers, ProviderAuthError("bad token", provider="slowtrack"))

    async with breakers.guard("tracker", "slowtrack"):
        pass
    assert await breakers.state("tracker", "slowtrack") == "closed"


async def test_timeouts_count_as_failures(breaker_settings: Settings) -> None:
    breakers = ProviderBreakers(breaker_settings)

    for _ in range(2):
        await fail_with(breakers, TimeoutError())

    with pytest.raises(ProviderUnavailable):
        async with breakers.guard("tracker", "slowtrack"):
            pass


async def test_a_wave_of_concurrent_failures_opens_the_breaker(breaker_settings: Settings) -> None:
    """SCALE-9: many refreshes time out at once against a slow tracker. Each
    call began while the breaker was closed with no failures counted; the wave together
    is far past the threshold, so the breaker must be open afterwards."""
    workers = [ProviderBreakers(breaker_settings) for _ in range(3)]
    started = asyncio.Event()
    waiting = 0

    async def times_out(breakers: ProviderBreakers) -> None:
        nonlocal waiting
        async with breakers.guard("tracker", "slowtrack"):
            waiting += 1
            if waiting == 12:
                started.set()
            await started.wait()  # every call is inside before any fails
            raise ProviderTransientError("timeout", provider="slowtrack")

    results = await asyncio.gather(
        *(times_out(workers[i % 3]) for i in range(12)), return_exceptions=True
    )
    assert all(isinstance(result, ProviderTransientError) for result in results)
    assert await workers[0].state("tracker", "slowtrack") == "opened"
    with pytest.raises(ProviderUnavailable):
        async with workers[1].guard("tracker", "slowtrack"):
            pass


async def test_a_wave_of_refused_tokens_still_never_opens(breaker_settings: Settings) -> None:
    breakers = ProviderBreakers(breaker_settings)

    async def refused() -> None:
        async with breakers.guard("tracker", "slowtrack"):
            await asyncio.sleep(0.01)
            raise ProviderAuthError("bad token", provider="slowtrack")

    results = await asyncio.gather(*(refused() for _ in range(8)), return_exceptions=True)
    assert all(isinstance(result, ProviderAuthError) for result in results)
    assert await breakers.state("tracker", "slowtrack") == "closed"
