"""Polling numbers over real HTTP: every status, checkpoints, times, carriers and tags."""

from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import MakeTracker, settings_for
from fastapi import FastAPI
from pixecom_tracking17.client import Track17Client
from pixecom_tracking17.sandbox import create_sandbox_app
from pixecom_tracking17.settings import Track17SandboxSettings
from pixecom_tracking17.tracker import STATUS_MAP, Tracker17, tracking_update
from pydantic import SecretStr
from tracking17_support import API_KEY, SandboxHandle

from pixecom_core.providers import TrackingNumber, TrackingStatus
from pixecom_core.testing.loopback import serve

TAG = "seller:order"

EXPECTED = {
    "NotFound": TrackingStatus.NOT_FOUND,
    "InfoReceived": TrackingStatus.INFO_RECEIVED,
    "InTransit": TrackingStatus.IN_TRANSIT,
    "AvailableForPickup": TrackingStatus.AVAILABLE_FOR_PICKUP,
    "OutForDelivery": TrackingStatus.OUT_FOR_DELIVERY,
    "DeliveryFailure": TrackingStatus.DELIVERY_FAILURE,
    "Delivered": TrackingStatus.DELIVERED,
    "Exception": TrackingStatus.EXCEPTION,
    "Expired": TrackingStatus.EXPIRED,
}


async def _registered(
    tracker: Tracker17, number: str, carrier: str | None = None
) -> TrackingNumber:
    tracking_number = TrackingNumber(number=number, carrier=carrier, tag=TAG)
    result = await tracker.register([tracking_number])
    assert result.accepted == (tracking_number,)
    return tracking_number


def test_every_17track_status_has_a_core_status_and_back() -> None:
    assert dict(STATUS_MAP) == EXPECTED
    assert set(STATUS_MAP.values()) == set(TrackingStatus)


@pytest.mark.parametrize(("status", "expected"), sorted(EXPECTED.items()))
async def test_each_status_maps_over_the_wire(
    tracker: Tracker17, sandbox: SandboxHandle, status: str, expected: TrackingStatus
) -> None:
    number = await _registered(tracker, "RR100000001CN", carrier="china-post")
    await sandbox.set_status(number.number, status)

    [update] = await tracker.fetch_status([number])

    assert update.status is expected
    assert update.number == number  # carrier and tag as core gave them


async def test_a_parcel_progresses_to_delivered(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    number = await _registered(tracker, "RR100000002CN")
    seen = [(await tracker.fetch_status([number]))[0].status]
    for _ in range(3):
        await sandbox.advance(number.number)
        seen.append((await tracker.fetch_status([number]))[0].status)

    assert seen == [
        TrackingStatus.INFO_RECEIVED,
        TrackingStatus.IN_TRANSIT,
        TrackingStatus.OUT_FOR_DELIVERY,
        TrackingStatus.DELIVERED,
    ]
    await sandbox.advance(number.number)  # delivered is final
    assert (await tracker.fetch_status([number]))[0].status is TrackingStatus.DELIVERED


async def test_checkpoints_come_newest_first_and_updated_at_is_the_last_scan(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = await _registered(tracker, "RR100000003CN")
    await sandbox.advance(number.number, steps=2)
    raw = (await sandbox.parcel(number.number))["track_info"]

    [update] = await tracker.fetch_status([number])

    assert [c.description for c in update.checkpoints] == [
        "Out for delivery",
        "Picked up by the carrier",
        "Shipment information received",
    ]
    times = [c.occurred_at for c in update.checkpoints]
    assert times == sorted(times, reverse=True)
    assert all(moment.tzinfo is not None for moment in times)
    assert update.updated_at == datetime.fromisoformat(raw["latest_event"]["time_utc"])
    assert update.sub_status == "OutForDelivery_Other"
    assert update.checkpoints[0].location == raw["latest_event"]["location"]


async def test_the_same_state_polled_twice_gives_the_same_update(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = await _registered(tracker, "RR100000004CN")
    await sandbox.advance(number.number)

    first = await tracker.fetch_status([number])
    second = await tracker.fetch_status([number])

    assert first == second


async def test_the_tag_17track_stored_is_used_when_core_gives_none(tracker: Tracker17) -> None:
    number = await _registered(tracker, "RR100000005CN")

    [update] = await tracker.fetch_status([TrackingNumber(number=number.number)])

    assert update.number.tag == TAG
    assert update.number.carrier == "3011"  # the carrier 17TRACK settled on


async def test_the_carrier_core_asked_with_is_echoed(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = await _registered(tracker, "9400111899223397541123", carrier="usps")

    [update] = await tracker.fetch_status([number])

    assert update.number.carrier == "usps"
    [call] = await sandbox.requests("gettrackinfo")
    assert call["numbers"] == ["9400111899223397541123"]


async def test_unknown_numbers_are_left_out(tracker: Tracker17) -> None:
    known = await _registered(tracker, "RR100000006CN")
    unknown = TrackingNumber(number="RR999999999CN", tag=TAG)

    updates = await tracker.fetch_status([unknown, known])

    assert [update.number.number for update in updates] == [known.number]


async def test_a_number_registered_under_another_carrier_is_left_out(tracker: Tracker17) -> None:
    number = await _registered(tracker, "RR100000007CN")  # detected as China Post

    updates = await tracker.fetch_status([number.model_copy(update={"carrier": "ups"})])

    assert updates == []


async def test_a_polled_batch_of_more_than_40_is_split(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    batch = [TrackingNumber(number=f"RR2{index:08d}CN", tag=TAG) for index in range(45)]
    await tracker.register(batch)

    updates = await tracker.fetch_status(batch)

    assert len(updates) == 45
    assert [call["count"] for call in await sandbox.requests("gettrackinfo")] == [40, 5]


async def test_a_not_found_parcel_takes_its_time_from_the_last_sync(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = await _registered(tracker, "RR100000008CN")
    await sandbox.set_status(number.number, "NotFound")
    raw = (await sandbox.parcel(number.number))["track_info"]

    [update] = await tracker.fetch_status([number])

    assert update.status is TrackingStatus.NOT_FOUND
    assert update.checkpoints == ()
    sync = raw["tracking"]["providers"][0]["latest_sync_time"]
    assert update.updated_at == datetime.fromisoformat(sync)


async def test_parcels_progress_with_time(sandbox: SandboxHandle) -> None:
    """A sandbox with its own fake wall clock: one step per ``advance_every_seconds``."""
    now = [1_750_000_000.0]
    config = Track17SandboxSettings(
        api_keys=[SecretStr(API_KEY)], advance_every_seconds=3600, rate_limit_per_second=100
    )
    async with serve(create_sandbox_app(config, clock=lambda: now[0])) as url:
        settings = settings_for(url)
        tracker = Tracker17(settings, client=Track17Client(settings))
        number = await _registered(tracker, "RR100000009CN")
        statuses = []
        for _ in range(4):
            statuses.append((await tracker.fetch_status([number]))[0])
            now[0] += 3600
        await tracker.aclose()
    del sandbox

    assert [update.status for update in statuses] == [
        TrackingStatus.INFO_RECEIVED,
        TrackingStatus.IN_TRANSIT,
        TrackingStatus.OUT_FOR_DELIVERY,
        TrackingStatus.DELIVERED,
    ]
    # each scan is dated when it became due, not when it was read
    assert statuses[-1].updated_at == datetime.fromtimestamp(1_750_000_000 + 3 * 3600, UTC)


def _answer(track_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": 0,
        "data": {
            "accepted": [
                {"number": "AB123456789", "carrier": 3011, "tag": TAG, "track_info": track_info}
            ],
            "rejected": [],
        },
    }


async def test_an_unknown_status_is_left_out_not_guessed(make_tracker: MakeTracker) -> None:
    app = FastAPI()

    @app.post("/track/v2.2/gettrackinfo")
    async def gettrackinfo() -> dict[str, Any]:
        return _answer({"latest_status": {"status": "Teleported"}})

    async with serve(app) as url:
        tracker = await make_tracker(api_base=url)
        updates = await tracker.fetch_status([TrackingNumber(number="AB123456789")])

    assert updates == []


def test_events_without_a_readable_time_are_skipped_and_naive_times_are_utc() -> None:
    item = {
        "track_info": {
            "latest_status": {"status": "InTransit", "sub_status": "InTransit_Other"},
            "tracking": {
                "providers": [
                    {
                        "events": [
                            {"time_iso": "2026-03-02T10:00:00", "description": "naive"},
                            {"time_utc": "not a time", "description": "unreadable"},
                            {
                                "time_utc": "2026-03-01T08:00:00Z",
                                "description": "first",
                                "address": {"city": "LYON", "country": "FR"},
                            },
                        ]
                    },
                    # the same scan reported by the next carrier leg counts once
                    {
                        "events": [
                            {
                                "time_utc": "2026-03-01T08:00:00Z",
                                "description": "first",
                                "address": {"city": "LYON", "country": "FR"},
                            }
                        ]
                    },
                ]
            },
        }
    }

    update = tracking_update(
        item, number=TrackingNumber(number="N1"), now=lambda: datetime(2000, 1, 1, tzinfo=UTC)
    )

    assert update is not None
    assert [c.description for c in update.checkpoints] == ["naive", "first"]
    assert update.checkpoints[0].occurred_at == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert update.checkpoints[1].location == "LYON, FR"
    assert update.updated_at == datetime(2026, 3, 2, 10, tzinfo=UTC)  # newest checkpoint


def test_an_entry_without_track_info_gives_no_update() -> None:
    assert (
        tracking_update(
            {"number": "N1"}, number=TrackingNumber(number="N1"), now=lambda: datetime.now(UTC)
        )
        is None
    )
