"""Circuit breakers around provider calls, their state shared through Redis.

SCALE-9: "17Track: tracking API delays (common during peak). No circuit
breaker. Worker hangs on HTTP timeouts. Blocks other jobs in the queue." Every call to a
provider that may be slow or down goes through :meth:`ProviderBreakers.guard`: after
``breaker_failure_threshold`` consecutive failures the breaker opens and calls fail at
once with :class:`ProviderUnavailable` — in every worker, because the state lives in
Redis — until ``breaker_reset_seconds`` have passed; then one trial call is let through
(half-open) and a success closes it.

Built on purgatory (a maintained async circuit breaker with a Redis store). purgatory
counts failures in Redis atomically but decides to open from the count it read when the
call began, so a wave of concurrent failures (fifty tracker refreshes timing out at once
on Black Friday) never opened it; :meth:`ProviderBreakers.guard` therefore re-reads the
shared count after each failure and opens the breaker when the wave crossed the
threshold. Only
failures that say the provider is unhealthy count: timeouts, transient errors and
unavailability. A refused token or a rejected request is the caller's problem, not the
provider's, and never opens the breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork
from purgatory.domain.model import OpenedState

from pixecom_core.providers.errors import (
    ProviderError,
    ProviderTransientError,
    ProviderUnavailable,
)
from pixecom_core.settings import Settings


class ProviderBreakers:
    """One breaker per provider, e.g. ``guard("tracker", "17track")``.

    :param redis_url: the Redis every worker shares (state must be shared to protect
        the whole deployment, not one process).
    """

    def __init__(self, settings: Settings, redis_url: str | None = None) -> None:
        url = redis_url or settings.redis_url
        if url is None:
            raise ValueError("circuit breakers need REDIS_URL")
        self._prefix = settings.redis_key_prefix
        self._threshold = settings.breaker_failure_threshold
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=settings.breaker_failure_threshold,
            default_ttl=settings.breaker_reset_seconds,
            # Not the provider's health: these never open a breaker.
            exclude=[(ProviderError, _not_a_health_failure)],
            uow=AsyncRedisUnitOfWork(url),
        )
        self._initialized = False

    def name(self, kind: str, identifier: str) -> str:
        """The breaker's name (its Redis key stem)."""
        return f"{self._prefix}breaker:{kind}:{identifier}"

    @asynccontextmanager
    async def guard(self, kind: str, identifier: str) -> AsyncIterator[None]:
        """Run the body through the provider's breaker.

        Raises :class:`ProviderUnavailable` at once when the breaker is open.
        """
        if not self._initialized:
            await self._factory.initialize()
            self._initialized = True
        name = self.name(kind, identifier)
        breaker = await self._factory.get_breaker(name)
        was_closed = str(breaker.context.state) == "closed"
        try:
            async with breaker:
                yield
        except OpenedState as exc:
            raise ProviderUnavailable(
                f"{identifier} is failing; calls are paused until its breaker half-opens",
                provider=identifier,
            ) from exc
        except Exception as exc:
            if was_closed and _is_a_health_failure(exc):
                await self._open_after_concurrent_failures(name, exc)
            raise

    async def _open_after_concurrent_failures(self, name: str, exc: Exception) -> None:
        """Open the breaker if the failures of concurrent calls, counted in Redis, reached
        the threshold while each call alone saw fewer (see the module docstring)."""
        fresh = await self._factory.get_breaker(name)
        context = fresh.context
        if str(context.state) == "closed" and (context.failure_count or 0) >= self._threshold:
            # Replaying this failure on the fresh state (which holds the shared count)
            # makes purgatory open the breaker and store that for every process.
            await fresh.__aexit__(type(exc), exc, exc.__traceback__)

    async def state(self, kind: str, identifier: str) -> str:
        """``closed``, ``opened`` or ``half-opened``."""
        if not self._initialized:
            await self._factory.initialize()
            self._initialized = True
        breaker = await self._factory.get_breaker(self.name(kind, identifier))
        return str(breaker.context.state)


def _is_a_health_failure(exc: BaseException) -> bool:
    """Whether ``exc`` counts towards opening (what purgatory's exclude list lets count)."""
    return not (isinstance(exc, ProviderError) and _not_a_health_failure(exc))


def _not_a_health_failure(exc: BaseException) -> bool:
    """A provider error that says nothing about the provider's health (a refused token, a
    rejected request, a throttle we wait out): it does not count towards opening."""
    return not isinstance(exc, ProviderTransientError | ProviderUnavailable)
