"""The Graph API calls the Meta ad network makes, over httpx, in Meta's wire format.

- ``GET /{version}/act_{id}`` with ``fields=name,currency,timezone_name``;
- ``GET /{version}/act_{id}/insights`` with ``level``, ``fields``, ``time_range`` (JSON,
  both ends inclusive), ``time_increment=1`` and ``limit``, following ``paging.next`` until
  it is absent (``paging.cursors.after`` is present even on the last page);
- ``GET /{version}/act_{id}/campaigns``, ``/adsets`` and ``/ads`` with ``fields`` (``id``,
  ``name``, ``effective_status`` and the parents' ids the object has: ``campaign_id`` on ad
  sets and ads, ``adset_id`` on ads), an ``effective_status`` filter naming every status
  (the edges leave ``ARCHIVED`` objects out unless asked for them) and ``limit``, following
  ``paging.next`` (Marketing API reference: "Ad Campaign", "Ad Set", "Ad"; "Manage Your Ad
  Object's Status" at developers.facebook.com/docs/marketing-api/best-practices/storing_adobjects);
- async report runs: ``POST /{version}/act_{id}/insights`` → ``report_run_id``; poll
  ``GET /{version}/{report_run_id}`` until ``async_status`` is ``"Job Completed"``
  (``async_percent_completion`` can read 100 while the job still runs); read
  ``GET /{version}/{report_run_id}/insights`` page by page;
- the Conversions API: ``POST /{version}/{pixel_id}/events`` with the form fields ``data``
  (a JSON array of server events, :mod:`pixecom_meta_ads.conversions`) and
  ``test_event_code`` → ``{"events_received", "messages", "fbtrace_id"}``.

The seller's token travels as ``access_token``. It never appears in a log line (a filter on
the ``httpx`` logger masks it in request URLs) or in an exception's text. Every answer's
rate-limit headers feed the :class:`~pixecom_meta_ads.pacing.AccountPacer`, errors included.

Errors come in Meta's envelope ``{"error": {message, type, code, error_subcode,
fbtrace_id, is_transient}}`` and become one class of :mod:`pixecom_core.providers.errors`:

- codes 4, 17, 32, 613, 80000–80014 and subcode 2446079 (rate limits) →
  ``ProviderThrottled``, waiting what the usage headers name (``estimated_time_to_regain_access``
  minutes, ``reset_time_duration`` seconds) or ``throttle_backoff_seconds``; a short wait is
  slept through and the call retried;
- code 190 (token expired or revoked), 102, 104, 10 and 200–299 (permissions) →
  ``ProviderAuthError``: the seller must reconnect the account;
- for the Conversions API only: code 100 ("Invalid parameter": an event Meta will not take,
  e.g. subcode 2804003 "Event Timestamp Too Old") → ``ProviderRefused``, except subcode 33
  ("Object with ID … does not exist, cannot be loaded due to missing permissions") →
  ``ProviderAuthError``: the pixel id or its token is wrong, which the seller must fix;
- code 100 with subcode 1487534, or code 1 "reduce the amount of data" →
  :class:`MetaTooMuchData`, which the ad network answers by splitting the window;
- codes 1, 2, ``is_transient``, 5xx, timeouts, connection failures →
  ``ProviderTransientError`` after ``transient_retries`` retries;
- any other error → ``ProviderError`` with Meta's code, message and trace id.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
import zlib
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from pixecom_core.providers import (
    EntityLevel,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
)
from pixecom_core.providers.http import json_object, transient_error_for

# re-exported: the tests take the process's TLS context from here
from pixecom_core.providers.http import shared_ssl_context as shared_ssl_context
from pixecom_meta_ads.pacing import (
    AccountPacer,
    Clock,
    InMemoryPacerState,
    PacerState,
    RateLimitUsage,
    RedisPacerState,
    Sleep,
    read_usage_headers,
)
from pixecom_meta_ads.settings import ENV_PREFIX, MetaAdsSettings

PROVIDER: Final = "meta"

THROTTLING_CODES: Final = frozenset({4, 17, 32, 613, *range(80000, 80015)})
THROTTLING_SUBCODES: Final = frozenset({2446079, 1487742})
AUTH_CODES: Final = frozenset({190, 102, 104, 10, *range(200, 300)})
TRANSIENT_CODES: Final = frozenset({1, 2})
TOO_MUCH_DATA_SUBCODE: Final = 1487534
#: Graph's "invalid parameter": for the Conversions API, an event Meta refuses as it is.
INVALID_PARAMETER_CODE: Final = 100
#: With code 100: the object does not exist or the token may not use it.
UNKNOWN_OBJECT_SUBCODE: Final = 33
#: Connections per httpx pool; ``max_connections`` is spread over several pools this size.
#: Each request start and end costs CPU for every connection of its pool (and the square
#: of the pool's idle ones in httpcore 1.0), so a pool this small costs little per call.
POOL_SHARD_SIZE: Final = 20
#: Throttling errors retried in place (after sleeping the wait) before being raised.
MAX_THROTTLE_RETRIES: Final = 3

REPORT_COMPLETED: Final = "Job Completed"
REPORT_FAILED: Final = frozenset({"Job Failed", "Job Skipped"})

LEVEL_ID_FIELDS: Final = {
    EntityLevel.CAMPAIGN: "campaign_id",
    EntityLevel.ADSET: "adset_id",
    EntityLevel.AD: "ad_id",
}
ACCOUNT_FIELDS: Final = "name,currency,timezone_name,account_id"
#: The ad account's edge listing each level, and the fields read from it.
ENTITY_EDGES: Final = {
    EntityLevel.CAMPAIGN: ("campaigns", "id,name,effective_status"),
    EntityLevel.ADSET: ("adsets", "id,name,effective_status,campaign_id"),
    EntityLevel.AD: ("ads", "id,name,effective_status,campaign_id,adset_id"),
}
#: Every ``effective_status`` an edge may filter on: live objects (``ACTIVE``, ``PAUSED``,
#: ``PENDING_REVIEW``, ``WITH_ISSUES`` ...) and ``ARCHIVED`` ones, which an edge returns
#: only when asked; ``DELETED`` objects are never listed by an edge.
ENTITY_STATUS_FILTER: Final = (
    "ACTIVE",
    "PAUSED",
    "CAMPAIGN_PAUSED",
    "ADSET_PAUSED",
    "PENDING_REVIEW",
    "DISAPPROVED",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
    "IN_PROCESS",
    "WITH_ISSUES",
    "ARCHIVED",
)

# Facebook Login's calls put the app secret, the consent code and tokens in the query too
_SECRET_IN_URL = re.compile(
    r"(?<![\w.])(access_token|appsecret_proof|client_secret|fb_exchange_token|input_token|code)"
    r"=[^&\s\"'<>]+"
)
_ACCOUNT_NUMBER = re.compile(r"^(?:act_)?(\d{1,32})$")
_PIXEL_ID = re.compile(r"^\d{1,32}$")
_REPORT_RUN_ID = re.compile(r"^\d{1,32}$")
_REDUCE_DATA = re.compile(r"reduce the amount of data", re.IGNORECASE)

_log = logging.getLogger(__name__)


class MetaTooMuchData(ProviderError):
    """Meta refused the query as too large (code 100/1487534, or code 1 "reduce the amount
    of data"); ask again for a shorter window or through an async report run."""


class MetaReportRunFailed(ProviderTransientError):
    """An async report run ended as "Job Failed" or "Job Skipped"; a new run may succeed."""


@dataclass(frozen=True, slots=True)
class GraphPage:
    """One answer of the Graph API.

    :param body: the decoded JSON object.
    :param received_at: when the answer arrived (UTC).
    """

    body: dict[str, Any]
    received_at: datetime

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The page's ``data`` array; a list answer without one is a malformed answer."""
        data = self.body.get("data")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ProviderError(
                "Meta answered a list request without a data array of objects",
                provider=PROVIDER,
            )
        return data


def account_number(account_id: str) -> str:
    """The numeric id of an ad account given as ``123`` or ``act_123``.

    :raises ValueError: anything else (the id goes into a URL path).
    """
    match = _ACCOUNT_NUMBER.match(account_id.strip())
    if match is None:
        raise ValueError(
            f"not a Meta ad account id (digits, optionally act_-prefixed): {account_id!r}"
        )
    return match.group(1)


def pixel_number(pixel_id: str) -> str:
    """A pixel (dataset) id, checked to be digits (it goes into a URL path).

    :raises ValueError: anything else.
    """
    number = pixel_id.strip()
    if not _PIXEL_ID.match(number):
        raise ValueError(f"not a Meta pixel or dataset id (digits): {pixel_id[:64]!r}")
    return number


def redact_secrets(text: str, *secrets: str) -> str:
    """``text`` with the values of ``access_token``, ``appsecret_proof``, ``client_secret``,
    ``fb_exchange_token``, ``input_token`` and ``code`` query parameters and every given
    secret replaced by ``***``."""
    redacted = _SECRET_IN_URL.sub(r"\1=***", text)
    for secret in secrets:
        if secret:
            redacted = redacted.replace(secret, "***")
    return redacted


def token_params(token: str, app_secret: SecretStr | None) -> dict[str, str]:
    """The query parameters that authenticate a Graph call: ``access_token``, and
    ``appsecret_proof`` (HMAC-SHA256 of the token under the app secret) when the app secret
    is configured, as apps with "Require App Secret" must send."""
    params = {"access_token": token}
    if app_secret is not None:
        params["appsecret_proof"] = hmac.new(
            app_secret.get_secret_value().encode(), token.encode(), hashlib.sha256
        ).hexdigest()
    return params


def follow_next_link(next_link: str, *, graph_base: str) -> tuple[str, dict[str, str]]:
    """The URL and query of a ``paging.next`` link, checked to stay on the Graph origin;
    the token it may carry is dropped (the call adds the seller's own).

    :raises ProviderError: the link is malformed or leaves ``graph_base``.
    """
    try:
        link = httpx.URL(next_link)
    except httpx.InvalidURL as exc:
        raise ProviderError(
            "Meta answered a malformed paging.next link", provider=PROVIDER
        ) from exc
    base = httpx.URL(graph_base)
    if (link.scheme, link.host, link.port) != (base.scheme, base.host, base.port) or (
        not link.path.startswith(base.path.rstrip("/") + "/")
    ):
        raise ProviderError(
            f"refusing to follow paging.next to {link.scheme}://{link.host}: it is not "
            f"the configured Graph API ({graph_base}), and the request would carry the "
            "seller's token",
            provider=PROVIDER,
        )
    params = {
        key: value
        for key, value in link.params.multi_items()
        if key not in {"access_token", "appsecret_proof"}
    }
    return str(link.copy_with(query=None)), params


class _RedactSecretsFilter(logging.Filter):
    """Masks tokens in log records: httpx logs every request URL, query string included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_secrets(str(arg)) if isinstance(arg, str | httpx.URL) else arg
                for arg in record.args
            )
        return True


def install_log_redaction() -> None:
    """Add the token-masking filter to the ``httpx`` logger (once per process).

    httpx logs ``HTTP Request: GET <full URL>`` at INFO, the token included; httpcore's
    debug lines name hosts and methods only.
    """
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactSecretsFilter) for existing in logger.filters):
        logger.addFilter(_RedactSecretsFilter())


@dataclass(frozen=True, slots=True)
class _PoolShard:
    """One ``httpx.AsyncClient`` with at most ``POOL_SHARD_SIZE`` connections, and the
    semaphore that queues calls before they reach its pool.

    httpcore's pool rescans every connection and queued request whenever a request starts
    or ends, which grows with the square of the pool: a thousand connections in one pool
    cost tens of milliseconds of CPU per call. Several small pools keep that flat.
    """

    http: httpx.AsyncClient
    in_flight: asyncio.Semaphore

    @classmethod
    def open(
        cls,
        connections: int,
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None,
    ) -> "_PoolShard":
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=transport,
            verify=shared_ssl_context(),
            headers={"User-Agent": "pixecom-meta-ads"},
        )
        return cls(http=http, in_flight=asyncio.Semaphore(connections))


def pacer_state_for(settings: MetaAdsSettings, *, clock: Clock = time.time) -> PacerState:
    """Where the pacing state of a plugin built inside a deployment lives: Redis, shared by
    every worker, when ``settings.pacing_redis_url`` names one (``REDIS_URL`` with
    ``PIXECOM_META_SHARED_PACING`` on, the default); process memory otherwise (a lone
    process, the plugin's tests, the conformance kit).

    :param settings: the plugin's settings (Redis URL and key prefix, usage memory).
    :param clock: the pacer's wall clock, for the expiry of blocks in Redis.
    """
    url = settings.pacing_redis_url
    if url is None:
        return InMemoryPacerState()
    return RedisPacerState(
        url,
        key_prefix=settings.pacing_key_prefix,
        memory_seconds=settings.usage_memory_seconds,
        clock=clock,
    )


class MetaGraphClient:
    """A thin async client of the Graph API endpoints the ad network uses.

    Connections are pooled per event loop (the ad network is shared by the whole process
    and may be used from several loops, e.g. one per test), in pools of at most
    ``POOL_SHARD_SIZE`` connections, an account always on the same one; :meth:`aclose`
    closes them.

    :param settings: where the Graph API is, the version, paging and pacing limits.
    :param pacer: paces calls per ad account; by default one over ``pacer_state``.
    :param pacer_state: where the default pacer keeps each account's usage and block;
        process memory when omitted. The plugin's hook passes :func:`pacer_state_for`'s
        choice (Redis when the deployment has one). :meth:`aclose` closes it.
    :param transport: an httpx transport to use instead of the network (tests).
    :param sleep: how to wait (pacing, retries, report polls); injectable for tests.
    :param clock: wall-clock seconds; injectable for tests.
    """

    def __init__(
        self,
        settings: MetaAdsSettings,
        *,
        pacer: AccountPacer | None = None,
        pacer_state: PacerState | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.pacer = pacer or AccountPacer(
            pacer_state if pacer_state is not None else InMemoryPacerState(),
            slow_down_at_pct=settings.slow_down_at_pct,
            max_pace_delay_seconds=settings.max_pace_delay_seconds,
            max_inline_wait_seconds=settings.max_inline_wait_seconds,
            usage_memory_seconds=settings.usage_memory_seconds,
            sleep=sleep,
            clock=clock,
        )
        self._transport = transport
        self._sleep = sleep
        self._shards: list[_PoolShard] = []
        self._shards_loop: asyncio.AbstractEventLoop | None = None
        install_log_redaction()

    # -- endpoints ---------------------------------------------------------------------

    async def get_ad_account(self, account_id: str, token: str) -> GraphPage:
        """``GET /{version}/act_{id}`` with the fields that describe the account."""
        number = account_number(account_id)
        return await self._call(
            "GET",
            self._url(f"act_{number}"),
            account_key=number,
            token=token,
            params={"fields": ACCOUNT_FIELDS},
        )

    def insight_pages(
        self, account_id: str, token: str, *, level: EntityLevel, since: date, until: date
    ) -> AsyncGenerator[GraphPage, None]:
        """Every page of the synchronous daily insights of one window, in order."""
        number = account_number(account_id)
        return self._pages(
            self._url(f"act_{number}/insights"),
            params=self.insights_params(level=level, since=since, until=until),
            account_key=number,
            token=token,
        )

    def entity_pages(
        self, account_id: str, token: str, *, level: EntityLevel
    ) -> AsyncGenerator[GraphPage, None]:
        """Every page of the account's campaigns, ad sets or ads (``ENTITY_EDGES``)."""
        number = account_number(account_id)
        edge, fields = ENTITY_EDGES[level]
        return self._pages(
            self._url(f"act_{number}/{edge}"),
            params={
                "fields": fields,
                "effective_status": json.dumps(list(ENTITY_STATUS_FILTER), separators=(",", ":")),
                "limit": str(self.settings.page_limit),
            },
            account_key=number,
            token=token,
        )

    async def report_run_pages(
        self, account_id: str, token: str, *, level: EntityLevel, since: date, until: date
    ) -> AsyncGenerator[GraphPage, None]:
        """Every page of the daily insights of one window, through an async report run."""
        number = account_number(account_id)
        started = await self._call(
            "POST",
            self._url(f"act_{number}/insights"),
            account_key=number,
            token=token,
            form=self.insights_params(level=level, since=since, until=until),
        )
        report_run_id = str(started.body.get("report_run_id", ""))
        if not _REPORT_RUN_ID.match(report_run_id):
            raise ProviderError(
                f"Meta answered a report run request for act_{number} without a report_run_id",
                provider=PROVIDER,
            )
        await self._wait_for_report_run(report_run_id, account_key=number, token=token)
        pages = self._pages(
            self._url(f"{report_run_id}/insights"),
            params={"limit": str(self.settings.page_limit)},
            account_key=number,
            token=token,
        )
        async with aclosing(pages):
            async for page in pages:
                yield page

    async def send_events(
        self,
        pixel_id: str,
        token: str,
        events: Sequence[Mapping[str, Any]],
        *,
        test_event_code: str | None = None,
    ) -> GraphPage:
        """``POST /{version}/{pixel_id}/events``: the server events as the form field
        ``data`` (a JSON array), ``test_event_code`` when given. Meta takes or refuses the
        batch as a whole; a code 100 refusal is raised as ``ProviderRefused``.

        Calls are paced, and throttles and transient failures retried in place, like every
        other call (keyed by the pixel id): a retried batch is harmless, Meta
        de-duplicates its events by ``event_name`` and ``event_id``.
        """
        number = pixel_number(pixel_id)
        form = {"data": json.dumps(list(events), separators=(",", ":"), ensure_ascii=False)}
        if test_event_code:
            form["test_event_code"] = test_event_code
        return await self._call(
            "POST",
            self._url(f"{number}/events"),
            account_key=number,
            token=token,
            form=form,
            invalid_is_refused=True,
        )

    def insights_params(self, *, level: EntityLevel, since: date, until: date) -> dict[str, str]:
        """The query of a daily insights request for one window (both days inclusive)."""
        fields = [
            LEVEL_ID_FIELDS[level],
            "date_start",
            "date_stop",
            "account_currency",
            "spend",
            "impressions",
            self.settings.clicks_field,
            "actions",
            "action_values",
        ]
        return {
            "level": level.value,
            "fields": ",".join(fields),
            "time_range": json.dumps(
                {"since": since.isoformat(), "until": until.isoformat()}, separators=(",", ":")
            ),
            # one row per entity per day; without it Meta sums the whole window in one row
            "time_increment": "1",
            "limit": str(self.settings.page_limit),
        }

    async def aclose(self) -> None:
        """Close the pooled connections, the pacer's included (idempotent)."""
        shards, self._shards, self._shards_loop = self._shards, [], None
        for shard in shards:
            await shard.http.aclose()
        await self.pacer.aclose()

    # -- paging and report runs ----------------------------------------------------------

    async def _pages(
        self, url: str, *, params: dict[str, str], account_key: str, token: str
    ) -> AsyncGenerator[GraphPage, None]:
        seen_urls: set[str] = set()
        for _ in range(self.settings.max_pages):
            page = await self._call("GET", url, account_key=account_key, token=token, params=params)
            page.rows  # noqa: B018 - the property refuses a page without a data array
            yield page
            paging = page.body.get("paging")
            next_link = paging.get("next") if isinstance(paging, dict) else None
            # the end is an absent `next`, never a missing `after` (it is on the last page too)
            if not next_link:
                return
            url, params = self._follow(str(next_link))
            request_key = f"{url}?{httpx.QueryParams(params)}"
            if request_key in seen_urls:
                raise ProviderError(
                    f"Meta's paging.next for act_{account_key} points back to a page already "
                    "read; stopped paging",
                    provider=PROVIDER,
                )
            seen_urls.add(request_key)
        raise ProviderError(
            f"more than {self.settings.max_pages} pages for act_{account_key}; stopped paging "
            "(raise PIXECOM_META_MAX_PAGES or PIXECOM_META_PAGE_LIMIT)",
            provider=PROVIDER,
        )

    def _follow(self, next_link: str) -> tuple[str, dict[str, str]]:
        return follow_next_link(next_link, graph_base=self.settings.graph_base)

    async def _wait_for_report_run(
        self, report_run_id: str, *, account_key: str, token: str
    ) -> None:
        interval = self.settings.async_poll_interval_seconds
        # bounded by a count, not only a clock: a clock that does not move cannot loop forever
        max_polls = max(1, math.ceil(self.settings.async_poll_timeout_seconds / interval))
        status = "unknown"
        for poll in range(max_polls):
            if poll:
                await self._sleep(interval)
            page = await self._call(
                "GET",
                self._url(report_run_id),
                account_key=account_key,
                token=token,
                params={"fields": "id,async_status,async_percent_completion"},
            )
            status = str(page.body.get("async_status", "unknown"))
            # only the status says done: async_percent_completion can be 100 while running
            if status == REPORT_COMPLETED:
                return
            if status in REPORT_FAILED:
                raise MetaReportRunFailed(
                    f"Meta report run {report_run_id} for act_{account_key} ended as "
                    f"{status!r}; a new run may succeed",
                    provider=PROVIDER,
                )
        raise ProviderTransientError(
            f"Meta report run {report_run_id} for act_{account_key} is still {status!r} after "
            f"{self.settings.async_poll_timeout_seconds:g} s "
            "(PIXECOM_META_ASYNC_POLL_TIMEOUT_SECONDS)",
            provider=PROVIDER,
        )

    # -- one call ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.settings.graph_base}/{self.settings.api_version}/{path}"

    def _secret_params(self, token: str) -> dict[str, str]:
        return token_params(token, self.settings.app_secret)

    def _shard(self, account_key: str) -> "_PoolShard":
        loop = asyncio.get_running_loop()
        # One account always uses the same shard: its calls share warm connections. A hash,
        # not the number itself: account numbers that share a factor with the shard count
        # (every bench account is a multiple of 8) would crowd into a few shards, whose
        # pools then grow and cost more per call (issue 18 item 3).
        key = zlib.crc32(account_key.encode())
        shards = self._shards
        # Only the shard this call takes is checked for a closed client: scanning every
        # shard on every call (a hundred in a big worker) was a cost per Graph call.
        if self._shards_loop is not loop or not shards or shards[key % len(shards)].http.is_closed:
            # clients bound to another (possibly closed) loop cannot be reused or closed from
            # this one; let them be collected
            connections = self.settings.max_connections
            count = math.ceil(connections / POOL_SHARD_SIZE)
            self._shards = [
                _PoolShard.open(
                    connections // count + (1 if index < connections % count else 0),
                    timeout_seconds=self.settings.timeout_seconds,
                    transport=self._transport,
                )
                for index in range(count)
            ]
            self._shards_loop = loop
        return self._shards[key % len(self._shards)]

    async def _call(
        self,
        method: str,
        url: str,
        *,
        account_key: str,
        token: str,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        invalid_is_refused: bool = False,
    ) -> GraphPage:
        """One Graph call, paced, with throttling and transient failures retried in place
        while the wait is short; anything else raised as a provider error.

        :param invalid_is_refused: a code 100 answer means Meta refused what was sent (the
            Conversions API), not a query to be asked differently: ``ProviderRefused``.
        """
        if not token:
            raise ProviderAuthError(
                f"no access token for Meta ad account act_{account_key}: reconnect the account",
                provider=PROVIDER,
            )
        secrets = self._secret_params(token)
        query = {**(params or {}), **({} if form is not None else secrets)}
        body_form = {**form, **secrets} if form is not None else None
        where = f"{method} {_path_of(url)}"
        # The query is written into the URL once, as httpx would write it: httpx's own
        # merge of ``params`` parses the whole URL again for every attempt, a tenth of a
        # millisecond per Graph call (issue 18 item 3: a sync costs a fifth).
        request_params: Mapping[str, str] | None = query
        if query and "?" not in url:
            url, request_params = f"{url}?{httpx.QueryParams(query)}", None
        transient_failures = 0
        throttle_retries = 0
        while True:
            await self.pacer.before_call(account_key)
            shard = self._shard(account_key)
            try:
                async with shard.in_flight:
                    response = await shard.http.request(
                        method, url, params=request_params, data=body_form
                    )
            except httpx.TransportError as exc:  # timeouts included
                error: ProviderError = transient_error_for(
                    exc,
                    provider=PROVIDER,
                    service="Meta",
                    call=where,
                    base_url=self.settings.graph_base,
                    timeout_seconds=self.settings.timeout_seconds,
                    timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
                    scrub=lambda text: redact_secrets(text, *secrets.values()),
                )
                error.__cause__ = exc  # raised (or retried) below, outside this handler
            else:
                received_at = datetime.now(UTC)
                usage = read_usage_headers(response.headers)
                await self.pacer.observe(account_key, usage)
                body = json_object(response)
                if response.is_success and body is not None and "error" not in body:
                    return GraphPage(body=body, received_at=received_at)
                error = self._error_for(
                    where,
                    response,
                    body,
                    usage,
                    secrets=secrets.values(),
                    invalid_is_refused=invalid_is_refused,
                )
            if isinstance(error, ProviderThrottled):
                wait = error.retry_after_seconds or self.settings.throttle_backoff_seconds
                await self.pacer.block(account_key, wait)
                if wait <= self.settings.max_inline_wait_seconds and (
                    throttle_retries < MAX_THROTTLE_RETRIES
                ):
                    throttle_retries += 1
                    _log.info(
                        "meta %s throttled for act_%s: retrying after %.0f s",
                        where,
                        account_key,
                        wait,
                    )
                    continue  # before_call sleeps through the block
                raise error
            if isinstance(error, ProviderTransientError) and (
                transient_failures < self.settings.transient_retries
            ):
                delay = self.settings.transient_backoff_seconds * 2**transient_failures
                transient_failures += 1
                _log.info("meta %s failed transiently (%s): retry in %.1f s", where, error, delay)
                await self._sleep(delay)
                continue
            raise error

    def _error_for(
        self,
        where: str,
        response: httpx.Response,
        body: dict[str, Any] | None,
        usage: RateLimitUsage,
        *,
        secrets: Iterable[str],
        invalid_is_refused: bool = False,
    ) -> ProviderError:
        """The exception for a Graph error answer (or a malformed one)."""
        status = response.status_code
        raw = (body or {}).get("error")
        if not isinstance(raw, dict):
            detail = f"Meta {where} answered HTTP {status} without a Graph error object"
            if status >= 500 or response.is_success:
                return ProviderTransientError(detail, provider=PROVIDER)
            if status == 429:
                return ProviderThrottled(
                    detail,
                    retry_after_seconds=usage.regain_access_seconds
                    or self.settings.throttle_backoff_seconds,
                    provider=PROVIDER,
                )
            if status in (401, 403):
                return ProviderAuthError(f"{detail}: reconnect the account", provider=PROVIDER)
            return ProviderError(detail, provider=PROVIDER)

        code, subcode, message, detail = graph_error_parts(
            where, status, raw, secrets=secrets, message_fields=("error_user_msg", "message")
        )

        if (code == 100 and subcode == TOO_MUCH_DATA_SUBCODE) or (
            code == 1 and _REDUCE_DATA.search(message)
        ):
            return MetaTooMuchData(detail, provider=PROVIDER)
        if code in THROTTLING_CODES or subcode in THROTTLING_SUBCODES:
            wait = usage.regain_access_seconds or self.settings.throttle_backoff_seconds
            return ProviderThrottled(
                f"{detail} (retry in {wait:.0f} s)", retry_after_seconds=wait, provider=PROVIDER
            )
        if code in AUTH_CODES:
            return ProviderAuthError(
                f"{detail}. The token was refused: the seller must reconnect the ad account.",
                provider=PROVIDER,
            )
        if invalid_is_refused and code == INVALID_PARAMETER_CODE:
            if subcode == UNKNOWN_OBJECT_SUBCODE:
                return ProviderAuthError(
                    f"{detail}. The pixel does not exist or this token may not send to it: "
                    "the seller must check the pixel id and its access token.",
                    provider=PROVIDER,
                )
            return ProviderRefused(detail, provider=PROVIDER)
        if code in TRANSIENT_CODES or raw.get("is_transient") is True or status >= 500:
            return ProviderTransientError(detail, provider=PROVIDER)
        return ProviderError(detail, provider=PROVIDER)


def graph_error_parts(
    where: str,
    status: int,
    raw: dict[str, Any],
    *,
    secrets: Iterable[str],
    message_fields: tuple[str, ...] = ("message",),
) -> tuple[int | None, int | None, str, str]:
    """A Graph error object (``{"error": {...}}``) read once for every caller: its code,
    subcode, message (the first of ``message_fields`` present) and a one-line detail for
    the exception, with ``secrets`` redacted."""
    code = _int_or_none(raw.get("code"))
    subcode = _int_or_none(raw.get("error_subcode"))
    message = str(next((raw[f] for f in message_fields if raw.get(f)), "no message"))
    detail = (
        f"Meta {where} failed with HTTP {status} {raw.get('type') or 'GraphError'} "
        f"code {code}" + (f"/{subcode}" if subcode is not None else "") + f": {message}"
    )
    if raw.get("fbtrace_id"):
        detail += f" [fbtrace_id {raw['fbtrace_id']}]"
    return code, subcode, message, redact_secrets(detail, *secrets)


def _path_of(url: str) -> str:
    # for messages only: urlsplit is a fraction of httpx.URL's parse and validation
    return urlsplit(url).path or "/"


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
