"""A fake 17TRACK v2.2 API on loopback: parcels that progress, rate limits, outages and signed
pushes, for tests, the dev deployment and the scale simulation. Faults, latency, the request
log, configuration, reset and the push outbox are the sandbox kit's
(:mod:`pixecom_core.testing.sandbox_kit`); this module speaks 17TRACK.

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

Control endpoints (JSON, no key): the kit's — ``/_sandbox/config``
(:class:`~pixecom_tracking17.settings.Track17SandboxSettings`, keys shown as counts),
``/_sandbox/reset``, ``/_sandbox/faults``, ``/_sandbox/requests`` (operation, count,
numbers, status, ``has_token``; never the key), ``/_sandbox/events[/{id}]``,
``/_sandbox/deliveries`` (every push attempt, ``scope`` the number), ``/_sandbox/deliver``
— and 17TRACK's own:

- Faults (:class:`Track17Fault`, ``operation`` one of :data:`OPERATIONS`): ``throttled``
  (HTTP 429, code 429, ``Retry-After`` from ``retry_after_seconds`` or the setting),
  ``transient`` (HTTP 500, ``-18010003``), ``auth`` (HTTP 401, ``-18010002`` "Invalid
  security key."), ``envelope`` (any ``code``, HTTP 200), each with ``status``, ``code``,
  ``message`` and ``echo_token`` (the key quoted back) to override; and the kit's
  ``server_error``, ``malformed``, ``hang``. An outage: ``server_error`` with ``status:
  503`` and a large ``times``, until ``DELETE /_sandbox/faults``.
- ``GET /_sandbox/parcels[/{number}]``; ``POST /_sandbox/parcels/{number}/advance``
  ``{"steps": 1}``; ``POST /_sandbox/parcels/{number}/status`` ``{"status", "sub_status"?,
  "description"?}`` sets any of the nine statuses (no progress by time until advanced).
- ``POST /_sandbox/push`` ``{"numbers"?, "event"?, "duplicates"?, "url"?, "key"?,
  "include_unchanged"?}``: one ``TRACKING_UPDATED`` (or ``TRACKING_STOPPED``) push per
  number, its body built when sent, signed with
  :func:`~pixecom_tracking17.signatures.push_signature` in the ``sign`` header (``key``:
  another key); without ``numbers``, every parcel changed since its last delivered push.
  ``POST /_sandbox/tick`` pushes the changed parcels (the dev server does it every second
  when ``auto_push`` is on). Each push is an outbox event (id ``<number>@<state>``, scope
  the number) that ``POST /_sandbox/deliver`` can send again (``signing``:
  :class:`PushSigning`); pushing a parcel in the same state again replaces its event, so
  the outbox holds one event per number and state.
"""

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Final, Literal

from fastapi import Body, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from pixecom_core.providers import ASGIApp
from pixecom_core.testing.sandbox_kit import (
    DeliverRequest,
    DeliveryAttempt,
    DeliveryRefused,
    Fault,
    KitFaultKind,
    OutboxEvent,
    SandboxKit,
    WebhookOutbox,
)
from pixecom_core.testing.sandbox_requests import MalformedBody, json_body, utc_stamp
from pixecom_tracking17.client import (
    API_VERSION,
    CODE_ALREADY_REGISTERED,
    CODE_CARRIER_NOT_DETECTED,
    CODE_INTERNAL_ERROR,
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
)
from pixecom_tracking17.settings import Track17SandboxSettings
from pixecom_tracking17.signatures import SIGNATURE_HEADER, push_signature

CODE_INVALID_DATA: Final = -18010013

OPERATIONS: Final = frozenset({"register", "gettrackinfo", "stoptrack", "retrack", "getquota"})
#: The nine statuses 17TRACK reports (``latest_status.status``).
Status = Literal[
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


class Track17Fault(Fault):
    """A failure the next matching API calls answer with (see the module docstring).

    :param code: the envelope's ``code`` instead of the kind's own.
    """

    kind: Literal[KitFaultKind, "envelope"]
    code: int | None = None


#: (HTTP status, envelope code, message) of each fault kind 17TRACK words itself.
FAULT_ENVELOPES: Final = {
    "throttled": (429, CODE_RATE_LIMITED, "Too many requests."),
    "transient": (500, CODE_INTERNAL_ERROR, "Internal service error. Please try again later."),
    "auth": (401, CODE_INVALID_KEY, "Invalid security key."),
    "envelope": (200, CODE_INTERNAL_ERROR, "Internal service error. Please try again later."),
}


class ParcelAdvance(BaseModel):
    """How many steps to move a parcel."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=1, ge=1, le=len(PROGRESSION))


class ParcelStatus(BaseModel):
    """Put a parcel in any status (an exception, a failed delivery …)."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    sub_status: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=200)


class PushOrder(BaseModel):
    """Which pushes ``POST /_sandbox/push`` sends, where and how."""

    model_config = ConfigDict(extra="forbid")

    numbers: list[str] | None = Field(default=None, max_length=1_000)
    event: Literal["TRACKING_UPDATED", "TRACKING_STOPPED"] = "TRACKING_UPDATED"
    duplicates: int = Field(default=0, ge=0, le=10)
    url: str | None = Field(default=None, max_length=2_048)
    key: str | None = Field(default=None, max_length=500)
    include_unchanged: bool = False


class PushSigning(BaseModel):
    """The ``signing`` options of ``POST /_sandbox/deliver``: ``key`` signs with another
    key than the configured one."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(default=None, min_length=1, max_length=500)


def envelope_error(code: int, message: str) -> dict[str, Any]:
    """17TRACK's whole-call failure envelope."""
    return {"code": code, "data": {"errors": [{"code": code, "message": message}]}}


class Rejected(Exception):
    """17TRACK refuses one entry of a call: :attr:`entry` goes to ``data.rejected``."""

    def __init__(self, number: Any, code: int, message: str) -> None:
        super().__init__(message)
        self.entry = {
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
    return local.isoformat(), utc_stamp(moment.timestamp())


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


# -- the sandbox -----------------------------------------------------------------------------


class Track17Sandbox:
    """One 17TRACK account: its parcels, quota and per-key rate limit, on the sandbox kit.

    :param config: starting configuration (``POST /_sandbox/config`` changes it later,
        ``POST /_sandbox/reset`` restores it).
    :param clock: wall-clock seconds, for scan times and time-driven progress.
    """

    def __init__(self, config: Track17SandboxSettings, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.parcels: OrderedDict[str, Parcel] = OrderedDict()
        self._calls: dict[str, deque[float]] = {}
        self.quota_used = 0
        self.today_used = 0
        # 17TRACK pushes as soon as a parcel changes; the sandbox sends each push itself
        # (and again on the next tick while undelivered), so the outbox never auto-delivers
        self.outbox = WebhookOutbox(
            sign=self._sign, signing=PushSigning, on_delivered=self._delivered
        )
        self.kit: SandboxKit[Track17SandboxSettings, Track17Fault] = SandboxKit(
            config=config,
            fault_model=Track17Fault,
            secret_fields=("api_keys",),
            outbox=self.outbox,
            on_reset=self._clear,
            on_config=self._configure,
        )

    @property
    def config(self) -> Track17SandboxSettings:
        return self.kit.config

    def _configure(self, config: Track17SandboxSettings) -> None:
        # the keys are resolved once: they may come from the tracker's environment
        self.api_keys = frozenset(config.accepted_keys())
        self.push_key = config.signing_key()
        self.outbox.url = config.push_url

    def _clear(self) -> None:
        self.parcels.clear()
        self._calls.clear()
        self.quota_used = 0
        self.today_used = 0

    def over_rate(self, token: str) -> bool:
        """Count a call for ``token``; whether it is over ``rate_limit_per_second``."""
        now = time.monotonic()
        window = self._calls.setdefault(token, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self.config.rate_limit_per_second:
            return True  # refused calls do not count, as a client backing off expects
        window.append(now)
        return False

    def parcel(self, number: str) -> Parcel | None:
        parcel = self.parcels.get(number.strip().upper())
        if parcel is not None:
            self.catch_up(parcel)
        return parcel

    def known_parcel(self, number: str) -> Parcel:
        """The parcel a control endpoint names; 404 when there is none."""
        parcel = self.parcel(number)
        if parcel is None:
            raise HTTPException(404, f"no parcel {number[:60]}")
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

    def set_status(self, parcel: Parcel, change: ParcelStatus) -> None:
        """Put ``parcel`` in any status; it stops progressing by time until advanced."""
        parcel.frozen = True
        if change.status == "NotFound":
            parcel.not_found = True
            parcel.changed_at = self.clock()
            return
        parcel.not_found = False
        default_sub = "InfoReceived" if change.status == "InfoReceived" else None
        self.scan(
            parcel,
            change.status,
            change.sub_status or default_sub or f"{change.status}_Other",
            change.description or f"Status: {change.status}",
            self.clock(),
        )

    def catch_up(self, parcel: Parcel) -> None:
        """Apply the steps ``advance_every_seconds`` has made due since the last one."""
        every = self.config.advance_every_seconds
        if every <= 0 or parcel.stopped or parcel.frozen:
            return
        now = self.clock()
        while parcel.stage < len(PROGRESSION) - 1 and now >= parcel.progress_at + every:
            self.advance(parcel, parcel.progress_at + every)

    def register(self, entry: Any) -> dict[str, Any]:
        """Register one entry's number; its ``accepted`` entry. Raises :class:`Rejected`."""
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            raise Rejected(None, CODE_MISSING_VALUE, "Please provide the data number.")
        number = entry["number"].strip()
        if not _NUMBER.match(number):
            raise Rejected(
                number, CODE_INVALID_FORMAT, f"The format of '{number[:60]}' is invalid."
            )
        carrier = entry.get("carrier")
        if carrier is not None and (
            isinstance(carrier, bool) or not isinstance(carrier, int) or carrier not in CARRIERS
        ):
            raise Rejected(
                number,
                CODE_WRONG_CARRIER,
                f"The carrier's value {str(carrier)[:20]} is not correct.",
            )
        if number.upper() in self.parcels:
            raise Rejected(
                number, CODE_ALREADY_REGISTERED, f"Tracking number {number} is already registered."
            )
        detected = carrier if carrier is not None else detect_carrier(number)
        if detected is None:
            raise Rejected(
                number,
                CODE_CARRIER_NOT_DETECTED,
                "Carrier cannot be detected. Visit carrier info for carrier code and send as "
                "a parameter.",
            )
        if self.quota_used >= self.config.quota_total:
            raise Rejected(number, CODE_NO_QUOTA, "Quota exhausted.")
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
        return {
            "origin": 2 if carrier is not None else 1,
            "number": number,
            "carrier": detected,
            "tag": parcel.tag,
        }

    def find(self, entry: Any) -> Parcel:
        """The parcel an entry names. Raises :class:`Rejected`."""
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            raise Rejected(None, CODE_MISSING_VALUE, "Please provide the data number.")
        number = entry["number"].strip()
        parcel = self.parcel(number)
        carrier = entry.get("carrier")
        if parcel is None or (carrier not in (None, 0) and carrier != parcel.carrier):
            raise Rejected(
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

    # -- the 17TRACK operations

    def item(self, parcel: Parcel, *, with_track_info: bool = True) -> dict[str, Any]:
        """A parcel as ``gettrackinfo`` and pushes carry it."""
        item: dict[str, Any] = {
            "number": parcel.number,
            "carrier": parcel.carrier,
            "param": parcel.param,
            "tag": parcel.tag,
        }
        if with_track_info:
            item["track_info"] = track_info(parcel, self.clock())
        return item

    def track(self, entry: Any) -> dict[str, Any]:
        """``gettrackinfo`` for one entry."""
        return self.item(self.find(entry))

    def stop(self, entry: Any) -> dict[str, Any]:
        """``stoptrack`` for one entry."""
        parcel = self.find(entry)
        if parcel.stopped:
            message = "Only numbers that are being tracked can be stopped."
            raise Rejected(parcel.number, CODE_ONLY_TRACKED_STOP, message)
        parcel.stopped = True
        return {"number": parcel.number, "carrier": parcel.carrier}

    def retrack(self, entry: Any) -> dict[str, Any]:
        """``retrack`` for one entry: once, and only for a stopped number."""
        parcel = self.find(entry)
        if not parcel.stopped:
            message = "Only stopped numbers can be retracked."
            raise Rejected(parcel.number, CODE_ONLY_STOPPED_RETRACK, message)
        if parcel.retracked:
            raise Rejected(
                parcel.number, CODE_RETRACKED_ONCE, "A number can only be retracked once."
            )
        parcel.stopped = False
        parcel.retracked = True
        parcel.progress_at = max(parcel.progress_at, self.clock())
        return {"number": parcel.number, "carrier": parcel.carrier}

    def getquota(self) -> dict[str, Any]:
        total = self.config.quota_total
        return {
            "quota_total": total,
            "quota_used": self.quota_used,
            "quota_remain": max(0, total - self.quota_used),
            "today_used": self.today_used,
            "max_track_daily": total,
            "free_email_quota": 0,
            "free_email_quotaused": 0,
        }

    async def call(self, operation: str, entries: list[Any]) -> dict[str, Any]:
        """The ``data`` of a successful call of ``operation``: each entry accepted or
        rejected (``getquota`` takes none)."""
        if operation == "getquota":
            return self.getquota()
        one = {
            "register": self.register,
            "gettrackinfo": self.track,
            "stoptrack": self.stop,
            "retrack": self.retrack,
        }[operation]
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for entry in entries:
            try:
                accepted.append(one(entry))
            except Rejected as refusal:
                rejected.append(refusal.entry)
        if operation == "stoptrack" and accepted and self.config.auto_push and self.config.push_url:
            stopped = [self.parcels[item["number"]] for item in accepted]
            await self.push(stopped, "TRACKING_STOPPED")
        return {"accepted": accepted, "rejected": rejected}

    # -- one API call

    async def answer(self, request: Request, version: str, operation: str) -> Response:
        """Log the call, then answer it as 17TRACK would (or as a queued fault says)."""
        token = request.headers.get("17token", "")
        known = version == API_VERSION and operation in OPERATIONS
        refused, logged = await self.kit.intercept(
            request,
            operation,
            render=lambda fault: self._refusal(fault, token),
            where=lambda _fault: known,  # no fault answers a path 17TRACK does not have
            has_token=bool(token),
            count=None,
        )
        if refused is None and not known:
            refused = JSONResponse({"detail": "Not Found"}, 404)
        if refused is None:
            refused = await self._answer(operation, await request.body(), token, logged)
        logged["status"] = refused.status_code
        return refused

    async def _answer(
        self, operation: str, raw: bytes, token: str, logged: dict[str, Any]
    ) -> Response:
        if token not in self.api_keys:
            return self._refusal(Track17Fault(kind="auth"), token)
        if self.over_rate(token):
            return self._refusal(Track17Fault(kind="throttled"), token)
        try:
            entries: list[Any] = json_body(raw, expect=list)
        except MalformedBody:
            return JSONResponse(envelope_error(CODE_INVALID_DATA, "Invalid submitted data."))
        logged["count"] = len(entries)
        logged["numbers"] = [
            entry.get("number")
            for entry in entries[:MAX_NUMBERS_PER_CALL]
            if isinstance(entry, dict)
        ]
        if len(entries) > MAX_NUMBERS_PER_CALL:
            return JSONResponse(
                envelope_error(CODE_TOO_MANY_NUMBERS, "Tracking numbers exceed the 40 limit.")
            )
        return JSONResponse({"code": 0, "data": await self.call(operation, entries)})

    def _refusal(self, fault: Track17Fault, token: str) -> Response:
        """A whole-call failure in 17TRACK's envelope (the rate limit and a refused key
        answer through here too, as the kind's defaults)."""
        status, code, message = FAULT_ENVELOPES[fault.kind]
        message = fault.message or message
        if fault.echo_token:
            message = f"{message} ({token})"
        headers = {}
        if fault.kind == "throttled":
            wait = fault.retry_after_seconds
            wait = self.config.retry_after_seconds if wait is None else wait
            if wait is not None:
                headers["Retry-After"] = f"{wait:g}"
        body = envelope_error(fault.code if fault.code is not None else code, message)
        return JSONResponse(body, fault.status or status, headers=headers)

    # -- pushes

    def _sign(self, event: OutboxEvent, signing: Mapping[str, Any]) -> dict[str, str]:
        key = signing["key"] or self.push_key
        return {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: push_signature(event.body, key),
        }

    def _delivered(self, event: OutboxEvent) -> None:
        number, _, state = event.id.partition("@")
        parcel = self.parcels.get(number)
        if event.type == "TRACKING_UPDATED" and parcel is not None:
            parcel.pushed_state = state

    def _emit(self, parcel: Parcel, event_type: str) -> OutboxEvent:
        """Record a push of ``parcel`` as it is now; its id names the state it reports, so
        pushing an unchanged parcel again replaces the same event."""
        updated = event_type == "TRACKING_UPDATED"
        data = self.item(parcel, with_track_info=updated)
        event_id = f"{parcel.number}@{parcel.state if updated else 'stopped'}"
        body = json.dumps(
            {"event": event_type, "data": data}, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        return self.outbox.emit(event_id, event_type, body, scope=parcel.number)

    async def push(
        self,
        parcels: list[Parcel],
        event_type: str,
        *,
        url: str | None = None,
        key: str | None = None,
        duplicates: int = 0,
    ) -> list[dict[str, Any]]:
        """Push each parcel now (each ``duplicates`` extra times); every attempt reported.
        Raises :class:`DeliveryRefused` when no URL is configured or given."""
        if not (url or self.outbox.url):
            raise DeliveryRefused(409, "no push_url: configure one or pass url")
        if not parcels:
            return []
        events = [self._emit(parcel, event_type) for parcel in parcels]
        order = DeliverRequest(
            url=url,
            event_ids=[event.id for event in events],
            duplicates=duplicates,
            timeout_seconds=self.config.push_timeout_seconds,
            signing={"key": key} if key else {},
        )
        return [_delivery(attempt) for attempt in await self.outbox.deliver(order)]

    def changed_parcels(self, *, include_unchanged: bool = False) -> list[Parcel]:
        """Parcels whose state is not the one their last delivered push reported."""
        changed = []
        for parcel in list(self.parcels.values()):
            self.catch_up(parcel)
            if include_unchanged or parcel.pushed_state != parcel.state:
                changed.append(parcel)
        return changed

    async def after_change(self, parcel: Parcel) -> list[dict[str, Any]]:
        """What ``auto_push`` sends when a control endpoint changed ``parcel``."""
        if self.config.auto_push and self.config.push_url:
            return await self.push([parcel], "TRACKING_UPDATED")
        return []


def _delivery(attempt: DeliveryAttempt) -> dict[str, Any]:
    """How the push endpoints report one attempt: the kit's fields and the number."""
    return {"number": attempt.event_id.partition("@")[0], **attempt.listed()}


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


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
    sandbox = Track17Sandbox(config if config is not None else Track17SandboxSettings(), clock)

    async def tick_forever() -> None:
        while True:
            await asyncio.sleep(1.0)
            if not (sandbox.config.auto_push and sandbox.config.push_url):
                continue
            try:
                await sandbox.push(sandbox.changed_parcels(), "TRACKING_UPDATED")
            except Exception:  # a sandbox must keep ticking whatever one delivery did
                _log.exception("17track sandbox: pushing changed parcels failed")

    # served with a lifespan (the dev server), parcels moved by time are pushed as 17TRACK
    # would; without one (tests), POST /_sandbox/tick does the same on demand
    app = sandbox.kit.app("PixEcom 17TRACK sandbox", background=[tick_forever])

    @app.get("/_sandbox/parcels")
    async def list_parcels() -> list[dict[str, Any]]:
        listed = []
        for parcel in list(sandbox.parcels.values())[:MAX_LISTED_PARCELS]:
            sandbox.catch_up(parcel)
            listed.append(
                {"number": parcel.number, "status": parcel.status[0], "stopped": parcel.stopped}
            )
        return listed

    @app.get("/_sandbox/parcels/{number}")
    async def read_parcel(number: str) -> dict[str, Any]:
        return sandbox.view(sandbox.known_parcel(number))

    @app.post("/_sandbox/parcels/{number}/advance")
    async def advance_parcel(
        number: str, advance: Annotated[ParcelAdvance | None, Body()] = None
    ) -> dict[str, Any]:
        parcel = sandbox.known_parcel(number)
        for _ in range((advance or ParcelAdvance()).steps):
            if not sandbox.advance(parcel, sandbox.clock()):
                break
        return sandbox.view(parcel) | {"deliveries": await sandbox.after_change(parcel)}

    @app.post("/_sandbox/parcels/{number}/status")
    async def set_parcel_status(number: str, change: ParcelStatus) -> dict[str, Any]:
        parcel = sandbox.known_parcel(number)
        sandbox.set_status(parcel, change)
        return sandbox.view(parcel) | {"deliveries": await sandbox.after_change(parcel)}

    @app.post("/_sandbox/push")
    async def push(order: PushOrder) -> dict[str, Any]:
        if order.numbers is None:
            parcels = sandbox.changed_parcels(include_unchanged=order.include_unchanged)
        else:
            parcels = [sandbox.known_parcel(number) for number in order.numbers]
        deliveries = await sandbox.push(
            parcels, order.event, url=order.url, key=order.key, duplicates=order.duplicates
        )
        return {"deliveries": deliveries}

    @app.post("/_sandbox/tick")
    async def tick() -> dict[str, Any]:
        # DeliveryRefused (no push_url) is an HTTPException: FastAPI answers its detail
        return {"deliveries": await sandbox.push(sandbox.changed_parcels(), "TRACKING_UPDATED")}

    @app.post("/track/{version}/{operation}")
    async def api(request: Request, version: str, operation: str) -> Response:
        return await sandbox.answer(request, version, operation)

    return app
