"""The Conversions API over real HTTP: purchases sent by the ``meta`` network land in the
sandbox's pixel as Meta expects them (hashed e-mail and phone, raw IP, user agent and
browser ids, value in major units), and what Meta refuses becomes the right provider error.

Every event time is built from a fixed sandbox clock (:data:`NOW`), never today's date.
"""

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import MakeNetwork
from meta_ads_support import SandboxHandle
from pixecom_meta_ads.ad_network import MetaAdNetwork
from pixecom_meta_ads.conversions import normalised_email, normalised_phone
from pixecom_meta_ads.sandbox_capi import DEMO_PIXEL_ACCOUNT, DEMO_PIXEL_ID, DEMO_PIXEL_TOKEN
from pydantic import SecretStr

from pixecom_core.providers import (
    ConversionDestination,
    ConversionEvent,
    ConversionsDestination,
    ProviderAuthError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
)

#: The sandbox's "now" in every test: 2026-05-28T20:26:40Z.
NOW = 1_780_000_000
BOUGHT_AT = datetime.fromtimestamp(NOW - 600, tz=UTC)
PIXEL = "555000111222333"
PIXEL_TOKEN = "EAAGpixelTOKEN-for-555000111222333-SECRET"
OTHER_PIXEL = "555000999888777"
OTHER_TOKEN = "EAAGotherPIXELtoken-SECRET"
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"
FBP = "fb.1.1779990000000.1116446470"
FBC = "fb.1.1779990000000.IwAR-cookie-ClickId"
CLICK_ID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"


@pytest.fixture(autouse=True)
async def fixed_clock_and_pixels(sandbox: SandboxHandle) -> None:
    response = await sandbox.control.post("/_sandbox/clock", json={"now": NOW})
    assert response.status_code == 200, response.text
    for pixel, token, account in (
        (PIXEL, PIXEL_TOKEN, "act_1002"),
        (OTHER_PIXEL, OTHER_TOKEN, None),
    ):
        response = await sandbox.control.post(
            "/_sandbox/pixels",
            json={"pixel_id": pixel, "access_token": token, "account_id": account},
        )
        assert response.status_code == 200, response.text


def destination(
    pixel: str = PIXEL, token: str = PIXEL_TOKEN, **extra: Any
) -> ConversionDestination:
    return ConversionDestination(
        seller_id=uuid.uuid4(), destination_id=pixel, access_token=SecretStr(token), **extra
    )


def purchase(**changes: Any) -> ConversionEvent:
    order_id = changes.pop("order_id", uuid.uuid4())
    values: dict[str, Any] = {
        "event_id": str(order_id),
        "event_time": BOUGHT_AT,
        "event_source_url": "https://shop.example/s/summer-sale",
        "value_minor": 1999,
        "currency": "USD",
        "order_id": order_id,
        "email": "  John_Smith@Gmail.com ",
        "phone": "+1 (650) 555-1212",
        "client_ip": "203.0.113.7",
        "user_agent": USER_AGENT,
        "browser_ids": {"fbp": FBP, "fbc": FBC},
    }
    values.update(changes)
    return ConversionEvent(**values)


async def received(sandbox: SandboxHandle, pixel: str = PIXEL) -> dict[str, Any]:
    response = await sandbox.control.get(f"/_sandbox/pixels/{pixel}/events")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post_raw(
    sandbox: SandboxHandle, events: Any, *, token: str = PIXEL_TOKEN, pixel: str = PIXEL
) -> Any:
    data = events if isinstance(events, str) else json.dumps(events)
    return await sandbox.control.post(
        f"/v25.0/{pixel}/events", data={"data": data, "access_token": token}
    )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wire_event(**changes: Any) -> dict[str, Any]:
    """A valid server event as Meta documents it, for raw calls."""
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": NOW - 60,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/s/summer-sale",
        "user_data": {"em": [sha256("a@example.com")], "client_user_agent": USER_AGENT},
        "custom_data": {"value": 12.5, "currency": "usd"},
    }
    event.update(changes)
    return event


# -- the good path -----------------------------------------------------------------------------


async def test_the_network_is_a_conversions_destination(network: MetaAdNetwork) -> None:
    assert isinstance(network, ConversionsDestination)
    assert network.identifier == "meta"


async def test_a_purchase_lands_with_hashed_contact_and_raw_browser_data(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    event = purchase()

    receipt = await network.send_conversions(destination(), [event])

    assert receipt.received == 1
    assert receipt.trace_id
    pixel = await received(sandbox)
    assert pixel["received"] == pixel["distinct_events"] == 1
    assert pixel["account_id"] == "1002"
    [sent] = pixel["data"]
    assert sent == {
        "event_name": "Purchase",
        "event_time": NOW - 600,
        "event_id": str(event.order_id),
        "action_source": "website",
        "event_source_url": "https://shop.example/s/summer-sale",
        "user_data": {
            "em": [sha256("john_smith@gmail.com")],
            "ph": [sha256("16505551212")],
            "client_ip_address": "203.0.113.7",
            "client_user_agent": USER_AGENT,
            "fbp": FBP,
            "fbc": FBC,
        },
        "custom_data": {"value": 19.99, "currency": "usd", "order_id": str(event.order_id)},
    }
    # Meta's own examples ("Customer Information Parameters"): the same hashes
    assert sent["user_data"]["em"] == [
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    ]
    assert sent["user_data"]["ph"] == [
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    ]


async def test_fbc_is_built_from_the_click_id_when_the_cookie_is_absent(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await network.send_conversions(
        destination(), [purchase(browser_ids={"fbp": FBP}, click_id=CLICK_ID)]
    )

    [sent] = (await received(sandbox))["data"]
    # fb.<subdomainIndex 1>.<creation time in ms>.<fbclid, case kept>
    assert sent["user_data"]["fbc"] == f"fb.1.{(NOW - 600) * 1000}.{CLICK_ID}"


async def test_the_fbc_cookie_wins_over_the_click_id_and_a_malformed_one_is_rebuilt(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await network.send_conversions(destination(), [purchase(click_id=CLICK_ID)])
    await network.send_conversions(
        destination(),
        [purchase(browser_ids={"fbc": "not-a-cookie", "fbp": "junk"}, click_id=CLICK_ID)],
    )

    first, second = (await received(sandbox))["data"]
    assert first["user_data"]["fbc"] == FBC
    assert second["user_data"]["fbc"] == f"fb.1.{(NOW - 600) * 1000}.{CLICK_ID}"
    assert "fbp" not in second["user_data"]


@pytest.mark.parametrize(
    ("currency", "minor", "major"),
    [("USD", 1999, 19.99), ("JPY", 1500, 1500), ("KWD", 1234, 1.234), ("EUR", 100, 1.0)],
)
async def test_value_is_sent_in_major_units_of_the_currency(
    network: MetaAdNetwork, sandbox: SandboxHandle, currency: str, minor: int, major: float
) -> None:
    await network.send_conversions(destination(), [purchase(currency=currency, value_minor=minor)])

    [entry] = [
        entry for entry in (await sandbox.requests("/events")) if entry.get("operation") == "events"
    ]
    raw = json.loads(entry["params"]["data"])[0]["custom_data"]
    assert raw["value"] == major
    assert raw["currency"] == currency.lower()
    if currency == "JPY":
        assert isinstance(raw["value"], int)  # no decimals: 1500, not 1500.0
        assert '"value":1500,' in entry["params"]["data"]
    if currency == "KWD":
        assert '"value":1.234,' in entry["params"]["data"]


async def test_sending_the_same_purchase_twice_is_counted_once(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    event = purchase()

    first = await network.send_conversions(destination(), [event])
    second = await network.send_conversions(destination(), [event])

    assert (first.received, second.received) == (1, 1)
    pixel = await received(sandbox)
    assert pixel["received"] == 2  # both arrived, as at Meta
    assert pixel["distinct_events"] == 1  # Meta keeps one per event_name and event_id
    assert {sent["event_id"] for sent in pixel["data"]} == {str(event.order_id)}


async def test_a_batch_of_orders_and_the_test_event_code_reach_the_pixel(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    events = [purchase() for _ in range(3)]

    receipt = await network.send_conversions(destination(test_event_code="TEST4242"), events)

    assert receipt.received == 3
    assert (await received(sandbox))["distinct_events"] == 3
    [entry] = await sandbox.requests("/events")
    assert entry["params"]["test_event_code"] == "TEST4242"
    assert entry["has_token"] is True
    assert PIXEL_TOKEN not in json.dumps(entry)


async def test_the_demo_pixel_is_there_after_a_reset(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    listed = (await sandbox.control.get("/_sandbox/pixels")).json()
    assert {"pixel_id": DEMO_PIXEL_ID, "account_id": DEMO_PIXEL_ACCOUNT} in [
        {"pixel_id": p["pixel_id"], "account_id": p["account_id"]} for p in listed
    ]

    receipt = await network.send_conversions(
        destination(DEMO_PIXEL_ID, DEMO_PIXEL_TOKEN), [purchase()]
    )

    assert receipt.received == 1
    assert (await received(sandbox, DEMO_PIXEL_ID))["received"] == 1


async def test_nothing_is_sent_for_no_events(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    receipt = await network.send_conversions(destination(), [])

    assert receipt.received == 0
    assert await sandbox.requests("/events") == []


# -- what Meta refuses -------------------------------------------------------------------------


async def test_the_sandbox_refuses_a_plaintext_email_in_metas_words(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    plaintext = wire_event(user_data={"em": ["john@example.com"], "client_user_agent": USER_AGENT})

    response = await post_raw(sandbox, [plaintext])

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "OAuthException"
    assert error["code"] == 100
    assert error["message"] == "Invalid parameter"
    assert error["error_subcode"] == 2804005
    assert "em" in error["error_user_msg"]
    assert error["fbtrace_id"]
    # and through the client: refused, not retried
    with pytest.raises(ProviderRefused) as raised:
        await network.client.send_events(PIXEL, PIXEL_TOKEN, [plaintext])
    assert "code 100/2804005" in str(raised.value)
    assert len(await sandbox.requests("/events")) == 2
    assert (await received(sandbox))["received"] == 0


async def test_an_event_older_than_seven_days_is_refused(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    stale = purchase(event_time=datetime.fromtimestamp(NOW, tz=UTC) - timedelta(days=7, seconds=1))

    with pytest.raises(ProviderRefused) as raised:
        await network.send_conversions(destination(), [stale])

    assert "2804003" in str(raised.value)
    assert "within 7 days" in str(raised.value)
    assert len(await sandbox.requests("/events")) == 1  # not retried
    assert (await received(sandbox))["received"] == 0


async def test_an_event_just_under_seven_days_old_is_taken(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    # the sandbox's clock runs on from NOW while the test does, so "just under" by a minute
    week_old = purchase(
        event_time=datetime.fromtimestamp(NOW, tz=UTC) - timedelta(days=7) + timedelta(minutes=1)
    )

    assert (await network.send_conversions(destination(), [week_old])).received == 1
    assert (await received(sandbox))["received"] == 1


async def test_one_bad_event_refuses_the_whole_batch(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    stale = purchase(event_time=BOUGHT_AT - timedelta(days=30))

    with pytest.raises(ProviderRefused):
        await network.send_conversions(destination(), [purchase(), stale, purchase()])

    assert (await received(sandbox))["received"] == 0


@pytest.mark.parametrize(
    "missing",
    [{"user_agent": None}, {"event_source_url": None}, {"event_source_url": "shop.example/s/x"}],
)
async def test_a_website_event_without_its_required_fields_is_refused_before_sending(
    network: MetaAdNetwork, sandbox: SandboxHandle, missing: dict[str, Any]
) -> None:
    with pytest.raises(ProviderRefused) as raised:
        await network.send_conversions(destination(), [purchase(**missing)])

    assert "website event" in str(raised.value)
    assert await sandbox.requests("/events") == []


async def test_an_unknown_token_is_an_auth_error(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    with pytest.raises(ProviderAuthError) as raised:
        await network.send_conversions(destination(token="EAAGneverISSUEDtoken"), [purchase()])

    assert "code 190" in str(raised.value)
    assert "EAAGneverISSUEDtoken" not in str(raised.value)
    assert (await received(sandbox))["received"] == 0


@pytest.mark.parametrize(
    ("pixel", "token"), [(OTHER_PIXEL, PIXEL_TOKEN), ("555000000000404", PIXEL_TOKEN)]
)
async def test_a_token_of_another_pixel_or_an_unknown_pixel_is_an_auth_error(
    network: MetaAdNetwork, sandbox: SandboxHandle, pixel: str, token: str
) -> None:
    with pytest.raises(ProviderAuthError) as raised:
        await network.send_conversions(destination(pixel, token), [purchase()])

    assert "code 100/33" in str(raised.value)
    assert "pixel id and its access token" in str(raised.value)
    assert (await received(sandbox))["received"] == 0


async def test_a_revoked_pixel_token_is_an_auth_error(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    response = await sandbox.control.post(
        "/_sandbox/oauth/tokens/revoke", json={"token": PIXEL_TOKEN, "reason": "password_changed"}
    )
    assert response.status_code == 200, response.text

    with pytest.raises(ProviderAuthError) as raised:
        await network.send_conversions(destination(), [purchase()])

    assert "code 190/460" in str(raised.value)


async def test_a_pixel_id_that_is_not_a_number_is_refused_without_a_call(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    with pytest.raises(ProviderRefused, match="pixel"):
        await network.send_conversions(destination("../act_1000"), [purchase()])

    assert await sandbox.requests("/events") == []


async def test_more_than_a_hundred_events_is_a_caller_error(network: MetaAdNetwork) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        await network.send_conversions(destination(), [purchase() for _ in range(101)])


# -- faults --------------------------------------------------------------------------------


async def test_throttling_is_raised_with_metas_wait(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(
        "throttled", operation="events", scope=PIXEL, code=17, retry_after_seconds=300
    )

    with pytest.raises(ProviderThrottled) as raised:
        await network.send_conversions(destination(), [purchase()])

    assert raised.value.retry_after_seconds == 300
    assert (await received(sandbox))["received"] == 0


async def test_a_fault_scoped_to_another_pixel_leaves_this_one_alone(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("throttled", operation="events", scope=OTHER_PIXEL)

    assert (await network.send_conversions(destination(), [purchase()])).received == 1


@pytest.mark.parametrize("kind", ["transient", "server_error"])
async def test_a_server_error_is_transient_after_the_retries(
    make_network: MakeNetwork, sandbox: SandboxHandle, kind: str
) -> None:
    network = await make_network(transient_retries=2)
    await sandbox.fault(kind, operation="events", scope=PIXEL, times=3)

    with pytest.raises(ProviderTransientError):
        await network.send_conversions(destination(), [purchase()])

    assert len(await sandbox.requests("/events")) == 3
    assert (await received(sandbox))["received"] == 0


async def test_a_passing_server_error_is_retried_and_the_event_lands_once(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await sandbox.fault("transient", operation="events", scope=PIXEL, times=1)

    receipt = await network.send_conversions(destination(), [purchase()])

    assert receipt.received == 1
    assert (await received(sandbox))["distinct_events"] == 1


# -- the sandbox's validation, on the wire ---------------------------------------------------


@pytest.mark.parametrize(
    ("events", "subcode"),
    [
        ([wire_event(event_time=NOW + 3600)], 2804004),
        ([wire_event(event_time=str(NOW))], 2804002),
        ([wire_event(event_name="")], 2804001),
        ([wire_event(action_source="carrier_pigeon")], 2804002),
        ([wire_event(event_source_url=None)], 2804001),
        ([wire_event(user_data={"em": [sha256("a@example.com")]})], 2804001),
        ([wire_event(action_source="email", user_data={})], 2804006),
        ([wire_event(action_source="email", user_data={"ph": "16505551212"})], 2804005),
        ([wire_event(custom_data={"currency": "usd"})], 2804001),
        ([wire_event(custom_data={"value": "12.50", "currency": "usd"})], 2804002),
        ([wire_event(custom_data={"value": 12.5, "currency": "dollars"})], 2804002),
        (
            [wire_event(user_data={"client_user_agent": USER_AGENT, "fbc": "IwAR-raw-click"})],
            2804002,
        ),
        (
            [wire_event(user_data={"client_user_agent": USER_AGENT, "client_ip_address": "x"})],
            2804002,
        ),
    ],
)
async def test_the_sandbox_refuses_events_meta_would_refuse(
    sandbox: SandboxHandle, events: list[dict[str, Any]], subcode: int
) -> None:
    response = await post_raw(sandbox, events)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, subcode)
    assert (await received(sandbox))["received"] == 0


@pytest.mark.parametrize(
    "data", ["", "not json", json.dumps({"event_name": "Purchase"}), "[]", "[1, 2]"]
)
async def test_the_sandbox_refuses_a_malformed_data_array(
    sandbox: SandboxHandle, data: str
) -> None:
    response = await post_raw(sandbox, data)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


async def test_the_sandbox_takes_at_most_a_thousand_events(sandbox: SandboxHandle) -> None:
    events = [wire_event(event_id=f"order-{n}") for n in range(1000)]

    assert (await post_raw(sandbox, events)).json()["events_received"] == 1000
    too_many = await post_raw(sandbox, [*events, wire_event(event_id="order-1000")])
    assert too_many.status_code == 400
    assert (await received(sandbox))["received"] == 1000


async def test_a_non_purchase_event_needs_no_value_and_json_bodies_are_read(
    sandbox: SandboxHandle,
) -> None:
    lead = wire_event(event_name="Lead", custom_data={}, event_id=None)

    response = await sandbox.control.post(
        f"/v25.0/{PIXEL}/events", json={"data": [lead, lead], "access_token": PIXEL_TOKEN}
    )

    assert response.json()["events_received"] == 2
    pixel = await received(sandbox)
    assert (pixel["received"], pixel["distinct_events"]) == (2, 2)  # no event_id: no de-dup


async def test_an_unknown_pixel_has_no_event_list(sandbox: SandboxHandle) -> None:
    assert (await sandbox.control.get("/_sandbox/pixels/123/events")).status_code == 404


async def test_registering_a_pixel_checks_its_id(sandbox: SandboxHandle) -> None:
    response = await sandbox.control.post(
        "/_sandbox/pixels", json={"pixel_id": "act_1", "access_token": "t"}
    )
    assert response.status_code == 422


# -- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (650) 555-1212", "16505551212"),
        ("0044 20 7946 0000", "442079460000"),
        ("+81-3-1234-5678", "81312345678"),
        ("no digits", None),
    ],
)
def test_phone_numbers_become_digits_without_leading_zeros(raw: str, expected: str | None) -> None:
    assert normalised_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" John_Smith@Gmail.com ", "john_smith@gmail.com"), ("not an email", None), ("a@b", None)],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, expected: str | None) -> None:
    assert normalised_email(raw) == expected


async def test_an_unusable_email_is_left_out_not_sent_in_plaintext(
    network: MetaAdNetwork, sandbox: SandboxHandle
) -> None:
    await network.send_conversions(destination(), [purchase(email="nobody", phone=None)])

    [sent] = (await received(sandbox))["data"]
    assert "em" not in sent["user_data"]
    assert "ph" not in sent["user_data"]
    assert "nobody" not in json.dumps(sent)
