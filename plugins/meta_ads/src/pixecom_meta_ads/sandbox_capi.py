"""Meta's Conversions API on loopback: pixels, their tokens, and the events they received.

:class:`ConversionsSandbox` holds the pixels (each with the access tokens that may send to
it and the ad account it belongs to) and every event each one accepted, and builds a
FastAPI ``APIRouter`` the Meta sandbox mounts beside Facebook Login's, before its Graph
catch-all routes. Times are the sandbox's clock (the kit's ``POST /_sandbox/clock`` moves
it), so a test fixes "now" instead of depending on today's date.

``POST /{version}/{pixel_id}/events`` (operation ``events`` for faults and the request log,
scope the pixel id) validates the request as Meta does and refuses it whole, answering
HTTP 400 in Graph's envelope, when anything is wrong — "If any event_time in data is
greater than 7 days in the past, we return an error for the entire request and process
no events" (developers.facebook.com/docs/marketing-api/conversions-api/parameters/
server-event; the other rules are from the same "Parameters" pages, "Customer Information
Parameters", "fbp and fbc Parameters" and "Using the API"):

- the token: missing → code 104; never issued, unknown to every pixel → code 190
  ("Invalid OAuth access token - Cannot parse access token"); revoked through Facebook
  Login's control route → code 190 with the revocation's subcode; known but not one of the
  pixel's, or an unknown pixel → code 100, subcode 33, ``GraphMethodException``
  ("Unsupported post request. Object with ID … does not exist, cannot be loaded due to
  missing permissions, or does not support this operation"), as Meta answers;
- ``data``: present, a JSON array of 1 to 1,000 objects (code 100);
- each event: ``event_name`` a non-empty string; ``event_time`` an integer (Unix seconds)
  not more than 7 days old (subcode 2804003, "Event Timestamp Too Old", the title and
  message Meta answers) nor more than :data:`FUTURE_TOLERANCE_SECONDS` ahead;
  ``action_source`` one of :data:`ACTION_SOURCES`; a ``website`` event needs
  ``event_source_url`` (``http(s)://``) and ``user_data.client_user_agent``; ``user_data``
  an object with at least one customer-information parameter; ``em``, ``ph`` and the other
  parameters that must be hashed each a 64-character lower-case hex SHA-256 (a plaintext
  e-mail is refused); ``fbc`` and ``fbp`` in the form ``fb.<0-2>.<ms>.<value>``;
  ``client_ip_address`` an IP address; a ``Purchase``'s ``custom_data`` with a numeric
  ``value`` and a three-letter ``currency`` (required for purchases).

Only subcode 2804003 is Meta's own as seen in its answers; the other refusals carry code 100
"Invalid parameter" with the sandbox's subcodes (:data:`REFUSALS`), since Meta's
documentation does not list them. An accepted request answers ``{"events_received": N,
"messages": [], "fbtrace_id": …}`` and every event is recorded as received, duplicates too;
Meta keeps one event per ``event_name`` and ``event_id`` (its de-duplication of browser and
server events), which the control route counts as ``distinct_events``.

Control endpoints (JSON, no token):

- ``POST /_sandbox/pixels`` (:class:`PixelRegistration`): create a pixel or add a token to
  one → the pixel as ``GET`` shows it;
- ``GET /_sandbox/pixels``: every pixel (``pixel_id``, ``account_id``, ``tokens``: how
  many, ``received``, ``distinct_events``);
- ``GET /_sandbox/pixels/{pixel_id}/events``: ``{"pixel_id", "account_id", "received",
  "distinct_events", "data": [every accepted event as sent, oldest first]}``; 404 for an
  unknown pixel.

A reset leaves the demo pixel :data:`DEMO_PIXEL_ID` of the demo ad account ``act_1000``,
whose token is :data:`DEMO_PIXEL_TOKEN`, and no events.
"""

import ipaddress
import json
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from pixecom_meta_ads.sandbox_oauth import (
    GraphError,
    OAuthSandbox,
    check_version,
    graph_params,
    graph_token,
    invalid_parameter,
    unparsable_token,
)

#: The demo ad account's pixel and the token that sends to it (not secrets: the sandbox's).
DEMO_PIXEL_ID: Final = "1000000000001000"
DEMO_PIXEL_TOKEN: Final = "EAAGsandboxCAPI1000demoPixelToken"
DEMO_PIXEL_ACCOUNT: Final = "1000"

#: Events one request may carry ("Using the API", "Batch Requests").
MAX_EVENTS_PER_REQUEST: Final = 1_000
#: How old an event may be ("Server Event Parameters", ``event_time``).
MAX_EVENT_AGE_SECONDS: Final = 7 * 86_400
#: How far ahead of the sandbox's clock an event may be: Meta refuses future events and
#: does not say how much clock skew it forgives; a few minutes is the sandbox's choice.
FUTURE_TOLERANCE_SECONDS: Final = 300
#: Events kept per pixel, and pixels at most (a control API must not exhaust memory).
MAX_EVENTS_PER_PIXEL: Final = 10_000
MAX_PIXELS: Final = 1_000
MAX_TOKENS_PER_PIXEL: Final = 100

#: ``action_source`` values ("Server Event Parameters"; Meta's SDK ``ActionSource``).
ACTION_SOURCES: Final = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
#: Customer-information parameters that Meta accepts only hashed (SHA-256).
HASHED_PARAMETERS: Final = frozenset(
    {"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"}
)
#: Every customer-information parameter; ``user_data`` must carry one at least.
CUSTOMER_INFORMATION: Final = HASHED_PARAMETERS | frozenset(
    {
        "external_id",
        "client_ip_address",
        "client_user_agent",
        "fbc",
        "fbp",
        "subscription_id",
        "fb_login_id",
        "lead_id",
        "anon_id",
        "madid",
        "page_id",
        "page_scoped_user_id",
        "ctwa_clid",
        "ig_account_id",
        "ig_sid",
    }
)
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_BROWSER_ID: Final = re.compile(r"^fb\.[012]\.\d{1,16}\.\S+$")
_CURRENCY: Final = re.compile(r"^[A-Za-z]{3}$")
_PIXEL: Final = re.compile(r"^\d{1,32}$")

#: The Meta sandbox's kit call for one events request ``(request, pixel_id, token, params
#: without the token)``: a ``Response`` (an injected fault) to answer instead, or ``None``.
Intercept = Callable[[Request, str, str, dict[str, str]], Awaitable[Response | None]]

#: Each refusal's ``error_subcode`` and ``error_user_title``; 2804003 is Meta's (as its
#: answers show), the others the sandbox's own in the same range.
REFUSALS: Final[dict[str, tuple[int, str]]] = {
    "too_old": (2804003, "Event Timestamp Too Old"),
    "in_future": (2804004, "Event Timestamp In The Future"),
    "missing": (2804001, "Missing Required Parameter"),
    "invalid": (2804002, "Invalid Parameter Value"),
    "unhashed": (2804005, "Customer Information Not Hashed"),
    "no_customer_information": (2804006, "No Customer Information"),
}


def refused(kind: str, message: str) -> GraphError:
    """Code 100 "Invalid parameter", as the Conversions API refuses an event, with the
    refusal's subcode and title (:data:`REFUSALS`) and ``message`` for people."""
    subcode, title = REFUSALS[kind]
    return GraphError(
        400,
        100,
        "Invalid parameter",
        subcode=subcode,
        is_transient=False,
        user_title=title,
        user_message=message,
    )


def unknown_pixel(pixel_id: str) -> GraphError:
    """Code 100/33: the pixel does not exist, or this token may not use it."""
    return GraphError(
        400,
        100,
        f"Unsupported post request. Object with ID '{pixel_id[:64]}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation. Please "
        "read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        error_type="GraphMethodException",
    )


# -- state --------------------------------------------------------------------------------


@dataclass
class SandboxPixel:
    """A pixel (dataset): who may send to it, and what it received."""

    pixel_id: str
    account_id: str | None
    tokens: set[str] = field(default_factory=set)
    received: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=MAX_EVENTS_PER_PIXEL)
    )
    #: ``(event_name, event_id)`` of every event received: what Meta keeps one of.
    distinct: set[tuple[str, str]] = field(default_factory=set)
    #: Events received without an ``event_id``: each one counts.
    without_id: int = 0

    def record(self, event: dict[str, Any]) -> None:
        """Remember an accepted event."""
        self.received.append(event)
        event_id = event.get("event_id")
        if isinstance(event_id, str | int) and str(event_id):
            self.distinct.add((str(event["event_name"]), str(event_id)))
        else:
            self.without_id += 1

    def summary(self) -> dict[str, Any]:
        """How ``GET /_sandbox/pixels`` lists it."""
        return {
            "pixel_id": self.pixel_id,
            "account_id": self.account_id,
            "tokens": len(self.tokens),
            "received": len(self.received),
            "distinct_events": len(self.distinct) + self.without_id,
        }


class PixelRegistration(BaseModel):
    """``POST /_sandbox/pixels``: a pixel and a token that may send to it (added to the
    pixel's tokens when it exists), and the ad account it belongs to (``act_`` optional)."""

    model_config = ConfigDict(extra="forbid")

    pixel_id: str = Field(pattern=_PIXEL.pattern)
    access_token: str = Field(min_length=1, max_length=500)
    account_id: str | None = Field(default=None, pattern=r"^(act_)?\d{1,32}$")


def default_pixels() -> dict[str, SandboxPixel]:
    """The demo account's pixel, with its token."""
    return {
        DEMO_PIXEL_ID: SandboxPixel(DEMO_PIXEL_ID, DEMO_PIXEL_ACCOUNT, tokens={DEMO_PIXEL_TOKEN})
    }


# -- validating events ----------------------------------------------------------------------


def parse_data(params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The request's ``data``: a JSON array of 1 to :data:`MAX_EVENTS_PER_REQUEST` objects.

    :raises GraphError: code 100 otherwise.
    """
    raw = params.get("data")
    if raw is None or not raw.strip():
        raise invalid_parameter("The parameter data is required")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise invalid_parameter("param data must be a JSON-encoded array") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise invalid_parameter("param data must be an array of event objects")
    if not 1 <= len(data) <= MAX_EVENTS_PER_REQUEST:
        raise invalid_parameter(
            f"param data must hold 1 to {MAX_EVENTS_PER_REQUEST} events, not {len(data)}"
        )
    return data


def check_event(event: dict[str, Any], *, index: int, now: float) -> None:
    """Refuse ``event`` (the ``index``-th of ``data``) as Meta would; ``now`` is the
    sandbox's time in Unix seconds.

    :raises GraphError: the first problem found (see the module docstring).
    """
    where = f"data[{index}]"
    name = event.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise refused("missing", f"{where}: event_name is required.")
    event_time = event.get("event_time")
    if event_time is None:
        raise refused("missing", f"{where}: event_time is required.")
    if not isinstance(event_time, int) or isinstance(event_time, bool):
        raise refused("invalid", f"{where}: event_time must be an integer (Unix seconds).")
    if event_time < now - MAX_EVENT_AGE_SECONDS:
        raise refused(
            "too_old",
            "The timestamp for this event is too far in the past. Events need to be sent from "
            "your server within 7 days of when they occurred. Enter a timestamp that has "
            "occurred within the last 7 days.",
        )
    if event_time > now + FUTURE_TOLERANCE_SECONDS:
        raise refused("in_future", f"{where}: event_time is in the future.")
    source = event.get("action_source")
    if source is None:
        raise refused("missing", f"{where}: action_source is required.")
    if source not in ACTION_SOURCES:
        raise refused(
            "invalid",
            f"{where}: action_source must be one of {', '.join(sorted(ACTION_SOURCES))}.",
        )
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        raise refused("missing", f"{where}: user_data is required.")
    if source == "website":
        url = event.get("event_source_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise refused(
                "missing",
                f"{where}: event_source_url (http:// or https://) is required for website events.",
            )
        if (
            not isinstance(user_data.get("client_user_agent"), str)
            or not (user_data["client_user_agent"])
        ):
            raise refused("missing", f"{where}: client_user_agent is required for website events.")
    _check_user_data(user_data, where)
    if name == "Purchase":
        _check_purchase(event.get("custom_data"), where)


def _check_user_data(user_data: dict[str, Any], where: str) -> None:
    present = [key for key in user_data if key in CUSTOMER_INFORMATION and user_data[key]]
    if not present:
        raise refused(
            "no_customer_information",
            f"{where}: user_data needs at least one customer information parameter.",
        )
    for key in sorted(HASHED_PARAMETERS & set(user_data)):
        value = user_data[key]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(item, str) and _SHA256.match(item) for item in values):
            raise refused(
                "unhashed",
                f"{where}: user_data.{key} must be SHA-256 hashed (64 lower-case hex "
                "characters) after normalisation; plaintext is not accepted.",
            )
    for key in ("fbc", "fbp"):
        value = user_data.get(key)
        if value is not None and not (isinstance(value, str) and _BROWSER_ID.match(value)):
            raise refused(
                "invalid",
                f"{where}: user_data.{key} must look like fb.1.<creation time in ms>.<value>.",
            )
    address = user_data.get("client_ip_address")
    if address is not None:
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            raise refused(
                "invalid", f"{where}: user_data.client_ip_address is not an IP address."
            ) from None


def _check_purchase(custom_data: Any, where: str) -> None:
    if not isinstance(custom_data, dict):
        raise refused("missing", f"{where}: custom_data with value and currency is required.")
    value = custom_data.get("value")
    if value is None or custom_data.get("currency") is None:
        raise refused(
            "missing",
            f"{where}: custom_data.value and custom_data.currency are required for "
            "Purchase events.",
        )
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise refused("invalid", f"{where}: custom_data.value must be a non-negative number.")
    currency = custom_data["currency"]
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise refused(
            "invalid", f"{where}: custom_data.currency must be an ISO 4217 code (3 letters)."
        )


# -- the sandbox ------------------------------------------------------------------------------


class ConversionsSandbox:
    """The Conversions API's state and routes for the Meta sandbox (see the module
    docstring).

    :param clock: the sandbox's clock, Unix seconds (the kit's ``POST /_sandbox/clock``).
    :param login: Facebook Login's state, asked whether a token was revoked.
    """

    def __init__(self, *, clock: Callable[[], float], login: OAuthSandbox) -> None:
        self.clock = clock
        self.login = login
        self.pixels = default_pixels()

    def reset(self) -> None:
        """The demo pixel only, with no events."""
        self.pixels = default_pixels()

    def register(self, registration: PixelRegistration) -> SandboxPixel:
        """Create the pixel or add the token to it.

        :raises HTTPException: 409 past :data:`MAX_PIXELS` pixels or
            :data:`MAX_TOKENS_PER_PIXEL` tokens of one pixel.
        """
        account = registration.account_id.removeprefix("act_") if registration.account_id else None
        pixel = self.pixels.get(registration.pixel_id)
        if pixel is None:
            if len(self.pixels) >= MAX_PIXELS:
                raise HTTPException(409, f"at most {MAX_PIXELS} pixels")
            pixel = self.pixels[registration.pixel_id] = SandboxPixel(
                registration.pixel_id, account
            )
        elif account is not None:
            pixel.account_id = account
        if len(pixel.tokens) >= MAX_TOKENS_PER_PIXEL:
            raise HTTPException(409, f"at most {MAX_TOKENS_PER_PIXEL} tokens per pixel")
        pixel.tokens.add(registration.access_token)
        return pixel

    def pixel_for(self, pixel_id: str, token: str) -> SandboxPixel:
        """The pixel ``token`` may send to.

        :raises GraphError: code 104, 190 or 100/33 (see the module docstring).
        """
        if not token:
            raise GraphError(400, 104, "An access token is required to request this resource.")
        problem = self.login.token_problem(token)
        if problem is not None:
            raise problem
        pixel = self.pixels.get(pixel_id)
        if pixel is not None and token in pixel.tokens:
            return pixel
        known = token in self.login.tokens or any(token in p.tokens for p in self.pixels.values())
        raise unknown_pixel(pixel_id) if known else unparsable_token()

    def receive(self, pixel_id: str, token: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Validate and record one ``POST /{pixel_id}/events``; Meta's answer."""
        pixel = self.pixel_for(pixel_id, token)
        data = parse_data(params)
        now = self.clock()
        for index, event in enumerate(data):
            check_event(event, index=index, now=now)
        for event in data:  # only once every event passed: Meta takes all or none
            pixel.record(event)
        return {
            "events_received": len(data),
            "messages": [],
            "fbtrace_id": secrets.token_urlsafe(12),
        }

    # -- the router ----------------------------------------------------------------------

    def control_router(self) -> APIRouter:
        """``/_sandbox/pixels`` (see the module docstring)."""
        router = APIRouter(prefix="/_sandbox/pixels", tags=["sandbox control"])

        @router.post("")
        async def register_pixel(registration: PixelRegistration) -> dict[str, Any]:
            return self.register(registration).summary()

        @router.get("")
        async def list_pixels() -> list[dict[str, Any]]:
            return [self.pixels[key].summary() for key in sorted(self.pixels)]

        @router.get("/{pixel_id}/events")
        async def received_events(pixel_id: str) -> dict[str, Any]:
            pixel = self.pixels.get(pixel_id)
            if pixel is None:
                raise HTTPException(404, "no such pixel")
            return pixel.summary() | {"data": list(pixel.received)}

        return router

    def graph_router(self, intercept: Intercept) -> APIRouter:
        """``POST /{version}/{pixel_id}/events``; ``intercept(request, pixel_id, token,
        params)`` is the Meta sandbox's kit call (log, latency, faults), awaited first: a
        ``Response`` it returns is answered instead."""
        router = APIRouter()

        @router.post("/{version}/{pixel_id}/events")
        async def post_events(request: Request, version: str, pixel_id: str) -> Response:
            try:
                params = await graph_params(request)
            except GraphError as error:
                return error.response()
            token = graph_token(request, params)
            answered = await intercept(request, pixel_id, token, params)
            if isinstance(answered, Response):
                return answered
            try:
                check_version(version)
                return JSONResponse(self.receive(pixel_id, token, params))
            except GraphError as error:
                return error.response()

        return router
