"""The sandbox itself: Stripe's wire format, idempotency, and signed webhook delivery over
real HTTP to a receiver on loopback."""

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import stripe
from pixecom_stripe.gateway import StripeGateway
from stripe_support import (
    OLD_WEBHOOK_SECRET,
    SECRET_KEY,
    WEBHOOK_SECRET,
    RunningSandbox,
    settings_for,
)

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import (
    PaymentEventKind,
    PaymentRequest,
    WebhookVerificationError,
)
from pixecom_core.testing.loopback import serve
from pixecom_core.testing.sandbox_kit import WebhookReceiver

MakeRequest = Callable[..., PaymentRequest]
INTENT_FORM = {"amount": "2000", "currency": "usd", "metadata[order_id]": "order-1"}


async def paid_intent(sandbox: RunningSandbox) -> dict[str, Any]:
    created = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM)
    assert created.status_code == 200, created.text
    return await sandbox.act(f"payment_intents/{created.json()['id']}/succeed")


async def deliver(sandbox: RunningSandbox, **options: Any) -> list[dict[str, Any]]:
    response = await sandbox.control.post("/_sandbox/deliver", json=options)
    assert response.status_code == 200, response.text
    deliveries: list[dict[str, Any]] = response.json()["deliveries"]
    return deliveries


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


# -- webhook delivery -------------------------------------------------------------------


async def test_delivered_events_arrive_signed_as_stripe_signs_them(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)
    logged = await sandbox.events()

    deliveries = await deliver(sandbox)

    assert [d["status_code"] for d in deliveries] == [200] * len(logged)
    assert [json.loads(webhook.body)["id"] for webhook in receiver.received] == [
        e["id"] for e in logged
    ]
    for webhook in receiver.received:
        assert webhook.headers["content-type"].startswith("application/json")
        signature = webhook.headers["stripe-signature"]
        assert signature.count("v1=") == 1
        assert "v0=" in signature
        # Stripe's own library accepts it
        event = stripe.Webhook.construct_event(
            webhook.body.decode(), signature, WEBHOOK_SECRET, 300
        )
        assert event["object"] == "event"


async def test_delivered_events_pass_the_gateway_and_become_facts(
    sandbox: RunningSandbox,
    receiver: WebhookReceiver,
    gateway: StripeGateway,
    make_request: MakeRequest,
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    session = await gateway.create_payment(make_request(amount_minor=3_000))
    await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")
    await sandbox.refund(session.gateway_reference, 500)
    await deliver(sandbox)

    facts = set()
    for received in receiver.received:
        webhook = await gateway.verify_webhook(body=received.body, headers=received.headers)
        for fact in await gateway.parse_events(webhook):
            facts.add((fact.kind, fact.amount_minor, fact.gateway_reference))

    assert facts == {
        (PaymentEventKind.CAPTURED, 3_000, session.gateway_reference),
        (PaymentEventKind.REFUNDED, 500, session.gateway_reference),
    }


async def test_only_pending_events_are_delivered_again(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)
    first = await deliver(sandbox)

    again = await deliver(sandbox)
    everything = await deliver(sandbox, include_delivered=True)
    pending = (await sandbox.control.get("/_sandbox/events?pending_only=true")).json()["data"]

    assert again == []
    assert len(everything) == len(first)
    assert pending == []


async def test_duplicated_and_shuffled_deliveries(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    intent = await paid_intent(sandbox)
    await sandbox.refund(intent["id"], 100)
    await sandbox.refund(intent["id"], 100)
    logged = [event["id"] for event in await sandbox.events()]

    await deliver(sandbox, duplicates=1, shuffle=True, seed=3)

    received = [json.loads(webhook.body)["id"] for webhook in receiver.received]
    assert sorted(received) == sorted(logged * 2)
    assert received != [event_id for event_id in logged for _ in range(2)]


async def test_a_rotating_endpoint_gets_two_v1_signatures(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(
        webhook_url=receiver.endpoint, webhook_secrets=[OLD_WEBHOOK_SECRET, WEBHOOK_SECRET]
    )
    await paid_intent(sandbox)
    await deliver(sandbox)
    still_on_the_old_secret = StripeGateway(
        settings_for(sandbox.url, webhook_secrets=[OLD_WEBHOOK_SECRET])
    )

    for webhook in receiver.received:
        assert webhook.headers["stripe-signature"].count("v1=") == 2
        await still_on_the_old_secret.verify_webhook(body=webhook.body, headers=webhook.headers)


async def test_an_old_delivery_timestamp_is_refused_by_the_gateway(
    sandbox: RunningSandbox, receiver: WebhookReceiver, gateway: StripeGateway
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)

    await deliver(sandbox, signing={"timestamp_offset_seconds": -600})

    for webhook in receiver.received:
        with pytest.raises(WebhookVerificationError, match="300 s old"):
            await gateway.verify_webhook(body=webhook.body, headers=webhook.headers)


async def test_a_delivery_signed_with_another_secret_is_refused_by_the_gateway(
    sandbox: RunningSandbox, receiver: WebhookReceiver, gateway: StripeGateway
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)

    await deliver(sandbox, signing={"secrets": ["whsec_not_the_endpoint_secret"]})

    assert receiver.received
    for webhook in receiver.received:
        with pytest.raises(WebhookVerificationError, match="configured webhook secret"):
            await gateway.verify_webhook(body=webhook.body, headers=webhook.headers)


@pytest.mark.parametrize(
    "signing", [{"secrets": [""]}, {"timestamp_offset_seconds": "soon"}, {"colour": "red"}]
)
async def test_signing_options_stripe_does_not_take_are_refused_before_any_delivery(
    sandbox: RunningSandbox, receiver: WebhookReceiver, signing: dict[str, Any]
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)

    refused = await sandbox.control.post("/_sandbox/deliver", json={"signing": signing})

    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("invalid signing options")
    assert receiver.received == []


async def test_an_event_is_shown_byte_for_byte_as_its_deliveries_send_it(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint)
    await paid_intent(sandbox)
    (delivery, *_) = await deliver(sandbox)

    shown = await sandbox.control.get(f"/_sandbox/events/{delivery['event_id']}")
    missing = await sandbox.control.get("/_sandbox/events/evt_none")

    sent = next(w.body for w in receiver.received if delivery["event_id"].encode() in w.body)
    assert shown.content == sent
    assert missing.status_code == 404


async def test_auto_delivery_sends_each_event_as_it_happens(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    await sandbox.configure(webhook_url=receiver.endpoint, auto_deliver=True)

    await paid_intent(sandbox)

    async with asyncio.timeout(5):
        while len(receiver.received) < 3:
            await asyncio.sleep(0.02)
    types = {json.loads(webhook.body)["type"] for webhook in receiver.received}
    assert types == {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded"}


# -- Stripe's wire format ---------------------------------------------------------------


async def test_objects_are_stripe_shaped_and_answers_carry_a_request_id(
    sandbox: RunningSandbox,
) -> None:
    created = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM)

    intent = created.json()
    assert created.headers["request-id"].startswith("req_")
    assert intent["object"] == "payment_intent"
    assert intent["metadata"] == {"order_id": "order-1"}
    assert intent["client_secret"].startswith(intent["id"] + "_secret_")
    [event] = await sandbox.events("payment_intent.created")
    assert event["object"] == "event"
    assert event["data"]["object"]["id"] == intent["id"]
    assert event["request"]["id"] == created.headers["request-id"]
    logged = (await sandbox.control.get("/_sandbox/requests")).json()
    assert [(c["operation"], c["request_id"], c["has_key"]) for c in logged] == [
        ("create_payment_intent", created.headers["request-id"], True)
    ]
    assert SECRET_KEY not in json.dumps(logged)


async def test_basic_auth_like_curl_u_is_accepted(sandbox: RunningSandbox) -> None:
    token = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()

    response = await sandbox.control.post(
        "/v1/payment_intents", data=INTENT_FORM, headers={"Authorization": f"Basic {token}"}
    )

    assert response.status_code == 200


async def test_no_api_key_is_a_401_in_stripes_envelope(sandbox: RunningSandbox) -> None:
    response = await sandbox.control.post("/v1/payment_intents", data=INTENT_FORM)

    assert response.status_code == 401
    assert error_of(response)["type"] == "invalid_request_error"
    assert "You did not provide an API key" in error_of(response)["message"]


async def test_an_invalid_key_is_masked_in_the_answer(sandbox: RunningSandbox) -> None:
    await sandbox.configure(api_keys=[SECRET_KEY])

    response = await sandbox.control.get(
        "/v1/payment_intents/pi_1", headers={"Authorization": "Bearer sk_test_other_key_5555"}
    )

    assert response.status_code == 401
    assert error_of(response)["message"] == "Invalid API Key provided: sk_test_****5555"


@pytest.mark.parametrize(
    ("form", "code", "param"),
    [
        ({"currency": "usd"}, "parameter_missing", "amount"),
        ({"amount": "20"}, "parameter_missing", "currency"),
        ({"amount": "twenty", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": "0", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": "20", "currency": "usd", "colour": "red"}, "parameter_unknown", "colour"),
    ],
)
async def test_invalid_parameters_are_refused_like_stripe(
    sandbox: RunningSandbox, form: dict[str, str], code: str, param: str
) -> None:
    response = await sandbox.api.post("/v1/payment_intents", data=form)

    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert error_of(response)["param"] == param


async def test_an_idempotent_retry_replays_the_first_answer(sandbox: RunningSandbox) -> None:
    headers = {"Idempotency-Key": "order-1-attempt-1"}

    first = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM, headers=headers)
    second = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM, headers=headers)

    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await sandbox.events("payment_intent.created")) == 1


async def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    sandbox: RunningSandbox,
) -> None:
    headers = {"Idempotency-Key": "order-1-attempt-1"}
    await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM, headers=headers)

    response = await sandbox.api.post(
        "/v1/payment_intents", data={**INTENT_FORM, "amount": "2001"}, headers=headers
    )

    assert response.status_code == 400
    assert error_of(response)["type"] == "idempotency_error"
    assert "same parameters" in error_of(response)["message"]


async def test_a_key_reused_on_another_endpoint_is_an_idempotency_error(
    sandbox: RunningSandbox,
) -> None:
    intent = await paid_intent(sandbox)
    headers = {"Idempotency-Key": "shared-key"}
    await sandbox.api.post(
        "/v1/refunds", data={"payment_intent": intent["id"], "amount": "10"}, headers=headers
    )

    response = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM, headers=headers)

    assert response.status_code == 400
    assert "same endpoint" in error_of(response)["message"]


async def test_a_refused_request_does_not_use_up_its_key(sandbox: RunningSandbox) -> None:
    headers = {"Idempotency-Key": "fix-and-retry"}
    refused = await sandbox.api.post("/v1/payment_intents", data={"amount": "20"}, headers=headers)

    accepted = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM, headers=headers)

    assert refused.status_code == 400
    assert accepted.status_code == 200


async def test_an_unknown_url_is_a_404_in_stripes_envelope(sandbox: RunningSandbox) -> None:
    response = await sandbox.api.get("/v1/payment_links")

    assert response.status_code == 404
    assert "Unrecognized request URL (GET: /v1/payment_links)" in error_of(response)["message"]


async def test_refunds_cannot_exceed_what_was_captured(sandbox: RunningSandbox) -> None:
    intent = await paid_intent(sandbox)

    too_much = await sandbox.api.post(
        "/v1/refunds", data={"payment_intent": intent["id"], "amount": "2001"}
    )
    await sandbox.refund(intent["id"])
    again = await sandbox.api.post("/v1/refunds", data={"payment_intent": intent["id"]})

    assert error_of(too_much)["code"] == "amount_too_large"
    assert error_of(again)["code"] == "charge_already_refunded"


async def test_an_unpaid_payment_intent_cannot_be_refunded(sandbox: RunningSandbox) -> None:
    created = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM)

    response = await sandbox.api.post("/v1/refunds", data={"payment_intent": created.json()["id"]})

    assert response.status_code == 400
    assert error_of(response)["code"] == "charge_not_refundable"


async def test_refunds_are_listed_newest_first_in_pages(sandbox: RunningSandbox) -> None:
    intent = await paid_intent(sandbox)
    refunds = [await sandbox.refund(intent["id"], amount) for amount in (100, 200, 300)]
    charge = intent["latest_charge"]

    first = (await sandbox.api.get("/v1/refunds", params={"charge": charge, "limit": 2})).json()
    rest = (
        await sandbox.api.get(
            "/v1/refunds",
            params={"charge": charge, "limit": 2, "starting_after": first["data"][-1]["id"]},
        )
    ).json()

    assert first["object"] == "list"
    assert [r["amount"] for r in first["data"]] == [300, 200]
    assert first["has_more"] is True
    assert [r["id"] for r in rest["data"]] == [refunds[0]["id"]]
    assert rest["has_more"] is False


async def test_the_gateway_lists_every_refund_across_pages(
    sandbox: RunningSandbox, gateway: StripeGateway
) -> None:
    intent = await paid_intent(sandbox)
    for _ in range(3):
        await sandbox.refund(intent["id"], 10)

    refunds = await gateway.client.list_refunds(charge_id=intent["latest_charge"])

    assert len(refunds) == 3
    assert len({refund["id"] for refund in refunds}) == 3


# -- control endpoints ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["succeed", "fail", "dispute"])
async def test_actions_on_an_unknown_payment_intent_are_404(
    sandbox: RunningSandbox, action: str
) -> None:
    response = await sandbox.control.post(f"/_sandbox/payment_intents/pi_missing/{action}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "resource_missing"


async def test_a_paid_intent_cannot_be_paid_twice(sandbox: RunningSandbox) -> None:
    intent = await paid_intent(sandbox)

    response = await sandbox.control.post(f"/_sandbox/payment_intents/{intent['id']}/succeed")

    assert response.status_code == 400
    assert error_of(response)["code"] == "payment_intent_unexpected_state"


async def test_an_unpaid_intent_cannot_be_disputed(sandbox: RunningSandbox) -> None:
    created = await sandbox.api.post("/v1/payment_intents", data=INTENT_FORM)

    response = await sandbox.control.post(
        f"/_sandbox/payment_intents/{created.json()['id']}/dispute"
    )

    assert response.status_code == 400


async def test_a_closed_dispute_cannot_be_closed_again(sandbox: RunningSandbox) -> None:
    intent = await paid_intent(sandbox)
    dispute = await sandbox.act(f"payment_intents/{intent['id']}/dispute")
    await sandbox.act(f"disputes/{dispute['id']}/win")

    response = await sandbox.control.post(f"/_sandbox/disputes/{dispute['id']}/lose")
    unknown_outcome = await sandbox.control.post(f"/_sandbox/disputes/{dispute['id']}/draw")

    assert response.status_code == 400
    assert "already closed" in error_of(response)["message"]
    assert unknown_outcome.status_code == 422


async def test_the_config_never_shows_secrets(sandbox: RunningSandbox) -> None:
    await sandbox.configure(api_keys=[SECRET_KEY], webhook_secrets=[OLD_WEBHOOK_SECRET])

    shown = (await sandbox.control.get("/_sandbox/config")).text

    assert SECRET_KEY not in shown
    assert OLD_WEBHOOK_SECRET not in shown
    assert json.loads(shown)["webhook_secrets_configured"] == 1
    assert json.loads(shown)["api_keys_configured"] == 1


async def test_reset_forgets_objects_and_events(sandbox: RunningSandbox) -> None:
    intent = await paid_intent(sandbox)

    await sandbox.control.post("/_sandbox/reset")

    assert await sandbox.events() == []
    assert (await sandbox.api.get(f"/v1/payment_intents/{intent['id']}")).status_code == 404


async def test_the_sandbox_found_through_the_hook_reads_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXECOM_STRIPE_SANDBOX_API_KEYS", "sk_test_dev_mode_key")
    sandbox = ProviderRegistry(create_plugin_manager(allow={"stripe"})).sandbox("stripe")

    async with serve(sandbox.create_app()) as url, httpx.AsyncClient(base_url=url) as http:
        allowed = await http.post(
            "/v1/payment_intents",
            data=INTENT_FORM,
            headers={"Authorization": "Bearer sk_test_dev_mode_key"},
        )
        other = await http.post(
            "/v1/payment_intents",
            data=INTENT_FORM,
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        )

    assert allowed.status_code == 200
    assert other.status_code == 401
