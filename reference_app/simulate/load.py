"""An open-loop HTTP load generator (asyncio): requests arrive at a target rate whether or
not earlier ones have been answered.

A closed-loop driver (N users, each waiting for its answer before the next request)
slows down exactly when the server does, and so hides the queueing the audit warns about
(SCALE-3, SCALE-8: "pool exhaustion", "API timeout errors"). Here arrivals follow a Poisson
process at the scenario's rate, each request is sent at its arrival time on its own task, and its
latency is measured from that arrival time — a server that falls behind shows it in p99
and in timeouts, not in a quietly lower request rate (the "coordinated omission" problem).

Request classes: storefront reads (``GET /public/sellpages/{slug}``, from many client IPs
through ``X-Forwarded-For`` as a proxy would set them), seller dashboard reads with real
logins (orders, campaigns, stats), and checkouts (``POST …/orders`` with the payment
gateway whose sandbox the simulation drives, then paid at that sandbox through
:class:`~pixecom_core.providers.DemoPayments`, whose signed webhook reaches the API).

Behind the deploy kit's nginx (:class:`Edge`, issue 18 item 2) the generator speaks HTTPS
to nginx from many loopback addresses — nginx sets ``X-Forwarded-For`` itself and
rate-limits per address, as it would real shoppers — and records each storefront answer's
``X-Cache-Status``. The generator's own CPU over the window is measured
(``LoadResult.cpu_seconds``): a generator short of a core sends late, and its lateness
would be read as the API's. The hot path (every timed request) therefore speaks HTTP/1.1
through :mod:`reference_app.simulate.http1`, a lean keep-alive client over pre-rendered
request bytes; httpx, at 4.5-6 ms of CPU per answer, needed two to three cores for C's
500 req/s. httpx stays on the cold paths (logins before the window; the checkouts' pay
calls at the gateway's sandbox, through the caller's :class:`DemoPayments`).
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

from pixecom_core.providers import DemoPayment, DemoPayments
from reference_app.api.shedding import SHED_HEADER
from reference_app.simulate.http1 import Answer, AnswerError, ConnectionSlots, render_request

#: A request still unanswered after this long counts as a timeout (an error).
REQUEST_TIMEOUT_SECONDS = 10.0
#: Logins (before the window, not measured) wait this long: a password check on a
#: freshly started API process, on a machine shared with other work, passed 10 s.
LOGIN_TIMEOUT_SECONDS = 30.0
#: Requests the generator keeps in flight at most; past it an arrival is not sent and is
#: counted as ``not_sent`` (the generator, not the server, is saturated then).
MAX_IN_FLIGHT = 4_000
#: Keep-alive connections the generator opens to the API per request class at most (its
#: requests on the wire: an arrival finding them all busy waits for one, from its
#: arrival time).
MAX_CONNECTIONS = 128
#: Behind nginx, the loopback addresses the generator connects from (each class's
#: connections spread evenly over its share of them). nginx rate-limits public reads at
#: 10/s per address (burst 20): 128 addresses, split between the classes by
#: ``CLIENT_SHARES``, keep 500 req/s of the audit's mix under that (storefront ~5/s per
#: address), as thousands of shoppers' addresses would.
EDGE_CLIENT_ADDRESSES = 128
#: nginx's micro-cache status header on the sellpages it caches.
CACHE_STATUS_HEADER = "X-Cache-Status"
#: The same, as :class:`~reference_app.simulate.http1.Answer` keys it (lower case).
CACHE_STATUS_HEADER_KEY = CACHE_STATUS_HEADER.lower()
STOREFRONT = "storefront"
DASHBOARD = "dashboard"
CHECKOUT = "checkout"
LOGIN = "login"
#: Each class's part of the edge's client addresses (its rate over nginx's per-address
#: limits); every class has its own :data:`MAX_CONNECTIONS` connection slots.
CLIENT_SHARES = {STOREFRONT: 0.5, DASHBOARD: 0.375, CHECKOUT: 0.125}


def poisson_arrivals(rate: float, duration: float, rng: random.Random) -> list[float]:
    """Arrival offsets (seconds from the start, increasing, all below ``duration``) of a
    Poisson process of ``rate`` arrivals per second: exponential gaps of mean ``1/rate``."""
    if rate < 0 or duration < 0:
        raise ValueError("rate and duration must not be negative")
    arrivals: list[float] = []
    if rate == 0:
        return arrivals
    moment = rng.expovariate(rate)
    while moment < duration:
        arrivals.append(moment)
        moment += rng.expovariate(rate)
    return arrivals


def merge_arrivals(streams: dict[str, list[float]]) -> list[tuple[float, str]]:
    """Several classes' arrivals as one time-ordered plan of (offset, class)."""
    plan = [(moment, name) for name, moments in streams.items() for moment in moments]
    plan.sort()
    return plan


@dataclass(frozen=True)
class Outcome:
    """One request: its class, arrival offset, latency and how it ended.

    ``status`` is the HTTP status, or 0 when no answer came (timeout, connection error).
    """

    kind: str
    arrival: float
    latency: float
    status: int
    shed: bool = False
    #: nginx's ``X-Cache-Status`` (HIT, MISS, STALE, …) when the answer came through it.
    cache: str | None = None

    @property
    def error(self) -> bool:
        """A failure of the service: no answer, or a 5xx that is not a deliberate shed."""
        return self.status == 0 or (self.status >= 500 and not self.shed)


@dataclass
class ClassStats:
    """Latency and outcome figures of one request class (or of all)."""

    requests: int = 0
    ok: int = 0
    #: Timeouts and 5xx other than sheds.
    errors: int = 0
    #: The part of ``errors`` that are 5xx answers (not sheds).
    server_errors: int = 0
    shed: int = 0
    throttled: int = 0
    client_errors: int = 0
    not_sent: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @property
    def error_rate(self) -> float:
        """Errors (no answer, or 5xx other than sheds) over requests sent."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def shed_rate(self) -> float:
        """Deliberate sheds (503 + ``X-PixEcom-Shed``) over requests sent."""
        return self.shed / self.requests if self.requests else 0.0


def percentiles(latencies: Sequence[float], quantiles: Sequence[float]) -> list[float]:
    """The given percentiles (0–100) of ``latencies``, linearly interpolated (numpy's
    default method); empty input is an error."""
    if not latencies:
        raise ValueError("no latencies")
    values = np.percentile(np.asarray(latencies, dtype=float), list(quantiles))
    return [float(v) for v in np.atleast_1d(values)]


def summarise(outcomes: Sequence[Outcome], not_sent: int = 0) -> ClassStats:
    """Counts and latency percentiles (of answered requests, in ms) of ``outcomes``."""
    stats = ClassStats(requests=len(outcomes), not_sent=not_sent)
    answered: list[float] = []
    for outcome in outcomes:
        if outcome.shed:
            stats.shed += 1
        elif outcome.error:
            stats.errors += 1
            stats.server_errors += outcome.status >= 500
        elif outcome.status == 429:
            stats.throttled += 1
        elif outcome.status >= 400:
            stats.client_errors += 1
        else:
            stats.ok += 1
        if outcome.status and not outcome.shed:
            answered.append(outcome.latency * 1000)
    if answered:
        stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.max_ms = percentiles(
            answered, (50, 90, 99, 100)
        )
    return stats


@dataclass
class Session:
    """A logged-in seller: its access token and a storefront slug of its own."""

    email: str
    access_token: str
    client_ip: str


@dataclass
class LoadTargets:
    """What the generator needs to know about the generated data, and where it pays.

    :param gateway: the identifier of the payment gateway checkouts are placed with.
    :param payments: pays those checkouts at the gateway's sandbox (owned by the caller,
        which closes it).
    """

    slugs: list[str]
    logins: list[tuple[str, str]]
    gateway: str
    payments: DemoPayments


@dataclass
class LoadResult:
    """Every outcome, the payments paid at the sandbox, and the plan's size."""

    outcomes: list[Outcome] = field(default_factory=list)
    not_sent: dict[str, int] = field(default_factory=dict)
    paid_references: list[str] = field(default_factory=list)
    #: Pay calls to the sandbox that failed (not counted as paid).
    payment_failures: int = 0
    planned: int = 0
    elapsed: float = 0.0
    #: CPU seconds (user + system) the generator's process, and any children it waited
    #: for, used during :meth:`LoadGenerator.run`.
    cpu_seconds: float = 0.0
    #: TLS connections the generator closed (their request had timed out) on which
    #: uvloop still had bytes to process: counted by :class:`TlsCloseRaces`, not logged.
    tls_close_races: int = 0

    @property
    def cores_used(self) -> float:
        """The generator's CPU over the window, in cores (1.0: one core all the time)."""
        return self.cpu_seconds / self.elapsed if self.elapsed else 0.0

    def cache_statuses(self, kind: str = STOREFRONT) -> dict[str, int]:
        """How many answers of class ``kind`` carried each ``X-Cache-Status`` (empty when
        no edge answered)."""
        return dict(Counter(o.cache for o in self.outcomes if o.kind == kind and o.cache))

    def by_class(self) -> dict[str, ClassStats]:
        """Figures per request class, plus ``all``."""
        kinds = sorted({o.kind for o in self.outcomes} | set(self.not_sent))
        result = {
            kind: summarise(
                [o for o in self.outcomes if o.kind == kind], self.not_sent.get(kind, 0)
            )
            for kind in kinds
        }
        result["all"] = summarise(
            [o for o in self.outcomes if o.kind != LOGIN], sum(self.not_sent.values())
        )
        return result


def _client_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def edge_client_addresses(count: int = EDGE_CLIENT_ADDRESSES) -> list[str]:
    """``count`` loopback addresses to connect from (Linux routes all of 127.0.0.0/8 to
    the loopback interface), none of them 127.0.0.1."""
    return [f"127.18.{index // 250}.{index % 250 + 1}" for index in range(count)]


@dataclass(frozen=True)
class Edge:
    """Where the generator reaches the API through nginx.

    :param url: nginx's HTTPS base URL.
    :param certificate: the certificate nginx presents (self-signed; trusted for it only).
    :param source_addresses: loopback addresses to connect from, shared between the
        request classes by :func:`split_addresses`.
    """

    url: str
    certificate: Path
    source_addresses: tuple[str, ...] = field(
        default_factory=lambda: tuple(edge_client_addresses())
    )

    def __post_init__(self) -> None:
        split_addresses(self.source_addresses)  # refuses too few addresses now, not later


def split_addresses(addresses: Sequence[str]) -> dict[str, list[str]]:
    """``addresses`` shared between the request classes by :data:`CLIENT_SHARES`: each
    class at least one (its share rounded down), the last class what is left."""
    if len(addresses) < len(CLIENT_SHARES):
        raise ValueError(f"at least {len(CLIENT_SHARES)} addresses: one per request class")
    kinds = list(CLIENT_SHARES)
    split: dict[str, list[str]] = {}
    start = 0
    for kind in kinds[:-1]:
        count = max(1, int(len(addresses) * CLIENT_SHARES[kind]))
        split[kind] = list(addresses[start : start + count])
        start += count
    split[kinds[-1]] = list(addresses[start:])
    return split


class TlsCloseRaces:
    """Counts, instead of logging, uvloop's "Fatal error on SSL protocol" for a TLS
    connection the generator had already closed; any other error reaches the loop's
    previous handler.

    A request past its deadline gets its connection closed (the late answer must not be
    read as the next request's); when bytes for it were still arriving, uvloop's TLS
    layer tries to write on the closed socket and logs a traceback. The request was
    already counted as a timeout: the traceback says nothing new, and hundreds of them
    bury the run's progress.
    """

    MESSAGE = "Fatal error on SSL protocol"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        self._previous = loop.get_exception_handler()

    def __enter__(self) -> TlsCloseRaces:
        self.loop.set_exception_handler(self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.set_exception_handler(self._previous)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if (
            context.get("message") == self.MESSAGE
            and isinstance(error, RuntimeError)
            and "the handler is closed" in str(error)
        ):
            self.count += 1
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _process_cpu_seconds() -> float:
    """User + system CPU of this process and of its children that were waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


#: The dashboard reads a seller makes: path, and whether it asks for the last 7 days.
DASHBOARD_READS = (
    ("/orders", False),
    ("/campaigns", False),
    ("/stats/overview", True),
    ("/stats/sellpages", True),
)


class LoadGenerator:
    """Drives the API with the request mix of a scenario.

    :param api_url: the API's base URL.
    :param targets: slugs, logins, and the gateway and sandbox the checkouts pay at.
    :param seed: makes arrivals and choices reproducible.
    :param pay_checkouts: pay each checkout at the sandbox (its webhooks reach the API);
        off, payments are only created, to be paid later (the webhook burst).
    :param edge: send every request through this nginx instead of to ``api_url``.
    """

    def __init__(
        self,
        api_url: str,
        targets: LoadTargets,
        *,
        seed: int = 7,
        pay_checkouts: bool = True,
        edge: Edge | None = None,
    ) -> None:
        self.api_url = edge.url if edge is not None else api_url
        self.edge = edge
        self.targets = targets
        self.rng = random.Random(seed)
        self.pay_checkouts = pay_checkouts
        self.sessions: list[Session] = []
        self.unpaid_payments: list[DemoPayment] = []
        self._paid: list[str] = []
        self._payment_failures = 0
        url = urlsplit(self.api_url)
        if url.scheme not in ("http", "https") or url.hostname is None:
            raise ValueError(f"not an http(s) URL: {self.api_url!r}")
        port = url.port or (443 if url.scheme == "https" else 80)
        self._host_header = url.netloc
        self._tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._tls = ssl.create_default_context(
                cafile=str(edge.certificate) if edge is not None else None
            )
            # HTTP/1.1 only: nginx listens with http2 too, and would otherwise pick it.
            self._tls.set_alpn_protocols(["http/1.1"])
        # Shoppers, sellers and checkouts are different people: each class has its own
        # connection slots (and, behind nginx, its own source addresses), so a page view
        # never queues behind a slow dashboard read in the generator. A request waits for
        # a free slot from its arrival time: a server that falls behind shows it.
        sources: dict[str, list[str | None]] = (
            {kind: list(mine) for kind, mine in split_addresses(edge.source_addresses).items()}
            if edge is not None
            else dict.fromkeys(CLIENT_SHARES, [None])
        )
        self._sources = sources
        self._connections = {
            kind: ConnectionSlots(
                url.hostname,
                port,
                slots=MAX_CONNECTIONS,
                source_addresses=mine,
                tls=self._tls,
            )
            for kind, mine in sources.items()
        }
        # Pre-rendered request bytes: only the client address (a header) varies per request.
        self._storefront_requests = [
            self._render("GET", f"/public/sellpages/{slug}") for slug in targets.slugs
        ]
        self._dashboard_requests: dict[tuple[int, int, str], bytes] = {}

    def _render(
        self, method: str, target: str, headers: Sequence[tuple[str, str]] = ()
    ) -> tuple[bytes, bytes]:
        """A request's bytes before and after its ``X-Forwarded-For`` value."""
        rendered = render_request(
            method, target, self._host_header, [*headers, ("X-Forwarded-For", "\x00")]
        )
        before, after = rendered.split(b"\x00")
        return before, after

    @property
    def connections_opened(self) -> int:
        """Connections (TLS handshakes, behind nginx) the timed requests opened so far."""
        return sum(slots.connections_opened for slots in self._connections.values())

    async def aclose(self) -> None:
        """Close the API connections (the targets' ``payments`` belong to the caller)."""
        for slots in self._connections.values():
            slots.close()

    async def log_in(self, count: int, result: LoadResult, concurrency: int = 4) -> None:
        """Log ``count`` sellers in (real password checks), each from its own client IP
        (behind nginx: from the addresses their dashboards read from)."""
        semaphore = asyncio.Semaphore(concurrency)
        chosen = self.targets.logins[:count]
        # A cold path, before the window: httpx, one client per source address.
        clients = [
            httpx.AsyncClient(
                base_url=self.api_url,
                timeout=LOGIN_TIMEOUT_SECONDS,
                transport=httpx.AsyncHTTPTransport(
                    verify=self._tls if self._tls is not None else True,
                    local_address=address,
                ),
            )
            for address in self._sources[DASHBOARD]
        ]

        async def one(index: int, email: str, password: str) -> None:
            ip = _client_ip(self.rng)
            async with semaphore:
                started = time.perf_counter()
                try:
                    answer = await clients[index % len(clients)].post(
                        "/auth/login",
                        json={"email": email, "password": password},
                        headers={"X-Forwarded-For": ip},
                    )
                except httpx.HTTPError:
                    result.outcomes.append(Outcome(LOGIN, 0.0, time.perf_counter() - started, 0))
                    return
            result.outcomes.append(
                Outcome(LOGIN, 0.0, time.perf_counter() - started, answer.status_code)
            )
            if answer.status_code == 200:
                self.sessions.append(Session(email, answer.json()["access_token"], ip))

        try:
            await asyncio.gather(
                *(one(index, email, password) for index, (email, password) in enumerate(chosen))
            )
        finally:
            for client in clients:
                await client.aclose()

    def _dashboard_request(self) -> bytes:
        """A logged-in seller's dashboard read of the last 7 days (rendered once per
        seller, read and day)."""
        session_index = self.rng.randrange(len(self.sessions))
        read_index = self.rng.randrange(len(DASHBOARD_READS))
        today = datetime.now(UTC).date().isoformat()
        key = (session_index, read_index, today)
        request = self._dashboard_requests.get(key)
        if request is None:
            session = self.sessions[session_index]
            path, dated = DASHBOARD_READS[read_index]
            until = datetime.fromisoformat(today).date()
            params = (
                {"since": (until - timedelta(days=6)).isoformat(), "until": today}
                if dated
                else {"limit": "50"}
            )
            request = render_request(
                "GET",
                f"{path}?{urlencode(params)}",
                self._host_header,
                [
                    ("Authorization", f"Bearer {session.access_token}"),
                    ("X-Forwarded-For", session.client_ip),
                ],
            )
            self._dashboard_requests[key] = request
        return request

    def _checkout_request(self) -> bytes:
        slug = self.rng.choice(self.targets.slugs)
        body = json.dumps(
            {
                "gateway": self.targets.gateway,
                "customer_email": f"shopper{self.rng.randrange(10**9)}@example.com",
                "quantity": 1,
                "return_url": "https://shop.example.com/thanks",
                "cancel_url": "https://shop.example.com/cart",
            }
        ).encode()
        return render_request(
            "POST",
            f"/public/sellpages/{slug}/orders",
            self._host_header,
            [("Content-Type", "application/json"), ("X-Forwarded-For", _client_ip(self.rng))],
            body,
        )

    async def _send(self, kind: str, arrival: float, started_at: float, deadline: float) -> Outcome:
        """Send one request of class ``kind`` that arrived at ``started_at``
        (``time.perf_counter``) and must be answered by ``deadline`` (the loop's clock)."""
        if kind == DASHBOARD and self.sessions:
            request = self._dashboard_request()
        elif kind == CHECKOUT:
            request = self._checkout_request()
        else:
            before, after = self.rng.choice(self._storefront_requests)
            request = before + _client_ip(self.rng).encode() + after
        try:
            answer = await self._connections.get(kind, self._connections[STOREFRONT]).request(
                request, deadline, idempotent=kind != CHECKOUT
            )
        except AnswerError:
            return Outcome(kind, arrival, time.perf_counter() - started_at, 0)
        outcome = Outcome(
            kind,
            arrival,
            time.perf_counter() - started_at,
            answer.status,
            shed=answer.status == 503 and answer.headers.get(SHED_HEADER) == "1",
            cache=answer.headers.get(CACHE_STATUS_HEADER_KEY),
        )
        if kind == CHECKOUT and answer.status == 201:
            await self._placed(answer)
        return outcome

    async def _placed(self, answer: Answer) -> None:
        """A checkout was placed: pay it now, or keep it for the webhook burst."""
        placed = json.loads(answer.body)
        payment = DemoPayment(
            gateway_reference=placed["gateway_reference"],
            amount_minor=placed["amount_minor"],
            currency=placed["currency"],
        )
        if self.pay_checkouts:
            await self._pay(payment)
        else:
            self.unpaid_payments.append(payment)

    async def _pay(self, payment: DemoPayment) -> None:
        """The shopper pays at the gateway's sandbox; it sends the signed webhooks.

        Only a payment the sandbox confirmed counts as paid: one whose call failed may
        or may not have been made, and is counted in ``payment_failures`` instead.
        """
        try:
            await self.targets.payments.pay(payment)
        except Exception:  # noqa: BLE001 - DemoPayments.pay raises whatever its sandbox does
            self._payment_failures += 1
            return
        self._paid.append(payment.gateway_reference)

    async def place_unpaid_orders(self, count: int, concurrency: int = 16) -> list[DemoPayment]:
        """Check out ``count`` orders without paying them (a webhook burst pays them
        later); return their payments."""
        semaphore = asyncio.Semaphore(concurrency)
        self.pay_checkouts = False
        loop = asyncio.get_running_loop()

        async def one() -> None:
            async with semaphore:
                await self._send(
                    CHECKOUT, 0.0, time.perf_counter(), loop.time() + REQUEST_TIMEOUT_SECONDS
                )

        try:
            await asyncio.gather(*(one() for _ in range(count)))
        finally:
            self.pay_checkouts = True
        payments = list(self.unpaid_payments)
        self.unpaid_payments.clear()
        return payments

    async def run(
        self,
        rates: dict[str, float],
        duration: float,
        *,
        on_progress: Callable[[float, int, int], None] | None = None,
    ) -> LoadResult:
        """Send ``rates[class]`` requests per second of each class for ``duration`` s.

        Open loop: each request is sent at its arrival time whatever became of the
        earlier ones, and its latency and deadline run from that time; an arrival that
        finds :data:`MAX_IN_FLIGHT` requests unanswered is not sent (``not_sent``).
        """
        plan = merge_arrivals(
            {kind: poisson_arrivals(rate, duration, self.rng) for kind, rate in rates.items()}
        )
        result = LoadResult(planned=len(plan))
        self._paid = result.paid_references
        self._payment_failures = 0
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        start = loop.time()
        perf_start = time.perf_counter()
        cpu_start = _process_cpu_seconds()
        last_report = 0.0
        outcomes = result.outcomes

        async def one(kind: str, arrival: float) -> None:
            outcomes.append(
                await self._send(
                    kind, arrival, perf_start + arrival, start + arrival + REQUEST_TIMEOUT_SECONDS
                )
            )

        with TlsCloseRaces(loop) as races:
            for arrival, kind in plan:
                delay = start + arrival - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(tasks) >= MAX_IN_FLIGHT:
                    result.not_sent[kind] = result.not_sent.get(kind, 0) + 1
                    continue
                task = loop.create_task(one(kind, arrival))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if on_progress is not None and arrival - last_report >= 5:
                    last_report = arrival
                    on_progress(arrival, len(outcomes), len(tasks))
            if tasks:
                await asyncio.wait(tasks)
        result.tls_close_races = races.count
        result.elapsed = time.perf_counter() - perf_start
        result.cpu_seconds = _process_cpu_seconds() - cpu_start
        result.payment_failures = self._payment_failures
        return result
