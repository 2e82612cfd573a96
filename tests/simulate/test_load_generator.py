"""The open-loop load generator: Poisson arrivals, percentile math, outcome classes, and
that requests keep arriving at the target rate while the server is slow (open loop)."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pixecom_core.providers import DemoPayment
from reference_app.simulate.load import (
    CHECKOUT,
    STOREFRONT,
    LoadGenerator,
    LoadTargets,
    Outcome,
    merge_arrivals,
    percentiles,
    poisson_arrivals,
    summarise,
)


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
