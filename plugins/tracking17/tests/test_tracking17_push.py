"""Push verification: pushes the sandbox signs and delivers over HTTP, then checked the way
core's push route hands them over (raw body, lower-cased header names)."""

import asyncio
import hashlib
import json
import os
from typing import Any

import pytest
from conftest import MakeTracker
from pixecom_tracking17.signatures import push_signature, signature_matches
from pixecom_tracking17.tracker import Tracker17
from tracking17_support import PUSH_KEY, SandboxHandle

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import TrackingNumber, TrackingStatus, WebhookVerificationError
from pixecom_core.testing.loopback import serve
from pixecom_core.testing.sandbox_kit import ReceivedWebhook, WebhookReceiver

TAG = "seller-1:order-1"


async def _delivered(
    tracker: Tracker17, sandbox: SandboxHandle, receiver: WebhookReceiver, **order: Any
) -> ReceivedWebhook:
    number = TrackingNumber(number="RR300000001CN", carrier="china-post", tag=TAG)
    await tracker.register([number])
    await sandbox.advance(number.number)
    deliveries = await sandbox.push(numbers=[number.number], **order)
    assert all(delivery.get("status_code") == 200 for delivery in deliveries), deliveries
    return receiver.received[-1]


def _signed(payload: Any, key: str = PUSH_KEY) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"sign": push_signature(body, key)}


# -- good pushes -----------------------------------------------------------------------------


async def test_a_delivered_push_verifies_and_matches_the_polled_state(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver)

    [update] = await tracker.verify_push(body=push.body, headers=push.headers)

    [polled] = await tracker.fetch_status(
        [TrackingNumber(number="RR300000001CN", carrier="china-post", tag=TAG)]
    )
    assert update.status is TrackingStatus.IN_TRANSIT
    assert update.number == TrackingNumber(number="RR300000001CN", carrier=None, tag=TAG)
    # the same facts as a poll; only the carrier differs (a push names 17TRACK's code only)
    assert update.model_dump(exclude={"number"}) == polled.model_dump(exclude={"number"})


async def test_header_names_are_found_in_any_case(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver)
    shouting = {name.upper(): value for name, value in push.headers.items()}

    assert await tracker.verify_push(body=push.body, headers=shouting)


async def test_a_duplicate_push_parses_to_the_same_update(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    await _delivered(tracker, sandbox, push_receiver, duplicates=2)

    first, second, third = push_receiver.received[-3:]
    updates = [
        await tracker.verify_push(body=push.body, headers=push.headers)
        for push in (first, second, third)
    ]

    assert updates[0] == updates[1] == updates[2]


async def test_a_stopped_push_carries_no_update(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver, event="TRACKING_STOPPED")

    assert json.loads(push.body)["event"] == "TRACKING_STOPPED"
    assert await tracker.verify_push(body=push.body, headers=push.headers) == []


async def test_an_unknown_event_is_accepted_and_ignored(tracker: Tracker17) -> None:
    body, headers = _signed({"event": "TRACKING_DELETED", "data": {"number": "RR1CN"}})

    assert await tracker.verify_push(body=body, headers=headers) == []


async def test_a_push_with_a_list_of_entries_gives_one_update_each(tracker: Tracker17) -> None:
    entries = [
        {
            "number": f"RR30000000{index}CN",
            "tag": f"t{index}",
            "track_info": {
                "latest_status": {"status": "Delivered", "sub_status": "Delivered_Other"},
                "latest_event": {"time_utc": "2026-03-01T08:00:00Z", "description": "ok"},
            },
        }
        for index in range(2)
    ]
    body, headers = _signed({"event": "TRACKING_UPDATED", "data": entries})

    updates = await tracker.verify_push(body=body, headers=headers)

    assert [(u.number.number, u.number.tag, u.status) for u in updates] == [
        ("RR300000000CN", "t0", TrackingStatus.DELIVERED),
        ("RR300000001CN", "t1", TrackingStatus.DELIVERED),
    ]


async def test_the_api_key_verifies_pushes_when_no_push_key_is_set(
    make_tracker: MakeTracker,
) -> None:
    tracker = await make_tracker(api_key="only-the-api-key", push_key=None)
    body, headers = _signed(
        {"event": "TRACKING_STOPPED", "data": {"number": "N1"}}, "only-the-api-key"
    )

    assert await tracker.verify_push(body=body, headers=headers) == []


def test_the_signature_is_sha256_of_body_slash_key_in_hex() -> None:
    body = b'{"event":"TRACKING_UPDATED"}'

    assert push_signature(body, "k3y") == hashlib.sha256(body + b"/k3y").hexdigest()
    assert signature_matches(body, "k3y", "  " + push_signature(body, "k3y").upper() + "\n")


# -- bad pushes ------------------------------------------------------------------------------


async def test_a_push_without_a_sign_header_is_refused(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver)
    headers = {name: value for name, value in push.headers.items() if name != "sign"}

    with pytest.raises(WebhookVerificationError, match="no 'sign' header"):
        await tracker.verify_push(body=push.body, headers=headers)


@pytest.mark.parametrize("sign", ["", "   ", "0" * 64, "not-hex", "é" * 64])
async def test_a_bad_sign_header_is_refused(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver, sign: str
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver)

    with pytest.raises(WebhookVerificationError):
        await tracker.verify_push(body=push.body, headers={**push.headers, "sign": sign})


async def test_a_tampered_body_is_refused(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver)
    tampered = push.body.replace(b'"InTransit"', b'"Delivered"', 1)
    assert tampered != push.body

    with pytest.raises(WebhookVerificationError, match="does not match"):
        await tracker.verify_push(body=tampered, headers=push.headers)


async def test_reserialised_json_is_refused(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    # the signature covers the raw bytes: parsing and dumping again changes them
    push = await _delivered(tracker, sandbox, push_receiver)
    reserialised = json.dumps(json.loads(push.body), indent=2).encode()

    with pytest.raises(WebhookVerificationError):
        await tracker.verify_push(body=reserialised, headers=push.headers)


async def test_a_push_signed_with_another_key_is_refused(
    tracker: Tracker17, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    push = await _delivered(tracker, sandbox, push_receiver, key="someone-elses-key")

    with pytest.raises(WebhookVerificationError, match="does not match"):
        await tracker.verify_push(body=push.body, headers=push.headers)


async def test_a_tracker_with_another_key_refuses_the_push(
    make_tracker: MakeTracker, sandbox: SandboxHandle, push_receiver: WebhookReceiver
) -> None:
    tracker = await make_tracker()
    push = await _delivered(tracker, sandbox, push_receiver)
    other = await make_tracker(push_key="a-rotated-key")

    with pytest.raises(WebhookVerificationError):
        await other.verify_push(body=push.body, headers=push.headers)


async def test_no_key_configured_refuses_every_push(make_tracker: MakeTracker) -> None:
    tracker = await make_tracker(api_key=None, push_key=None)
    body, headers = _signed({"event": "TRACKING_STOPPED", "data": {"number": "N1"}})

    with pytest.raises(WebhookVerificationError, match="PIXECOM_TRACKING17_PUSH_KEY"):
        await tracker.verify_push(body=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe\x00", "not UTF-8 JSON"),
        (b"[]", "not a JSON object"),
        (b'"TRACKING_UPDATED"', "not a JSON object"),
        (b'{"data": {"number": "N1"}}', "no event"),
        (b'{"event": 7, "data": {"number": "N1"}}', "no event"),
        (b'{"event": "TRACKING_UPDATED"}', "without a tracking number"),
        (b'{"event": "TRACKING_UPDATED", "data": {"carrier": 3011}}', "without a tracking number"),
        (b'{"event": "TRACKING_UPDATED", "data": []}', "0 entries"),
        (b'{"event": "TRACKING_UPDATED", "data": [{"number": " "}]}', "without a tracking number"),
    ],
)
async def test_a_correctly_signed_malformed_push_is_refused(
    tracker: Tracker17, body: bytes, reason: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=reason):
        await tracker.verify_push(body=body, headers={"sign": push_signature(body, PUSH_KEY)})


async def test_a_push_with_an_unknown_status_changes_nothing(tracker: Tracker17) -> None:
    body, headers = _signed(
        {
            "event": "TRACKING_UPDATED",
            "data": {"number": "N1", "track_info": {"latest_status": {"status": "Lost_In_Space"}}},
        }
    )

    assert await tracker.verify_push(body=body, headers=headers) == []


async def test_a_refused_push_never_shows_the_key(make_tracker: MakeTracker) -> None:
    tracker = await make_tracker()
    body, _ = _signed({"event": "TRACKING_STOPPED", "data": {"number": "N1"}})

    with pytest.raises(WebhookVerificationError) as raised:
        await tracker.verify_push(body=body, headers={"sign": "0" * 64})

    assert PUSH_KEY not in str(raised.value)
    assert push_signature(body, PUSH_KEY) not in str(raised.value)


# -- the dev wiring, end to end -----------------------------------------------------------------


async def test_the_dev_environment_delivers_pushes_the_tracker_accepts(
    monkeypatch: pytest.MonkeyPatch, push_receiver: WebhookReceiver
) -> None:
    """What ``pixecom dev`` does: the sandbox's ``environment`` is exported, the sandbox is
    served with its lifespan, and parcels moved by time are pushed to the API's route."""
    for name in list(os.environ):
        if name.startswith("PIXECOM_TRACKING17_"):
            monkeypatch.delenv(name)
    registry = ProviderRegistry(create_plugin_manager(allow={"tracking17"}))
    sandbox = registry.sandbox("17track")
    assert sandbox.environment is not None
    for name, value in sandbox.environment("http://sandbox.invalid", push_receiver.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIXECOM_TRACKING17_SANDBOX_ADVANCE_EVERY_SECONDS", "0.4")

    async with serve(sandbox.create_app(), lifespan="on") as url:
        monkeypatch.setenv("PIXECOM_TRACKING17_API_BASE", url)
        tracker = ProviderRegistry(create_plugin_manager(allow={"tracking17"})).tracker("17track")
        assert isinstance(tracker, Tracker17)
        number = TrackingNumber(number="RR310000001CN", carrier="china-post", tag=TAG)
        assert (await tracker.register([number])).accepted == (number,)

        statuses: list[TrackingStatus] = []
        async with asyncio.timeout(10):
            while TrackingStatus.DELIVERED not in statuses:
                await asyncio.sleep(0.1)
                statuses = [
                    update.status
                    for push in push_receiver.received
                    for update in await tracker.verify_push(body=push.body, headers=push.headers)
                ]
        await tracker.aclose()

    # every push verified with the dev keys, in order, ending delivered
    assert statuses == sorted(statuses, key=PROGRESS.index)
    assert statuses[-1] is TrackingStatus.DELIVERED


PROGRESS = [
    TrackingStatus.INFO_RECEIVED,
    TrackingStatus.IN_TRANSIT,
    TrackingStatus.OUT_FOR_DELIVERY,
    TrackingStatus.DELIVERED,
]
