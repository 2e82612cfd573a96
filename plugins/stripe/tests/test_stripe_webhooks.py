"""``verify_webhook``: Stripe's signature scheme, secret rotation, and every way to fail it."""

import json
import time
from typing import Any

import pytest
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import signature_header
from stripe_support import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, settings_for, signed

from pixecom_core.providers import VerifiedWebhook, WebhookVerificationError

EVENT: dict[str, Any] = {
    "id": "evt_1Webhook",
    "object": "event",
    "created": 1_700_000_000,
    "data": {"object": {"id": "pi_1", "object": "payment_intent"}},
    "livemode": False,
    "type": "payment_intent.created",
}


def gateway_with(
    *webhook_secrets: str, tolerance: int = 300, connect_secrets: tuple[str, ...] = ()
) -> StripeGateway:
    # verification makes no API call, so no sandbox is needed here
    return StripeGateway(
        settings_for(
            "http://127.0.0.1:9",
            webhook_secrets=list(webhook_secrets),
            connect_webhook_secrets=list(connect_secrets),
            webhook_tolerance_seconds=tolerance,
        )
    )


async def verify(gateway: StripeGateway, body: bytes, header: str | None) -> VerifiedWebhook:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["stripe-signature"] = header
    return await gateway.verify_webhook(body=body, headers=headers)


# -- accepted ---------------------------------------------------------------------------


async def test_a_correctly_signed_event_is_verified() -> None:
    body, header = signed(EVENT)

    webhook = await verify(gateway_with(WEBHOOK_SECRET), body, header)

    assert webhook.gateway == "stripe"
    assert webhook.event_id == "evt_1Webhook"
    assert webhook.event_type == "payment_intent.created"
    assert webhook.body == body
    assert webhook.headers["stripe-signature"] == header
    assert abs(webhook.received_at.timestamp() - time.time()) < 5


async def test_header_names_are_lower_cased() -> None:
    body, header = signed(EVENT)

    webhook = await gateway_with(WEBHOOK_SECRET).verify_webhook(
        body=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )

    assert set(webhook.headers) == {"stripe-signature", "content-type"}


async def test_during_rotation_a_header_with_two_v1_entries_is_accepted_by_either_secret() -> None:
    body = json.dumps(EVENT).encode()
    header = signature_header(body.decode(), [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET])
    assert header.count("v1=") == 2

    for configured in (
        [OLD_WEBHOOK_SECRET],
        [WEBHOOK_SECRET],
        [OLD_WEBHOOK_SECRET, WEBHOOK_SECRET],
    ):
        webhook = await verify(gateway_with(*configured), body, header)
        assert webhook.event_id == "evt_1Webhook"


async def test_with_two_secrets_configured_an_event_signed_by_the_old_one_is_accepted() -> None:
    body, header = signed(EVENT, OLD_WEBHOOK_SECRET)

    webhook = await verify(gateway_with(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET), body, header)

    assert webhook.event_id == "evt_1Webhook"


async def test_a_v0_entry_next_to_a_good_v1_is_ignored() -> None:
    body = json.dumps(EVENT).encode()
    header = signature_header(body.decode(), [WEBHOOK_SECRET], include_v0=True)
    assert "v0=" in header

    webhook = await verify(gateway_with(WEBHOOK_SECRET), body, header)

    assert webhook.event_id == "evt_1Webhook"


async def test_a_timestamp_just_inside_the_tolerance_is_accepted() -> None:
    body, header = signed(EVENT, timestamp=int(time.time()) - 50)

    webhook = await verify(gateway_with(WEBHOOK_SECRET, tolerance=60), body, header)

    assert webhook.event_id == "evt_1Webhook"


# -- refused ----------------------------------------------------------------------------


async def test_a_changed_body_is_refused() -> None:
    body, header = signed({**EVENT, "data": {"object": {"id": "pi_1", "amount": 100}}})
    tampered = body.replace(b"100", b"900")

    with pytest.raises(WebhookVerificationError, match="body was changed"):
        await verify(gateway_with(WEBHOOK_SECRET), tampered, header)


async def test_an_event_signed_with_another_secret_is_refused() -> None:
    body, header = signed(EVENT, "whsec_someone_else")

    with pytest.raises(WebhookVerificationError, match="matches any of the 2 configured"):
        await verify(gateway_with(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET), body, header)


async def test_a_timestamp_beyond_the_tolerance_is_refused_as_a_replay() -> None:
    body, header = signed(EVENT, timestamp=int(time.time()) - 301)

    with pytest.raises(WebhookVerificationError, match="more than 300 s old"):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


async def test_a_configured_shorter_tolerance_is_applied() -> None:
    body, header = signed(EVENT, timestamp=int(time.time()) - 61)

    with pytest.raises(WebhookVerificationError, match="more than 60 s old"):
        await verify(gateway_with(WEBHOOK_SECRET, tolerance=60), body, header)


async def test_a_signature_moved_to_another_timestamp_is_refused() -> None:
    body, header = signed(EVENT)
    timestamp, signature = header.split(",", 1)
    moved = f"t={int(timestamp[2:]) + 1},{signature}"

    with pytest.raises(WebhookVerificationError, match="body was changed"):
        await verify(gateway_with(WEBHOOK_SECRET), body, moved)


@pytest.mark.parametrize("header", [None, "", "   "])
async def test_a_missing_header_is_refused(header: str | None) -> None:
    body, _ = signed(EVENT)

    with pytest.raises(WebhookVerificationError, match="no Stripe-Signature header"):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


@pytest.mark.parametrize(
    "header", ["garbage", "t=not-a-number,v1=abc", "v1=abc", "t=,v1=", "t=1=2=3"]
)
async def test_a_garbled_header_is_refused(header: str) -> None:
    body, _ = signed(EVENT)

    with pytest.raises(WebhookVerificationError, match="malformed|no v1 signature"):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


async def test_a_header_with_only_a_v0_signature_is_refused() -> None:
    body, header = signed(EVENT)
    # a correct HMAC, but under the v0 scheme name: only v1 is Stripe's live scheme
    v0_only = header.replace("v1=", "v0=")

    with pytest.raises(WebhookVerificationError, match="no v1 signature"):
        await verify(gateway_with(WEBHOOK_SECRET), body, v0_only)


async def test_without_configured_secrets_every_webhook_is_refused() -> None:
    body, header = signed(EVENT)

    with pytest.raises(WebhookVerificationError, match="PIXECOM_STRIPE_WEBHOOK_SECRETS"):
        await verify(gateway_with(), body, header)


async def test_a_signed_body_that_is_not_json_is_refused() -> None:
    body = b"<html>not an event</html>"
    header = signature_header(body.decode(), [WEBHOOK_SECRET])

    with pytest.raises(WebhookVerificationError, match="not JSON"):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


async def test_a_body_that_is_not_utf8_is_refused() -> None:
    body = b'{"id": "evt_\xff"}'
    _, header = signed(EVENT)

    with pytest.raises(WebhookVerificationError, match="not UTF-8"):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([EVENT], "not a JSON object"),
        ({**EVENT, "id": None}, "no event id"),
        ({key: value for key, value in EVENT.items() if key != "id"}, "no event id"),
        ({**EVENT, "id": ""}, "no event id"),
        ({**EVENT, "id": "evt_" + "x" * 300}, "no event id"),
        ({**EVENT, "type": 7}, "no event type"),
    ],
)
async def test_a_signed_body_without_an_event_id_or_type_is_refused(
    payload: Any, message: str
) -> None:
    body = json.dumps(payload).encode()
    header = signature_header(body.decode(), [WEBHOOK_SECRET])

    with pytest.raises(WebhookVerificationError, match=message):
        await verify(gateway_with(WEBHOOK_SECRET), body, header)


async def test_refusals_never_contain_the_secrets() -> None:
    body, header = signed(EVENT, "whsec_attacker")

    with pytest.raises(WebhookVerificationError) as raised:
        await verify(gateway_with(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET), body, header)

    assert WEBHOOK_SECRET not in str(raised.value)
    assert OLD_WEBHOOK_SECRET not in str(raised.value)
