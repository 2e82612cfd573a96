"""A fake Graph API on loopback: Meta's insights wire format, rate limits, errors and restated
data, for tests, the dev deployment and the scale simulation.

Graph endpoints (token as ``access_token`` in the query or form, or ``Authorization:
Bearer``; every number a string; errors in Meta's envelope ``{"error": {message, type, code,
error_subcode, fbtrace_id}}``), each named by the operation its faults and log entries use:

- ``account`` — ``GET /{version}/act_{id}``: ``id``, ``account_id``, ``name``, ``currency``,
  ``timezone_name``, ``account_status`` (as asked in ``fields``);
- ``insights`` — ``GET /{version}/act_{id}/insights``: ``level`` (account, campaign, adset,
  ad), ``fields`` (comma-separated or a JSON list), ``time_range`` (JSON ``{"since","until"}``
  or ``time_range[since]``/``time_range[until]``; both inclusive) or ``date_preset``,
  ``time_increment`` (``all_days`` by default, or 1–90 days), ``limit``, ``after``. Pages carry
  ``paging.cursors.before/after`` always and ``paging.next`` only when more rows follow;
  ``POST /{version}/act_{id}/insights`` starts an async report run → ``{"report_run_id"}``;
- ``entities`` — ``GET /{version}/act_{id}/campaigns``, ``/adsets`` and ``/ads``: the
  objects behind the insights, with ``id``, ``name``, ``status``, ``effective_status``
  (a paused campaign's ad sets read ``CAMPAIGN_PAUSED``, a paused ad set's ads
  ``ADSET_PAUSED``), ``campaign_id`` (ad sets, ads) and ``adset_id`` (ads) as asked in
  ``fields``; ``effective_status`` (a JSON list) filters, and without it ``ARCHIVED`` and
  ``DELETED`` objects are left out, as Graph's edges do; paged like insights. Names are
  the ones insights report (``Campaign {id}``, ``Ad set {id}``, ``Ad {id}``) unless
  changed through the control API;
- ``report_run`` — ``GET /{version}/{report_run_id}`` reports ``async_status`` moving from
  "Job Not Started" through "Job Running" (at 100 % one poll before it is done) to "Job
  Completed"; ``GET /{version}/{report_run_id}/insights`` pages its rows;
- ``events`` — ``POST /{version}/{pixel_id}/events``: the Conversions API, validated as Meta
  validates server events and recorded per pixel (:mod:`~pixecom_meta_ads.sandbox_capi`);
  faults aimed at it take the pixel id as ``scope``.

The browser's side of the pixel (:mod:`~pixecom_meta_ads.sandbox_pixel`), at the paths Meta
serves it from, is not Graph: ``pixel_script`` — ``GET /en_US/fbevents.js``, a stand-in for
Meta's pixel library; ``pixel_event`` — ``GET /tr/``, the beacon that library sends, recorded
per pixel; only the kit's transport faults aimed at these operations apply to them.

(Graph API reference: "Insights API", "Asynchronous and batch requests", "Rate limiting" and
"Error handling" at developers.facebook.com/docs/marketing-api and /docs/graph-api.)

Data is deterministic per account: ``campaigns_per_account`` campaigns with one or two ad sets
of one or two ads each, and per ad and day numbers derived from a hash of (ad, day,
revision); campaign, ad set and account rows are the sums of their ads. Some ads deliver
nothing on some days (no row). Each purchase is listed under ``purchase``, ``omni_purchase``,
``offsite_conversion.fb_pixel_purchase`` and ``onsite_web_purchase`` with the same value, as
Meta does, so a reader that sums them double counts. Account ``N`` gets the profile
``ACCOUNT_PROFILES[N % 8]``: several currencies (JPY without decimals) and time zones; days
are cut in the account's zone, and days after its "today" have no data. With ``today_grows``
(``pixecom dev``), "today" shows only the share of its delivery that the account's local time
of day has reached, so spend grows from one sync to the next, as Meta's does.

Every Graph answer carries ``X-Business-Use-Case-Usage``, ``X-Ad-Account-Usage`` and
``X-FB-Ads-Insights-Throttle``. Each account has ``call_budget`` calls per
``budget_window_seconds``; past it, calls fail with HTTP 400 code 80000 (insights) or 80004
(others), subcode 2446079, and headers naming the wait (``estimated_time_to_regain_access``
in minutes, ``reset_time_duration`` in seconds). A query producing more than
``max_rows_per_query`` rows fails with code 100 / subcode 1487534 (report runs do not).

Control endpoints (JSON, no token): the sandbox kit's (:mod:`pixecom_core.testing.sandbox_kit`)
``/_sandbox/config`` (see :class:`~pixecom_meta_ads.settings.MetaSandboxSettings`),
``/_sandbox/reset``, ``/_sandbox/faults`` (:class:`MetaFault`), ``/_sandbox/requests``
(the Graph calls: operation, parameters without the token, ``has_token``) and
``/_sandbox/clock`` (Facebook Login's codes and tokens expire on it); and Meta's own:

- ``GET``/``PUT /_sandbox/accounts/{id}``: an account's profile, structure and usage;
  override its name, currency, time zone, budget, campaigns, usage floor or ``today``;
- ``PUT /_sandbox/accounts/{id}/entities/{entity_id}``: rename a campaign, ad set or ad,
  or change its ``status`` (``ACTIVE``, ``PAUSED``, ``ARCHIVED``, ``DELETED``); insights
  report the new name too;
- ``POST /_sandbox/accounts/{id}/restate``: change one past day (``{"day": …}``) or every
  day of the last 28 (no body); days older than 28 days never change;
- the Conversions API's (:mod:`~pixecom_meta_ads.sandbox_capi`): ``POST /_sandbox/pixels``
  ``{"pixel_id", "access_token", "account_id"?}`` creates a pixel or adds a token to it,
  ``GET /_sandbox/pixels`` lists them, ``GET /_sandbox/pixels/{pixel_id}/events`` returns
  every event the pixel accepted (``data``) with ``received`` and ``distinct_events`` (one
  per ``event_name`` and ``event_id``, as Meta de-duplicates); a reset leaves the demo
  pixel ``1000000000001000`` of ``act_1000`` (token ``sandbox_capi.DEMO_PIXEL_TOKEN``);
- the browser pixel's (:mod:`~pixecom_meta_ads.sandbox_pixel`): ``GET
  /_sandbox/pixels/{pixel_id}/browser-events`` lists the events browsers sent to ``/tr/``
  (``event``, ``event_id``, ``value``, ``currency``, ``url``); a reset forgets them;
- Facebook Login's (:mod:`~pixecom_meta_ads.sandbox_oauth`): ``POST
  /_sandbox/oauth/tokens/revoke`` ``{"token", "reason"?}`` revokes any token, also a fixed
  test token Login never issued: later calls fail with code 190 and the reason's subcode
  (``password_changed``: 460).
"""

import hashlib
import json
import math
import re
import string
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.responses import Response

from pixecom_core.providers import ASGIApp
from pixecom_core.testing.sandbox_kit import TRANSPORT_KINDS, Fault, KitFaultKind, SandboxKit
from pixecom_meta_ads.sandbox_capi import ConversionsSandbox
from pixecom_meta_ads.sandbox_oauth import (
    ACCOUNT_FIELDS,
    AD_SCOPES,
    GraphError,
    OAuthSandbox,
    ad_account_object,
    asked_fields,
    check_version,
    graph_params,
    graph_token,
    invalid_parameter,
    list_param,
    page_of,
)
from pixecom_meta_ads.sandbox_pixel import BrowserPixelSandbox
from pixecom_meta_ads.settings import MetaSandboxSettings

#: Currency and time zone of account ``N`` are ``ACCOUNT_PROFILES[N % len(ACCOUNT_PROFILES)]``.
ACCOUNT_PROFILES: Final = (
    ("USD", "Etc/GMT"),
    ("USD", "America/Los_Angeles"),
    ("EUR", "Europe/Berlin"),
    ("JPY", "Asia/Tokyo"),
    ("GBP", "Europe/London"),
    ("BRL", "America/Sao_Paulo"),
    ("INR", "Asia/Kolkata"),
    ("AUD", "Australia/Sydney"),
)
ZERO_DECIMAL_CURRENCIES: Final = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "TWD", "HUF"})
PURCHASE_ACTION_TYPES: Final = (
    "purchase",
    "omni_purchase",
    "offsite_conversion.fb_pixel_purchase",
    "onsite_web_purchase",
)
RESTATEMENT_DAYS: Final = 28
MAX_REPORT_RUNS: Final = 10_000
MAX_RESTATEMENTS: Final = 1_000
ACCESS_TIER: Final = "standard_access"
TOO_MUCH_DATA_MESSAGE: Final = (
    "Please reduce the amount of data you're asking for, then retry your request"
)

LEVELS: Final = ("account", "campaign", "adset", "ad")
INSIGHT_FIELDS: Final = frozenset(
    {
        "account_id",
        "account_name",
        "account_currency",
        "campaign_id",
        "campaign_name",
        "adset_id",
        "adset_name",
        "ad_id",
        "ad_name",
        "date_start",
        "date_stop",
        "spend",
        "impressions",
        "clicks",
        "inline_link_clicks",
        "actions",
        "action_values",
    }
)
DEFAULT_INSIGHT_FIELDS: Final = ("impressions", "spend", "date_start", "date_stop")
#: The account's edges listing its objects, with the level and the fields each object has.
ENTITY_EDGES: Final = {
    "campaigns": ("campaign", frozenset({"id", "name", "status", "effective_status"})),
    "adsets": (
        "adset",
        frozenset({"id", "name", "status", "effective_status", "campaign_id"}),
    ),
    "ads": (
        "ad",
        frozenset({"id", "name", "status", "effective_status", "campaign_id", "adset_id"}),
    ),
}
ENTITY_STATUSES: Final = ("ACTIVE", "PAUSED", "ARCHIVED", "DELETED")
#: What an edge lists when no ``effective_status`` filter is given: live objects only.
DEFAULT_LISTED_STATUSES: Final = frozenset(
    {
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
    }
)
_ACCOUNT_NODE = re.compile(r"^act_(\d{1,32})$")
_DATE_PRESETS: Final = {
    "today": (0, 0),
    "yesterday": (1, 1),
    "last_3d": (3, 1),
    "last_7d": (7, 1),
    "last_14d": (14, 1),
    "last_28d": (28, 1),
    "last_30d": (30, 1),
    "last_90d": (90, 1),
}


# -- the accounts' data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxAd:
    """One ad and the ad set and campaign above it."""

    campaign_id: str
    adset_id: str
    ad_id: str


@dataclass(frozen=True, slots=True)
class AdDay:
    """One ad's delivery on one day, in the currency's minor unit."""

    spend_minor: int
    impressions: int
    clicks: int
    link_clicks: int
    purchases: int
    purchase_value_minor: int

    def __add__(self, other: "AdDay") -> "AdDay":
        return AdDay(
            self.spend_minor + other.spend_minor,
            self.impressions + other.impressions,
            self.clicks + other.clicks,
            self.link_clicks + other.link_clicks,
            self.purchases + other.purchases,
            self.purchase_value_minor + other.purchase_value_minor,
        )


def _hash_numbers(*parts: object) -> tuple[int, ...]:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=32).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4))


@lru_cache(maxsize=8192)
def account_ads(number: str, campaigns: int) -> tuple[SandboxAd, ...]:
    """The ads of account ``number``: ``campaigns`` campaigns of 1–2 ad sets of 1–2 ads.

    Ids are distinct across levels: a campaign, an ad set and an ad never share one.
    """
    ads: list[SandboxAd] = []
    for c in range(campaigns):
        campaign_id = f"{number}1{c:03d}"
        for s in range(1 + _hash_numbers(number, c)[0] % 2):
            adset_id = f"{number}2{c:03d}{s}"
            for a in range(1 + _hash_numbers(number, c, s)[0] % 2):
                ads.append(SandboxAd(campaign_id, adset_id, f"{number}3{c:03d}{s}{a}"))
    return tuple(ads)


def ad_day(ad_id: str, day: date, revision: int) -> AdDay | None:
    """The ad's numbers on ``day`` at ``revision``; ``None`` when it delivered nothing."""
    h = _hash_numbers(ad_id, day.isoformat(), revision)
    if h[0] % 10 == 0:
        return None
    impressions = 200 + h[1] % 20_000
    clicks = impressions * (5 + h[2] % 40) // 1000
    purchases = h[4] % 5
    return AdDay(
        spend_minor=100 + h[3] % 50_000,
        impressions=impressions,
        clicks=clicks,
        link_clicks=clicks * (50 + h[5] % 50) // 100,
        purchases=purchases,
        purchase_value_minor=purchases * (1_500 + h[6] % 8_000),
    )


def elapsed_share_of_day(moment: datetime) -> float:
    """How much of ``moment``'s (local) day has passed, from 0 at midnight towards 1."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return min(1.0, max(0.0, (moment - midnight).total_seconds() / 86_400))


def delivered_so_far(delivery: AdDay, share: float) -> AdDay:
    """The part of a day's ``delivery`` made once ``share`` of the day has passed.

    Every number is scaled and rounded down, so it never decreases as ``share`` grows and
    reaches the whole day's numbers at 1; the purchase value follows the purchases.
    """
    if share >= 1.0:
        return delivery
    purchases = math.floor(delivery.purchases * share)
    return AdDay(
        spend_minor=math.floor(delivery.spend_minor * share),
        impressions=math.floor(delivery.impressions * share),
        clicks=math.floor(delivery.clicks * share),
        link_clicks=math.floor(delivery.link_clicks * share),
        purchases=purchases,
        purchase_value_minor=(
            delivery.purchase_value_minor * purchases // delivery.purchases
            if delivery.purchases
            else 0
        ),
    )


def decimal_string(minor: int, currency: str) -> str:
    """``minor`` units as Meta writes an amount: ``"12.3"``, ``"7"``, ``"1234"`` (JPY)."""
    exponent = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    return format(Decimal(minor).scaleb(-exponent).normalize(), "f")


# -- faults and control requests -------------------------------------------------------------

#: What a Graph call is about, for ``MetaFault.operation`` and the request log.
Operation = Literal[
    "account", "insights", "entities", "report_run", "events", "pixel_script", "pixel_event"
]
#: The browser's requests (sandbox_pixel): only the kit's transport faults apply to them.
BROWSER_OPERATIONS: Final = frozenset({"pixel_script", "pixel_event"})


class MetaFault(Fault):
    """An error the sandbox answers instead of the next matching Graph call(s).

    :param kind: the kit's failures in Graph's words: ``throttled`` (HTTP 400, ``code`` 17 by
        default — 4, 613 or 80000… on request — subcode 2446079, ``is_transient``, usage
        headers at 100 % whose ``estimated_time_to_regain_access`` is
        ``retry_after_seconds`` in whole minutes, 60 s by default); ``transient`` (500,
        code 2, ``is_transient``); ``auth`` (400, code 190 ``OAuthException``, subcode 463
        "session has expired" or, on request, 460 "password changed"); the kit's transport
        failures ``server_error``, ``malformed`` and ``hang``. Meta's own: ``permission``
        (400, code 200), ``too_much_data`` (insights only: 400 code 100/1487534, or with
        ``variant="code1"`` 500 code 1) and ``report_failed`` (the next report run created
        ends as "Job Failed").
    :param scope: only calls for this ad account, ``act_123`` or ``123`` (kept as digits),
        or, for ``events`` and ``pixel_event``, this pixel id.
    :param operation: only calls of this operation (see the module docstring).
    :param code: Graph's ``code`` instead of the kind's.
    :param subcode: ``error_subcode`` instead of the kind's.
    :param variant: how ``too_much_data`` is said (Meta uses both).
    :param echo_token: the error's message quotes the caller's token ("Malformed access
        token …"), as Graph sometimes does.
    """

    kind: Literal[KitFaultKind, "permission", "too_much_data", "report_failed"]
    operation: Operation | None = None
    code: int | None = None
    subcode: int | None = None
    variant: Literal["subcode", "code1"] = "subcode"

    @field_validator("scope")
    @classmethod
    def _account_number(cls, scope: str | None) -> str | None:
        # the conformance kit names accounts as the plugin does (act_123); Graph paths too
        if scope is None:
            return None
        number = scope.removeprefix("act_")
        if not re.fullmatch(r"\d{1,32}", number):
            raise ValueError("scope is an ad account id: digits, optionally after 'act_'")
        return number

    @model_validator(mode="after")
    def _browser_faults_are_transport_faults(self) -> "MetaFault":
        # a browser's script or beacon request has no Graph envelope to answer in
        if self.operation in BROWSER_OPERATIONS and self.kind not in TRANSPORT_KINDS:
            raise ValueError(
                f"{self.operation} takes only the kit's transport faults "
                f"({', '.join(TRANSPORT_KINDS)}), not {self.kind!r}"
            )
        return self


class AccountOverride(BaseModel):
    """Changes to one account's profile (``PUT /_sandbox/accounts/{id}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    timezone_name: str | None = None
    call_budget: int | None = Field(default=None, gt=0)
    campaigns: int | None = Field(default=None, gt=0, le=99)
    usage_floor_pct: float | None = Field(default=None, ge=0, le=100)
    today: date | None = None


class EntityOverride(BaseModel):
    """A campaign, ad set or ad renamed or re-statused
    (``PUT /_sandbox/accounts/{id}/entities/{entity_id}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    status: Literal["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"] | None = None


def _account_number(number: str) -> str:
    """A control route's account id: its digits, or 404."""
    if not number.isdigit():
        raise HTTPException(404, "account ids are digits")
    return number


AccountNumber = Annotated[str, Depends(_account_number)]


class Restatement(BaseModel):
    """``POST /_sandbox/accounts/{id}/restate``: one day, or every day of the last 28."""

    model_config = ConfigDict(extra="forbid")

    day: date | None = None


@dataclass
class AccountCalls:
    """An account's calls in the current budget window."""

    window_started: float
    calls: int = 0


@dataclass
class ReportRun:
    """An async report run and how many times its status was read."""

    run_id: str
    number: str
    query: "InsightsQuery"
    created_at: float
    polls: int = 0
    fails: bool = False


def usage_headers(number: str, pct: float, *, regain_seconds: float) -> dict[str, str]:
    """Meta's three usage headers for an account at ``pct`` percent, blocked for
    ``regain_seconds`` (0: not blocked)."""
    pct = round(pct, 2)
    minutes = math.ceil(regain_seconds / 60) if regain_seconds > 0 else 0
    return {
        "X-Business-Use-Case-Usage": json.dumps(
            {
                number: [
                    {
                        "type": "ads_insights",
                        "call_count": pct,
                        "total_cputime": round(pct * 0.6, 2),
                        "total_time": round(pct * 0.8, 2),
                        "estimated_time_to_regain_access": minutes,
                        "ads_api_access_tier": ACCESS_TIER,
                    }
                ]
            }
        ),
        "X-Ad-Account-Usage": json.dumps(
            {
                "acc_id_util_pct": pct,
                "reset_time_duration": math.ceil(regain_seconds),
                "ads_api_access_tier": ACCESS_TIER,
            }
        ),
        "X-FB-Ads-Insights-Throttle": json.dumps(
            {
                "app_id_util_pct": round(pct / 4, 2),
                "acc_id_util_pct": pct,
                "ads_api_access_tier": ACCESS_TIER,
            }
        ),
    }


# -- Graph errors ------------------------------------------------------------------------


#: A fault kind's Graph answer: HTTP status, code, subcode, ``is_transient``, message.
FAULT_ERRORS: Final[dict[str, tuple[int, int, int | None, bool | None, str]]] = {
    "auth": (400, 190, 463, None, "Error validating access token: Session has expired."),
    "permission": (
        400,
        200,
        None,
        None,
        "(#200) Requires ads_read permission to manage the object",
    ),
    "transient": (
        500,
        2,
        None,
        True,
        "An unexpected error has occurred. Please retry your request later.",
    ),
    "throttled": (400, 17, 2446079, True, "(#{code}) User request limit reached"),
    "too_much_data": (400, 100, 1487534, None, TOO_MUCH_DATA_MESSAGE),
    "too_much_data/code1": (500, 1, None, None, TOO_MUCH_DATA_MESSAGE),
}


def graph_error(fault: MetaFault, token: str, usage: Mapping[str, str], number: str) -> GraphError:
    """The Graph error a queued fault stands for (:data:`FAULT_ERRORS`, with the fault's own
    status, code, subcode or message); a throttle's usage headers stand at 100 %, naming
    its wait."""
    code1 = fault.kind == "too_much_data" and fault.variant == "code1"
    status, code, subcode, is_transient, message = FAULT_ERRORS[
        "too_much_data/code1" if code1 else fault.kind
    ]
    code = fault.code or code
    if fault.kind == "throttled":
        wait = fault.retry_after_seconds if fault.retry_after_seconds is not None else 60
        usage = usage_headers(number, 100.0, regain_seconds=wait)
    return GraphError(
        fault.status or status,
        code,
        f"Malformed access token {token}"
        if fault.echo_token
        else fault.message or message.format(code=code),
        subcode=fault.subcode if fault.subcode is not None else subcode,
        is_transient=is_transient,
        headers=dict(usage),
    )


# -- insights queries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsightsQuery:
    """A parsed insights request."""

    level: str
    fields: tuple[str, ...]
    since: date
    until: date
    increment: int | None  # None: all_days


def parse_insights_query(params: Mapping[str, str], today: date) -> InsightsQuery:
    """Read ``level``, ``fields``, the time range and ``time_increment`` the way Graph does.

    :raises GraphError: code 100 for anything Graph would refuse.
    """
    level = params.get("level", "account")
    if level not in LEVELS:
        raise invalid_parameter(f"level must be one of the following values: {', '.join(LEVELS)}")
    fields = list_param(params.get("fields")) or list(DEFAULT_INSIGHT_FIELDS)
    for name in fields:
        if name not in INSIGHT_FIELDS:
            raise invalid_parameter(f"{name} is not valid for fields param")
    since, until = _time_range(params, today)
    raw_increment = params.get("time_increment", "all_days")
    if raw_increment == "all_days":
        increment: int | None = None
    elif raw_increment.isdigit() and 1 <= int(raw_increment) <= 90:
        increment = int(raw_increment)
    else:
        raise invalid_parameter("time_increment must be all_days, monthly or 1 to 90")
    return InsightsQuery(level, tuple(dict.fromkeys(fields)), since, until, increment)


def _time_range(params: Mapping[str, str], today: date) -> tuple[date, date]:
    raw = params.get("time_range")
    bounds: Any
    if raw is not None:
        try:
            bounds = json.loads(raw)
        except ValueError as exc:
            raise invalid_parameter("time_range must be a JSON object {since, until}") from exc
    elif "time_range[since]" in params or "time_range[until]" in params:
        bounds = {
            "since": params.get("time_range[since]"),
            "until": params.get("time_range[until]"),
        }
    else:
        preset = params.get("date_preset", "last_30d")
        if preset not in _DATE_PRESETS:
            raise invalid_parameter(f"date_preset must be one of {', '.join(_DATE_PRESETS)}")
        back, end = _DATE_PRESETS[preset]
        return today - timedelta(days=back), today - timedelta(days=end)
    if not isinstance(bounds, dict):
        raise invalid_parameter("time_range must be a JSON object {since, until}")
    try:
        since = date.fromisoformat(str(bounds.get("since")))
        until = date.fromisoformat(str(bounds.get("until")))
    except ValueError as exc:
        raise invalid_parameter("time_range since and until must be YYYY-MM-DD") from exc
    if since > until:
        raise invalid_parameter("time_range: since must be on or before until")
    if (until - since).days > 37 * 31:
        raise invalid_parameter("time_range may span at most 37 months")
    return since, until


def _buckets(query: InsightsQuery) -> list[tuple[date, date]]:
    if query.increment is None:
        return [(query.since, query.until)]
    buckets = []
    start = query.since
    while start <= query.until:
        stop = min(start + timedelta(days=query.increment - 1), query.until)
        buckets.append((start, stop))
        start = stop + timedelta(days=1)
    return buckets


def _entity_key(level: str, ad: SandboxAd, number: str) -> str:
    if level == "campaign":
        return ad.campaign_id
    if level == "adset":
        return ad.adset_id
    if level == "ad":
        return ad.ad_id
    return number


def insight_rows(
    sandbox: "MetaSandbox", number: str, query: InsightsQuery
) -> Iterator[dict[str, Any]]:
    """Every row of the query, ordered by period then entity id; numbers as strings."""
    profile = sandbox.profile(number)
    currency = profile["currency"]
    name = partial(sandbox.entity_name, number)  # as the entity edges list them, renamed too
    ads = account_ads(number, profile["campaigns"])
    today = sandbox.today(number)
    # Read once per query, so the rows of one answer agree with each other.
    share_of_today = sandbox.share_of_today(number)
    for start, stop in _buckets(query):
        totals: dict[str, tuple[SandboxAd, AdDay]] = {}
        day = start
        while day <= min(stop, today):
            revision = sandbox.revision(number, day)
            for ad in ads:
                delivery = ad_day(ad.ad_id, day, revision)
                if delivery is None:
                    continue
                if day == today and share_of_today < 1.0:
                    delivery = delivered_so_far(delivery, share_of_today)
                key = _entity_key(query.level, ad, number)
                known = totals.get(key)
                totals[key] = (ad, known[1] + delivery if known else delivery)
            day += timedelta(days=1)
        for key in sorted(totals):
            ad, numbers = totals[key]
            yield _row(query, number, profile["name"], currency, ad, numbers, (start, stop), name)


def _row(
    query: InsightsQuery,
    number: str,
    account_name: str,
    currency: str,
    ad: SandboxAd,
    numbers: AdDay,
    period: tuple[date, date],
    name: Callable[[str], str],
) -> dict[str, Any]:
    level_rank = LEVELS.index(query.level)
    available: dict[str, Any] = {
        "account_id": number,
        "account_name": account_name,
        "account_currency": currency,
        "date_start": period[0].isoformat(),
        "date_stop": period[1].isoformat(),
        "spend": decimal_string(numbers.spend_minor, currency),
        "impressions": str(numbers.impressions),
        "clicks": str(numbers.clicks),
        "inline_link_clicks": str(numbers.link_clicks),
    }
    # ids of levels at or above the report's level; Meta cannot name an ad in a campaign row
    if level_rank >= 1:
        available |= {"campaign_id": ad.campaign_id, "campaign_name": name(ad.campaign_id)}
    if level_rank >= 2:
        available |= {"adset_id": ad.adset_id, "adset_name": name(ad.adset_id)}
    if level_rank >= 3:
        available |= {"ad_id": ad.ad_id, "ad_name": name(ad.ad_id)}
    actions = [{"action_type": "link_click", "value": str(numbers.link_clicks)}]
    values = []
    if numbers.purchases:
        # the same purchases under every purchase type, as Meta reports them
        actions += [
            {"action_type": kind, "value": str(numbers.purchases)} for kind in PURCHASE_ACTION_TYPES
        ]
        value = decimal_string(numbers.purchase_value_minor, currency)
        values = [{"action_type": kind, "value": value} for kind in PURCHASE_ACTION_TYPES]
    available["actions"] = actions
    available["action_values"] = values
    # Meta returns the period of every row whether it was asked for or not
    asked = dict.fromkeys([*query.fields, "date_start", "date_stop"])
    row = {name: available[name] for name in asked if name in available}
    for empty in ("actions", "action_values"):
        if empty in row and not row[empty]:
            del row[empty]  # Meta leaves out metrics with nothing to report
    return row


# -- the app ---------------------------------------------------------------------------------


class MetaSandbox:
    """One sandbox: the kit (settings, faults, latency, request log) and what Meta's side
    remembers — account overrides, call usage, restatements, report runs.

    :param config: starting settings (``POST /_sandbox/config`` changes them, reset restores).
    :param clock: monotonic seconds, for budget windows (tests pass a fake one).
    """

    overrides: dict[str, AccountOverride]
    entity_overrides: dict[tuple[str, str], EntityOverride]
    usage: dict[str, AccountCalls]
    day_revisions: dict[tuple[str, date], int]
    account_restatements: dict[str, list[date]]
    report_runs: OrderedDict[str, ReportRun]

    def __init__(
        self, config: MetaSandboxSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        #: Facebook Login for Business: consent page, codes, tokens, /me/adaccounts.
        self.oauth = OAuthSandbox(account_profile=self.profile)
        #: The Conversions API: pixels, their tokens and the events they received.
        self.conversions = ConversionsSandbox(clock=self.oauth.clock, login=self.oauth)
        #: The browser pixel: fbevents.js and the /tr/ events browsers sent.
        self.browser_pixel = BrowserPixelSandbox()
        self.kit = SandboxKit(
            config=config,
            fault_model=MetaFault,
            on_reset=self.clear,
            on_config=self._configure,
            clock=self.oauth.clock,
        )
        self.clear()

    @property
    def config(self) -> MetaSandboxSettings:
        """The current settings."""
        return self.kit.config

    def _configure(self, config: MetaSandboxSettings) -> None:
        self.oauth.refuse_unknown_tokens = config.refuse_unknown_tokens

    def clear(self) -> None:
        """Forget every account change, call, restatement, report run, Login's state,
        every pixel but the demo one and every browser event (``POST /_sandbox/reset``,
        after the kit's own reset)."""
        self.overrides = {}
        self.entity_overrides = {}
        self.usage = {}
        self.day_revisions = {}
        self.account_restatements = {}
        self.report_runs = OrderedDict()
        self.oauth.reset()
        self.conversions.reset()
        self.browser_pixel.reset()

    # -- accounts

    def profile(self, number: str) -> dict[str, Any]:
        """The account's name, currency, time zone, campaigns and budget."""
        currency, timezone_name = ACCOUNT_PROFILES[int(number) % len(ACCOUNT_PROFILES)]
        override = self.overrides.get(number) or AccountOverride()
        return {
            "account_id": number,
            "name": override.name or f"Sandbox ad account {number}",
            "currency": override.currency or currency,
            "timezone_name": override.timezone_name or timezone_name,
            "campaigns": override.campaigns or self.config.campaigns_per_account,
            "call_budget": override.call_budget or self.config.call_budget,
            "usage_floor_pct": override.usage_floor_pct or 0.0,
        }

    def entity_name(self, number: str, entity_id: str) -> str:
        """A campaign's, ad set's or ad's name: ``Campaign {id}`` and so on, or the override."""
        override = self.entity_overrides.get((number, entity_id))
        if override is not None and override.name is not None:
            return override.name
        kind = {"1": "Campaign", "2": "Ad set", "3": "Ad"}[entity_id[len(number)]]
        return f"{kind} {entity_id}"

    def entity_status(self, number: str, entity_id: str) -> str:
        """The object's own ``status`` (``ACTIVE`` unless overridden)."""
        override = self.entity_overrides.get((number, entity_id))
        return override.status if override is not None and override.status else "ACTIVE"

    def list_entities(self, number: str, params: dict[str, str], edge: str) -> list[dict[str, Any]]:
        """The objects of one edge (``campaigns``, ``adsets``, ``ads``), by id, with the
        fields asked for and only the ``effective_status`` values asked for."""
        level, known_fields = ENTITY_EDGES[edge]
        fields = asked_fields(params, known_fields, default="id")
        wanted = (
            frozenset(list_param(params["effective_status"]))
            if params.get("effective_status")
            else DEFAULT_LISTED_STATUSES
        )
        objects: dict[str, dict[str, Any]] = {}
        for ad in account_ads(number, self.profile(number)["campaigns"]):
            entity_id = _entity_key(level, ad, number)
            if entity_id in objects:
                continue
            status = self.entity_status(number, entity_id)
            effective = status
            if status == "ACTIVE":
                # a paused parent pauses everything below it, as Meta reports
                if self.entity_status(number, ad.campaign_id) == "PAUSED" and level != "campaign":
                    effective = "CAMPAIGN_PAUSED"
                elif self.entity_status(number, ad.adset_id) == "PAUSED" and level == "ad":
                    effective = "ADSET_PAUSED"
            available = {
                "id": entity_id,
                "name": self.entity_name(number, entity_id),
                "status": status,
                "effective_status": effective,
                "campaign_id": ad.campaign_id,
                "adset_id": ad.adset_id,
            }
            if effective in wanted:
                objects[entity_id] = {name: available[name] for name in fields}
        return [objects[key] for key in sorted(objects)]

    def today(self, number: str) -> date:
        """Today in the account's time zone (or the override)."""
        override = self.overrides.get(number)
        if override is not None and override.today is not None:
            return override.today
        return datetime.now(ZoneInfo(self.profile(number)["timezone_name"])).date()

    def share_of_today(self, number: str) -> float:
        """How much of the account's today has been delivered: the elapsed share of the
        local day with ``today_grows`` (and no ``today`` override), otherwise all of it."""
        override = self.overrides.get(number)
        if not self.config.today_grows or (override is not None and override.today is not None):
            return 1.0
        zone = ZoneInfo(self.profile(number)["timezone_name"])
        return elapsed_share_of_day(datetime.now(zone))

    def revision(self, number: str, day: date) -> int:
        """How many times ``day`` was restated for the account."""
        covering = sum(
            1
            for restated_on in self.account_restatements.get(number, ())
            if restated_on - timedelta(days=RESTATEMENT_DAYS) <= day <= restated_on
        )
        return covering + self.day_revisions.get((number, day), 0)

    # -- budget and usage headers

    def count_call(self, number: str) -> tuple[bool, dict[str, str]]:
        """Count one call; return whether it is over budget, and the usage headers."""
        now = self.clock()
        window = self.config.budget_window_seconds
        calls = self.usage.get(number)
        if calls is None or now - calls.window_started >= window:
            calls = self.usage[number] = AccountCalls(window_started=now)
        profile = self.profile(number)
        budget = profile["call_budget"]
        over = calls.calls >= budget
        if not over:
            calls.calls += 1
        remaining = max(0.0, calls.window_started + window - now)
        pct = max(100.0 * calls.calls / budget, profile["usage_floor_pct"])
        if over:
            pct = max(pct, 100.0)
        return over, usage_headers(number, pct, regain_seconds=remaining if over else 0.0)

    # -- Graph calls

    async def answer(
        self,
        request: Request,
        version: str,
        node: str,
        operation: Operation,
        handle: Callable[[str, dict[str, str]], Response | dict[str, Any]],
    ) -> Response:
        """Check version, node and token and count the call against the account's budget;
        the kit then logs it, waits the latency and answers a fault queued for it (in Graph's
        words: :func:`graph_error`). Otherwise a refused or revoked token or a spent budget
        gets Graph's error, and the rest ``handle(account number, params)``. Usage headers
        ride on every answer about an account, errors included; no fault is aimed at a call
        refused before its budget was counted."""
        try:
            params = await graph_params(request)
        except GraphError as error:
            return error.response()
        token = graph_token(request, params)
        usage: dict[str, str] = {}
        refusal: GraphError | None = None
        number, over_budget = "", False
        try:
            check_version(version)
            number = self._node_account(node)
            if not token:
                raise GraphError(400, 104, "An access token is required to request this resource.")
            over_budget, usage = self.count_call(number)
        except GraphError as error:
            refusal = error
        refused, _ = await self.kit.intercept(
            request,
            operation,
            number or None,
            render=lambda fault: graph_error(fault, token, usage, number).response(),
            # a report run's failure shows when it is polled; only insights are too large
            where=lambda f: (
                refusal is None
                and f.kind != "report_failed"
                and (f.kind != "too_much_data" or operation == "insights")
            ),
            params=dict(sorted(params.items())),
            has_token=bool(token),
        )
        if refused is not None:
            for name, value in usage.items():  # a throttle's own usage headers stay
                refused.headers.setdefault(name, value)
            return refused
        try:
            if refusal is not None:
                raise refusal
            # A token Login issued (or revoked) must still be valid and hold an ads permission.
            problem = self.oauth.token_problem(token, any_of_scopes=AD_SCOPES)
            if problem is not None:
                raise problem
            if over_budget:
                code = 80000 if operation != "account" else 80004
                raise GraphError(
                    400,
                    code,
                    f"(#{code}) There have been too many calls to this ad-account. Wait a bit "
                    "and try again.",
                    subcode=2446079,
                    is_transient=True,
                )
            result = handle(number, params)
        except GraphError as error:
            error.headers = {**usage, **error.headers}
            return error.response()
        if isinstance(result, Response):
            result.headers.update(usage)
            return result
        return JSONResponse(result, headers=usage)

    async def intercept_events(
        self, request: Request, pixel_id: str, token: str, params: dict[str, str]
    ) -> Response | None:
        """The kit's part of a Conversions API call (operation ``events``, scope the pixel
        id): logged with its parameters (never the token), slowed by the latency, answered
        by a fault queued for it in Graph's words (a throttle's usage headers name its
        wait)."""
        refused, _ = await self.kit.intercept(
            request,
            "events",
            pixel_id if pixel_id.isdigit() else None,
            render=lambda fault: graph_error(fault, token, {}, pixel_id).response(),
            where=lambda f: f.kind not in ("report_failed", "too_much_data"),
            params=dict(sorted(params.items())),
            has_token=bool(token),
        )
        return refused

    async def intercept_browser(
        self, request: Request, operation: str, scope: str | None, params: dict[str, str]
    ) -> Response | None:
        """The kit's part of a browser's request (``pixel_script``, ``pixel_event``):
        logged, slowed by the latency, answered by a transport fault aimed at its operation
        (faults without one are the Graph calls'; see :class:`MetaFault`)."""
        refused, _ = await self.kit.intercept(
            request,
            operation,
            scope,
            render=lambda fault: Response(status_code=fault.status or 500),
            where=lambda f: f.operation == operation and f.kind in TRANSPORT_KINDS,
            params=dict(sorted(params.items())),
        )
        return refused

    def _node_account(self, node: str) -> str:
        match = _ACCOUNT_NODE.match(node)
        if match:
            return match.group(1)
        run = self.report_runs.get(node)
        if run is not None:
            return run.number
        raise GraphError(
            400,
            100,
            f"Unsupported get request. Object with ID '{node[:64]}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation.",
            subcode=33,
            error_type="GraphMethodException",
        )

    def describe_account(self, number: str, params: dict[str, str]) -> dict[str, Any]:
        """``GET /act_{id}``: the fields asked for."""
        fields = asked_fields(params, ACCOUNT_FIELDS, default="name")
        return ad_account_object(number, self.profile(number), 1, fields)

    def start_report_run(self, number: str, params: dict[str, str]) -> dict[str, Any]:
        """``POST /act_{id}/insights``: a report run of the query, failing if a
        ``report_failed`` fault waits for it."""
        query = parse_insights_query(params, self.today(number))
        run_id = self.kit.new_id("7", 12, string.digits)  # report run ids are 13 digits
        failure = self.kit.faults.take(
            "report_run", number, where=lambda f: f.kind == "report_failed"
        )
        self.report_runs[run_id] = ReportRun(
            run_id=run_id,
            number=number,
            query=query,
            created_at=time.time(),
            fails=failure is not None,
        )
        while len(self.report_runs) > MAX_REPORT_RUNS:
            self.report_runs.popitem(last=False)
        return {"report_run_id": run_id}

    def report_run_status(self, run_id: str) -> dict[str, Any]:
        """``GET /{report_run_id}``: one more poll of the run."""
        run = self.report_runs[run_id]
        run.polls += 1
        needed = self.config.report_polls_to_complete
        if run.fails and run.polls >= 2:
            status, percent = "Job Failed", 0
        elif run.polls >= needed:
            status, percent = "Job Completed", 100
        elif run.polls == needed - 1:
            # Meta shows 100 % before the job is done; only the status may be trusted
            status, percent = "Job Running", 100
        elif run.polls == 1:
            status, percent = "Job Not Started", 0
        else:
            status, percent = "Job Running", min(99, 100 * run.polls // needed)
        body: dict[str, Any] = {
            "id": run.run_id,
            "account_id": run.number,
            "async_status": status,
            "async_percent_completion": percent,
            "date_start": run.query.since.isoformat(),
            "date_stop": run.query.until.isoformat(),
            "time_ref": int(run.created_at),
            "is_running": status not in ("Job Completed", "Job Failed"),
        }
        if status == "Job Completed":
            body["time_completed"] = int(time.time())
        return body

    # -- routes

    def control_router(self) -> APIRouter:
        """Meta's own control endpoints: accounts, their objects, restatements."""
        router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

        @router.get("/accounts/{number}")
        async def read_account(number: AccountNumber) -> dict[str, Any]:
            profile = self.profile(number)
            ads = account_ads(number, profile["campaigns"])
            calls = self.usage.get(number)
            return profile | {
                "today": self.today(number).isoformat(),
                "campaign_ids": sorted({ad.campaign_id for ad in ads}),
                "adset_ids": sorted({ad.adset_id for ad in ads}),
                "ad_ids": [ad.ad_id for ad in ads],
                "calls_in_window": calls.calls if calls else 0,
            }

        @router.put("/accounts/{number}")
        async def change_account(
            number: AccountNumber, override: AccountOverride
        ) -> dict[str, Any]:
            if override.timezone_name is not None:
                try:
                    ZoneInfo(override.timezone_name)
                except (ValueError, KeyError):
                    raise HTTPException(422, "unknown time zone") from None
            known = self.overrides.get(number) or AccountOverride()
            self.overrides[number] = known.model_copy(
                update=override.model_dump(exclude_unset=True)
            )
            return await read_account(number)

        @router.put("/accounts/{number}/entities/{entity_id}")
        async def change_entity(
            number: str, entity_id: str, override: EntityOverride
        ) -> dict[str, str]:
            ads = account_ads(number, self.profile(number)["campaigns"]) if number.isdigit() else ()
            known = {ad.campaign_id for ad in ads} | {ad.adset_id for ad in ads}
            if entity_id not in known | {ad.ad_id for ad in ads}:
                raise HTTPException(404, "no such campaign, ad set or ad")
            current = self.entity_overrides.get((number, entity_id)) or EntityOverride()
            changed = current.model_copy(update=override.model_dump(exclude_unset=True))
            self.entity_overrides[(number, entity_id)] = changed
            return {
                "id": entity_id,
                "name": self.entity_name(number, entity_id),
                "status": self.entity_status(number, entity_id),
            }

        @router.post("/accounts/{number}/restate")
        async def restate(
            number: AccountNumber, restatement: Annotated[Restatement | None, Body()] = None
        ) -> dict[str, Any]:
            today = self.today(number)
            oldest = today - timedelta(days=RESTATEMENT_DAYS)
            day = restatement.day if restatement is not None else None
            if day is None:
                restated = self.account_restatements.setdefault(number, [])
                if len(restated) >= MAX_RESTATEMENTS:
                    raise HTTPException(409, "too many restatements")
                restated.append(today)
                return {"restated": f"{oldest.isoformat()}..{today.isoformat()}"}
            if not oldest <= day <= today:
                raise HTTPException(
                    409,
                    f"only the last {RESTATEMENT_DAYS} days restate; {day} is outside "
                    f"{oldest}..{today}",
                )
            if len(self.day_revisions) >= MAX_RESTATEMENTS * 10:
                raise HTTPException(409, "too many restatements")
            self.day_revisions[(number, day)] = self.day_revisions.get((number, day), 0) + 1
            return {"restated": day.isoformat(), "revision": self.revision(number, day)}

        return router

    def graph_router(self) -> APIRouter:
        """The Graph endpoints; ``/{version}/{node}`` matches any path of two segments, so
        include every other router first."""
        router = APIRouter()

        @router.get("/{version}/{node}")
        async def read_node(request: Request, version: str, node: str) -> Response:
            if node.startswith("act_"):
                return await self.answer(request, version, node, "account", self.describe_account)
            return await self.answer(
                request, version, node, "report_run", lambda *_: self.report_run_status(node)
            )

        @router.get("/{version}/{node}/insights")
        async def read_insights(request: Request, version: str, node: str) -> Response:
            if node.startswith("act_"):

                def sync_insights(number: str, params: dict[str, str]) -> dict[str, Any]:
                    query = parse_insights_query(params, self.today(number))
                    ads = account_ads(number, self.profile(number)["campaigns"])
                    entities = len({_entity_key(query.level, ad, number) for ad in ads})
                    if entities * len(_buckets(query)) > self.config.max_rows_per_query:
                        raise GraphError(400, 100, TOO_MUCH_DATA_MESSAGE, subcode=1487534)
                    rows = list(insight_rows(self, number, query))
                    return page_of(request, params, rows, self.config.max_page_size)

                return await self.answer(request, version, node, "insights", sync_insights)

            def report_insights(number: str, params: dict[str, str]) -> dict[str, Any]:
                run = self.report_runs[node]
                if run.fails or run.polls < self.config.report_polls_to_complete:
                    raise invalid_parameter(
                        f"Report run {node} is not complete; read it when async_status is "
                        "'Job Completed'"
                    )
                rows = list(insight_rows(self, number, run.query))
                return page_of(request, params, rows, self.config.max_page_size)

            return await self.answer(request, version, node, "report_run", report_insights)

        def list_edge(edge: str) -> Callable[[Request, str, str], Awaitable[Response]]:
            async def read_edge(request: Request, version: str, node: str) -> Response:
                def listed(number: str, params: dict[str, str]) -> dict[str, Any]:
                    if not node.startswith("act_"):
                        raise invalid_parameter(f"{edge} are listed from an ad account")
                    rows = self.list_entities(number, params, edge)
                    return page_of(request, params, rows, self.config.max_page_size)

                return await self.answer(request, version, node, "entities", listed)

            return read_edge

        for edge in ENTITY_EDGES:
            router.add_api_route(f"/{{version}}/{{node}}/{edge}", list_edge(edge), methods=["GET"])

        @router.post("/{version}/{node}/insights")
        async def start_report_run(request: Request, version: str, node: str) -> Response:
            def create(number: str, params: dict[str, str]) -> dict[str, Any]:
                if not node.startswith("act_"):
                    raise invalid_parameter("Report runs start from an ad account")
                return self.start_report_run(number, params)

            return await self.answer(request, version, node, "insights", create)

        return router


def create_sandbox_app(
    config: MetaSandboxSettings | None = None, *, clock: Callable[[], float] = time.monotonic
) -> ASGIApp:
    """A fresh Meta sandbox; configured from ``PIXECOM_META_SANDBOX_*`` when ``config`` is
    omitted. Point the plugin at it with ``PIXECOM_META_GRAPH_BASE=<its URL>``.

    :param config: starting configuration (``POST /_sandbox/config`` changes it later).
    :param clock: monotonic seconds, for budget windows (tests pass a fake one).
    """
    sandbox = MetaSandbox(config if config is not None else MetaSandboxSettings(), clock=clock)
    app = sandbox.kit.app("PixEcom Meta sandbox")
    app.include_router(sandbox.control_router())
    # Facebook Login's routes (/{version}/dialog/oauth, /me/adaccounts, debug_token ...)
    # come before the Graph catch-all /{version}/{node}, which would answer them.
    app.include_router(sandbox.conversions.control_router())
    app.include_router(sandbox.browser_pixel.control_router())
    # the pixel's GET /en_US/fbevents.js and /tr/ (sandbox_pixel), also before the catch-all
    app.include_router(sandbox.browser_pixel.browser_router(sandbox.intercept_browser))
    app.include_router(sandbox.oauth.router())
    # the Conversions API's POST /{version}/{pixel_id}/events (sandbox_capi)
    app.include_router(sandbox.conversions.graph_router(sandbox.intercept_events))
    app.include_router(sandbox.graph_router())
    return app
