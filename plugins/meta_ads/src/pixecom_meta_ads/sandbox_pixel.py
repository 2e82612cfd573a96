"""Meta's browser pixel on loopback: the ``fbevents.js`` library and the ``/tr/`` beacon.

A sellpage's Meta pixel (:mod:`pixecom_meta_ads.browser_tag`) loads Meta's library from
``connect.facebook.net`` and the library reports each event to ``www.facebook.com/tr/``.
In dev mode and tests the plugin points the library's URL at the sandbox
(``PIXECOM_META_PIXEL_SCRIPT_URL=<sandbox>/en_US/fbevents.js``), and
:class:`BrowserPixelSandbox` serves both halves, so no page loads a script from outside:

- ``GET /en_US/fbevents.js`` (operation ``pixel_script``): a stand-in for Meta's library
  (``sandbox_fbevents.js`` beside this module), ``text/javascript``. Like the real one it
  takes over the base code's ``fbq`` queue stub — and, like the real one, does nothing
  but log "Pixel code is not installed correctly on this page" when there is no stub —
  then runs the queued and later ``init`` / ``track`` / ``trackCustom`` / ``trackSingle``
  calls: each tracked event, for each pixel initialised, becomes an image request
  ``new Image().src = '<origin of the script>/tr/?id=…&ev=…&eid=…&dl=…&rl=…&ts=…&cd[…]=…'``;
- ``GET /tr/`` and ``GET /tr`` (operation ``pixel_event``, scope the pixel id): Meta's
  pixel endpoint. ``id`` and ``ev`` name the pixel and the event, ``cd[value]`` and
  ``cd[currency]`` are the event's custom data — the parameters Meta documents for the
  pixel's image tag ("Meta Pixel: Advanced", "Install the Pixel using an IMG Tag",
  developers.facebook.com/docs/meta-pixel/advanced). ``eid`` (the ``eventID`` of the
  ``fbq`` call, which Meta matches against the Conversions API's ``event_id``), ``dl``
  (the page's address), ``rl`` (the referrer) and ``ts`` are what the library adds; Meta
  does not document those names, the stand-in uses the ones its library is seen to send.
  The event is recorded and the answer is a 1×1 GIF (``image/gif``), as Meta's.

What is recorded is the sandbox's choice where Meta does not say: an event for a pixel id
the sandbox never heard of is recorded all the same (Meta's endpoint answers every
request with its GIF, and a test need not register a pixel to watch its browser events);
a request that is not a pixel event at all — ``id`` not 1 to 32 digits, ``ev`` missing or
longer than :data:`MAX_EVENT_NAME`, ``cd[value]`` not a finite number, a field longer than
its bound — is answered HTTP 400 (text) and not recorded, so a broken tag shows up as a
missing event instead of a wrong one; past :data:`MAX_BROWSER_PIXELS` pixels a new one is
answered 409. Each pixel keeps its last :data:`MAX_BROWSER_EVENTS_PER_PIXEL` events.

Control endpoint (JSON, no token):

- ``GET /_sandbox/pixels/{pixel_id}/browser-events``: ``[{"event", "event_id", "value",
  "currency", "url"}, …]``, oldest first (``event_id``, ``value``, ``currency`` and
  ``url`` ``null`` when the beacon did not carry them; ``value`` a number); ``[]`` for a
  pixel with none.

A reset (``POST /_sandbox/reset``) forgets every browser event. The kit's transport faults
(``server_error``, ``malformed``, ``hang``) apply to both routes when aimed at their
operation (``{"kind": "server_error", "operation": "pixel_event"}``); faults without an
operation are left to the Graph API's calls, which the plugin makes, not the browser.
"""

import math
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import PlainTextResponse, Response

#: Where Meta serves its library (``connect.facebook.net``), and so the stand-in.
SCRIPT_PATH: Final = "/en_US/fbevents.js"
#: Events kept per pixel, and pixels at most (a test API must not exhaust memory).
MAX_BROWSER_EVENTS_PER_PIXEL: Final = 10_000
MAX_BROWSER_PIXELS: Final = 1_000
#: Bounds on what one beacon may carry (the sandbox's; Meta publishes none for them).
MAX_EVENT_NAME: Final = 100
MAX_EVENT_ID: Final = 200
MAX_CURRENCY: Final = 8
MAX_URL: Final = 4_096

#: The smallest transparent GIF (1×1), what Meta's endpoint answers.
PIXEL_GIF: Final = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

_PIXEL_ID: Final = re.compile(r"[0-9]{1,32}")

#: ``intercept(request, operation, scope, params)``: the Meta sandbox's kit call (log,
#: latency, faults aimed at the operation); a ``Response`` it returns is answered instead.
BrowserIntercept = Callable[[Request, str, str | None, dict[str, str]], Awaitable[Response | None]]


@cache
def stand_in_script() -> str:
    """The stand-in for ``fbevents.js`` (``sandbox_fbevents.js``)."""
    return (
        resources.files("pixecom_meta_ads")
        .joinpath("sandbox_fbevents.js")
        .read_text(encoding="utf-8")
    )


@dataclass(frozen=True)
class BrowserEvent:
    """One event a pixel received from a browser, as the control endpoint lists it."""

    event: str
    event_id: str | None
    value: float | None
    currency: str | None
    url: str | None


def browser_event(params: Mapping[str, str]) -> tuple[str, BrowserEvent]:
    """The pixel id and event of one ``/tr/`` request.

    :raises HTTPException: 400 when it is not a pixel event (see the module docstring).
    """
    pixel_id = params.get("id", "")
    if not _PIXEL_ID.fullmatch(pixel_id):
        raise HTTPException(400, "id must be a pixel id: 1 to 32 digits")
    event = params.get("ev", "")
    if not event or len(event) > MAX_EVENT_NAME:
        raise HTTPException(400, f"ev must name the event (1 to {MAX_EVENT_NAME} characters)")
    return pixel_id, BrowserEvent(
        event=event,
        event_id=_bounded(params, "eid", MAX_EVENT_ID),
        value=_value(params.get("cd[value]")),
        currency=_bounded(params, "cd[currency]", MAX_CURRENCY),
        url=_bounded(params, "dl", MAX_URL),
    )


def _bounded(params: Mapping[str, str], name: str, limit: int) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > limit:
        raise HTTPException(400, f"{name} is longer than {limit} characters")
    return value or None


def _value(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise HTTPException(400, "cd[value] must be a number") from None
    if not math.isfinite(value):
        raise HTTPException(400, "cd[value] must be a finite number")
    return value


class BrowserPixelSandbox:
    """The browser events each pixel received (see the module docstring)."""

    def __init__(self) -> None:
        self.events: dict[str, deque[BrowserEvent]] = {}

    def reset(self) -> None:
        """No browser events."""
        self.events = {}

    def record(self, pixel_id: str, event: BrowserEvent) -> None:
        """Remember ``event`` for ``pixel_id``.

        :raises HTTPException: 409 for a new pixel past :data:`MAX_BROWSER_PIXELS`.
        """
        received = self.events.get(pixel_id)
        if received is None:
            if len(self.events) >= MAX_BROWSER_PIXELS:
                raise HTTPException(409, f"at most {MAX_BROWSER_PIXELS} pixels")
            received = self.events[pixel_id] = deque(maxlen=MAX_BROWSER_EVENTS_PER_PIXEL)
        received.append(event)

    def listed(self, pixel_id: str) -> list[dict[str, Any]]:
        """``GET /_sandbox/pixels/{pixel_id}/browser-events``."""
        return [asdict(event) for event in self.events.get(pixel_id, ())]

    # -- the routers ----------------------------------------------------------------------

    def control_router(self) -> APIRouter:
        """``/_sandbox/pixels/{pixel_id}/browser-events``."""
        router = APIRouter(prefix="/_sandbox/pixels", tags=["sandbox control"])

        @router.get("/{pixel_id}/browser-events")
        async def browser_events(pixel_id: str) -> list[dict[str, Any]]:
            return self.listed(pixel_id)

        return router

    def browser_router(self, intercept: BrowserIntercept) -> APIRouter:
        """``GET /en_US/fbevents.js`` and ``GET /tr/`` (also ``/tr``); ``intercept`` is
        awaited first. Mount it before the Graph catch-all ``/{version}/{node}``, which
        would answer ``/en_US/fbevents.js``."""
        router = APIRouter()

        @router.get(SCRIPT_PATH)
        async def pixel_script(request: Request) -> Response:
            answered = await intercept(request, "pixel_script", None, {})
            if answered is not None:
                return answered
            return Response(
                stand_in_script(),
                media_type="text/javascript; charset=utf-8",
                headers={"Cache-Control": "no-store"},
            )

        async def pixel_event(request: Request) -> Response:
            params = dict(request.query_params)
            pixel_id = params.get("id", "")
            scope = pixel_id if _PIXEL_ID.fullmatch(pixel_id) else None
            answered = await intercept(request, "pixel_event", scope, params)
            if answered is not None:
                return answered
            try:
                pixel_id, event = browser_event(params)
                self.record(pixel_id, event)
            except HTTPException as refusal:
                return PlainTextResponse(str(refusal.detail), refusal.status_code)
            return Response(
                PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store"}
            )

        for path in ("/tr/", "/tr"):
            router.add_api_route(path, pixel_event, methods=["GET"], include_in_schema=False)
        return router
