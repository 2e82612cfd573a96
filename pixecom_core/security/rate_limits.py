"""Redis-backed rate limits and login protection, shared by every API process (SEC-1).

Counting uses the ``limits`` library's moving-window strategy on Redis (through
redis-py), so a limit holds across processes and restarts.

Logins follow OWASP's authentication guidance (issue 12; SEC-2, "no account lockout"
and "CAPTCHA after failures"), in :class:`LoginGuard`:

- **per (account, client address)**: at most ``login_max_failures`` password checks in
  the failure window; past them that pair is refused (429 ``account_locked``) for the
  lockout period. The slot is taken atomically in Redis *before* the argon2 check, so a
  concurrent burst gets no more checks than a sequential one. A correct password clears
  the pair.
- **per account, every address**: no hard lock, which anyone knowing an e-mail address
  could use to lock its owner out. Past ``login_slowdown_after_failures`` failures an
  attempt from an address that never logged in to the account waits, doubling per
  failure up to ``login_slowdown_max_seconds``; past ``login_challenge_after_failures``
  such an address must also solve a proof-of-work challenge
  (:mod:`pixecom_core.security.login_challenges`). Addresses that logged in to the
  account before (kept per account for ``login_known_address_days``) are neither slowed
  nor challenged, so the owner gets in while an attacker elsewhere hammers the account.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import redis.asyncio as redis
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.commands.core import AsyncScript

from pixecom_core.security.login_challenges import (
    Challenge,
    ChallengeRequired,
    InvalidChallenge,
    LoginChallenges,
)
from pixecom_core.settings import Settings


class RateLimited(Exception):
    """A limit is exhausted; retry after ``retry_after`` seconds (sent as Retry-After)."""

    def __init__(self, *, limit: str, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.retry_after = max(1, retry_after)
        self.detail = detail


class AccountLocked(RateLimited):
    """Too many failed logins for one account from one client address: that pair is
    refused for the lockout period (other addresses are not)."""


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
        """The parsed rate (parsed once per distinct rate string)."""
        return _parsed(self.rate)


@functools.lru_cache(maxsize=64)
def _parsed(rate: str) -> RateLimitItem:
    return parse(rate)


# Issue 18 item 1: a cached read used to pay one round trip for its quota and another
# for its cache entry (and an authenticated one a third for its token's revocation).
# This refuses the request when a veto key exists (a revoked login) without counting
# it, else takes the quota slot exactly as the `limits` library's moving window does
# (its acquire_moving_window.lua, one entry) and, only when the slot was free, reads
# the given keys: one round trip, the same counts.
# KEYS: the window's list, the veto keys, then the keys to read. ARGV: now (unix,
# float), limit, window s, how many veto keys. Returns {1, value…} when admitted (a
# missing key's value is false: a nil reply), {0} when refused, {2} when vetoed.
_HIT_AND_READ = """
local vetoes = tonumber(ARGV[4])
for i = 2, vetoes + 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return {2}
  end
end
local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local entry = redis.call('LINDEX', KEYS[1], limit - 1)
if entry and tonumber(entry) >= timestamp - expiry then
  return {0}
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('EXPIRE', KEYS[1], expiry)
local result = {1}
for i = vetoes + 2, #KEYS do
  result[#result + 1] = redis.call('GET', KEYS[i])
end
return result
"""


class Vetoed(Exception):
    """A request :meth:`RateLimiter.hit_and_read` neither counted nor admitted: one of
    its ``unless_exists`` keys exists."""


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
        self._key_prefix = f"{key_prefix}limits"
        #: The read script registered on each client :meth:`hit_and_read` was given.
        self._scripts: dict[int, tuple[redis.Redis, AsyncScript]] = {}

    def window_key(self, limit: Limit, *identifiers: str) -> str:
        """The Redis key of ``limit``'s moving window for ``identifiers`` (the `limits`
        library's: its storage prefix, then the item's key)."""
        return f"{self._key_prefix}:{limit.item.key_for(limit.name, *identifiers)}"

    async def hit(self, limit: Limit, *identifiers: str) -> None:
        """Count one request against ``limit`` for ``identifiers``; raise
        :class:`RateLimited` when it is exhausted."""
        if await self._strategy.hit(limit.item, limit.name, *identifiers):
            return
        await self._refuse(limit, *identifiers)

    async def hit_and_read(
        self,
        client: redis.Redis,
        limit: Limit,
        identifiers: Sequence[str],
        keys: Sequence[str],
        *,
        unless_exists: Sequence[str] = (),
    ) -> list[bytes | None]:
        """Count one request against ``limit`` for ``identifiers`` (as :meth:`hit`
        does, in the same window) and read ``keys`` (``GET`` each), in one round trip
        on ``client``; the values in the order of ``keys``. Raises :class:`RateLimited`
        when the limit is exhausted, and :class:`Vetoed` — before counting anything —
        when a key of ``unless_exists`` exists (nothing is read then).

        The window and the keys are touched by one script: on a Redis Cluster they must
        share a slot; PixEcom's deployments run one Redis (docs/scaling.md).
        """
        item = limit.item
        script = self._scripts.get(id(client))
        if script is None or script[0] is not client:
            script = (client, client.register_script(_HIT_AND_READ))
            self._scripts[id(client)] = script
        answer = await script[1](
            keys=[self.window_key(limit, *identifiers), *unless_exists, *keys],
            args=[time.time(), item.amount, item.get_expiry(), len(unless_exists)],
        )
        if answer and answer[0] == 2:
            raise Vetoed()
        if not answer or answer[0] != 1:
            await self._refuse(limit, *identifiers)
        values: list[bytes | None] = list(answer[1:])
        return values

    async def _refuse(self, limit: Limit, *identifiers: str) -> NoReturn:
        item = limit.item
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


def address_key(client_ip: str) -> str:
    """Redis key material for a client address (bounded length, no raw address)."""
    return hashlib.sha256(client_ip.encode()).hexdigest()[:24]


#: How many known-good addresses each account remembers (the most recent ones).
KNOWN_ADDRESSES_PER_ACCOUNT = 20

# Takes a password-check slot, atomically (issue 12): a burst of concurrent attempts
# cannot all read "below the limit" before any of them counts. The pair's count lives
# for the failure window from its first slot; taking the last slot makes it the lock,
# for the lockout period from then.
# KEYS: pair count, account failures, account's known addresses, challenge-used marker.
# ARGV: pair limit, window s, lockout s, challenge threshold, address, known-since (unix),
#       challenge supplied (0/1), challenge-used TTL s.
# Returns {status, detail, account failures before this attempt}; status 0 admitted
# (detail: 1 if the address is known), 1 pair locked (detail: TTL), 2 challenge
# required, 3 challenge already used.
_ADMIT = """
local limit = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') >= limit then
  return {1, redis.call('TTL', KEYS[1]), 0}
end
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
local seen = redis.call('ZSCORE', KEYS[3], ARGV[5])
local known = seen and tonumber(seen) >= tonumber(ARGV[6])
if failures >= tonumber(ARGV[4]) and not known then
  if ARGV[7] == '0' then
    return {2, 0, failures}
  end
  if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[8]) then
    return {3, 0, failures}
  end
end
local taken = redis.call('INCR', KEYS[1])
if taken == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if taken == limit then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
if redis.call('INCR', KEYS[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {0, known and 1 or 0, failures}
"""

# A correct password: clear the pair, give back this attempt's account-wide slot, and
# remember the address as known for the account (newest first, bounded, expiring).
# KEYS: pair count, account failures, known addresses. ARGV: address, now, known TTL s,
# how many to keep.
_SUCCEED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[2]) - tonumber(ARGV[3])))
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[4]) + 1))
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""

_ADMITTED, _PAIR_LOCKED, _CHALLENGE_REQUIRED, _CHALLENGE_USED = range(4)


@dataclass(frozen=True)
class LoginAttempt:
    """A login attempt admitted to one password check: its slot is already counted.

    ``delay_seconds`` is how long it was held back by the account's slow-down.
    """

    account: str
    address: str
    known_address: bool
    delay_seconds: float


class LoginGuard:
    """Per-IP login throttle, per-(account, address) lock, per-account slow-down and
    proof-of-work challenge (the policy is in this module's docstring and
    ``docs/api.md``).

    Call :meth:`admit` before verifying a password — it raises when the attempt must not
    be evaluated — and :meth:`record_success` when the password was right. A wrong
    password needs no call: the slot :meth:`admit` took is the failure.
    """

    def __init__(self, client: redis.Redis, limiter: RateLimiter, settings: Settings) -> None:
        self._redis = client
        self._limiter = limiter
        self._settings = settings
        self._ip_limit = Limit("login-ip", settings.login_ip_rate)
        #: Issues and verifies the proof-of-work challenges.
        self.challenges = LoginChallenges.for_settings(settings)
        self._admit = client.register_script(_ADMIT)
        self._succeed = client.register_script(_SUCCEED)

    def _key(self, *parts: str) -> str:
        return f"{self._settings.redis_key_prefix}login:{':'.join(parts)}"

    def issue_challenge(self) -> Challenge:
        """A proof-of-work challenge for a login that needs one."""
        return self.challenges.issue()

    def slowdown(self, account_failures: int) -> float:
        """Seconds an attempt from an unknown address waits, given the account's failures
        in the window before it: 0 below the threshold, then doubling, bounded."""
        settings = self._settings
        over = account_failures - settings.login_slowdown_after_failures
        if over < 0:
            return 0.0
        delay = settings.login_slowdown_base_seconds * 2 ** min(over, 32)
        return float(min(delay, settings.login_slowdown_max_seconds))

    async def admit(
        self, *, email: str, client_ip: str, challenge: str | None = None
    ) -> LoginAttempt:
        """Take a password-check slot for ``email`` from ``client_ip``, waiting out the
        account's slow-down; ``challenge`` is the client's ALTCHA payload, if any.

        Raises :class:`RateLimited` (the IP's login rate), :class:`AccountLocked` (this
        account from this address), :class:`ChallengeRequired` or
        :class:`InvalidChallenge` — all before any password is checked.
        """
        settings = self._settings
        await self._limiter.hit(self._ip_limit, client_ip)
        solved = self.challenges.verify(challenge) if challenge is not None else None
        account, address = account_key(email), address_key(client_ip)
        now = int(time.time())
        status, detail, failures = await self._admit(
            keys=[
                self._key("pair", account, address),
                self._key("failures", account),
                self._key("known", account),
                self._key("challenge-used", solved.challenge if solved else "none"),
            ],
            args=[
                settings.login_max_failures,
                settings.login_failure_window_seconds,
                settings.login_lockout_seconds,
                settings.login_challenge_after_failures,
                address,
                now - settings.login_known_address_days * 86_400,
                1 if solved else 0,
                max(1, solved.expires_at - now) if solved else 1,
            ],
        )
        if status == _PAIR_LOCKED:
            retry_after = max(1, int(detail))
            raise AccountLocked(
                limit="login-account",
                retry_after=retry_after,
                detail=(
                    "too many failed logins for this account from this address; "
                    f"retry in {retry_after} s"
                ),
            )
        if status == _CHALLENGE_REQUIRED:
            raise ChallengeRequired(
                "this account had many failed logins: solve a proof-of-work challenge "
                "from GET /auth/challenge and send its payload as `altcha`"
            )
        if status == _CHALLENGE_USED:
            raise InvalidChallenge(
                "this challenge was already used; fetch a new one from GET /auth/challenge"
            )
        known = bool(detail)
        delay = 0.0 if known else self.slowdown(int(failures))
        if delay > 0:
            await asyncio.sleep(delay)
        return LoginAttempt(
            account=account, address=address, known_address=known, delay_seconds=delay
        )

    async def record_success(self, attempt: LoginAttempt) -> None:
        """The password was right: clear the pair's count, take this attempt off the
        account's failures, and remember the address as known for the account."""
        await self._succeed(
            keys=[
                self._key("pair", attempt.account, attempt.address),
                self._key("failures", attempt.account),
                self._key("known", attempt.account),
            ],
            args=[
                attempt.address,
                int(time.time()),
                self._settings.login_known_address_days * 86_400,
                KNOWN_ADDRESSES_PER_ACCOUNT,
            ],
        )
