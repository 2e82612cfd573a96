"""Redis-backed rate limits and login lockout, shared by every API process (audit B7).

Counting uses the ``limits`` library's moving-window strategy on Redis (through
redis-py), so a limit holds across processes and restarts. The login lockout is a plain
Redis key with a TTL: after ``login_max_failures`` wrong passwords for one account within
the failure window, the account is refused — from every IP and even with the right
password — until the key expires (audit §9, "no account lockout").
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from pixecom_core.settings import Settings


class RateLimited(Exception):
    """A limit is exhausted; retry after ``retry_after`` seconds (sent as Retry-After)."""

    def __init__(self, *, limit: str, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.retry_after = max(1, retry_after)
        self.detail = detail


class AccountLocked(RateLimited):
    """Too many failed logins for one account: it is locked for the lockout period."""


def limits_storage_url(redis_url: str) -> str:
    """The ``limits`` async storage URL for a ``redis://`` / ``rediss://`` URL."""
    scheme, _, rest = redis_url.partition("://")
    if scheme not in {"redis", "rediss", "valkey", "valkeys"}:
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}")
    tls = scheme in {"rediss", "valkeys"}
    return f"async+{'rediss' if tls else 'redis'}://{rest}"


@dataclass(frozen=True)
class Limit:
    """A named limit: ``name`` keys it in Redis, ``rate`` is e.g. ``"20/minute"``."""

    name: str
    rate: str

    @property
    def item(self) -> RateLimitItem:
        return parse(self.rate)


class RateLimiter:
    """Moving-window limits on Redis.

    :param redis_url: the deployment's Redis; every API process must use the same one.
    :param key_prefix: starts every key (``Settings.redis_key_prefix``).
    """

    def __init__(self, redis_url: str, *, key_prefix: str) -> None:
        # redis-py, the client the rest of PixEcom uses (its async bridge works with
        # redis-py 8, whatever the `limits[redis]` extra pins).
        self._storage = storage_from_string(
            limits_storage_url(redis_url),
            key_prefix=f"{key_prefix}limits",
            implementation="redispy",
        )
        self._strategy = MovingWindowRateLimiter(self._storage)

    async def hit(self, limit: Limit, *identifiers: str) -> None:
        """Count one request against ``limit`` for ``identifiers``; raise
        :class:`RateLimited` when it is exhausted."""
        item = limit.item
        if await self._strategy.hit(item, limit.name, *identifiers):
            return
        stats = await self._strategy.get_window_stats(item, limit.name, *identifiers)
        retry_after = math.ceil(stats.reset_time - time.time())
        raise RateLimited(
            limit=limit.name,
            retry_after=retry_after,
            detail=f"rate limit {limit.rate} exceeded; retry in {max(1, retry_after)} s",
        )

    async def clear(self, limit: Limit, *identifiers: str) -> None:
        """Forget the counts of ``limit`` for ``identifiers``."""
        await self._strategy.clear(limit.item, limit.name, *identifiers)


def account_key(email: str) -> str:
    """Redis key material for an account: a hash, so keys hold no email addresses."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class LoginGuard:
    """Per-IP login throttle plus per-account lockout.

    Call :meth:`check` before verifying a password, then :meth:`record_failure` or
    :meth:`record_success` with the outcome.
    """

    def __init__(self, client: redis.Redis, limiter: RateLimiter, settings: Settings) -> None:
        self._redis = client
        self._limiter = limiter
        self._settings = settings
        self._ip_limit = Limit("login-ip", settings.login_ip_rate)

    def _lock_key(self, email: str) -> str:
        return f"{self._settings.redis_key_prefix}login:lock:{account_key(email)}"

    def _failures_key(self, email: str) -> str:
        return f"{self._settings.redis_key_prefix}login:failures:{account_key(email)}"

    async def check(self, *, email: str, client_ip: str) -> None:
        """Raise :class:`AccountLocked` or :class:`RateLimited` if this attempt must not
        even be evaluated."""
        ttl = await self._redis.ttl(self._lock_key(email))
        if ttl and ttl > 0:
            raise AccountLocked(
                limit="login-account",
                retry_after=ttl,
                detail=f"too many failed logins for this account; retry in {ttl} s",
            )
        await self._limiter.hit(self._ip_limit, client_ip)

    async def record_failure(self, *, email: str) -> None:
        """Count a wrong password; lock the account when the count reaches the maximum."""
        key = self._failures_key(email)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, self._settings.login_failure_window_seconds, nx=True)
            failures, _ = await pipe.execute()
        if int(failures) >= self._settings.login_max_failures:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._lock_key(email), "1", ex=self._settings.login_lockout_seconds)
                pipe.delete(key)
                await pipe.execute()
            raise AccountLocked(
                limit="login-account",
                retry_after=self._settings.login_lockout_seconds,
                detail="too many failed logins for this account; it is locked",
            )

    async def record_success(self, *, email: str) -> None:
        """A correct password outside lockout clears the failure count."""
        await self._redis.delete(self._failures_key(email))
