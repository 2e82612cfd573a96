"""Stopping numbers over real HTTP: stopped numbers stop progressing, repeats are harmless."""

from conftest import MakeTracker
from pixecom_tracking17.tracker import Tracker17
from tracking17_support import SandboxHandle

from pixecom_core.providers import TrackingNumber, TrackingStatus

NUMBER = TrackingNumber(number="RR600000001CN", carrier="china-post", tag="t")


async def test_a_stopped_number_is_stopped_and_still_readable(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await tracker.register([NUMBER])
    await sandbox.advance(NUMBER.number, steps=3)

    await tracker.stop([NUMBER])

    assert (await sandbox.parcel(NUMBER.number))["stopped"] is True
    [update] = await tracker.fetch_status([NUMBER])
    assert update.status is TrackingStatus.DELIVERED
    [call] = await sandbox.requests("stoptrack")
    assert call["numbers"] == [NUMBER.number]


async def test_stopping_twice_is_not_an_error(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    await tracker.register([NUMBER])
    await tracker.stop([NUMBER])

    await tracker.stop([NUMBER])  # 17TRACK: -18019906, only tracked numbers can be stopped

    assert [call["status"] for call in await sandbox.requests("stoptrack")] == [200, 200]


async def test_stopping_an_unknown_number_is_not_an_error(tracker: Tracker17) -> None:
    await tracker.stop([TrackingNumber(number="RR699999999CN")])


async def test_a_mixed_batch_stops_what_it_can(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    other = TrackingNumber(number="RR600000002CN", tag="t")
    await tracker.register([NUMBER, other])

    await tracker.stop([NUMBER, TrackingNumber(number="1234"), other])

    assert (await sandbox.parcel(NUMBER.number))["stopped"] is True
    assert (await sandbox.parcel(other.number))["stopped"] is True


async def test_a_stopped_number_no_longer_moves_with_time(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    tracker = await make_tracker()
    await tracker.register([NUMBER])
    await tracker.stop([NUMBER])
    await sandbox.configure(advance_every_seconds=0.01)

    [update] = await tracker.fetch_status([NUMBER])

    assert update.status is TrackingStatus.INFO_RECEIVED
