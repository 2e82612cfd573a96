"""A fake 17TRACK v2.2 API on loopback: parcels that progress, rate limits, outages and signed
pushes, for tests, the dev deployment and the scale simulation.

API (``POST /track/v2.2/<operation>``, JSON array body of at most 40 entries, key in the
``17token`` header; answers ``{"code": 0, "data": {"accepted": [...], "rejected": [{"number",
"error": {"code", "message"}}]}}``, whole-call failures ``{"code": …, "data": {"errors":
[{"code", "message"}]}}``):

- ``register`` ``[{"number", "carrier"?, "tag"?, "param"?}]``: a number of 5–50 letters,
  digits or hyphens is accepted (``{"origin", "number", "carrier", "tag"}``) and starts at
  ``InfoReceived``. Rejections: ``-18010010`` no number, ``-18010012`` malformed number,
  ``-18019910`` unknown carrier code, ``-18019903`` carrier not detectable (numbers starting
  with ``XX`` and no carrier given), ``-18019901`` already registered, ``-18019908`` no quota
  left (``quota_total``). The carrier is detected from the number when not given: ``1Z…``
  UPS, ``…CN`` China Post, ``…GB`` Royal Mail, 20–22 digits USPS, 12 or 15 digits FedEx,
  10 digits DHL, anything else Cainiao. One parcel per number (17TRACK keys records by
  number and carrier; the sandbox refuses a second carrier as "already registered").
- ``gettrackinfo`` ``[{"number", "carrier"?}]``: ``{"number", "carrier", "param", "tag",
  "track_info"}`` with ``latest_status`` (status, sub_status), ``latest_event``,
  ``milestone``, ``time_metrics`` and ``tracking.providers[].events`` (newest first, with
  ``time_utc``, ``time_iso`` in the location's offset, ``stage``, ``location``,
  ``address``). ``-18019902`` for an unknown number (or another carrier).
- ``stoptrack``: ``-18019902`` unknown, ``-18019906`` already stopped. ``retrack``:
  ``-18019904`` not stopped, ``-18019905`` retracked once already. ``getquota``: quota
  figures. Stopped parcels keep answering ``gettrackinfo`` but no longer progress.
- Whole-call failures: a wrong or missing ``17token`` → HTTP 401, code ``-18010002``; over
  ``rate_limit_per_second`` calls in one second for a key → HTTP 429, code 429 (plus
  ``Retry-After`` when ``retry_after_seconds`` is set); a body that is not a JSON array →
  ``-18010013``; more than 40 entries → ``-18010014``; an unknown operation → 404.

Parcels progress InfoReceived → InTransit → OutForDelivery → Delivered, one step per
``POST /_sandbox/parcels/{number}/advance`` or every ``advance_every_seconds``. Locations
and texts are derived from the number, times from the sandbox's clock when a step happens,
so the same history is reported every time it is read.

Control endpoints (JSON, no key):

- ``GET``/``POST /_sandbox/config``: see
  :class:`~pixecom_tracking17.settings.Track17SandboxSettings` (keys are never shown);
  ``down: true`` makes every API call fail with ``down_status``. ``POST /_sandbox/reset``.
- ``POST /_sandbox/faults`` ``{"kind", "times", "operation"?, …}`` queues failures for the
  next API calls: ``server_error`` (HTTP ``status``, HTML body), ``hang`` (no answer for
  ``hang_seconds``: the client's timeout fires), ``malformed`` (HTTP 200, not JSON),
  ``envelope`` (HTTP ``status`` with envelope ``code``; ``echo_token`` quotes the key back
  in the message); ``DELETE /_sandbox/faults``.
- ``GET /_sandbox/parcels``, ``GET /_sandbox/parcels/{number}``;
  ``POST /_sandbox/parcels/{number}/advance`` ``{"steps": 1}``;
  ``POST /_sandbox/parcels/{number}/status`` ``{"status", "sub_status"?, "description"?}``
  sets any of the nine statuses (the parcel stops progressing by time until advanced).
- ``POST /_sandbox/push`` ``{"numbers"?, "event"?, "duplicates"?, "url"?, "key"?,
  "include_unchanged"?}``: sends ``TRACKING_UPDATED`` (or ``TRACKING_STOPPED``) pushes, one
  per number, signed with :func:`~pixecom_tracking17.signatures.push_signature` in the
  ``sign`` header, each ``duplicates`` extra times; without ``numbers``, every parcel whose
  state changed since its last delivered push. ``POST /_sandbox/tick`` does that for the
  changed parcels (the dev server also does it every second when ``auto_push`` is on);
  ``GET /_sandbox/pushes``: deliveries made.
- ``GET``/``DELETE /_sandbox/requests``: the last API calls (operation, count, status,
  arrival time; never the key).
"""

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Final, Literal

import httpx
from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from pixecom_core.providers import ASGIApp
from pixecom_tracking17.client import (
    API_VERSION,
    CODE_ALREADY_REGISTERED,
    CODE_CARRIER_NOT_DETECTED,
    CODE_INVALID_FORMAT,
    CODE_INVALID_KEY,
    CODE_MISSING_VALUE,
    CODE_NO_QUOTA,
    CODE_NOT_REGISTERED,
    CODE_ONLY_STOPPED_RETRACK,
    CODE_ONLY_TRACKED_STOP,
    CODE_RATE_LIMITED,
    CODE_RETRACKED_ONCE,
    CODE_TOO_MANY_NUMBERS,
    CODE_WRONG_CARRIER,
    MAX_NUMBERS_PER_CALL,
    shared_ssl_context,
)
from pixecom_tracking17.settings import Track17SandboxSettings
from pixecom_tracking17.signatures import SIGNATURE_HEADER, push_signature

CODE_INVALID_DATA: Final = -18010013

OPERATIONS: Final = frozenset({"register", "gettrackinfo", "stoptrack", "retrack", "getquota"})
STATUSES: Final = (
    "NotFound",
    "InfoReceived",
    "InTransit",
    "Expired",
    "AvailableForPickup",
    "OutForDelivery",
    "DeliveryFailure",
    "Delivered",
    "Exception",
)
#: The steps every parcel goes through: (status, sub_status, description).
PROGRESSION: Final = (
    ("InfoReceived", "InfoReceived", "Shipment information received"),
    ("InTransit", "InTransit_PickedUp", "Picked up by the carrier"),
    ("OutForDelivery", "OutForDelivery_Other", "Out for delivery"),
    ("Delivered", "Delivered_Other", "Delivered"),
)
#: ``milestone[].key_stage`` reached at each step of :data:`PROGRESSION`.
MILESTONES: Final = ("InfoReceived", "PickedUp", "OutForDelivery", "Delivered")
#: Every ``milestone[].key_stage`` 17TRACK lists (unreached ones with null times).
MILESTONE_KEYS: Final = (
    "InfoReceived",
    "PickedUp",
    "Departure",
    "Arrival",
    "AvailableForPickup",
    "OutForDelivery",
    "Delivered",
    "Returning",
    "Returned",
)
CARRIERS: Final = {
    21051: ("USPS", "US"),
    100001: ("DHL", "DE"),
    100002: ("UPS", "US"),
    100003: ("FedEx", "US"),
    3011: ("China Post", "CN"),
    11031: ("Royal Mail", "GB"),
    1151: ("Australia Post", "AU"),
    190271: ("Cainiao", "CN"),
}
#: (city, state, country, UTC offset in hours) of the scans.
LOCATIONS: Final = (
    ("SHENZHEN", "GD", "CN", 8),
    ("HONG KONG", "", "HK", 8),
    ("LOS ANGELES", "CA", "US", -7),
    ("CHICAGO", "IL", "US", -5),
    ("FRANKFURT", "HE", "DE", 2),
    ("LONDON", "", "GB", 1),
    ("SYDNEY", "NSW", "AU", 10),
)
_NUMBER = re.compile(r"^[A-Za-z0-9-]{5,50}$")
UNDETECTABLE_PREFIX: Final = "XX"
MAX_PARCELS: Final = 100_000
MAX_FAULTS: Final = 1_000
LOG_SIZE: Final = 1_000
MAX_LISTED_PARCELS: Final = 1_000

_log = logging.getLogger(__name__)


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One scan in a sandbox parcel's history."""

    status: str
    sub_status: str
    description: str
    location_index: int
    at: float


@dataclass(slots=True)
class Parcel:
    """A registered number and its history (oldest scan first)."""

    number: str
    carrier: int
    tag: str | None
    param: str | None
    registered_at: float
    events: list[ScanEvent] = field(default_factory=list)
    stage: int = 0
    progress_at: float = 0.0
    frozen: bool = False
    not_found: bool = False
    stopped: bool = False
    retracked: bool = False
    changed_at: float = 0.0
    pushed_state: str | None = None

    @property
    def status(self) -> tuple[str, str]:
        """(status, sub_status) as 17TRACK reports them."""
        if self.not_found or not self.events:
            return "NotFound", "NotFound_Other"
        return self.events[-1].status, self.events[-1].sub_status

    @property
    def state(self) -> str:
        """What a ``TRACKING_UPDATED`` push reports; it changes with every new scan."""
        return f"{self.status[0]}|{self.status[1]}|{len(self.events)}|{self.not_found}"


class Fault(BaseModel):
    """A failure the next matching API calls answer with."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["server_error", "hang", "malformed", "envelope"]
    times: int = Field(default=1, ge=1, le=10_000)
    operation: str | None = None
    status: int = Field(default=500, ge=200, le=599)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)
    code: int = -18010003
    message: str = "Internal service error. Please try again later."
    echo_token: bool = False


class ParcelAdvance(BaseModel):
    """How many steps to move a parcel."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=1, ge=1, le=len(PROGRESSION))


class ParcelStatus(BaseModel):
    """Put a parcel in any status (an exception, a failed delivery …)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal[
        "NotFound",
        "InfoReceived",
        "InTransit",
        "Expired",
        "AvailableForPickup",
        "OutForDelivery",
        "DeliveryFailure",
        "Delivered",
        "Exception",
    ]
    sub_status: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=200)


class PushOrder(BaseModel):
    """Which pushes ``POST /_sandbox/push`` sends, where and how."""

    model_config = ConfigDict(extra="forbid")

    numbers: list[str] | None = Field(default=None, max_length=1_000)
    event: Literal["TRACKING_UPDATED", "TRACKING_STOPPED"] = "TRACKING_UPDATED"
    duplicates: int = Field(default=0, ge=0, le=10)
    url: str | None = None
    key: str | None = None
    include_unchanged: bool = False


def envelope_error(code: int, message: str) -> dict[str, Any]:
    """17TRACK's whole-call failure envelope."""
    return {"code": code, "data": {"errors": [{"code": code, "message": message}]}}


def _rejected(number: Any, code: int, message: str) -> dict[str, Any]:
    return {
        "number": number if isinstance(number, str) else "",
        "error": {"code": code, "message": message},
    }


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def detect_carrier(number: str) -> int | None:
    """The carrier a number belongs to by its shape, or ``None`` when it cannot be told."""
    upper = number.upper()
    if upper.startswith(UNDETECTABLE_PREFIX):
        return None
    if upper.startswith("1Z"):
        return 100002
    if upper.endswith("CN"):
        return 3011
    if upper.endswith("GB"):
        return 11031
    if upper.isdigit():
        if 20 <= len(upper) <= 22:
            return 21051
        if len(upper) in (12, 15):
            return 100003
        if len(upper) == 10:
            return 100001
    return 190271


def _iso(at: float, offset_hours: int) -> tuple[str, str]:
    """(time_iso in the given offset, time_utc) of an epoch time."""
    moment = datetime.fromtimestamp(at, UTC).replace(microsecond=0)
    local = moment.astimezone(timezone(timedelta(hours=offset_hours)))
    return local.isoformat(), moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_json(event: ScanEvent) -> dict[str, Any]:
    city, state, country, offset = LOCATIONS[event.location_index]
    time_iso, time_utc = _iso(event.at, offset)
    location = ", ".join(part for part in (city, state, country) if part)
    return {
        "time_iso": time_iso,
        "time_utc": time_utc,
        "time_raw": {"date": time_iso[:10], "time": time_iso[11:19], "timezone": time_iso[19:]},
        "description": event.description,
        "location": location,
        "stage": event.sub_status,
        "sub_status": event.sub_status,
        "address": {
            "country": country,
            "state": state or None,
            "city": city,
            "street": None,
            "postal_code": None,
            "coordinates": {"longitude": None, "latitude": None},
        },
    }


def track_info(parcel: Parcel, now: float) -> dict[str, Any]:
    """The ``track_info`` object 17TRACK reports for ``parcel``."""
    status, sub_status = parcel.status
    events = [] if parcel.not_found else [_event_json(e) for e in reversed(parcel.events)]
    name, country = CARRIERS[parcel.carrier]
    reached: dict[str, ScanEvent] = {}
    for event in [] if parcel.not_found else parcel.events:
        for (_, step_sub_status, _), key in zip(PROGRESSION, MILESTONES, strict=True):
            if event.sub_status == step_sub_status:
                reached.setdefault(key, event)
    milestone = []
    for key in MILESTONE_KEYS:
        reached_at = reached.get(key)
        time_iso, time_utc = (
            _iso(reached_at.at, LOCATIONS[reached_at.location_index][3])
            if reached_at is not None
            else (None, None)
        )
        milestone.append({"key_stage": key, "time_iso": time_iso, "time_utc": time_utc})
    first = parcel.events[0].at if parcel.events else parcel.registered_at
    last = parcel.events[-1].at if parcel.events else parcel.registered_at
    sync_iso = _iso(parcel.changed_at, 0)[1]
    return {
        "shipping_info": {
            "shipper_address": {"country": country},
            "recipient_address": {"country": "US"},
        },
        "latest_status": {"status": status, "sub_status": sub_status, "sub_status_descr": None},
        "latest_event": events[0] if events else None,
        "time_metrics": {
            "days_after_order": int((now - parcel.registered_at) // 86_400),
            "days_of_transit": int((last - first) // 86_400),
            "days_of_transit_done": int((last - first) // 86_400),
            "days_after_last_update": int((now - last) // 86_400),
        },
        "milestone": milestone,
        "misc_info": {"risk_factor": 0, "service_type": None, "local_number": parcel.number},
        "tracking": {
            "providers_hash": _hash(parcel.number, len(events)) % 2**31,
            "providers": [
                {
                    "provider": {
                        "key": parcel.carrier,
                        "name": name,
                        "alias": name,
                        "country": country,
                        "homepage": None,
                    },
                    "service_type": None,
                    "latest_sync_status": "Success",
                    "latest_sync_time": sync_iso,
                    "events_hash": _hash(parcel.number, "events", len(events)) % 2**31,
                    "events": events,
                }
            ],
        },
    }


# -- state -----------------------------------------------------------------------------------


class SandboxState:
    """Everything one sandbox app remembers; replaced as a whole by ``/_sandbox/reset``."""

    def __init__(self, config: Track17SandboxSettings, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.parcels: OrderedDict[str, Parcel] = OrderedDict()
        self.faults: list[Fault] = []
        self.calls: dict[str, deque[float]] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.pushes: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.quota_used = 0
        self.today_used = 0
        self.configure(config)

    def configure(self, config: Track17SandboxSettings) -> None:
        """Take ``config``, resolving the keys once (they may come from the tracker's env)."""
        self.config = config
        self.api_keys = frozenset(config.accepted_keys())
        self.push_key = config.signing_key()

    def over_rate(self, token: str) -> bool:
        """Count a call for ``token``; whether it is over ``rate_limit_per_second``."""
        now = time.monotonic()
        window = self.calls.setdefault(token, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.config.rate_limit_per_second:
            return True  # refused calls do not count, as a client backing off expects
        window.append(now)
        return False

    def take_fault(self, operation: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.operation not in (None, operation):
                continue
            if fault.times <= 1:
                del self.faults[index]
            else:
                self.faults[index] = fault.model_copy(update={"times": fault.times - 1})
            return fault
        return None

    def parcel(self, number: str) -> Parcel | None:
        parcel = self.parcels.get(number.strip().upper())
        if parcel is not None:
            self.catch_up(parcel)
        return parcel

    def scan(
        self, parcel: Parcel, status: str, sub_status: str, description: str, at: float
    ) -> None:
        location = _hash(parcel.number, len(parcel.events)) % len(LOCATIONS)
        parcel.events.append(ScanEvent(status, sub_status, description, location, at))
        parcel.changed_at = at

    def advance(self, parcel: Parcel, at: float) -> bool:
        """One step forward (from wherever an overridden status left it); ``False`` when
        the parcel is already delivered."""
        parcel.frozen = False
        parcel.not_found = False
        if parcel.stage >= len(PROGRESSION) - 1:
            return False
        parcel.stage += 1
        status, sub_status, description = PROGRESSION[parcel.stage]
        self.scan(parcel, status, sub_status, description, at)
        parcel.progress_at = at
        return True

    def catch_up(self, parcel: Parcel) -> None:
        """Apply the steps ``advance_every_seconds`` has made due since the last one."""
        every = self.config.advance_every_seconds
        if every <= 0 or parcel.stopped or parcel.frozen:
            return
        now = self.clock()
        while parcel.stage < len(PROGRESSION) - 1 and now >= parcel.progress_at + every:
            self.advance(parcel, parcel.progress_at + every)

    def register(self, entry: Any) -> tuple[bool, dict[str, Any]]:
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            return False, _rejected(None, CODE_MISSING_VALUE, "Please provide the data number.")
        number = entry["number"].strip()
        if not _NUMBER.match(number):
            return False, _rejected(
                number, CODE_INVALID_FORMAT, f"The format of '{number[:60]}' is invalid."
            )
        carrier = entry.get("carrier")
        if carrier is not None and (
            isinstance(carrier, bool) or not isinstance(carrier, int) or carrier not in CARRIERS
        ):
            return False, _rejected(
                number,
                CODE_WRONG_CARRIER,
                f"The carrier's value {str(carrier)[:20]} is not correct.",
            )
        if number.upper() in self.parcels:
            return False, _rejected(
                number, CODE_ALREADY_REGISTERED, f"Tracking number {number} is already registered."
            )
        detected = carrier if carrier is not None else detect_carrier(number)
        if detected is None:
            return False, _rejected(
                number,
                CODE_CARRIER_NOT_DETECTED,
                "Carrier cannot be detected. Visit carrier info for carrier code and send as "
                "a parameter.",
            )
        if self.quota_used >= self.config.quota_total:
            return False, _rejected(number, CODE_NO_QUOTA, "Quota exhausted.")
        if len(self.parcels) >= MAX_PARCELS:
            self.parcels.popitem(last=False)
        now = self.clock()
        parcel = Parcel(
            number=number.upper(),
            carrier=detected,
            tag=_optional_text(entry.get("tag")),
            param=_optional_text(entry.get("param")),
            registered_at=now,
            progress_at=now,
        )
        status, sub_status, description = PROGRESSION[0]
        self.scan(parcel, status, sub_status, description, now)
        self.parcels[parcel.number] = parcel
        self.quota_used += 1
        self.today_used += 1
        accepted = {
            "origin": 2 if carrier is not None else 1,
            "number": number,
            "carrier": detected,
            "tag": parcel.tag,
        }
        return True, accepted

    def find(self, entry: Any) -> Parcel | dict[str, Any]:
        """The parcel an entry names, or the rejection to report."""
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            return _rejected(None, CODE_MISSING_VALUE, "Please provide the data number.")
        number = entry["number"].strip()
        parcel = self.parcel(number)
        carrier = entry.get("carrier")
        if parcel is None or (carrier not in (None, 0) and carrier != parcel.carrier):
            return _rejected(
                number,
                CODE_NOT_REGISTERED,
                f"Tracking number {number} is not registered yet. Register first.",
            )
        return parcel

    def view(self, parcel: Parcel) -> dict[str, Any]:
        """The control endpoints' description of a parcel."""
        status, sub_status = parcel.status
        return {
            "number": parcel.number,
            "carrier": parcel.carrier,
            "tag": parcel.tag,
            "status": status,
            "sub_status": sub_status,
            "stage": parcel.stage,
            "stopped": parcel.stopped,
            "events": len(parcel.events),
            "pushed": parcel.pushed_state == parcel.state,
            "track_info": track_info(parcel, self.clock()),
        }


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


async def _pause(request: Request, seconds: float) -> None:
    """Sleep ``seconds`` unless the client goes away first (a hung call must not outlive
    the client that gave up on it). The body must have been read already."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(0.05, remaining))


# -- the app ---------------------------------------------------------------------------------


def create_sandbox_app(
    config: Track17SandboxSettings | None = None, *, clock: Callable[[], float] = time.time
) -> ASGIApp:
    """A fresh 17TRACK sandbox; configured from ``PIXECOM_TRACKING17_SANDBOX_*`` when
    ``config`` is omitted. Point the tracker at it with ``PIXECOM_TRACKING17_API_BASE=<its
    URL>``.

    :param config: starting configuration (``POST /_sandbox/config`` changes it later).
    :param clock: wall-clock seconds, for scan times and time-driven progress (tests pass
        a fake one).
    """
    start_config = config if config is not None else Track17SandboxSettings()
    state = SandboxState(start_config, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # served with a lifespan (the dev server), parcels moved by time are pushed as
        # 17TRACK would; without one (tests), POST /_sandbox/tick does the same on demand
        ticker = asyncio.create_task(tick_forever())
        try:
            yield
        finally:
            ticker.cancel()
            with suppress(asyncio.CancelledError):
                await ticker

    app = FastAPI(
        title="PixEcom 17TRACK sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    async def tick_forever() -> None:
        while True:
            await asyncio.sleep(1.0)
            if not (state.config.auto_push and state.config.push_url):
                continue
            try:
                await push_changed()
            except Exception:  # a sandbox must keep ticking whatever one delivery did
                _log.exception("17track sandbox: pushing changed parcels failed")

    async def deliver(
        parcels: list[Parcel],
        event: str,
        *,
        url: str | None = None,
        key: str | None = None,
        duplicates: int = 0,
    ) -> list[dict[str, Any]]:
        target = url or state.config.push_url
        deliveries: list[dict[str, Any]] = []
        if target is None:
            return [{"number": p.number, "event": event, "error": "no push_url"} for p in parcels]
        signing_key = key if key is not None else state.push_key
        async with httpx.AsyncClient(
            timeout=state.config.push_timeout_seconds, verify=shared_ssl_context()
        ) as http:
            for parcel in parcels:
                data: dict[str, Any] = {
                    "number": parcel.number,
                    "carrier": parcel.carrier,
                    "param": parcel.param,
                    "tag": parcel.tag,
                }
                if event == "TRACKING_UPDATED":
                    data["track_info"] = track_info(parcel, state.clock())
                body = json.dumps(
                    {"event": event, "data": data}, separators=(",", ":"), ensure_ascii=False
                ).encode("utf-8")
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: push_signature(body, signing_key),
                }
                delivered_state = parcel.state
                for _ in range(1 + duplicates):
                    record: dict[str, Any] = {"number": parcel.number, "event": event}
                    try:
                        response = await http.post(target, content=body, headers=headers)
                        record["status_code"] = response.status_code
                        if response.is_success and event == "TRACKING_UPDATED":
                            parcel.pushed_state = delivered_state
                    except httpx.HTTPError as exc:
                        record["error"] = type(exc).__name__
                    state.pushes.append(record)
                    deliveries.append(record)
        return deliveries

    async def push_changed() -> list[dict[str, Any]]:
        changed = []
        for parcel in list(state.parcels.values()):
            state.catch_up(parcel)
            if parcel.pushed_state != parcel.state:
                changed.append(parcel)
        return await deliver(changed, "TRACKING_UPDATED")

    async def after_change(parcel: Parcel) -> list[dict[str, Any]]:
        if state.config.auto_push and state.config.push_url:
            return await deliver([parcel], "TRACKING_UPDATED")
        return []

    # -- the 17TRACK API

    async def handle_register(entries: list[Any]) -> dict[str, Any]:
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for entry in entries:
            ok, outcome = state.register(entry)
            (accepted if ok else rejected).append(outcome)
        return {"accepted": accepted, "rejected": rejected}

    async def handle_gettrackinfo(entries: list[Any]) -> dict[str, Any]:
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for entry in entries:
            parcel = state.find(entry)
            if isinstance(parcel, dict):
                rejected.append(parcel)
                continue
            accepted.append(
                {
                    "number": parcel.number,
                    "carrier": parcel.carrier,
                    "param": parcel.param,
                    "tag": parcel.tag,
                    "track_info": track_info(parcel, state.clock()),
                }
            )
        return {"accepted": accepted, "rejected": rejected}

    async def handle_stoptrack(entries: list[Any]) -> dict[str, Any]:
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        stopped: list[Parcel] = []
        for entry in entries:
            parcel = state.find(entry)
            if isinstance(parcel, dict):
                rejected.append(parcel)
            elif parcel.stopped:
                rejected.append(
                    _rejected(
                        parcel.number,
                        CODE_ONLY_TRACKED_STOP,
                        "Only numbers that are being tracked can be stopped.",
                    )
                )
            else:
                parcel.stopped = True
                stopped.append(parcel)
                accepted.append({"number": parcel.number, "carrier": parcel.carrier})
        if stopped and state.config.auto_push and state.config.push_url:
            await deliver(stopped, "TRACKING_STOPPED")
        return {"accepted": accepted, "rejected": rejected}

    async def handle_retrack(entries: list[Any]) -> dict[str, Any]:
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for entry in entries:
            parcel = state.find(entry)
            if isinstance(parcel, dict):
                rejected.append(parcel)
            elif not parcel.stopped:
                rejected.append(
                    _rejected(
                        parcel.number,
                        CODE_ONLY_STOPPED_RETRACK,
                        "Only stopped numbers can be retracked.",
                    )
                )
            elif parcel.retracked:
                rejected.append(
                    _rejected(
                        parcel.number,
                        CODE_RETRACKED_ONCE,
                        "A number can only be retracked once.",
                    )
                )
            else:
                parcel.stopped = False
                parcel.retracked = True
                parcel.progress_at = max(parcel.progress_at, state.clock())
                accepted.append({"number": parcel.number, "carrier": parcel.carrier})
        return {"accepted": accepted, "rejected": rejected}

    async def handle_getquota(_: list[Any]) -> dict[str, Any]:
        total = state.config.quota_total
        return {
            "quota_total": total,
            "quota_used": state.quota_used,
            "quota_remain": max(0, total - state.quota_used),
            "today_used": state.today_used,
            "max_track_daily": total,
            "free_email_quota": 0,
            "free_email_quotaused": 0,
        }

    handlers = {
        "register": handle_register,
        "gettrackinfo": handle_gettrackinfo,
        "stoptrack": handle_stoptrack,
        "retrack": handle_retrack,
        "getquota": handle_getquota,
    }

    # control routes first, so nothing under /_sandbox/ is taken for an API path

    @app.get("/_sandbox/config")
    async def read_config() -> dict[str, Any]:
        return _public_config(state.config)

    @app.post("/_sandbox/config")
    async def change_config(changes: Annotated[dict[str, Any], Body()]) -> Response:
        unknown = sorted(set(changes) - set(Track17SandboxSettings.model_fields))
        if unknown:
            return JSONResponse({"detail": f"unknown settings: {', '.join(unknown)}"}, 422)
        try:
            config = Track17SandboxSettings.model_validate({**state.config.model_dump(), **changes})
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_input=False)}, 422)
        state.configure(config)
        return JSONResponse(_public_config(state.config))

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, str]:
        nonlocal state
        state = SandboxState(start_config, clock)
        return {"status": "reset"}

    @app.post("/_sandbox/faults")
    async def add_fault(fault: Fault) -> Response:
        if len(state.faults) >= MAX_FAULTS:
            return JSONResponse({"detail": f"at most {MAX_FAULTS} queued faults"}, 409)
        state.faults.append(fault)
        return JSONResponse({"queued": len(state.faults)})

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, int]:
        cleared = len(state.faults)
        state.faults.clear()
        return {"cleared": cleared}

    @app.get("/_sandbox/parcels")
    async def list_parcels() -> list[dict[str, Any]]:
        listed = []
        for parcel in list(state.parcels.values())[:MAX_LISTED_PARCELS]:
            state.catch_up(parcel)
            listed.append(
                {"number": parcel.number, "status": parcel.status[0], "stopped": parcel.stopped}
            )
        return listed

    @app.get("/_sandbox/parcels/{number}")
    async def read_parcel(number: str) -> Response:
        parcel = state.parcel(number)
        if parcel is None:
            return JSONResponse({"detail": f"no parcel {number[:60]}"}, 404)
        return JSONResponse(state.view(parcel))

    @app.post("/_sandbox/parcels/{number}/advance")
    async def advance_parcel(
        number: str, advance: Annotated[ParcelAdvance | None, Body()] = None
    ) -> Response:
        parcel = state.parcel(number)
        if parcel is None:
            return JSONResponse({"detail": f"no parcel {number[:60]}"}, 404)
        for _ in range((advance or ParcelAdvance()).steps):
            if not state.advance(parcel, state.clock()):
                break
        deliveries = await after_change(parcel)
        return JSONResponse(state.view(parcel) | {"deliveries": deliveries})

    @app.post("/_sandbox/parcels/{number}/status")
    async def set_parcel_status(number: str, change: ParcelStatus) -> Response:
        parcel = state.parcel(number)
        if parcel is None:
            return JSONResponse({"detail": f"no parcel {number[:60]}"}, 404)
        parcel.frozen = True
        if change.status == "NotFound":
            parcel.not_found = True
            parcel.changed_at = state.clock()
        else:
            parcel.not_found = False
            default_sub = "InfoReceived" if change.status == "InfoReceived" else None
            state.scan(
                parcel,
                change.status,
                change.sub_status or default_sub or f"{change.status}_Other",
                change.description or f"Status: {change.status}",
                state.clock(),
            )
        deliveries = await after_change(parcel)
        return JSONResponse(state.view(parcel) | {"deliveries": deliveries})

    @app.post("/_sandbox/push")
    async def push(order: PushOrder) -> Response:
        if order.numbers is None:
            parcels = []
            for parcel in state.parcels.values():
                state.catch_up(parcel)
                if order.include_unchanged or parcel.pushed_state != parcel.state:
                    parcels.append(parcel)
        else:
            found = [state.parcel(number) for number in order.numbers]
            missing = [n for n, p in zip(order.numbers, found, strict=True) if p is None]
            if missing:
                return JSONResponse({"detail": f"no parcel {missing[0][:60]}"}, 404)
            parcels = [parcel for parcel in found if parcel is not None]
        deliveries = await deliver(
            parcels, order.event, url=order.url, key=order.key, duplicates=order.duplicates
        )
        return JSONResponse({"deliveries": deliveries})

    @app.post("/_sandbox/tick")
    async def tick() -> dict[str, Any]:
        return {"deliveries": await push_changed()}

    @app.get("/_sandbox/pushes")
    async def list_pushes() -> list[dict[str, Any]]:
        return list(state.pushes)

    @app.get("/_sandbox/requests")
    async def recent_requests() -> list[dict[str, Any]]:
        return list(state.requests)

    @app.delete("/_sandbox/requests")
    async def forget_requests() -> dict[str, int]:
        forgotten = len(state.requests)
        state.requests.clear()
        return {"forgotten": forgotten}

    @app.post("/track/{version}/{operation}")
    async def api(request: Request, version: str, operation: str) -> Response:
        arrived = time.monotonic()
        raw = await request.body()  # read first: _pause watches for a disconnect
        token = request.headers.get("17token", "")
        record: dict[str, Any] = {
            "operation": operation,
            "at": arrived,
            "has_token": bool(token),
            "count": None,
        }
        state.requests.append(record)
        response = await answer(request, version, operation, raw, token, record)
        record["status"] = response.status_code
        return response

    async def answer(
        request: Request,
        version: str,
        operation: str,
        raw: bytes,
        token: str,
        record: dict[str, Any],
    ) -> Response:
        if version != API_VERSION or operation not in OPERATIONS:
            return JSONResponse({"detail": "Not Found"}, 404)
        if state.config.latency_seconds:
            await _pause(request, state.config.latency_seconds)
        if state.config.down:
            return Response(
                "<html><body>Service Unavailable</body></html>",
                status_code=state.config.down_status,
                media_type="text/html",
            )
        fault = state.take_fault(operation)
        if fault is not None:
            if fault.kind == "hang":
                await _pause(request, fault.hang_seconds)
                return Response("<html><body>Gateway Timeout</body></html>", 504)
            if fault.kind == "server_error":
                return Response(
                    "<html><body>Server Error</body></html>",
                    status_code=fault.status,
                    media_type="text/html",
                )
            if fault.kind == "malformed":
                return Response("{not json", status_code=200, media_type="application/json")
            message = f"{fault.message} ({token})" if fault.echo_token else fault.message
            return JSONResponse(envelope_error(fault.code, message), fault.status)
        if token not in state.api_keys:
            return JSONResponse(envelope_error(CODE_INVALID_KEY, "Invalid security key."), 401)
        if state.over_rate(token):
            headers = {}
            if state.config.retry_after_seconds is not None:
                headers["Retry-After"] = f"{state.config.retry_after_seconds:g}"
            return JSONResponse(
                envelope_error(CODE_RATE_LIMITED, "Too many requests."), 429, headers=headers
            )
        try:
            entries = json.loads(raw) if raw.strip() else []
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            return JSONResponse(envelope_error(CODE_INVALID_DATA, "Invalid submitted data."))
        record["count"] = len(entries)
        record["numbers"] = [
            entry.get("number")
            for entry in entries[:MAX_NUMBERS_PER_CALL]
            if isinstance(entry, dict)
        ]
        if len(entries) > MAX_NUMBERS_PER_CALL:
            return JSONResponse(
                envelope_error(CODE_TOO_MANY_NUMBERS, "Tracking numbers exceed the 40 limit.")
            )
        data = await handlers[operation](entries)
        return JSONResponse({"code": 0, "data": data})

    return app


def _public_config(config: Track17SandboxSettings) -> dict[str, Any]:
    """The configuration without its keys."""
    shown = config.model_dump(exclude={"api_keys", "push_key"})
    shown["api_keys_configured"] = len(config.api_keys)
    shown["push_key_configured"] = config.push_key is not None
    return shown
