"""The open-loop load generator: Poisson arrivals, percentile math, outcome classes, that
requests keep arriving at the target rate while the server is slow (open loop), and the
lean HTTP/1.1 client it sends with (keep-alive, chunked bodies, TLS from source
addresses; closed connections, malformed and late answers are errors)."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pixecom_core.providers import DemoPayment
from reference_app.simulate.edge import self_signed_certificate
from reference_app.simulate.http1 import (
    AnswerTimeoutError,
    ConnectionClosedError,
    ConnectionSlots,
    MalformedAnswerError,
    render_request,
)
from reference_app.simulate.load import (
    CHECKOUT,
    STOREFRONT,
    LoadGenerator,
    LoadTargets,
    Outcome,
    TlsCloseRaces,
    merge_arrivals,
    percentiles,
    poisson_arrivals,
    summarise,
)
from reference_app.simulate.runner import event_loop_factory


@given(
    rate=st.floats(min_value=0.0, max_value=500.0),
    duration=st.floats(min_value=0.0, max_value=20.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_arrivals_are_increasing_and_inside_the_window(
    rate: float, duration: float, seed: int
) -> None:
    arrivals = poisson_arrivals(rate, duration, random.Random(seed))
    assert all(0 <= moment < duration for moment in arrivals)
    assert arrivals == sorted(arrivals)
    assert len(set(arrivals)) == len(arrivals)


def test_arrivals_average_the_rate() -> None:
    # A Poisson count of mean 10,000 lies within 5 standard deviations (±500) of it.
    arrivals = poisson_arrivals(200.0, 50.0, random.Random(1))
    assert abs(len(arrivals) - 10_000) < 5 * math.sqrt(10_000)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert abs(sum(gaps) / len(gaps) - 1 / 200) < 0.0005


def test_no_rate_means_no_arrivals_and_negative_values_are_refused() -> None:
    assert poisson_arrivals(0.0, 60.0, random.Random(1)) == []
    with pytest.raises(ValueError):
        poisson_arrivals(-1.0, 60.0, random.Random(1))
    with pytest.raises(ValueError):
        poisson_arrivals(1.0, -60.0, random.Random(1))


@given(
    streams=st.dictionaries(
        st.sampled_from(["storefront", "dashboard", "checkout"]),
        st.lists(st.floats(min_value=0, max_value=100), max_size=50),
    )
)
def test_merged_plan_is_ordered_and_keeps_every_arrival(
    streams: dict[str, list[float]],
) -> None:
    plan = merge_arrivals(streams)
    assert [moment for moment, _ in plan] == sorted(moment for moment, _ in plan)
    for name, moments in streams.items():
        assert sorted(m for m, kind in plan if kind == name) == sorted(moments)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_bounded(latencies: list[float]) -> None:
    p0, p50, p90, p99, p100 = percentiles(latencies, (0, 50, 90, 99, 100))
    assert min(latencies) == p0 <= p50 <= p90 <= p99 <= p100 == max(latencies)


def test_percentiles_interpolate_and_refuse_nothing() -> None:
    assert percentiles([10.0, 20.0], (50,)) == [15.0]
    assert percentiles([1.0, 2.0, 3.0, 4.0, 5.0], (50, 100)) == [3.0, 5.0]
    with pytest.raises(ValueError):
        percentiles([], (50,))


def test_outcomes_are_classified_sheds_apart_from_errors() -> None:
    outcomes = [
        Outcome(STOREFRONT, 0.0, 0.010, 200),
        Outcome(STOREFRONT, 0.1, 0.020, 304),
        Outcome(STOREFRONT, 0.2, 0.001, 503, shed=True),
        Outcome(STOREFRONT, 0.3, 0.500, 503),  # a 503 without the shed header: an error
        Outcome(STOREFRONT, 0.4, 10.0, 0),  # no answer: an error
        Outcome(STOREFRONT, 0.5, 0.005, 429),
        Outcome(STOREFRONT, 0.6, 0.005, 404),
    ]
    stats = summarise(outcomes, not_sent=2)
    assert (stats.requests, stats.ok, stats.shed, stats.errors) == (7, 2, 1, 2)
    assert stats.server_errors == 1
    assert (stats.throttled, stats.client_errors, stats.not_sent) == (1, 1, 2)
    assert stats.error_rate == pytest.approx(2 / 7)
    assert stats.shed_rate == pytest.approx(1 / 7)
    # Latency percentiles cover answered, non-shed requests (not the timeout).
    assert stats.max_ms == pytest.approx(500.0)


def test_no_outcomes_summarise_to_zero_rates() -> None:
    stats = summarise([])
    assert stats.requests == 0 and stats.error_rate == 0 and stats.p99_ms is None


# -- open loop against a slow server ------------------------------------------------------

SLOW_SECONDS = 0.5


def _slow_app() -> Starlette:
    async def sellpage(request: Request) -> Response:
        await asyncio.sleep(SLOW_SECONDS)
        return JSONResponse({"slug": request.path_params["slug"]})

    return Starlette(routes=[Route("/public/sellpages/{slug}", sellpage)])


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def slow_server() -> Iterator[str]:
    with serving(_slow_app()) as url:
        yield url


async def test_requests_arrive_at_the_rate_while_the_server_is_slow(slow_server: str) -> None:
    """A closed loop of one user would send 2 requests a second to a 0.5 s server; the
    open loop keeps sending 40 a second and measures each from its arrival time."""
    generator = LoadGenerator(
        slow_server,
        LoadTargets(slugs=["shop"], logins=[], gateway="test", payments=FlakyPayments()),
        seed=3,
    )
    try:
        result = await generator.run({STOREFRONT: 40.0}, 2.0)
    finally:
        await generator.aclose()
    assert result.planned >= 40  # ~80 expected
    assert len(result.outcomes) == result.planned
    assert all(o.status == 200 for o in result.outcomes)
    assert all(o.latency >= SLOW_SECONDS * 0.9 for o in result.outcomes)
    # Everything was sent within the window (plus one service time), not one at a time.
    assert result.elapsed < 2.0 + 4 * SLOW_SECONDS


class FlakyPayments:
    """A gateway sandbox's :class:`DemoPayments` that confirms payments with an even
    number (``pi_0``, ``pi_2``, …) and refuses the odd ones; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[DemoPayment] = []

    async def pay(self, payment: DemoPayment) -> None:
        self.asked.append(payment)
        if int(payment.gateway_reference.removeprefix("pi_")) % 2:
            raise RuntimeError("the sandbox answered 500")

    async def refund(self, payment: DemoPayment, amount_minor: int) -> None:
        # The load generator pays and never refunds: a refund here is a bug in it.
        raise AssertionError(
            f"the load generator refunded {amount_minor} of {payment.gateway_reference}"
        )

    async def aclose(self) -> None:
        pass


def _shop() -> Starlette:
    """Checkouts answer 201 with payment pi_0, pi_1, … of 29.90 USD."""
    issued = iter(range(10**6))

    async def checkout(_request: Request) -> Response:
        return JSONResponse(
            {"gateway_reference": f"pi_{next(issued)}", "amount_minor": 2990, "currency": "USD"},
            status_code=201,
        )

    return Starlette(routes=[Route("/public/sellpages/{slug}/orders", checkout, methods=["POST"])])


async def test_only_payments_the_sandbox_confirmed_count_as_paid() -> None:
    """A pay call that failed may not have paid: counting it would report a webhook as
    lost that was never sent."""
    payments = FlakyPayments()
    with serving(_shop()) as url:
        generator = LoadGenerator(
            url,
            LoadTargets(slugs=["shop"], logins=[], gateway="test", payments=payments),
            seed=5,
        )
        try:
            result = await generator.run({CHECKOUT: 30.0}, 1.0)
        finally:
            await generator.aclose()
    checkouts = [o for o in result.outcomes if o.status == 201]
    assert len(checkouts) == result.planned > 10
    assert result.paid_references
    assert all(int(ref.removeprefix("pi_")) % 2 == 0 for ref in result.paid_references)
    assert len(result.paid_references) + result.payment_failures == len(checkouts)
    # the sandbox was asked to pay what checkout placed, with its amount
    assert {p.amount_minor for p in payments.asked} == {2990}


# -- the lean HTTP/1.1 client on the hot path (reference_app.simulate.http1) --------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (Content-Length framed) from ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


@asynccontextmanager
async def raw_server(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[int, list[tuple[str, int]]]]:
    """A loopback server running ``handler(reader, writer, connection_number)`` for each
    connection; yields its port and the peers that connected."""
    peers: list[tuple[str, int]] = []
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer, len(peers))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def _soon(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def _answer_forever(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _number: int
) -> None:
    while True:
        request = await _read_request(reader)
        writer.write(_ok(request.split(b" ", 2)[1], b"X-Cache-Status: HIT\r\n"))
        await writer.drain()


async def test_keep_alive_sends_every_request_on_one_connection() -> None:
    async with raw_server(_answer_forever) as (port, peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        try:
            for index in range(20):
                answer = await slots.request(
                    render_request("GET", f"/page/{index}", f"127.0.0.1:{port}"), _soon()
                )
                assert (answer.status, answer.body) == (200, f"/page/{index}".encode())
                assert answer.headers["x-cache-status"] == "HIT"
        finally:
            slots.close()
    assert len(peers) == 1 and slots.connections_opened == 1


async def test_chunked_bodies_are_joined_and_the_connection_kept() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        while True:
            await _read_request(reader)
            # sizes in hex with an extension, split across writes mid-line, and trailers
            for piece in (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
                b"lo\r\n",
                b"0",
                b"f\r\n, chunked world\r\n0\r\nX-Trailer: yes\r\n\r\n",
            ):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)

    async with raw_server(chunked) as (port, peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        try:
            for _ in range(2):
                answer = await slots.request(render_request("GET", "/", "h"), _soon())
                assert answer.body == b"hello, chunked world"
        finally:
            slots.close()
    assert len(peers) == 1


async def test_a_body_framed_by_the_close_is_complete_and_not_reused() -> None:
    async def until_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Pixecom-Shed: 1\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(until_close) as (port, peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        try:
            for _ in range(2):
                answer = await slots.request(render_request("GET", "/", "h"), _soon())
                assert answer.body == b"all of it" and answer.headers["x-pixecom-shed"] == "1"
        finally:
            slots.close()
    assert len(peers) == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed without a byte
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",  # closed mid-body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",  # mid-chunk
    ],
)
async def test_a_connection_closed_before_the_answer_is_complete_is_an_error(
    reply: bytes,
) -> None:
    async def close_early(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with raw_server(close_early) as (port, _peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        with pytest.raises(ConnectionClosedError):
            await slots.request(render_request("GET", "/", "h"), _soon())
        slots.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HELLO\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
    ],
)
async def test_a_malformed_answer_is_an_error(reply: bytes) -> None:
    async def malformed(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(1)  # keep the connection open: the parser must decide alone

    async with raw_server(malformed) as (port, _peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        with pytest.raises(MalformedAnswerError):
            await slots.request(render_request("GET", "/", "h"), _soon())
        slots.close()


async def test_a_late_answer_times_out_and_is_not_read_as_the_next_one() -> None:
    async def late_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        while True:
            request = await _read_request(reader)
            if number == 1:
                await asyncio.sleep(0.5)
            writer.write(_ok(request.split(b" ", 2)[1]))
            await writer.drain()

    async with raw_server(late_first) as (port, peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        try:
            with pytest.raises(AnswerTimeoutError):
                await slots.request(render_request("GET", "/first", "h"), _soon(0.1))
            answer = await slots.request(render_request("GET", "/second", "h"), _soon())
        finally:
            slots.close()
    assert answer.body == b"/second" and len(peers) == 2


async def test_a_reused_connection_the_server_closed_is_retried_only_if_idempotent() -> None:
    """The server's keep-alive timer may close a connection just as a request goes out:
    a GET goes again on a new connection (as browsers do), a checkout POST does not."""

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await _read_request(reader)
        writer.write(_ok(b"first"))  # says keep-alive, but closes at the next request
        await writer.drain()
        await _read_request(reader)

    async with raw_server(one_answer_per_connection) as (port, peers):
        slots = ConnectionSlots("127.0.0.1", port, slots=1)
        try:
            for _ in range(3):
                assert (await slots.request(render_request("GET", "/", "h"), _soon())).status == 200
            with pytest.raises(ConnectionClosedError):
                await slots.request(
                    render_request("POST", "/", "h", body=b"{}"), _soon(), idempotent=False
                )
        finally:
            slots.close()
    # GETs 2 and 3 each went again on a new connection; the POST was not sent again
    assert len(peers) == 3


@pytest.mark.parametrize("loop_factory", [None, event_loop_factory()], ids=["asyncio", "simulate"])
def test_tls_connections_come_from_their_source_addresses(
    tmp_path: Path, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    """On asyncio's loop and on the one the simulation runs (uvloop's, whose TLS
    transport is its own)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_tls_from_source_addresses(tmp_path))


async def _tls_from_source_addresses(tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate, key)
    client_tls = ssl.create_default_context(cafile=str(certificate))
    sources = ["127.18.0.1", "127.18.0.2"]
    async with raw_server(_answer_forever, tls=server_tls) as (port, peers):
        slots = ConnectionSlots(
            "127.0.0.1", port, slots=4, source_addresses=sources, tls=client_tls
        )
        try:
            answers = await asyncio.gather(
                *(slots.request(render_request("GET", f"/{i}", "h"), _soon()) for i in range(40))
            )
        finally:
            slots.close()
    assert sorted(a.body for a in answers) == sorted(f"/{i}".encode() for i in range(40))
    assert len(peers) == 4  # four slots, kept alive: four handshakes for 40 requests
    assert sorted(host for host, _port in peers) == sorted(sources * 2)


async def test_a_stalled_server_shows_in_latency_from_each_arrival(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With two connections and 0.2 s per answer the server handles 10 requests a second;
    offered 40 a second, the requests queue in the generator, and each one's latency runs
    from its arrival time — not from when a connection freed up (coordinated omission)."""
    monkeypatch.setattr("reference_app.simulate.load.MAX_CONNECTIONS", 2)
    answered_at: dict[bytes, float] = {}

    async def stalling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
        while True:
            request = await _read_request(reader)
            await asyncio.sleep(0.2)
            answered_at[request.split(b" ", 2)[1]] = time.perf_counter()
            writer.write(_ok(b"{}"))
            await writer.drain()

    async with raw_server(stalling) as (port, _peers):
        generator = LoadGenerator(
            f"http://127.0.0.1:{port}",
            LoadTargets(slugs=["shop"], logins=[], gateway="test", payments=FlakyPayments()),
            seed=11,
        )
        try:
            result = await generator.run({STOREFRONT: 40.0}, 1.0)
        finally:
            await generator.aclose()
    answered = sorted(result.outcomes, key=lambda o: o.arrival)
    assert len(answered) == result.planned >= 25 and all(o.status == 200 for o in answered)
    # the last arrivals waited for the ~2.5 s of answers queued before them
    assert answered[-1].latency > 1.0
    assert max(o.latency for o in answered) >= (result.planned / 10) - 1.0 - 0.3
    # every latency covers at least the service time, measured from the arrival
    assert all(o.latency >= 0.2 * 0.9 for o in answered)
    assert generator.connections_opened == 2


async def test_closed_connections_and_malformed_answers_count_as_errors() -> None:
    async def broken(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        await _read_request(reader)
        if number % 2:
            writer.write(b"NOT HTTP\r\n\r\n")
            await writer.drain()

    async with raw_server(broken) as (port, _peers):
        generator = LoadGenerator(
            f"http://127.0.0.1:{port}",
            LoadTargets(slugs=["shop"], logins=[], gateway="test", payments=FlakyPayments()),
            seed=13,
        )
        try:
            result = await generator.run({STOREFRONT: 30.0}, 0.5)
        finally:
            await generator.aclose()
    stats = summarise(result.outcomes)
    assert stats.requests == result.planned > 5
    assert stats.errors == stats.requests and stats.ok == 0 and stats.p99_ms is None


def test_only_uvloops_tls_close_race_is_counted_instead_of_logged() -> None:
    seen: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
        with TlsCloseRaces(loop) as races:
            closed = RuntimeError(
                "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
            )
            loop.call_exception_handler({"message": TlsCloseRaces.MESSAGE, "exception": closed})
            loop.call_exception_handler(
                {"message": TlsCloseRaces.MESSAGE, "exception": ValueError("other")}
            )
            loop.call_exception_handler({"message": "Task exception was never retrieved"})
        loop.call_exception_handler({"message": TlsCloseRaces.MESSAGE, "exception": closed})
    finally:
        loop.close()
    assert races.count == 1
    # the others, and the race after the run, reach the previous handler
    assert seen == [
        TlsCloseRaces.MESSAGE,
        "Task exception was never retrieved",
        TlsCloseRaces.MESSAGE,
    ]
