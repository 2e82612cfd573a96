"""``parse_events`` on events the sandbox generated: each Stripe type becomes the right fact,
one money movement announced several ways is one fact, two refunds are two."""

import copy
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pixecom_stripe.gateway import StripeGateway
from stripe_support import RunningSandbox, facts_of, settings_for

from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentEventKind,
    PaymentRequest,
    ProviderAuthError,
    ProviderError,
)

MakeRequest = Callable[..., PaymentRequest]
Fact = tuple[str, PaymentEventKind]


async def paid(
    gateway: StripeGateway, sandbox: RunningSandbox, request: PaymentRequest
) -> dict[str, Any]:
    """A PaymentIntent created through the gateway and paid by the buyer."""
    session = await gateway.create_payment(request)
    return await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")


async def only(sandbox: RunningSandbox, event_type: str) -> dict[str, Any]:
    [event] = await sandbox.events(event_type)
    return event


def identity(facts: list[GatewayPaymentEvent]) -> set[tuple[str, PaymentEventKind, int]]:
    return {(fact.fact_reference, fact.kind, fact.amount_minor) for fact in facts}


# -- payments ---------------------------------------------------------------------------


async def test_events_core_does_not_track_yield_nothing(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await gateway.create_payment(make_request())

    created = await only(sandbox, "payment_intent.created")

    assert await facts_of(gateway, created) == []
    assert await facts_of(gateway, {**created, "type": "customer.created"}) == []


async def test_a_captured_payment_is_one_fact_announced_by_two_events(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request(amount_minor=5_000, currency="EUR")
    intent = await paid(gateway, sandbox, request)
    charge_event = await only(sandbox, "charge.succeeded")
    intent_event = await only(sandbox, "payment_intent.succeeded")

    [from_charge] = await facts_of(gateway, charge_event)
    [from_intent] = await facts_of(gateway, intent_event)

    for fact in (from_charge, from_intent):
        assert fact.kind is PaymentEventKind.CAPTURED
        assert fact.gateway == "stripe"
        assert fact.gateway_reference == intent["id"]
        assert fact.fact_reference == intent["latest_charge"]
        assert fact.fact_reference.startswith("ch_")
        assert fact.amount_minor == 5_000
        assert fact.currency == "EUR"
        assert fact.order_reference == str(request.order_id)
    assert from_charge.event_id == charge_event["id"]
    assert from_intent.event_id == intent_event["id"]
    assert from_charge.occurred_at.timestamp() == charge_event["data"]["object"]["created"]
    assert from_intent.occurred_at.timestamp() == intent_event["created"]
    assert from_intent.metadata["stripe_event_type"] == "payment_intent.succeeded"
    assert from_intent.metadata["livemode"] == "false"


async def test_manual_capture_is_authorised_then_captured(
    gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    order_id = str(uuid.uuid4())
    created = await sandbox.api.post(
        "/v1/payment_intents",
        data={
            "amount": "5000",
            "currency": "usd",
            "capture_method": "manual",
            "metadata[order_id]": order_id,
        },
    )
    intent_id = created.json()["id"]
    await sandbox.act(f"payment_intents/{intent_id}/succeed")
    authorised = await only(sandbox, "payment_intent.amount_capturable_updated")
    uncaptured_charge = await only(sandbox, "charge.succeeded")
    captured = await sandbox.api.post(
        f"/v1/payment_intents/{intent_id}/capture", data={"amount_to_capture": "4000"}
    )
    assert captured.status_code == 200, captured.text

    [authorisation] = await facts_of(gateway, authorised)
    from_charge = await facts_of(gateway, await only(sandbox, "charge.captured"))
    from_intent = await facts_of(gateway, await only(sandbox, "payment_intent.succeeded"))

    assert authorisation.kind is PaymentEventKind.AUTHORIZED
    assert (authorisation.fact_reference, authorisation.amount_minor) == (intent_id, 5_000)
    assert authorisation.currency == "USD"
    assert authorisation.order_reference == order_id
    assert await facts_of(gateway, uncaptured_charge) == []
    charge_id = captured.json()["latest_charge"]
    assert (
        identity(from_charge)
        == identity(from_intent)
        == {(charge_id, PaymentEventKind.CAPTURED, 4_000)}
    )


async def test_a_declined_payment_is_a_failure_with_its_reason(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request(amount_minor=2_500)
    session = await gateway.create_payment(request)
    await sandbox.act(
        f"payment_intents/{session.gateway_reference}/fail",
        {"decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
    )

    [failure] = await facts_of(gateway, await only(sandbox, "payment_intent.payment_failed"))

    assert failure.kind is PaymentEventKind.FAILED
    assert failure.gateway_reference == failure.fact_reference == session.gateway_reference
    assert failure.amount_minor == 2_500
    assert failure.order_reference == str(request.order_id)
    assert failure.metadata["failure_code"] == "card_declined"
    assert failure.metadata["decline_code"] == "insufficient_funds"
    assert await facts_of(gateway, await only(sandbox, "charge.failed")) == []


# -- refunds ----------------------------------------------------------------------------


async def test_two_partial_refunds_are_two_facts_of_their_own_amounts(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request(amount_minor=5_000))
    first = await sandbox.refund(intent["id"], 1_000)
    second = await sandbox.refund(intent["id"], 1_500)
    refund_events = await sandbox.events("refund.created")
    charge_events = await sandbox.events("charge.refunded")

    from_refunds = [fact for event in refund_events for fact in await facts_of(gateway, event)]
    after_first = await facts_of(gateway, charge_events[0])
    after_second = await facts_of(gateway, charge_events[1])

    expected = {
        (first["id"], PaymentEventKind.REFUNDED, 1_000),
        (second["id"], PaymentEventKind.REFUNDED, 1_500),
    }
    assert identity(from_refunds) == expected
    assert first["id"] != second["id"]
    # charge.refunded carries amount_refunded=2500 (cumulative): it is never one refund's amount
    assert charge_events[1]["data"]["object"]["amount_refunded"] == 2_500
    assert identity(after_second) == expected
    # the charge's event is replayed with the refunds Stripe lists *now*; the ledger keys on
    # (re_, kind), so seeing the first refund again changes nothing
    assert identity(after_first) <= expected
    for fact in [*from_refunds, *after_first, *after_second]:
        assert fact.gateway_reference == intent["id"]
        assert fact.currency == "EUR"


async def test_charge_refunded_and_refund_created_name_the_same_fact(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    refund = await sandbox.refund(intent["id"], 700)

    [via_refund] = await facts_of(gateway, await only(sandbox, "refund.created"))
    [via_charge] = await facts_of(gateway, await only(sandbox, "charge.refunded"))

    assert (via_refund.fact_reference, via_refund.kind) == (refund["id"], PaymentEventKind.REFUNDED)
    assert (via_charge.fact_reference, via_charge.kind) == (
        via_refund.fact_reference,
        via_refund.kind,
    )
    assert via_charge.amount_minor == via_refund.amount_minor == 700
    assert via_charge.occurred_at == via_refund.occurred_at


async def test_a_full_refund_refunds_what_is_left(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request(amount_minor=5_000))
    await sandbox.refund(intent["id"], 1_200)
    rest = await sandbox.refund(intent["id"])

    facts = await facts_of(gateway, (await sandbox.events("charge.refunded"))[-1])

    assert rest["amount"] == 3_800
    assert sum(fact.amount_minor for fact in facts) == 5_000


async def test_embedded_refunds_are_read_from_the_event_without_calling_stripe(
    sandbox: RunningSandbox, make_request: MakeRequest, gateway: StripeGateway
) -> None:
    await sandbox.configure(embed_charge_refunds=True)
    intent = await paid(gateway, sandbox, make_request())
    refund = await sandbox.refund(intent["id"], 300)
    event = await only(sandbox, "charge.refunded")
    assert event["data"]["object"]["refunds"]["data"][0]["id"] == refund["id"]
    keyless = StripeGateway(settings_for(sandbox.url, secret_key=None))

    [fact] = await facts_of(keyless, event)

    assert (fact.fact_reference, fact.amount_minor) == (refund["id"], 300)


async def test_refunds_missing_from_the_event_are_listed_through_the_api(
    sandbox: RunningSandbox, make_request: MakeRequest, gateway: StripeGateway
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    await sandbox.refund(intent["id"], 300)
    event = await only(sandbox, "charge.refunded")
    assert "refunds" not in event["data"]["object"]
    keyless = StripeGateway(settings_for(sandbox.url, secret_key=None))

    with pytest.raises(ProviderAuthError, match="SECRET_KEY"):
        await facts_of(keyless, event)


async def test_a_pending_refund_is_recorded_when_it_succeeds(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.configure(refunds_start_pending=True)
    intent = await paid(gateway, sandbox, make_request())
    refund = await sandbox.refund(intent["id"], 900)
    assert refund["status"] == "pending"
    pending = [
        *await sandbox.events("refund.created"),
        *await sandbox.events("charge.refunded"),
    ]
    while_pending = [fact for event in pending for fact in await facts_of(gateway, event)]

    await sandbox.act(f"refunds/{refund['id']}/succeed")
    settled = [
        *await sandbox.events("refund.updated"),
        *await sandbox.events("charge.refund.updated"),
    ]

    assert while_pending == []
    assert len(settled) == 2
    for event in settled:
        assert identity(await facts_of(gateway, event)) == {
            (refund["id"], PaymentEventKind.REFUNDED, 900)
        }


async def test_a_failed_refund_is_never_recorded(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.configure(refunds_start_pending=True)
    intent = await paid(gateway, sandbox, make_request())
    refund = await sandbox.refund(intent["id"], 900)
    await sandbox.act(f"refunds/{refund['id']}/fail")

    types = ("refund.created", "refund.failed", "refund.updated", "charge.refund.updated")
    events = await sandbox.events(*types)

    assert {event["type"] for event in events} == set(types)
    for event in [*events, *await sandbox.events("charge.refunded")]:
        assert await facts_of(gateway, event) == []


# -- disputes ---------------------------------------------------------------------------


async def test_a_dispute_is_one_chargeback_announced_by_two_events(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request(amount_minor=5_000))
    dispute = await sandbox.act(f"payment_intents/{intent['id']}/dispute", {"amount": 4_000})

    created = await facts_of(gateway, await only(sandbox, "charge.dispute.created"))
    withdrawn = await facts_of(gateway, await only(sandbox, "charge.dispute.funds_withdrawn"))

    assert (
        identity(created)
        == identity(withdrawn)
        == {(dispute["id"], PaymentEventKind.CHARGEBACK, 4_000)}
    )
    assert created[0].gateway_reference == intent["id"]
    assert created[0].metadata["dispute_reason"] == "fraudulent"
    assert created[0].occurred_at.timestamp() == dispute["created"]


async def test_a_won_dispute_is_one_reversal_announced_by_two_events(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request(amount_minor=5_000))
    dispute = await sandbox.act(f"payment_intents/{intent['id']}/dispute")
    await sandbox.act(f"disputes/{dispute['id']}/win")

    reinstated = await facts_of(gateway, await only(sandbox, "charge.dispute.funds_reinstated"))
    closed = await facts_of(gateway, await only(sandbox, "charge.dispute.closed"))

    assert (
        identity(reinstated)
        == identity(closed)
        == {(dispute["id"], PaymentEventKind.CHARGEBACK_REVERSED, 5_000)}
    )
    assert closed[0].gateway_reference == intent["id"]


async def test_a_lost_dispute_adds_nothing_to_the_chargeback(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    dispute = await sandbox.act(f"payment_intents/{intent['id']}/dispute")
    await sandbox.act(f"disputes/{dispute['id']}/lose")

    closed = await only(sandbox, "charge.dispute.closed")

    assert closed["data"]["object"]["status"] == "lost"
    assert await facts_of(gateway, closed) == []


async def test_an_inquiry_moves_no_money(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    inquiry = await sandbox.act(f"payment_intents/{intent['id']}/dispute", {"inquiry": True})
    await sandbox.act(f"disputes/{inquiry['id']}/win")

    events = await sandbox.events("charge.dispute.created", "charge.dispute.closed")

    assert [event["data"]["object"]["status"] for event in events] == [
        "warning_needs_response",
        "warning_closed",
    ]
    for event in events:
        assert await facts_of(gateway, event) == []
    assert await sandbox.events("charge.dispute.funds_withdrawn") == []


# -- replays ----------------------------------------------------------------------------


async def test_duplicated_shuffled_replays_give_the_same_ledger(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request(amount_minor=10_000))
    await sandbox.refund(intent["id"], 1_000)
    await sandbox.refund(intent["id"], 2_000)
    dispute = await sandbox.act(f"payment_intents/{intent['id']}/dispute", {"amount": 7_000})
    await sandbox.act(f"disputes/{dispute['id']}/win")
    events = await sandbox.events()
    ledgers: list[dict[Fact, int]] = []

    for seed in range(4):
        deliveries = [*events, *events]
        random.Random(seed).shuffle(deliveries)
        ledger: dict[Fact, int] = {}
        for event in deliveries:
            for fact in await facts_of(gateway, event):
                # core's ON CONFLICT DO NOTHING on (gateway, fact_reference, kind)
                ledger.setdefault((fact.fact_reference, fact.kind), fact.amount_minor)
        ledgers.append(ledger)

    assert all(ledger == ledgers[0] for ledger in ledgers)
    totals = dict.fromkeys(PaymentEventKind, 0)
    for (_, kind), amount in ledgers[0].items():
        totals[kind] += amount
    assert totals[PaymentEventKind.CAPTURED] == 10_000
    assert totals[PaymentEventKind.REFUNDED] == 3_000
    assert totals[PaymentEventKind.CHARGEBACK] == 7_000
    assert totals[PaymentEventKind.CHARGEBACK_REVERSED] == 7_000
    assert len(ledgers[0]) == 5


# -- shapes Stripe may send, and shapes it should not -----------------------------------


async def test_a_succeeded_intent_without_latest_charge_fetches_it(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    event = copy.deepcopy(await only(sandbox, "payment_intent.succeeded"))
    del event["data"]["object"]["latest_charge"]

    [fact] = await facts_of(gateway, event)

    assert fact.fact_reference == intent["latest_charge"]


async def test_a_legacy_intent_with_embedded_charges_needs_no_fetch(
    sandbox: RunningSandbox, make_request: MakeRequest, gateway: StripeGateway
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    event = copy.deepcopy(await only(sandbox, "payment_intent.succeeded"))
    del event["data"]["object"]["latest_charge"]
    event["data"]["object"]["charges"] = {"object": "list", "data": [{"id": "ch_legacy"}]}
    keyless = StripeGateway(settings_for(sandbox.url, secret_key=None))

    [fact] = await facts_of(keyless, event)

    assert fact.fact_reference == "ch_legacy"
    assert fact.gateway_reference == intent["id"]


async def test_a_refund_naming_only_its_charge_is_traced_to_the_payment_intent(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    await sandbox.refund(intent["id"], 400)
    event = copy.deepcopy(await only(sandbox, "refund.created"))
    event["data"]["object"]["payment_intent"] = None

    [fact] = await facts_of(gateway, event)

    assert fact.gateway_reference == intent["id"]


async def test_a_dispute_naming_only_its_charge_is_traced_to_the_payment_intent(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    await sandbox.act(f"payment_intents/{intent['id']}/dispute")
    event = copy.deepcopy(await only(sandbox, "charge.dispute.created"))
    del event["data"]["object"]["payment_intent"]

    [fact] = await facts_of(gateway, event)

    assert fact.gateway_reference == intent["id"]


async def test_a_refund_of_an_unknown_charge_is_a_provider_error(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    await sandbox.refund(intent["id"], 400)
    event = copy.deepcopy(await only(sandbox, "refund.created"))
    event["data"]["object"].update(payment_intent=None, charge="ch_unknown")

    with pytest.raises(ProviderError, match="No such charge"):
        await facts_of(gateway, event)


async def test_money_outside_any_payment_intent_yields_nothing(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    intent = await paid(gateway, sandbox, make_request())
    await sandbox.refund(intent["id"], 400)
    charge_event = copy.deepcopy(await only(sandbox, "charge.succeeded"))
    charge_event["data"]["object"]["payment_intent"] = None
    refund_event = copy.deepcopy(await only(sandbox, "refund.created"))
    refund_event["data"]["object"].update(payment_intent=None, charge=None)

    assert await facts_of(gateway, charge_event) == []
    assert await facts_of(gateway, refund_event) == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda event: event.pop("data"), "field 'data' should be an object"),
        (lambda event: event["data"].pop("object"), "field 'object' should be an object"),
        (lambda event: event.pop("created"), "field 'created' should be an integer"),
        (
            lambda event: event["data"]["object"].update(amount_received="5000"),
            "field 'amount_received' should be an integer",
        ),
        (
            lambda event: event["data"]["object"].update(currency=None),
            "field 'currency' should be a non-empty string",
        ),
        (lambda event: event["data"]["object"].update(amount_received=-1), "greater than"),
        (lambda event: event["data"]["object"].update(currency="euro"), "pattern"),
    ],
    ids=["no-data", "no-object", "no-created", "amount-text", "no-currency", "negative", "bad"],
)
async def test_a_malformed_event_is_a_provider_error_naming_the_field(
    gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: MakeRequest,
    damage: Callable[[dict[str, Any]], object],
    message: str,
) -> None:
    await paid(gateway, sandbox, make_request())
    event = copy.deepcopy(await only(sandbox, "payment_intent.succeeded"))
    damage(event)

    with pytest.raises(ProviderError, match=message):
        await facts_of(gateway, event)
