"""Pacing calls per ad account from Meta's rate-limit headers.

Meta reports how much of its quota an app and an ad account have used on every answer,
successful or not:

- ``X-Business-Use-Case-Usage``: ``{"<business or account id>": [{"type": "ads_insights",
  "call_count": 28, "total_cputime": 25, "total_time": 25,
  "estimated_time_to_regain_access": 0}]}``; percentages, and the wait in **minutes**;
- ``X-Ad-Account-Usage``: ``{"acc_id_util_pct": 9.67, "reset_time_duration": 0}``;
  ``reset_time_duration`` in **seconds**;
- ``X-FB-Ads-Insights-Throttle``: ``{"app_id_util_pct": 0, "acc_id_util_pct": 0}``;
- ``X-App-Usage``: ``{"call_count": 1, "total_cputime": 0, "total_time": 0}``.

:func:`read_usage_headers` folds them into one :class:`RateLimitUsage`. An
:class:`AccountPacer` keeps, per account, the last usage seen and until when the account is
blocked, and before each call either goes ahead, sleeps (proportionally, once usage is above
``slow_down_at_pct``; the whole wait when blocked and the wait is short) or raises
``ProviderThrottled`` (blocked for longer than a worker should hold a slot).

The state lives behind :class:`PacerState`: :class:`InMemoryPacerState` for one process,
:class:`RedisPacerState` for every worker of a deployment (issue 18 item 4: a block one
worker was told about holds back the others too, instead of each one finding out by being
throttled again).
"""

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from pixecom_core.providers import ProviderThrottled

PROVIDER: Final = "meta"

BUSINESS_USE_CASE_USAGE: Final = "x-business-use-case-usage"
AD_ACCOUNT_USAGE: Final = "x-ad-account-usage"
ADS_INSIGHTS_THROTTLE: Final = "x-fb-ads-insights-throttle"
APP_USAGE: Final = "x-app-usage"

#: ``(seconds) -> None``: ``asyncio.sleep`` in production, a recorder in tests.
Sleep = Callable[[float], Awaitable[None]]
#: Wall-clock seconds since the epoch; wall clock (not monotonic) so that state shared
#: between processes through Redis means the same instant everywhere.
Clock = Callable[[], float]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateLimitUsage:
    """What one answer's rate-limit headers said.

    :param highest_pct: the highest usage percentage among every header and field (call
        count, CPU time, total time, account and app utilisation); ``None`` when the answer
        carried no usage header.
    :param regain_access_seconds: how long Meta says the caller is blocked, from
        ``estimated_time_to_regain_access`` (minutes, converted) or, when an account is at
        100 %, ``reset_time_duration``; ``None`` when no header names a wait.
    """

    highest_pct: float | None = None
    regain_access_seconds: float | None = None


def read_usage_headers(headers: Mapping[str, str]) -> RateLimitUsage:
    """Fold Meta's usage headers into one :class:`RateLimitUsage`.

    Malformed or missing headers count as "nothing said": pacing must never turn a good
    answer into an error.

    :param headers: the response headers (case-insensitive lookups, as httpx gives them).
    """
    percentages: list[float] = []
    waits: list[float] = []

    business = _json_header(headers, BUSINESS_USE_CASE_USAGE)
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                percentages.extend(_numbers(entry, ("call_count", "total_cputime", "total_time")))
                # minutes, unlike every other duration in these headers
                minutes = _number(entry.get("estimated_time_to_regain_access"))
                if minutes is not None and minutes > 0:
                    waits.append(minutes * 60.0)

    account = _json_header(headers, AD_ACCOUNT_USAGE)
    if isinstance(account, dict):
        account_pct = _number(account.get("acc_id_util_pct"))
        if account_pct is not None:
            percentages.append(account_pct)
            reset_seconds = _number(account.get("reset_time_duration"))
            if account_pct >= 100 and reset_seconds is not None and reset_seconds > 0:
                waits.append(reset_seconds)

    insights = _json_header(headers, ADS_INSIGHTS_THROTTLE)
    if isinstance(insights, dict):
        percentages.extend(_numbers(insights, ("app_id_util_pct", "acc_id_util_pct")))

    app = _json_header(headers, APP_USAGE)
    if isinstance(app, dict):
        percentages.extend(_numbers(app, ("call_count", "total_cputime", "total_time")))

    return RateLimitUsage(
        highest_pct=max(percentages) if percentages else None,
        regain_access_seconds=max(waits) if waits else None,
    )


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        _log.warning("ignoring a malformed %s header", name)
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _numbers(entry: Mapping[str, Any], keys: tuple[str, ...]) -> list[float]:
    return [number for key in keys if (number := _number(entry.get(key))) is not None]


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """The pacing state of one ad account, as :class:`PacerState` stores it.

    :param usage_pct: the highest usage percentage last reported for the account.
    :param observed_at: when it was reported (epoch seconds).
    :param blocked_until: until when calls must not be made (epoch seconds), or ``None``.
    """

    usage_pct: float
    observed_at: float
    blocked_until: float | None = None


class PacerState(Protocol):
    """Where an :class:`AccountPacer` keeps each account's :class:`AccountUsage`.

    A few methods, so a shared store (:class:`RedisPacerState`) can replace the in-process
    one without touching the pacer. A lost write only makes pacing less precise, never
    wrong: the network still refuses calls over its limit and the client reads the wait
    from that answer.
    """

    async def load(self, account_key: str) -> AccountUsage | None:
        """The state last saved for ``account_key``, or ``None``."""
        ...

    async def save(self, account_key: str, usage: AccountUsage) -> None:
        """Store the state of ``account_key``.

        A shared store merges instead of replacing: ``usage`` was computed from an earlier
        :meth:`load`, and another process may have saved a block in between, which must
        survive (the later ``blocked_until`` wins).
        """
        ...

    async def aclose(self) -> None:
        """Release connections (at shutdown; idempotent)."""
        ...


class InMemoryPacerState:
    """A :class:`PacerState` in this process's memory, holding at most ``max_accounts``.

    The least recently saved accounts are forgotten first (SCALE-4: every collection is
    bounded); forgetting one only means its next call is not slowed down.
    """

    def __init__(self, max_accounts: int = 100_000) -> None:
        self._max_accounts = max_accounts
        self._accounts: OrderedDict[str, AccountUsage] = OrderedDict()

    async def load(self, account_key: str) -> AccountUsage | None:
        """The state last saved for ``account_key``, or ``None``."""
        return self._accounts.get(account_key)

    async def save(self, account_key: str, usage: AccountUsage) -> None:
        """Replace the state of ``account_key``; forget the oldest account past the bound."""
        self._accounts[account_key] = usage
        self._accounts.move_to_end(account_key)
        while len(self._accounts) > self._max_accounts:
            self._accounts.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release."""


#: Merges a save into what another process may have stored since our load (issue 18
#: item 4: a block set by one worker is never lost by another's write). Atomic because a
#: script runs alone on the server. KEYS[1] the account's hash; ARGV: usage_pct,
#: observed_at, blocked_until ("" for none), now, memory seconds. The later
#: ``blocked_until`` wins; the usage with the later ``observed_at`` wins. The key lives for
#: the usage memory, or until the block ends when that is later. A stored value that is
#: not a well-formed state (another type, a field missing or not a finite number: what
#: :meth:`RedisPacerState.load` ignores) is replaced, not merged.
_MERGE_SAVE: Final = """
local function finite(text)
  local number = tonumber(text)
  if number and number == number and number ~= math.huge and number ~= -math.huge then
    return number
  end
  return nil
end
local key = KEYS[1]
local usage_pct, observed_at, blocked_until = ARGV[1], ARGV[2], ARGV[3]
local now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local stored = {false, false, false}
if redis.call('TYPE', key).ok == 'hash' then
  stored = redis.call('HMGET', key, 'usage_pct', 'observed_at', 'blocked_until')
end
local stored_observed, stored_blocked = finite(stored[2]), finite(stored[3])
if finite(stored[1]) and stored_observed and (stored[3] == '' or stored_blocked) then
  if stored_observed > tonumber(observed_at) then
    usage_pct, observed_at = stored[1], stored[2]
  end
  if stored_blocked and (blocked_until == '' or stored_blocked > tonumber(blocked_until)) then
    blocked_until = stored[3]
  end
end
redis.call('DEL', key)
redis.call('HSET', key, 'usage_pct', usage_pct, 'observed_at', observed_at,
  'blocked_until', blocked_until)
local blocked = tonumber(blocked_until)
if blocked and blocked - now > ttl then
  ttl = blocked - now
end
redis.call('PEXPIRE', key, math.max(1, math.ceil(ttl * 1000)))
return 1
"""


class RedisPacerState:
    """A :class:`PacerState` in Redis, shared by every process that uses the same server
    and prefix: one hash per account, ``{key_prefix}{account_key}``, with the fields
    ``usage_pct``, ``observed_at`` and ``blocked_until`` (epoch seconds; empty when not
    blocked).

    :meth:`save` merges in one server-side script (see ``_MERGE_SAVE``), so two workers
    saving at once never lose a block: the later ``blocked_until`` wins. Keys expire after
    ``memory_seconds`` (the pacer's usage memory), or when their block ends if that is
    later, so an account nobody calls any more leaves nothing behind.

    Redis being unreachable or a value being malformed never fails a call: it is logged
    and the account is treated as unknown (not slowed down), as with the in-memory state
    after a restart; Meta still refuses calls over its limit, and that answer names the
    wait.

    One connection pool per event loop (a pool's connections belong to the loop that
    opened them), built on first use; :meth:`aclose` closes it.

    :param url: the Redis server, ``redis://[:password@]host:port/db``.
    :param key_prefix: put before every account key (``pixecom:meta:pacing:``).
    :param memory_seconds: how long an account's state is kept after its last save.
    :param clock: wall-clock seconds, for the expiry of a block (the pacer's clock).
    :param connect_timeout_seconds: limit on connecting and on each command, so a Redis
        that hangs delays a call this long at most.
    :param client_name: how its connections appear in ``CLIENT LIST``.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        memory_seconds: float,
        clock: Clock = time.time,
        connect_timeout_seconds: float = 2.0,
        client_name: str = "pixecom-meta-pacing",
    ) -> None:
        if memory_seconds <= 0:
            raise ValueError(f"memory_seconds must be positive, not {memory_seconds}")
        self._url = url
        self._key_prefix = key_prefix
        self._memory_seconds = memory_seconds
        self._clock = clock
        self._timeout_seconds = connect_timeout_seconds
        self._client_name = client_name
        # this loop's client and the merge script registered on it
        self._connection: tuple[redis.Redis, AsyncScript] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def key(self, account_key: str) -> str:
        """The Redis key of ``account_key``'s state."""
        return f"{self._key_prefix}{account_key}"

    async def load(self, account_key: str) -> AccountUsage | None:
        """The state last saved for ``account_key``, or ``None`` (also when Redis cannot
        be reached or the value is malformed)."""
        key = self.key(account_key)
        try:
            client, _ = self._connect()
            fields = await client.hmget(key, ["usage_pct", "observed_at", "blocked_until"])
        except RedisError as exc:
            _log.warning("meta pacing: cannot read %s from Redis (%s); not pacing", key, exc)
            return None
        raw_usage, raw_observed, raw_blocked = fields
        if raw_usage is None and raw_observed is None and raw_blocked is None:
            return None
        usage_pct, observed_at = _stored_number(raw_usage), _stored_number(raw_observed)
        blocked_until = _stored_number(raw_blocked)
        if usage_pct is None or observed_at is None or (raw_blocked and blocked_until is None):
            _log.warning("meta pacing: ignoring the malformed state in %s", key)
            return None
        return AccountUsage(
            usage_pct=usage_pct, observed_at=observed_at, blocked_until=blocked_until
        )

    async def save(self, account_key: str, usage: AccountUsage) -> None:
        """Merge ``usage`` into the stored state (the later block and the later usage win)."""
        key = self.key(account_key)
        blocked_until = "" if usage.blocked_until is None else repr(usage.blocked_until)
        arguments = (
            repr(usage.usage_pct),
            repr(usage.observed_at),
            blocked_until,
            repr(self._clock()),
            repr(self._memory_seconds),
        )
        try:
            _, merge_save = self._connect()
            await merge_save(keys=[key], args=arguments)
        except RedisError as exc:
            _log.warning("meta pacing: cannot save %s to Redis (%s)", key, exc)

    async def aclose(self) -> None:
        """Close this loop's connection pool (idempotent)."""
        connection, self._connection, self._loop = self._connection, None, None
        if connection is not None:
            await connection[0].aclose()

    def _connect(self) -> tuple[redis.Redis, AsyncScript]:
        loop = asyncio.get_running_loop()
        if self._connection is None or self._loop is not loop:
            # a pool bound to another (possibly closed) loop can be neither reused nor closed
            # from this one; it is left to be collected
            # A call waits (up to the command timeout) for one of the pool's connections:
            # redis-py's plain pool refuses a command past its 100 connections ("Too many
            # connections"), and the pacing of every call over that went unread and unsaved
            # (bench.sync_cycle --shared-pacing, 200 sellers' syncs at once).
            pool = redis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=REDIS_POOL_CONNECTIONS,
                timeout=self._timeout_seconds,
                decode_responses=True,
                socket_connect_timeout=self._timeout_seconds,
                socket_timeout=self._timeout_seconds,
                client_name=self._client_name,
            )
            client = redis.Redis.from_pool(pool)  # the client owns and closes its pool
            # EVALSHA, falling back to EVAL (which loads it) when the server lacks the script
            self._connection = (client, client.register_script(_MERGE_SAVE))
            self._loop = loop
        return self._connection


#: Connections of :class:`RedisPacerState`'s pool per event loop; further calls wait for one.
REDIS_POOL_CONNECTIONS = 100


def _stored_number(value: bytes | str | None) -> float | None:
    """A number saved by :class:`RedisPacerState`, or ``None`` if absent or malformed."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class AccountPacer:
    """Spaces out and holds back calls for each ad account, from what Meta reported.

    Call :meth:`before_call` before every request and :meth:`observe` with every answer's
    headers (errors included); call :meth:`block` when a throttling error names no wait.

    :param state: where each account's usage and block live.
    :param slow_down_at_pct: usage above which calls are spaced out.
    :param max_pace_delay_seconds: the pause when usage is at (or above) 100 %; the pause
        grows linearly from 0 at ``slow_down_at_pct``.
    :param max_inline_wait_seconds: a block this short is slept through; a longer one raises
        ``ProviderThrottled`` with the time left.
    :param usage_memory_seconds: a usage older than this no longer slows calls down (Meta's
        windows roll over; a fresh answer will report the new figure).
    :param sleep: how to wait (injectable for tests).
    :param clock: wall-clock seconds (injectable for tests).
    """

    def __init__(
        self,
        state: PacerState,
        *,
        slow_down_at_pct: float,
        max_pace_delay_seconds: float,
        max_inline_wait_seconds: float,
        usage_memory_seconds: float = 300.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        if not 0 <= slow_down_at_pct < 100:
            raise ValueError(f"slow_down_at_pct must be in [0, 100), not {slow_down_at_pct}")
        self._state = state
        self._slow_down_at_pct = slow_down_at_pct
        self._max_pace_delay_seconds = max_pace_delay_seconds
        self._max_inline_wait_seconds = max_inline_wait_seconds
        self._usage_memory_seconds = usage_memory_seconds
        self._sleep = sleep
        self._clock = clock

    def pace_delay(self, usage_pct: float) -> float:
        """The pause before a call when usage is ``usage_pct`` percent.

        0 up to ``slow_down_at_pct``, then proportional to how far usage has gone towards
        100 %, reaching ``max_pace_delay_seconds`` there.
        """
        if usage_pct <= self._slow_down_at_pct:
            return 0.0
        share = (usage_pct - self._slow_down_at_pct) / (100.0 - self._slow_down_at_pct)
        return self._max_pace_delay_seconds * min(share, 1.0)

    async def before_call(self, account_key: str) -> None:
        """Wait as long as the account's last reported usage asks, or refuse the call.

        :raises ProviderThrottled: the account is blocked for longer than
            ``max_inline_wait_seconds``; ``retry_after_seconds`` is the time left.
        """
        usage = await self._state.load(account_key)
        if usage is None:
            return
        now = self._clock()
        if usage.blocked_until is not None and usage.blocked_until > now:
            wait = usage.blocked_until - now
            if wait > self._max_inline_wait_seconds:
                raise ProviderThrottled(
                    f"Meta rate limit: ad account {account_key} is blocked for another "
                    f"{wait:.0f} s (from the usage headers of an earlier answer)",
                    retry_after_seconds=wait,
                    provider=PROVIDER,
                )
            _log.info("meta account %s blocked: waiting %.1f s", account_key, wait)
            await self._sleep(wait)
            return
        if now - usage.observed_at > self._usage_memory_seconds:
            return
        delay = self.pace_delay(usage.usage_pct)
        if delay > 0:
            _log.debug(
                "meta account %s at %.0f %% usage: pausing %.2f s",
                account_key,
                usage.usage_pct,
                delay,
            )
            await self._sleep(delay)

    async def observe(self, account_key: str, usage: RateLimitUsage) -> float | None:
        """Remember what an answer's headers said; return the block they imposed, if any.

        :param account_key: the ad account the call was made for.
        :param usage: the answer's headers, read by :func:`read_usage_headers`.
        """
        if usage.highest_pct is None and usage.regain_access_seconds is None:
            return None
        now = self._clock()
        previous = await self._state.load(account_key)
        blocked_until = previous.blocked_until if previous is not None else None
        if blocked_until is not None and blocked_until <= now:
            blocked_until = None
        if usage.regain_access_seconds is not None:
            # wait at least what Meta names: never shorten a block already known
            blocked_until = max(blocked_until or 0.0, now + usage.regain_access_seconds)
        usage_pct = usage.highest_pct
        if usage_pct is None:
            usage_pct = previous.usage_pct if previous is not None else 0.0
        await self._state.save(
            account_key,
            AccountUsage(usage_pct=usage_pct, observed_at=now, blocked_until=blocked_until),
        )
        return usage.regain_access_seconds

    async def aclose(self) -> None:
        """Release the state's connections (at shutdown; idempotent)."""
        await self._state.aclose()

    async def block(self, account_key: str, seconds: float) -> None:
        """Hold back every call for the account for ``seconds`` (a throttling error without
        a wait in its headers), keeping a longer block already known."""
        now = self._clock()
        previous = await self._state.load(account_key)
        until = now + seconds
        if previous is not None and previous.blocked_until is not None:
            until = max(until, previous.blocked_until)
        await self._state.save(
            account_key,
            AccountUsage(
                usage_pct=previous.usage_pct if previous is not None else 100.0,
                observed_at=previous.observed_at if previous is not None else now,
                blocked_until=until,
            ),
        )
