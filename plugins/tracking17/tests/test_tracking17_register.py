"""Registering numbers over real HTTP: batches of 40, per-number outcomes, carriers, tags."""

import pytest
from conftest import MakeTracker
from hypothesis import given
from hypothesis import strategies as st
from pixecom_tracking17.client import MAX_NUMBERS_PER_CALL, chunks
from pixecom_tracking17.tracker import Tracker17, carrier_code
from tracking17_support import SandboxHandle

from pixecom_core.providers import TrackingNumber

ORDER_TAG = "5f0c1c3e-0000-4000-8000-000000000001:9a1d7e44-0000-4000-8000-000000000002"


def numbers(count: int, prefix: str = "RR") -> list[TrackingNumber]:
    return [
        TrackingNumber(number=f"{prefix}{index:09d}CN", tag=f"tag-{index}")
        for index in range(count)
    ]


async def test_accepted_numbers_are_tracked_with_their_tag(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = TrackingNumber(number="RR123456789CN", carrier="china-post", tag=ORDER_TAG)

    result = await tracker.register([number])

    assert result.accepted == (number,)
    assert result.rejected == ()
    parcel = await sandbox.parcel("RR123456789CN")
    assert parcel["tag"] == ORDER_TAG
    assert parcel["carrier"] == 3011
    assert parcel["status"] == "InfoReceived"


async def test_a_batch_of_95_is_sent_as_40_40_15(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    batch = numbers(95)

    result = await tracker.client.register([{"number": n.number} for n in batch])

    assert len(result.accepted) == 95
    calls = await sandbox.requests("register")
    assert [call["count"] for call in calls] == [40, 40, 15]
    sent = [number for call in calls for number in call["numbers"]]
    assert sent == [n.number for n in batch]  # in order, each once


async def test_register_sends_one_call_for_a_full_batch(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    result = await tracker.register(numbers(40))

    assert len(result.accepted) == 40
    assert [call["count"] for call in await sandbox.requests("register")] == [40]


async def test_a_rejected_number_does_not_fail_the_batch(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    good = TrackingNumber(number="RR000000001CN", tag="a")
    malformed = TrackingNumber(number="1234", tag="b")  # 17TRACK wants 5 to 50 characters
    also_good = TrackingNumber(number="1Z999AA10123456784", tag="c")

    result = await tracker.register([good, malformed, also_good])

    assert result.accepted == (good, also_good)
    [rejected] = result.rejected
    assert rejected.number == malformed
    assert rejected.retryable is False
    assert "-18010012" in rejected.reason
    assert "1234" in rejected.reason
    assert (await sandbox.parcel("1Z999AA10123456784"))["carrier"] == 100002


async def test_an_already_registered_number_counts_as_accepted(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = TrackingNumber(number="RR000000002CN", tag="t")
    await tracker.register([number])

    again = await tracker.register([number])

    assert again.accepted == (number,)
    assert again.rejected == ()
    [_, second] = await sandbox.requests("register")
    assert second["status"] == 200


async def test_a_number_whose_carrier_cannot_be_detected_is_rejected_for_good(
    tracker: Tracker17,
) -> None:
    unknown = TrackingNumber(number="XX12345678", tag="t")

    result = await tracker.register([unknown])

    [rejected] = result.rejected
    assert rejected.retryable is False
    assert "-18019903" in rejected.reason


async def test_an_unknown_numeric_carrier_code_is_rejected_for_good(tracker: Tracker17) -> None:
    wrong = TrackingNumber(number="RR000000003CN", carrier="999999", tag="t")

    result = await tracker.register([wrong])

    [rejected] = result.rejected
    assert rejected.retryable is False
    assert "-18019910" in rejected.reason


async def test_an_exhausted_quota_is_retryable(tracker: Tracker17, sandbox: SandboxHandle) -> None:
    await sandbox.configure(quota_total=2)
    batch = numbers(3)

    result = await tracker.register(batch)

    assert result.accepted == tuple(batch[:2])
    [rejected] = result.rejected
    assert rejected.number == batch[2]
    assert rejected.retryable is True
    assert "-18019908" in rejected.reason

    await sandbox.configure(quota_total=10)
    retried = await tracker.register([batch[2]])
    assert retried.accepted == (batch[2],)


async def test_a_carrier_name_is_sent_as_17tracks_code(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    await tracker.register([TrackingNumber(number="94001118992233975411", carrier="USPS")])

    assert (await sandbox.parcel("94001118992233975411"))["carrier"] == 21051


async def test_an_unknown_carrier_name_is_left_to_detection(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    number = TrackingNumber(number="YT2212345678901234", carrier="yunexpress", tag="t")

    result = await tracker.register([number])

    assert result.accepted == (number,)
    assert (await sandbox.parcel("YT2212345678901234"))["carrier"] == 190271


async def test_a_number_given_twice_is_sent_once_and_accepted_twice(
    tracker: Tracker17, sandbox: SandboxHandle
) -> None:
    first = TrackingNumber(number="RR000000004CN", tag="t")
    repeat = TrackingNumber(number="rr000000004cn", tag="t")

    result = await tracker.register([first, repeat])

    assert result.accepted == (first, repeat)
    [call] = await sandbox.requests("register")
    assert call["count"] == 1


async def test_a_missing_key_fails_before_any_call(
    make_tracker: MakeTracker, sandbox: SandboxHandle
) -> None:
    from pixecom_core.providers import ProviderAuthError

    tracker = await make_tracker(api_key=None)

    with pytest.raises(ProviderAuthError) as raised:
        await tracker.register(numbers(1))

    assert "PIXECOM_TRACKING17_API_KEY" in str(raised.value)
    assert await sandbox.requests() == []


@pytest.mark.parametrize(
    ("carrier", "code"),
    [
        ("usps", 21051),
        ("UPS", 100002),
        ("FedEx", 100003),
        ("dhl_express", 100001),
        ("china post", 3011),
        ("21051", 21051),
        (" 3011 ", 3011),
        ("yunexpress", None),
        (None, None),
    ],
)
def test_carrier_codes(carrier: str | None, code: int | None) -> None:
    assert carrier_code(carrier) == code


@given(st.lists(st.integers(), max_size=300))
def test_chunks_keep_every_entry_once_in_order_and_at_most_40_per_call(
    values: list[int],
) -> None:
    entries = [{"number": str(value)} for value in values]

    batches = list(chunks(entries))

    assert all(1 <= len(batch) <= MAX_NUMBERS_PER_CALL for batch in batches)
    assert [entry for batch in batches for entry in batch] == entries
    assert len(batches) == -(-len(entries) // MAX_NUMBERS_PER_CALL)
