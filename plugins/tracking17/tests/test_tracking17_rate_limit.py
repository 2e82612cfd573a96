"""The client-side rate limit: never more calls per second than configured, whatever the
callers do, and a refusal instead of a long queue."""

import asyncio

import pytest
from conftest import MakeTracker
from hypothesis import given, settings
from hypothesis import strategies as st
from pixecom_tracking17.rate_limit import JITTER_MARGIN_SECONDS, RateLimiter
from pixecom_tracking17.tracker import Tracker17
from tracking17_support import FakeTime, RecordingTransport, SandboxHandle

from pixecom_core.providers import ProviderThrottled, TrackingNumber


def _most_in_any_window(starts: list[float], window: float) -> int:
    """The largest number of ``starts`` inside any half-open window of ``window`` seconds."""
    ordered = sorted(starts)
    return max(
        (sum(1 for other in ordered if start <= other < start + window) for start in ordered),
        default=0,
    )


def numbers(count: int) -> list[TrackingNumber]:
    return [TrackingNumber(number=f"RR5{index:08d}CN", tag="t") for index in range(count)]


async def test_calls_are_spaced_to_three_per_second_on_the_wire(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    fake_time = FakeTime()
    transport = RecordingTransport(fake_time)
    tracker = await make_tracker(
        {"clock": fake_time.clock, "sleep": fake_time.sleep, "transport": transport},
        requests_per_second=3,
    )

    # 10 batches of 40: ten calls, as fast as the caller can make them
    await tracker.register(numbers(400))

    assert len(transport.started) == 10
    assert _most_in_any_window(transport.started, 1.0) == 3
    # the first three go at once, then each waits for the oldest of the last three
    assert transport.started[:3] == [1_000.0] * 3
    assert transport.started[3] == pytest.approx(1_000.0 + 1.0 + JITTER_MARGIN_SECONDS)
    assert len(await sandbox.requests("register")) == 10


async def test_concurrent_callers_share_the_limit(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    fake_time = FakeTime()
    transport = RecordingTransport(fake_time)
    tracker = await make_tracker(
        {"clock": fake_time.clock, "sleep": fake_time.sleep, "transport": transport},
        requests_per_second=3,
    )
    batch = numbers(8)

    await asyncio.gather(*(tracker.fetch_status([number]) for number in batch))

    assert len(transport.started) == 8
    assert _most_in_any_window(transport.started, 1.0) <= 3
    assert len(await sandbox.requests("gettrackinfo")) == 8


async def test_a_slot_too_far_away_is_refused_without_calling(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    fake_time = FakeTime()
    tracker = await make_tracker(
        {"clock": fake_time.clock, "sleep": fake_time.sleep},
        requests_per_second=1,
        max_rate_wait_seconds=0.5,
    )
    await tracker.fetch_status(numbers(1))

    with pytest.raises(ProviderThrottled) as raised:
        await tracker.fetch_status(numbers(1))

    assert raised.value.retry_after_seconds == pytest.approx(1.0 + JITTER_MARGIN_SECONDS)
    assert len(await sandbox.requests("gettrackinfo")) == 1  # the refused call never left
    fake_time.now += 2
    assert await tracker.fetch_status(numbers(1)) == []


async def test_real_time_calls_at_three_per_second_never_meet_a_429(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    """No fake clock: the sandbox enforces 17TRACK's 3 per second by arrival time."""
    await sandbox.configure(rate_limit_per_second=3)
    tracker: Tracker17 = await make_tracker(requests_per_second=3)

    for number in numbers(7):
        await tracker.fetch_status([number])

    calls = await sandbox.requests("gettrackinfo")
    assert [call["status"] for call in calls] == [200] * 7
    assert _most_in_any_window([call["at"] for call in calls], 1.0) <= 3


async def test_without_the_client_limit_the_sandbox_answers_429(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    await sandbox.configure(rate_limit_per_second=3)
    tracker = await make_tracker()  # no client-side limit to speak of

    with pytest.raises(ProviderThrottled):
        for number in numbers(7):
            await tracker.fetch_status([number])

    statuses = [call["status"] for call in await sandbox.requests("gettrackinfo")]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("rate", "burst", "window"),
    [(3, 3, 1.0), (1.5, 1, 1 / 1.5), (0.5, 1, 2.0), (10, 10, 1.0)],
)
def test_burst_and_window(rate: float, burst: int, window: float) -> None:
    limiter = RateLimiter(rate, max_wait_seconds=10, provider="17track")

    assert limiter.burst == burst
    assert limiter.window_seconds == pytest.approx(window + JITTER_MARGIN_SECONDS)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0, max_wait_seconds=1, provider="17track")


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 1.5, 3.0, 5.0]),
    gaps=st.lists(st.floats(min_value=0, max_value=2.0), min_size=1, max_size=40),
)
def test_no_window_ever_holds_more_than_the_rate_allows(rate: float, gaps: list[float]) -> None:
    """Whatever the pauses between callers, any window of ``burst / rate`` seconds holds at
    most ``burst`` starts (so at most ``rate`` per second, sustained)."""
    fake_time = FakeTime()
    limiter = RateLimiter(
        rate,
        max_wait_seconds=1_000,
        provider="17track",
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    starts: list[float] = []

    async def run() -> None:
        for gap in gaps:
            fake_time.now += gap
            await limiter.acquire()
            starts.append(fake_time.now)

    asyncio.run(run())

    assert _most_in_any_window(starts, limiter.burst / rate) <= limiter.burst
    assert starts == sorted(starts)
