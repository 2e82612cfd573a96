"""The 17TRACK v2.2 calls the tracker makes, over httpx, in 17TRACK's wire format.

Every operation is ``POST <api_base>/track/v2.2/<operation>`` with a JSON array body (at
most :data:`MAX_NUMBERS_PER_CALL` entries) and the security key in the ``17token`` header.
Answers come in one envelope::

    {"code": 0, "data": {"accepted": [...], "rejected": [{"number": "…",
                                                          "error": {"code": …, "message": "…"}}]}}

A non-zero ``code`` fails the whole call and names the reason in ``data.errors[]``; a
rejected entry fails only its own number (:class:`Rejection`, never an exception). Auth
failures may come as HTTP 401 or as HTTP 200 with an auth ``code``: both are mapped.

Failures become one class of :mod:`pixecom_core.providers.errors`, so core's shared circuit
breaker counts exactly the ones that say 17TRACK is unhealthy (SCALE-9):

- timeout (the whole call, not only each read), connection failure, HTTP 5xx, a 2xx that is
  not a JSON envelope, envelope code ``-18010003`` (internal error) →
  ``ProviderTransientError``;
- HTTP 429 or envelope code 429 → ``ProviderThrottled`` with a wait (``Retry-After`` when
  sent, else ``throttle_backoff_seconds``); also raised, without calling, when this
  process's own rate limiter has no slot soon enough;
- HTTP 401/403, envelope codes ``-18010001`` (IP not allowed), ``-18010002`` (invalid key),
  ``-18010004`` (account disabled), ``-18010005`` (unauthorised), or no key configured →
  ``ProviderAuthError`` naming ``PIXECOM_TRACKING17_API_KEY``;
- anything else (bad request, more than 40 numbers, 404) → ``ProviderError``.

The key never appears in a log line or an exception message: messages 17TRACK sends back
are scrubbed of it before they are quoted.
"""

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)
from pixecom_core.providers.http import (
    LoopLocalClient,
    json_object,
    parse_retry_after,
    transport_errors_as_transient,
)

# re-exported: the sandbox and the tests take the process's TLS context from here
from pixecom_core.providers.http import shared_ssl_context as shared_ssl_context
from pixecom_tracking17.rate_limit import Clock, RateLimiter, Sleep
from pixecom_tracking17.settings import ENV_PREFIX, Track17Settings

PROVIDER: Final = "17track"
API_VERSION: Final = "v2.2"
#: 17TRACK refuses more numbers than this in one call (``-18010014``).
MAX_NUMBERS_PER_CALL: Final = 40

# Whole-call codes (``code`` of the envelope).
CODE_OK: Final = 0
CODE_IP_NOT_ALLOWED: Final = -18010001
CODE_INVALID_KEY: Final = -18010002
CODE_INTERNAL_ERROR: Final = -18010003
CODE_ACCOUNT_DISABLED: Final = -18010004
CODE_UNAUTHORISED: Final = -18010005
CODE_TOO_MANY_NUMBERS: Final = -18010014
CODE_RATE_LIMITED: Final = 429
AUTH_CODES: Final = frozenset(
    {CODE_IP_NOT_ALLOWED, CODE_INVALID_KEY, CODE_ACCOUNT_DISABLED, CODE_UNAUTHORISED}
)

# Per-number codes (``rejected[].error.code``).
CODE_MISSING_VALUE: Final = -18010010
CODE_INVALID_VALUE: Final = -18010011
CODE_INVALID_FORMAT: Final = -18010012
CODE_ALREADY_REGISTERED: Final = -18019901
CODE_NOT_REGISTERED: Final = -18019902
CODE_CARRIER_NOT_DETECTED: Final = -18019903
CODE_ONLY_STOPPED_RETRACK: Final = -18019904
CODE_RETRACKED_ONCE: Final = -18019905
CODE_ONLY_TRACKED_STOP: Final = -18019906
CODE_DAILY_LIMIT: Final = -18019907
CODE_NO_QUOTA: Final = -18019908
CODE_NO_TRACKING_INFO: Final = -18019909
CODE_WRONG_CARRIER: Final = -18019910
CODE_CARRIER_UNAVAILABLE: Final = -18019911

#: Rejections that may pass on their own: the same number can be accepted later (quota
#: bought or renewed, the day's limit reset, 17TRACK or the carrier back).
RETRYABLE_CODES: Final = frozenset(
    {
        CODE_INTERNAL_ERROR,
        CODE_DAILY_LIMIT,
        CODE_NO_QUOTA,
        CODE_CARRIER_UNAVAILABLE,
        CODE_RATE_LIMITED,
    }
)

#: Envelope messages quoted in errors are cut to this length.
MAX_QUOTED_MESSAGE: Final = 300

Entry = dict[str, Any]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One number 17TRACK did not process, with its reason.

    :param number: the number as 17TRACK reported it.
    :param code: 17TRACK's error code (e.g. ``-18010012``: malformed number).
    :param message: 17TRACK's message (the key scrubbed out).
    """

    number: str
    code: int
    message: str

    @property
    def retryable(self) -> bool:
        """Whether the same number may be accepted later (:data:`RETRYABLE_CODES`)."""
        return self.code in RETRYABLE_CODES


@dataclass(slots=True)
class BatchResult:
    """What one operation did to every number, over however many calls it took.

    :param accepted: 17TRACK's entries for the numbers it processed.
    :param rejected: the numbers it refused, each with its reason.
    """

    accepted: list[Entry] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Quota:
    """The account's tracking quota (``getquota``); ``None`` where 17TRACK said nothing."""

    quota_total: int | None
    quota_used: int | None
    quota_remain: int | None
    today_used: int | None
    max_track_daily: int | None


def chunks(entries: Sequence[Entry], size: int = MAX_NUMBERS_PER_CALL) -> Iterator[list[Entry]]:
    """``entries`` cut into lists of at most ``size``, in order."""
    for start in range(0, len(entries), size):
        yield list(entries[start : start + size])


class Track17Client:
    """A thin async client of the 17TRACK v2.2 operations the tracker uses.

    One ``httpx.AsyncClient`` is kept per event loop (the tracker is shared by the whole
    process and may be used from several loops, e.g. one per test); :meth:`aclose` closes
    it. Every call first takes a slot from the process's :class:`RateLimiter`.

    :param settings: where 17TRACK is, the key, the timeout and the rate.
    :param transport: an httpx transport to use instead of the network (tests).
    :param clock: monotonic seconds for the rate limiter (tests pass a fake one).
    :param sleep: how the rate limiter waits (tests pass a recorder).
    """

    def __init__(
        self,
        settings: Track17Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._http = LoopLocalClient(
            settings.api_base,
            timeout_seconds=settings.timeout_seconds,
            user_agent="pixecom-tracking17",
            headers={"Accept": "application/json"},
            transport=transport,
        )
        self.rate_limiter = RateLimiter(
            settings.requests_per_second,
            max_wait_seconds=settings.max_rate_wait_seconds,
            provider=PROVIDER,
            clock=clock,
            sleep=sleep,
        )

    async def register(self, entries: Sequence[Entry]) -> BatchResult:
        """``register``: start tracking; entries ``{"number", "carrier"?, "tag"?}``."""
        return await self._batched("register", entries)

    async def gettrackinfo(self, entries: Sequence[Entry]) -> BatchResult:
        """``gettrackinfo``: the current state of registered numbers ``{"number",
        "carrier"?}``; accepted entries carry ``track_info``."""
        return await self._batched("gettrackinfo", entries)

    async def stoptrack(self, entries: Sequence[Entry]) -> BatchResult:
        """``stoptrack``: stop refreshing numbers ``{"number", "carrier"?}``."""
        return await self._batched("stoptrack", entries)

    async def getquota(self) -> Quota:
        """``getquota``: the account's quota (free; also a cheap check of the key)."""
        data = await self._call("getquota", [])
        return Quota(
            quota_total=_int_or_none(data.get("quota_total")),
            quota_used=_int_or_none(data.get("quota_used")),
            quota_remain=_int_or_none(data.get("quota_remain")),
            today_used=_int_or_none(data.get("today_used")),
            max_track_daily=_int_or_none(data.get("max_track_daily")),
        )

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent)."""
        await self._http.aclose()

    async def _batched(self, operation: str, entries: Sequence[Entry]) -> BatchResult:
        """Run ``operation`` over ``entries`` in calls of at most 40, merging the results.

        A failing call raises and drops the results of earlier calls: every operation is
        idempotent at 17TRACK (a registered number is "already registered", a stopped one
        "not tracked"), so the caller retries the whole list.
        """
        result = BatchResult()
        for batch in chunks(entries):
            data = await self._call(operation, batch)
            result.accepted.extend(entry for entry in _list(data.get("accepted")) if entry)
            result.rejected.extend(
                self._rejection(entry) for entry in _list(data.get("rejected")) if entry
            )
        return result

    def _rejection(self, entry: Entry) -> Rejection:
        error = entry.get("error")
        details: Mapping[str, Any] = error if isinstance(error, dict) else {}
        code = _int_or_none(details.get("code"))
        return Rejection(
            number=str(entry.get("number", "")),
            code=code if code is not None else 0,
            message=self._scrub(str(details.get("message") or "no reason given")),
        )

    def _key(self) -> str:
        key = self._settings.api_key
        if key is None:
            raise ProviderAuthError(
                f"no 17TRACK security key configured: set {ENV_PREFIX}API_KEY (the key from "
                "17TRACK's dashboard, or the sandbox's key in dev mode)",
                provider=PROVIDER,
            )
        return key.get_secret_value()

    def _scrub(self, text: str) -> str:
        """``text`` without the key, cut to a quotable length."""
        key = self._settings.api_key
        if key is not None and key.get_secret_value():
            text = text.replace(key.get_secret_value(), "***")
        return text[:MAX_QUOTED_MESSAGE]

    async def _call(self, operation: str, body: list[Entry]) -> dict[str, Any]:
        """One ``POST /track/v2.2/<operation>``; the envelope's ``data`` on success."""
        headers = {"17token": self._key(), "Content-Type": "application/json"}
        path = f"/track/{API_VERSION}/{operation}"
        timeout = self._settings.timeout_seconds
        await self.rate_limiter.acquire()
        started = time.monotonic()
        with transport_errors_as_transient(
            provider=PROVIDER,
            service="17TRACK",
            call=operation,
            base_url=self._settings.api_base,
            timeout_seconds=timeout,
            timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
            scrub=self._scrub,
        ):
            # httpx limits each phase (connect, every read); this limits the call as a
            # whole, so a server that trickles bytes cannot hold the worker either
            async with asyncio.timeout(timeout):
                response = await self._http.get().post(path, json=body, headers=headers)
        _log.debug(
            "17track %s (%d numbers) -> %s in %.3f s",
            operation,
            len(body),
            response.status_code,
            time.monotonic() - started,
        )
        return self._data_of(operation, response)

    def _data_of(self, operation: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        envelope = json_object(response)
        code = _int_or_none(envelope.get("code")) if envelope is not None else None
        detail = self._describe(operation, response, envelope, code)
        if status == 429 or code == CODE_RATE_LIMITED:
            raise ProviderThrottled(
                detail,
                retry_after_seconds=self._retry_after(response),
                provider=PROVIDER,
            )
        if status in (401, 403) or code in AUTH_CODES:
            raise ProviderAuthError(
                f"{detail}. Check {ENV_PREFIX}API_KEY and the account's IP allow-list.",
                provider=PROVIDER,
            )
        if status >= 500 or code == CODE_INTERNAL_ERROR:
            raise ProviderTransientError(detail, provider=PROVIDER)
        if not response.is_success:
            raise ProviderError(detail, provider=PROVIDER)
        if envelope is None or code is None:
            # a proxy's error page or a cut-off answer, not 17TRACK speaking
            raise ProviderTransientError(detail, provider=PROVIDER)
        if code != CODE_OK:
            raise ProviderError(detail, provider=PROVIDER)
        data = envelope.get("data")
        return data if isinstance(data, dict) else {}

    def _retry_after(self, response: httpx.Response) -> float:
        """The 429's ``Retry-After``, else the configured backoff (17TRACK rarely sends one)."""
        seconds = parse_retry_after(response.headers.get("retry-after"))
        return seconds if seconds is not None else self._settings.throttle_backoff_seconds

    def _describe(
        self,
        operation: str,
        response: httpx.Response,
        envelope: dict[str, Any] | None,
        code: int | None,
    ) -> str:
        detail = f"17TRACK {operation} answered HTTP {response.status_code}"
        if envelope is None:
            return detail + " without a JSON envelope"
        if code is not None and code != CODE_OK:
            detail += f", code {code}"
        data = envelope.get("data")
        errors = _list(data.get("errors")) if isinstance(data, dict) else []
        messages = [str(error.get("message")) for error in errors if error.get("message")]
        if not messages and envelope.get("message"):
            messages = [str(envelope["message"])]
        if messages:
            detail += ": " + self._scrub("; ".join(messages))
        return detail


def _list(value: Any) -> list[Entry]:
    """The dict entries of a JSON array (anything else: none); SCALE-4, bounded by the
    caller's 40-number batches."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
