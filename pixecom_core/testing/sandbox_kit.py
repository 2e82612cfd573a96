"""The sandbox kit: the machinery every provider sandbox shares, with one control API.

A plugin's sandbox speaks its provider's wire format; everything around that — injected
faults, latency, a request log, run-time configuration and reset, a movable clock, seeded
ids, and a webhook outbox that signs, retries, duplicates and shuffles deliveries — is the
same for every provider, so it lives here once (what a sandbox reads out of a request —
credentials, bodies, idempotent replays — is in :mod:`sandbox_requests`). A sandbox
builds one :class:`SandboxKit`, gets its app from :meth:`SandboxKit.app` (the control
routes mounted before its own, the kit's lifespan, :class:`Answered` rendered), and calls
the kit from its request handlers::

    kit = SandboxKit(config=MySandboxSettings(), fault_model=MyFault, outbox=outbox)
    app = kit.app("My provider sandbox")

    @app.post("/v1/things")
    async def create(request: Request) -> Response:
        refused, logged = await kit.intercept(request, "create_thing", render=my_error_for)
        if refused is not None:
            return refused
        ...

The control API, identical on every sandbox (JSON, no credentials):

- ``POST /_sandbox/faults`` — queue one :class:`Fault` (the sandbox's subclass): the next
  ``times`` matching calls answer with it instead of their result. ``kind`` is one of
  :data:`FAILURE_KINDS` (each sandbox renders them in its provider's words: the
  conformance kit injects exactly these), one of :data:`TRANSPORT_KINDS` (rendered by the
  kit the same way everywhere), or a kind the sandbox adds. ``GET`` lists the queue,
  ``DELETE`` empties it.
- ``GET``/``DELETE /_sandbox/requests`` — the calls the sandbox answered, newest last.
- ``GET``/``POST /_sandbox/config`` — read or change settings at run time (unknown names
  and invalid values are refused with 422; secrets are shown only as counts).
- ``POST /_sandbox/reset`` — back to the starting configuration, no faults, no requests,
  no events, no delivery in flight, real time, ids drawn from the seed again; then the
  sandbox's own state is cleared.
- With a :class:`SandboxClock`: ``POST /_sandbox/clock`` (:class:`ClockChange`) sets or
  moves the sandbox's time; answers ``{"now": <epoch seconds>}``.
- With an outbox: ``GET /_sandbox/events`` (``?pending_only=true``; the newest
  :data:`MAX_EVENTS_LISTED`, and ``dropped_pending``: events the outbox's bound of
  :data:`MAX_EVENTS` dropped before they were delivered), ``GET /_sandbox/events/{id}``
  (the event's body, byte for byte as every delivery sends it), ``GET
  /_sandbox/deliveries`` (the latest :data:`REQUEST_LOG_SIZE` attempts, ``?event_id=``
  for one event's) and ``POST /_sandbox/deliver`` (:class:`DeliverRequest`; ``signing``
  is checked against the outbox's ``signing`` model before anything is sent).

The other end of an outbox, for tests, is a :class:`WebhookReceiver`. A sandbox with an
OAuth consent page builds it with :func:`consent_page`, answers with :func:`redirect_with`
and :func:`consent_error_page`, and :func:`submit_consent` plays the seller in front of it.

Nothing here imports pytest: sandboxes run in ``pixecom dev`` too.
"""

from __future__ import annotations

import asyncio
import html
import random
import string
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Final, Generic, Literal, TypeVar, get_args
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, Body, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from pixecom_core.providers.http import shared_ssl_context

#: The failures every sandbox renders in its provider's words; the conformance kit queues
#: them (``{"kind": "throttled"}`` …) and expects the matching core error class.
FailureKind = Literal["throttled", "transient", "auth"]
FAILURE_KINDS: Final = get_args(FailureKind)
#: Failures below the provider's protocol, rendered by the kit the same way everywhere:
#: an HTML 5xx page (a proxy in front of the API), a 200 whose body is not JSON, and a
#: call that hangs for ``hang_seconds`` then ends in a 504.
TransportKind = Literal["server_error", "malformed", "hang"]
TRANSPORT_KINDS: Final = get_args(TransportKind)
#: Every kind a sandbox answers, for its :class:`Fault` subclass to extend:
#: ``kind: Literal[KitFaultKind, "permission"]`` (a ``Literal`` inside one is flattened).
KitFaultKind = Literal[FailureKind, TransportKind]
#: Faults queued at once, at most: a control API is no way to exhaust the sandbox's memory.
MAX_FAULTS: Final = 1_000
#: Requests the log keeps (the oldest are dropped).
REQUEST_LOG_SIZE: Final = 2_000
#: Events the outbox keeps listed by ``GET /_sandbox/events``.
MAX_EVENTS_LISTED: Final = 1_000
#: Events the outbox keeps at most: a long ``pixecom dev`` must not grow without bound.
#: Over it, the oldest delivered event goes first, then the oldest pending one.
MAX_EVENTS: Final = 10_000
#: How often a latency pause checks whether its client gave up: each check is a trip
#: through the ASGI receive channel, and thousands of calls may be waiting at once
#: (the scale simulation's 1.5 s latency); a hung call outliving its client by a quarter
#: of a second costs nothing.
DISCONNECT_POLL_SECONDS: Final = 0.25
CONTROL_PREFIX: Final = "/_sandbox"
#: What :meth:`SandboxKit.new_id` draws from by default (Stripe's ids, for one).
ID_ALPHABET: Final = string.ascii_letters + string.digits


# -- faults -------------------------------------------------------------------------------


class Fault(BaseModel):
    """One injected failure: the next ``times`` calls that match answer with it.

    Subclass it to narrow ``kind`` to what the sandbox renders (:data:`KitFaultKind` and
    the provider's own kinds) and to add the provider's own details (an error code, a
    subcode).

    :param kind: which failure.
    :param operation: only calls of this operation (the names each sandbox documents, e.g.
        ``insights``, ``create_payment``); any call when omitted.
    :param scope: only calls about this account, merchant or key; any when omitted.
    :param times: how many matching calls it answers before it is used up.
    :param probability: each matching call fails with this probability (``times`` counts
        only the calls that failed): ``1`` fails every one.
    :param status: the HTTP status, where the kind allows a choice.
    :param retry_after_seconds: the wait a throttle names (``Retry-After`` or the
        provider's own header).
    :param hang_seconds: how long a ``hang`` keeps the caller waiting.
    :param message: the error message, where the provider's envelope carries one.
    :param echo_token: put the caller's credential into the error message — for tests that
        prove the client never repeats an upstream message carrying a secret.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    operation: str | None = Field(default=None, max_length=128)
    scope: str | None = Field(default=None, max_length=128)
    times: int = Field(default=1, ge=1, le=100_000)
    probability: float = Field(default=1.0, gt=0, le=1)
    status: int | None = Field(default=None, ge=200, le=599)
    retry_after_seconds: float | None = Field(default=None, ge=0, le=86_400)
    hang_seconds: float = Field(default=30.0, ge=0, le=600)
    message: str | None = Field(default=None, max_length=500)
    echo_token: bool = False


F = TypeVar("F", bound=Fault)


class FaultQueueFull(Exception):
    """More than :data:`MAX_FAULTS` faults would be queued."""


class FaultQueue(Generic[F]):
    """Faults waiting for their calls, oldest first.

    :param limit: at most this many queued at once.
    :param chance: draws ``[0, 1)`` for faults with a ``probability`` (seeded by the kit).
    """

    def __init__(self, *, limit: int = MAX_FAULTS, chance: Callable[[], float] = random.random):
        self._faults: list[F] = []
        self._limit = limit
        self._chance = chance

    def __len__(self) -> int:
        return len(self._faults)

    def add(self, fault: F) -> int:
        """Queue ``fault``; return how many are queued. Raises :class:`FaultQueueFull`."""
        if len(self._faults) >= self._limit:
            raise FaultQueueFull(f"at most {self._limit} queued faults")
        self._faults.append(fault)
        return len(self._faults)

    def take(
        self,
        operation: str | None = None,
        scope: str | None = None,
        *,
        where: Callable[[F], bool] | None = None,
    ) -> F | None:
        """The first fault for this call, counted as used; ``None`` when the call succeeds.

        A fault matches when its ``operation`` and ``scope`` are unset or equal to the
        call's, and ``where`` (the sandbox's extra test, e.g. "only kinds this endpoint can
        produce") accepts it.
        """
        for index, fault in enumerate(self._faults):
            if fault.operation not in (None, operation) or fault.scope not in (None, scope):
                continue
            if where is not None and not where(fault):
                continue
            if fault.probability < 1 and self._chance() >= fault.probability:
                return None
            if fault.times <= 1:
                del self._faults[index]
            else:
                self._faults[index] = fault.model_copy(update={"times": fault.times - 1})
            return fault
        return None

    def pending(self) -> list[F]:
        """The queue, oldest first."""
        return list(self._faults)

    def clear(self) -> int:
        """Empty the queue; return how many faults were dropped."""
        cleared = len(self._faults)
        self._faults.clear()
        return cleared


#: The kit's answer to each :data:`TRANSPORT_KINDS` fault: status (``Fault.status``
#: overrides it, except for a ``hang``'s gateway timeout), media type, body.
TRANSPORT_ANSWERS: Final = {
    "server_error": (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "malformed": (200, "application/json", "{not json"),
    "hang": (504, "text/html", "<html><body><h1>504 Gateway Timeout</h1></body></html>"),
}


def transport_fault(fault: Fault) -> Response | None:
    """The answer for a :data:`TRANSPORT_KINDS` fault (a ``hang``'s, once
    :meth:`SandboxKit.intercept` waited its ``hang_seconds``); ``None`` for any other kind."""
    if fault.kind not in TRANSPORT_ANSWERS:
        return None
    status, media_type, body = TRANSPORT_ANSWERS[fault.kind]
    if fault.kind != "hang":
        status = fault.status or status
    return Response(body, status_code=status, media_type=media_type)


async def pause(request: Request | None, seconds: float) -> None:
    """Sleep ``seconds``, returning early if the client disconnects (a hung call must not
    outlive the client that gave up on it).

    The disconnect is checked every :data:`DISCONNECT_POLL_SECONDS`; a pause no longer
    than that, or without a ``request``, is one sleep. Starlette's
    ``Request.is_disconnected`` takes messages off the ASGI receive channel, so a body
    not yet read would be lost to it: the body is read first (``await request.body()``
    caches it, so the handler still reads it afterwards).
    """
    if seconds <= 0:
        return
    if request is None or seconds <= DISCONNECT_POLL_SECONDS:
        await asyncio.sleep(seconds)
        return
    await request.body()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(DISCONNECT_POLL_SECONDS, remaining))


# -- the request log ----------------------------------------------------------------------


class RequestLog:
    """The calls a sandbox answered, newest last, for tests that check what a client sent.

    Entries are plain dicts: ``method``, ``path``, ``at`` (epoch seconds) and whatever the
    sandbox adds (``operation``, ``params``, ``has_token`` — never a credential itself).
    An entry is returned by :meth:`record` so the handler can add the outcome later.
    """

    def __init__(self, limit: int = REQUEST_LOG_SIZE) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)

    def record(self, request: Request | None = None, **details: Any) -> dict[str, Any]:
        """Log one call; return its (mutable) entry."""
        entry: dict[str, Any] = {"at": time.time()}
        if request is not None:
            entry["method"] = request.method
            entry["path"] = request.url.path
        entry.update(details)
        self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every logged call, oldest first."""
        return list(self._entries)

    def clear(self) -> int:
        """Forget every call; return how many there were."""
        cleared = len(self._entries)
        self._entries.clear()
        return cleared


# -- the webhook outbox -------------------------------------------------------------------


@dataclass
class OutboxEvent:
    """One event a provider sends to its webhook endpoint.

    :param id: the provider's event id.
    :param type: the provider's event type.
    :param body: the exact bytes every delivery of it sends.
    :param scope: whom it is about (an account), for filtering.
    :param content_type: how ``GET /_sandbox/events/{id}`` labels ``body``.
    :param delivered: whether an attempt was answered 2xx.
    :param attempts: delivery attempts so far.
    """

    id: str
    type: str
    body: bytes
    scope: str | None = None
    content_type: str = "application/json"
    created_at: float = field(default_factory=time.time)
    delivered: bool = False
    attempts: int = 0

    def listed(self) -> dict[str, Any]:
        """How ``GET /_sandbox/events`` shows it."""
        return {
            "id": self.id,
            "type": self.type,
            "scope": self.scope,
            "created_at": self.created_at,
            "delivered": self.delivered,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of one event: the endpoint's status, or the transport error's name."""

    event_id: str
    event_type: str
    status_code: int | None
    error: str | None = None
    #: Headers of the attempt worth reporting (a transmission id), never a signature secret.
    details: Mapping[str, str] = field(default_factory=dict)
    scope: str | None = None
    url: str | None = None
    at: float = field(default_factory=time.time)

    def listed(self) -> dict[str, Any]:
        """How ``POST /_sandbox/deliver`` reports it."""
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "status_code": self.status_code,
            "error": self.error,
            **self.details,
        }

    def logged(self) -> dict[str, Any]:
        """How ``GET /_sandbox/deliveries`` shows it: also whom, where and when."""
        return {**self.listed(), "scope": self.scope, "url": self.url, "at": self.at}


class DeliverRequest(BaseModel):
    """What ``POST /_sandbox/deliver`` sends.

    :param url: overrides the configured webhook URL.
    :param event_ids: exactly these events (delivered or not); default: every pending one.
    :param include_delivered: with no ``event_ids``, resend delivered events too.
    :param duplicates: extra copies of each event (providers deliver at least once).
    :param shuffle: send in random order (no provider guarantees order).
    :param seed: makes the shuffle reproducible.
    :param timeout_seconds: how long each attempt waits for the endpoint's answer.
    :param signing: options for the sandbox's signer (e.g. an old timestamp, other
        secrets); each sandbox documents the ones it takes, as the outbox's ``signing``
        model that checks them before anything is sent.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2_048)
    event_ids: list[str] | None = Field(default=None, max_length=100_000)
    include_delivered: bool = False
    duplicates: int = Field(default=0, ge=0, le=10)
    shuffle: bool = False
    seed: int | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    signing: dict[str, Any] = Field(default_factory=dict)


class DeliveryRefused(HTTPException):
    """A delivery cannot start (no URL, unknown event): raised in a route, FastAPI answers
    ``{"detail": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)

    @property
    def status(self) -> int:
        """The HTTP status to answer with."""
        return self.status_code


Signer = Callable[[OutboxEvent, Mapping[str, Any]], Mapping[str, str]]
"""Headers for one delivery attempt of an event (signature, ids, content type), given the
:attr:`DeliverRequest.signing` options (as the outbox's ``signing`` model dumps them, its
defaults filled in, when it has one); called once per attempt, so each is signed afresh."""


class WebhookOutbox:
    """Events waiting for the webhook endpoint, delivered as providers deliver them.

    :meth:`emit` records an event and, when :attr:`auto_deliver` is on and a URL is set,
    sends it at once; an attempt not answered 2xx (error status, timeout, connection
    failure) is retried after each of :attr:`retry_delays` in turn, until one is answered
    2xx (then it stops) or the delays run out (then it stays pending for
    :meth:`deliver`). :meth:`deliver` sends chosen or pending events on demand, optionally
    duplicated and shuffled, and reports every attempt without retrying.

    At most ``max_events`` events are kept: over it, the oldest delivered event is dropped,
    else the oldest pending one (counted in :attr:`dropped_pending`). Emitting an id again
    replaces that event and makes it the newest, so a sandbox with deterministic ids (one
    per parcel state) keeps one event per id however often it emits.

    :param sign: the provider's signing scheme (:data:`Signer`).
    :param signing: the pydantic model of the signer's options: :meth:`deliver` refuses
        options it rejects with 422 before sending anything. Without one, options are
        handed over unchecked.
    :param url: where events go (``None``: nowhere until configured).
    :param auto_deliver: send each event as it is emitted.
    :param retry_delays: seconds before each retry of an automatic delivery.
    :param timeout_seconds: how long an automatic attempt waits for the endpoint.
    :param on_delivered: called after an attempt answered 2xx (e.g. to remember what a
        tracking push reported).
    :param verify: TLS verification for https endpoints.
    :param max_events: events kept at most (see above).
    """

    def __init__(
        self,
        *,
        sign: Signer,
        signing: type[BaseModel] | None = None,
        url: str | None = None,
        auto_deliver: bool = False,
        retry_delays: Sequence[float] = (),
        timeout_seconds: float = 10.0,
        on_delivered: Callable[[OutboxEvent], None] | None = None,
        verify: Any = None,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self._sign = sign
        self._signing = signing
        self._max_events = max_events
        self.url = url
        self.auto_deliver = auto_deliver
        self.retry_delays: tuple[float, ...] = tuple(retry_delays)
        self.timeout_seconds = timeout_seconds
        self._on_delivered = on_delivered
        self._verify = verify if verify is not None else shared_ssl_context()
        self._events: dict[str, OutboxEvent] = {}  # oldest first
        self._delivered = 0  # how many of them are delivered: eviction skips a scan without
        #: Pending events dropped by the ``max_events`` bound since the last reset.
        self.dropped_pending = 0
        self._background: set[asyncio.Task[None]] = set()
        #: Every attempt, oldest first (bounded), for ``GET /_sandbox/deliveries``.
        self.attempts: deque[DeliveryAttempt] = deque(maxlen=REQUEST_LOG_SIZE)

    # -- events

    def emit(
        self,
        event_id: str,
        event_type: str,
        body: bytes,
        *,
        scope: str | None = None,
        content_type: str = "application/json",
    ) -> OutboxEvent:
        """Record an event; start delivering it when :attr:`auto_deliver` is on (the caller
        must then be running in an event loop, as every request handler is)."""
        event = OutboxEvent(event_id, event_type, body, scope, content_type)
        self._forget(event_id)
        self._events[event_id] = event
        while len(self._events) > self._max_events:
            self._drop_oldest()
        if self.auto_deliver and self.url:
            task = asyncio.get_running_loop().create_task(self._deliver_automatically(event_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return event

    def _forget(self, event_id: str) -> None:
        event = self._events.pop(event_id, None)
        if event is not None and event.delivered:
            self._delivered -= 1

    def _drop_oldest(self) -> None:
        """Drop the oldest delivered event, else the oldest pending one (audit: every list
        a sandbox keeps is bounded)."""
        oldest = next(iter(self._events))
        if self._delivered:
            oldest = next(i for i, event in self._events.items() if event.delivered)
        if self._events.pop(oldest).delivered:
            self._delivered -= 1
        else:
            self.dropped_pending += 1

    def event(self, event_id: str) -> OutboxEvent | None:
        """The event with this id, if it was emitted."""
        return self._events.get(event_id)

    def events(self, *, pending_only: bool = False) -> list[OutboxEvent]:
        """Emitted events, oldest first; only those not yet delivered with ``pending_only``."""
        return [e for e in self._events.values() if not (pending_only and e.delivered)]

    @property
    def automatic_deliveries(self) -> int:
        """Events being delivered automatically (an attempt in flight or a retry waiting)."""
        return len(self._background)

    # -- delivery

    async def deliver(self, request: DeliverRequest | None = None) -> list[DeliveryAttempt]:
        """Send events now (see :class:`DeliverRequest`); every attempt is reported, none
        is retried. Raises :class:`DeliveryRefused` without a URL or for an unknown id."""
        request = request or DeliverRequest()
        signing = self.signing_options(request.signing)
        url = request.url or self.url
        if not url:
            raise DeliveryRefused(409, "no webhook URL: configure one or pass url")
        if request.event_ids is not None:
            missing = [i for i in request.event_ids if i not in self._events]
            if missing:
                raise DeliveryRefused(404, f"no such event: {missing[0]!r}")
            chosen = [self._events[i] for i in dict.fromkeys(request.event_ids)]
        else:
            chosen = self.events(pending_only=not request.include_delivered)
        sends = [event for event in chosen for _ in range(1 + request.duplicates)]
        if request.shuffle:
            random.Random(request.seed).shuffle(sends)
        async with httpx.AsyncClient(timeout=request.timeout_seconds, verify=self._verify) as http:
            return [await self._attempt(http, url, event, signing) for event in sends]

    def signing_options(self, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """``options`` as the ``signing`` model reads them (defaults filled in). Raises
        :class:`DeliveryRefused` (422) naming what the model rejects."""
        if self._signing is None:
            return options
        try:
            return self._signing.model_validate(options).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'signing'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise DeliveryRefused(422, f"invalid signing options: {problems}") from None

    async def _attempt(
        self, http: httpx.AsyncClient, url: str, event: OutboxEvent, signing: Mapping[str, Any]
    ) -> DeliveryAttempt:
        headers = dict(self._sign(event, signing))
        event.attempts += 1
        details = {
            k.lower(): v for k, v in headers.items() if k.lower().endswith("transmission-id")
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await http.post(url, content=event.body, headers=headers)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        else:
            status = response.status_code
            if response.is_success and not event.delivered:
                event.delivered = True
                if self._events.get(event.id) is event:
                    self._delivered += 1
            if response.is_success and self._on_delivered is not None:
                self._on_delivered(event)
        attempt = DeliveryAttempt(
            event.id, event.type, status, error, details, scope=event.scope, url=url
        )
        self.attempts.append(attempt)
        return attempt

    async def _deliver_automatically(self, event_id: str) -> None:
        """Now and, until an attempt is answered 2xx, after each retry delay; stops early
        once delivered (also by :meth:`deliver`), when automatic delivery is turned off or
        the URL cleared, or when cancelled (reset, shutdown)."""
        for delay in (None, *self.retry_delays):
            if delay is not None:
                await asyncio.sleep(delay)
            event = self._events.get(event_id)
            if event is None or event.delivered or not (self.auto_deliver and self.url):
                return
            await self.deliver(
                DeliverRequest(event_ids=[event_id], timeout_seconds=self.timeout_seconds)
            )

    async def stop(self) -> None:
        """Cancel every automatic delivery and return once all have ended."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def reset(self) -> None:
        """Stop deliveries and forget every event."""
        await self.stop()
        self._events.clear()
        self._delivered = 0
        self.dropped_pending = 0
        self.attempts.clear()


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """One POST a :class:`WebhookReceiver` got: the raw body and the headers as sent."""

    body: bytes
    headers: dict[str, str]


class WebhookReceiver:
    """A stand-in for the endpoint an outbox delivers to, for tests: serve :meth:`app`,
    set :attr:`url` to where it is served, point the sandbox at :attr:`endpoint`.

    Each POST to ``path`` is recorded in :attr:`received` as it arrives, then answered with
    the next of :attr:`script` (a status, or a status and the seconds to wait before
    answering: longer than the sender's timeout is no answer in time), once the script is
    used up with :attr:`status_code`.
    """

    def __init__(self, path: str = "/webhooks", *, status_code: int = 200) -> None:
        self.path = path
        self.url = ""
        self.status_code = status_code
        self.script: list[int | tuple[int, float]] = []
        self.received: list[ReceivedWebhook] = []

    @property
    def endpoint(self) -> str:
        """The webhook URL to configure: :attr:`url` plus ``path``."""
        return f"{self.url}{self.path}"

    def clear(self) -> None:
        """Nothing received, no script, answering 200: ready for the next test."""
        self.received.clear()
        self.script.clear()
        self.status_code = 200

    def app(self) -> FastAPI:
        """The endpoint as an ASGI app."""
        app = FastAPI()

        @app.post(self.path)
        async def receive(request: Request) -> Response:
            self.received.append(ReceivedWebhook(await request.body(), dict(request.headers)))
            answer = self.script.pop(0) if self.script else self.status_code
            status, wait = answer if isinstance(answer, tuple) else (answer, 0.0)
            await asyncio.sleep(wait)
            return Response(status_code=status)

        return app


# -- the clock ----------------------------------------------------------------------------


class ClockChange(BaseModel):
    """``POST /_sandbox/clock``: set the time (epoch seconds), or move it forward."""

    model_config = ConfigDict(extra="forbid")

    now: float | None = Field(default=None, gt=0)
    advance_seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> ClockChange:
        if (self.now is None) == (self.advance_seconds is None):
            raise ValueError("give exactly one of now and advance_seconds")
        return self


class SandboxClock:
    """The sandbox's wall clock, in epoch seconds when called: ``base`` (real time) plus an
    offset ``POST /_sandbox/clock`` moves, so codes and tokens expire and timestamps advance
    without a test waiting; a reset puts it back on ``base``."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self.offset = 0.0

    def __call__(self) -> float:
        return self._base() + self.offset

    def move(self, change: ClockChange) -> float:
        """Apply ``change``; return the new time."""
        if change.now is not None:
            self.offset = change.now - self._base()
        else:
            self.offset += change.advance_seconds or 0.0
        return self()


# -- OAuth consent pages ------------------------------------------------------------------


def redirect_with(url: str, answer: Mapping[str, str]) -> RedirectResponse:
    """302 to ``url`` with ``answer`` (``code`` and ``state``, or ``error``) added to its
    query, as an authorization endpoint answers (RFC 6749 §4.1.2)."""
    parts = urlsplit(url)
    query = "&".join(filter(None, (parts.query, urlencode(answer))))
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=302)


def consent_error_page(title: str, problem: str) -> HTMLResponse:
    """The page an authorization endpoint shows instead of redirecting (an unknown client,
    a redirect URI not registered: RFC 6749 §4.1.2.1): 400, ``problem`` in ``#error``."""
    return HTMLResponse(
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f'<h1>Sorry, something went wrong.</h1><p id="error">{html.escape(problem)}</p>'
        "</body></html>",
        status_code=400,
    )


def consent_page(
    *,
    title: str,
    heading: str,
    action: str,
    hidden: Mapping[str, str],
    fieldsets: Sequence[tuple[str, Sequence[str]]],
    approve: str,
) -> HTMLResponse:
    """An authorization endpoint's consent page: a form posting ``hidden`` back to
    ``action`` with the seller's choices — ``fieldsets``, each a legend and its inputs
    (:func:`labelled_input`) — and the two buttons :func:`submit_consent` presses:
    ``decision=approve`` (labelled ``approve``, id ``approve``) and ``decision=deny``
    (Cancel, id ``deny``)."""
    fields = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in hidden.items()
    )
    groups = "".join(
        f"<fieldset><legend>{html.escape(legend)}</legend>{'<br>'.join(inputs)}</fieldset>"
        for legend, inputs in fieldsets
    )
    return HTMLResponse(
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(heading)}</h1>"
        f'<form method="post" action="{html.escape(action)}">{fields}{groups}'
        '<button type="submit" id="approve" name="decision" value="approve">'
        f"{html.escape(approve)}</button>"
        '<button type="submit" id="deny" name="decision" value="deny">Cancel</button>'
        "</form></body></html>"
    )


def labelled_input(
    kind: Literal["radio", "checkbox", "text"],
    name: str,
    value: str,
    label: str,
    *,
    checked: bool = False,
    element_id: str | None = None,
) -> str:
    """One input of a :func:`consent_page` inside its label, everything escaped: a radio
    or checkbox before its label (``checked``: preselected), a text field after it."""
    attributes = f'type="{kind}" name="{html.escape(name)}" value="{html.escape(value)}"'
    if element_id is not None:
        attributes = f'id="{html.escape(element_id)}" {attributes}'
    field = f"<input {attributes}{' checked' if checked else ''}>"
    if kind == "text":
        return f"<label>{html.escape(label)} {field}</label>"
    return f"<label>{field} {html.escape(label)}</label>"


class _ConsentForm(HTMLParser):
    """A consent page's form as a browser submits it untouched: action, hidden and text
    fields, checked boxes and radios."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and (values.get("type") in ("hidden", "text") or "checked" in values):
            self.fields.append((values.get("name", ""), values.get("value", "")))


async def submit_consent(authorization_url: str, *, decision: str = "approve") -> str:
    """Open a sandbox's consent page at ``authorization_url`` and submit its form with what
    it preselects and ``decision`` (the button a seller presses: ``approve`` or ``deny``),
    as the seller's browser would (``pixecom dev``'s demo seller); return where it
    redirects (the caller's ``redirect_uri`` with ``code`` and ``state``, or ``error``).

    :raises RuntimeError: the page refused the request (its text) or did not redirect.
    """
    async with httpx.AsyncClient(timeout=10, verify=shared_ssl_context()) as browser:
        page = await browser.get(authorization_url)
        if page.status_code == 302:
            return page.headers["location"]
        form = _ConsentForm()
        form.feed(page.text)
        if page.status_code != 200 or not form.action:
            raise RuntimeError(f"the sandbox's consent page refused: {page.text[:300]}")
        answer = await browser.post(
            str(page.url.join(form.action)),
            content=urlencode([*form.fields, ("decision", decision)]),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    if answer.status_code != 302:
        raise RuntimeError(f"the sandbox's consent page did not redirect: {answer.text[:300]}")
    return answer.headers["location"]


# -- configuration ------------------------------------------------------------------------


C = TypeVar("C", bound=BaseModel)


def public_settings(config: BaseModel, secret_fields: Sequence[str] = ()) -> dict[str, Any]:
    """``config`` as JSON without its secrets: a ``SecretStr`` or a field named in
    ``secret_fields`` shows as ``<name>_configured``, a count (lists) or a bool."""
    shown: dict[str, Any] = {}
    for name, value in config.model_dump(mode="json").items():
        raw = getattr(config, name)
        if name in secret_fields or isinstance(raw, SecretStr):
            shown[f"{name}_configured"] = (
                len(raw) if isinstance(raw, list | tuple | set | frozenset) else raw is not None
            )
        else:
            shown[name] = value
    return shown


def invalid(exc: ValidationError) -> JSONResponse:
    """422 with pydantic's errors, as a control route refuses a body it cannot read."""
    return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, 422)


class Answered(Exception):
    """Ends a provider call early with ``response`` (an injected fault, or the provider's
    error envelope): raise it from a handler or dependency of an app built by
    :meth:`SandboxKit.app`, which answers with the response as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _answered(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Answered)  # registered for Answered only
    return exc.response


# -- the kit ------------------------------------------------------------------------------


class SandboxKit(Generic[C, F]):
    """The shared state and control routes of one sandbox app.

    :param config: the starting settings (a pydantic model; ``POST /_sandbox/config``
        replaces it with a validated copy, ``reset`` restores this one). A
        ``latency_seconds`` field, when the model has one, is what each call waits.
    :param fault_model: the sandbox's :class:`Fault` subclass (what ``POST
        /_sandbox/faults`` accepts).
    :param secret_fields: settings shown only as counts (see :func:`public_settings`).
    :param outbox: the sandbox's webhook outbox, if it sends webhooks.
    :param on_reset: clears the sandbox's own state after the kit's (may be async).
    :param on_config: called with the new settings after each change (e.g. to point the
        outbox at a new URL).
    :param seed: seeds :attr:`random` (ids, probabilistic faults) for reproducible runs;
        when the settings have a ``seed`` field, that field does (a change restarts the
        sequence). A reset restarts it from the starting seed.
    :param clock: the sandbox's clock, if tests may move it (``POST /_sandbox/clock``).
    """

    def __init__(
        self,
        *,
        config: C,
        fault_model: type[F],
        secret_fields: Sequence[str] = (),
        outbox: WebhookOutbox | None = None,
        on_reset: Callable[[], Awaitable[None] | None] | None = None,
        on_config: Callable[[C], None] | None = None,
        seed: int | None = None,
        clock: SandboxClock | None = None,
    ) -> None:
        self._initial = config
        self.config: C = config
        self.fault_model = fault_model
        self.secret_fields = tuple(secret_fields)
        self.outbox = outbox
        self._on_reset = on_reset
        self._on_config = on_config
        configured_seed = getattr(config, "seed", None)
        self._seed = seed if configured_seed is None else configured_seed
        self.random = random.Random(self._seed)
        self.faults: FaultQueue[F] = FaultQueue(chance=self.random.random)
        self.requests = RequestLog()
        #: Counts resets: a call still waiting out its latency when the sandbox is reset
        #: belongs to a world that is gone (see :meth:`intercept`).
        self._generation = 0
        self.clock = clock
        #: Loops the lifespan runs while the app is served (see :meth:`app`).
        self.background: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
        if on_config is not None:
            on_config(config)

    # -- used by the sandbox's handlers

    def new_id(self, prefix: str = "", length: int = 24, alphabet: str = ID_ALPHABET) -> str:
        """``prefix`` and ``length`` characters of ``alphabet`` drawn from :attr:`random`,
        so a seeded sandbox hands out the same ids in every run."""
        return prefix + "".join(self.random.choices(alphabet, k=length))

    async def intercept(
        self,
        request: Request,
        operation: str,
        scope: str | None = None,
        *,
        render: Callable[[F], Response],
        where: Callable[[F], bool] | None = None,
        **log_details: Any,
    ) -> tuple[Response | None, dict[str, Any]]:
        """What every provider call goes through before the sandbox answers it: logged
        (``operation``, ``scope`` when given, and ``log_details``: never a credential),
        given the first queued fault aimed at it when it arrives (see
        :meth:`FaultQueue.take`), slowed down by the settings' ``latency_seconds`` (see
        :func:`pause`), then answered by that fault: a :data:`TRANSPORT_KINDS` fault by the
        kit (a ``hang`` after its ``hang_seconds``), any other by ``render``, the sandbox's
        rendering in its provider's words (it may raise instead, if the sandbox answers
        errors by exception).

        A call that was still waiting out its latency when the sandbox was reset (its
        client gave up long ago, and a test has moved on) is answered 503 and touches
        nothing: it must not take a fault or change state queued for what comes next.

        Returns the fault's answer (``None``: no fault, go on) and the call's log entry, for
        the handler to add its outcome to.
        """
        scoped = {"scope": scope} if scope is not None else {}
        entry = self.requests.record(request, operation=operation, **scoped, **log_details)
        generation = self._generation
        fault = self.faults.take(operation, scope, where=where)
        await pause(request, float(getattr(self.config, "latency_seconds", 0) or 0))
        if generation != self._generation:
            return JSONResponse(
                {"detail": "the sandbox was reset while this call waited"}, 503
            ), entry
        if fault is None:
            return None, entry
        if fault.kind == "hang":
            await pause(request, fault.hang_seconds)
        answered = transport_fault(fault)
        return (answered if answered is not None else render(fault)), entry

    def update_config(self, changes: Mapping[str, Any]) -> C:
        """Validate ``changes`` over the current settings and adopt them. Raises
        ``ValueError`` naming unknown settings, ``ValidationError`` for bad values."""
        model = type(self.config)
        unknown = sorted(set(changes) - set(model.model_fields))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        current = {name: getattr(self.config, name) for name in model.model_fields}
        self.config = model.model_validate({**current, **changes})
        if getattr(self.config, "seed", None) != current.get("seed"):
            self.random.seed(getattr(self.config, "seed", None))
        if self._on_config is not None:
            self._on_config(self.config)
        return self.config

    async def reset(self) -> None:
        """Back to the starting settings and real time with no faults, requests, events or
        deliveries; then the sandbox's own ``on_reset``."""
        self._generation += 1
        if self.outbox is not None:
            await self.outbox.reset()
        self.faults.clear()
        self.requests.clear()
        self.config = self._initial
        self.random.seed(self._seed)
        if self.clock is not None:
            self.clock.offset = 0.0
        if self._on_config is not None:
            self._on_config(self.config)
        if self._on_reset is not None:
            outcome = self._on_reset()
            if outcome is not None:
                await outcome

    async def shutdown(self) -> None:
        """Stop deliveries in flight (call it from the app's lifespan)."""
        if self.outbox is not None:
            await self.outbox.stop()

    @asynccontextmanager
    async def lifespan(self, _app: object = None) -> AsyncIterator[None]:
        """A lifespan for the sandbox's app (``FastAPI(lifespan=kit.lifespan)``): it runs
        the :attr:`background` loops while the app is served; shutting down cancels them
        and the automatic deliveries still running or waiting to retry. Served without a
        lifespan (tests through ASGI transport), nothing runs in the background, and the
        end of the server's event loop cancels deliveries."""
        tasks = [asyncio.create_task(loop()) for loop in self.background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.shutdown()

    def app(
        self,
        title: str,
        *,
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
        **options: Any,
    ) -> FastAPI:
        """The sandbox's FastAPI app: the control routes (:meth:`router`) mounted first,
        :meth:`lifespan`, and :class:`Answered` rendered as its response.

        :param title: the app's title.
        :param background: loops to run while the app is served (e.g. a provider that
            pushes on its own schedule); a sandbox tested without a lifespan offers a
            control route doing one round on demand.
        :param options: more ``FastAPI`` arguments; the API docs are off unless
            ``docs_url``/``openapi_url`` say where.
        """
        self.background = tuple(background)
        settings: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None}
        app = FastAPI(title=title, lifespan=self.lifespan, **{**settings, **options})
        app.include_router(self.router())
        app.add_exception_handler(Answered, _answered)
        return app

    # -- the control routes

    def router(self) -> APIRouter:
        """The control API (see the module docstring); include it before catch-all routes."""
        router = APIRouter(prefix=CONTROL_PREFIX, tags=["sandbox control"])
        fault_model = self.fault_model

        @router.get("/config")
        async def read_config() -> dict[str, Any]:
            return public_settings(self.config, self.secret_fields)

        @router.post("/config")
        async def change_config(changes: dict[str, Any] = Body()) -> Response:  # noqa: B008
            try:
                self.update_config(changes)
            except ValidationError as exc:
                return invalid(exc)
            except ValueError as exc:
                return JSONResponse({"detail": str(exc)}, 422)
            return JSONResponse(public_settings(self.config, self.secret_fields))

        @router.post("/reset")
        async def reset() -> dict[str, str]:
            await self.reset()
            return {"status": "reset"}

        @router.post("/faults")
        async def add_fault(raw: dict[str, Any] = Body()) -> Response:  # noqa: B008
            try:
                fault = fault_model.model_validate(raw)
            except ValidationError as exc:
                return invalid(exc)
            try:
                queued = self.faults.add(fault)
            except FaultQueueFull as exc:
                return JSONResponse({"detail": str(exc)}, 409)
            return JSONResponse({"queued": queued})

        @router.get("/faults")
        async def list_faults() -> list[dict[str, Any]]:
            return [fault.model_dump(mode="json") for fault in self.faults.pending()]

        @router.delete("/faults")
        async def clear_faults() -> dict[str, int]:
            return {"cleared": self.faults.clear()}

        @router.get("/requests")
        async def recent_requests() -> list[dict[str, Any]]:
            return self.requests.entries()

        @router.delete("/requests")
        async def forget_requests() -> dict[str, int]:
            return {"cleared": self.requests.clear()}

        clock = self.clock
        if clock is not None:

            @router.post("/clock")
            async def move_clock(change: ClockChange) -> dict[str, float]:
                return {"now": clock.move(change)}

        outbox = self.outbox
        if outbox is not None:

            @router.get("/events")
            async def list_events(pending_only: bool = False) -> dict[str, Any]:
                events = outbox.events(pending_only=pending_only)[-MAX_EVENTS_LISTED:]
                return {
                    "data": [event.listed() for event in events],
                    "dropped_pending": outbox.dropped_pending,
                }

            @router.get("/events/{event_id}")
            async def sent_event(event_id: str) -> Response:
                # the bytes themselves, not a re-encoding: a test can check a signature
                # over them or compare them with what its endpoint received
                event = outbox.event(event_id)
                if event is None:
                    return JSONResponse({"detail": f"no such event: {event_id[:100]!r}"}, 404)
                return Response(event.body, media_type=event.content_type)

            @router.get("/deliveries")
            async def list_deliveries(event_id: str | None = None) -> list[dict[str, Any]]:
                return [
                    attempt.logged()
                    for attempt in outbox.attempts
                    if event_id is None or attempt.event_id == event_id
                ]

            @router.post("/deliver")
            async def deliver(raw: dict[str, Any] | None = Body(default=None)) -> Response:  # noqa: B008
                try:
                    request = DeliverRequest.model_validate(raw or {})
                except ValidationError as exc:
                    return invalid(exc)
                try:
                    attempts = await outbox.deliver(request)
                except DeliveryRefused as exc:
                    return JSONResponse({"detail": exc.detail}, exc.status_code)
                return JSONResponse({"deliveries": [a.listed() for a in attempts]})

        return router
