"""``refund`` and ``fetch_refund`` over real HTTP against the sandbox, and how Stripe's
answers to a refund are classified."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pixecom_stripe.client import StripeClient, StripeRateLimited
from pixecom_stripe.gateway import StripeGateway
from stripe_support import SECRET_KEY, RunningSandbox, settings_for

from pixecom_core.providers import (
    GatewayRefund,
    PaymentRequest,
    PaymentSession,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
    RefundRequest,
    RefundState,
)

MakeRequest = Callable[..., PaymentRequest]
PAID = 5_000


async def paid(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> PaymentSession:
    """A PaymentIntent of ``PAID`` EUR cents, paid and captured at the sandbox."""
    session = await gateway.create_payment(make_request(amount_minor=PAID, currency="EUR"))
    await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")
    return session


def refund_of(session: PaymentSession, amount_minor: int, **overrides: Any) -> RefundRequest:
    values: dict[str, Any] = {
        "idempotency_key": f"refund-{uuid.uuid4()}",
        "seller_id": uuid.uuid4(),
        "order_id": uuid.uuid4(),
        "refund_id": uuid.uuid4(),
        "payment_reference": session.gateway_reference,
        "capture_reference": "ch_unused_by_stripe",
        "amount_minor": amount_minor,
        "currency": "EUR",
        "reason": "Parcel lost in transit",
    }
    values.update(overrides)
    return RefundRequest(**values)


async def refunds_at_sandbox(sandbox: RunningSandbox, session: PaymentSession) -> list[Any]:
    listed = await sandbox.api.get(
        "/v1/refunds", params={"payment_intent": session.gateway_reference}
    )
    listed.raise_for_status()
    refunds: list[Any] = listed.json()["data"]
    return refunds


async def logged_calls(sandbox: RunningSandbox, operation: str) -> list[dict[str, Any]]:
    logged = (await sandbox.control.get("/_sandbox/requests")).json()
    return [call for call in logged if call["operation"] == operation]


# -- refunding --------------------------------------------------------------------------


async def test_a_partial_then_a_full_refund(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)

    part = await gateway.refund(refund_of(session, 1_500))
    rest = await gateway.refund(refund_of(session, PAID - 1_500))

    assert isinstance(part, GatewayRefund)
    assert part.gateway == "stripe"
    assert part.refund_reference.startswith("re_")
    assert (part.state, part.amount_minor, part.currency) == (
        RefundState.SUCCEEDED,
        1_500,
        "EUR",
    )
    assert abs(part.occurred_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert part.failure_reason is None
    assert (rest.state, rest.amount_minor) == (RefundState.SUCCEEDED, PAID - 1_500)
    assert rest.refund_reference != part.refund_reference
    stored = await refunds_at_sandbox(sandbox, session)
    assert sorted(refund["id"] for refund in stored) == sorted(
        [part.refund_reference, rest.refund_reference]
    )
    intent = (await sandbox.api.get(f"/v1/payment_intents/{session.gateway_reference}")).json()
    charge = (await sandbox.api.get(f"/v1/charges/{intent['latest_charge']}")).json()
    assert (charge["amount_refunded"], charge["refunded"]) == (PAID, True)


async def test_a_retry_with_the_same_key_is_the_same_refund(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    request = refund_of(session, 1_000)

    first = await gateway.refund(request)
    retried = await gateway.refund(request)

    assert retried == first
    assert [refund["id"] for refund in await refunds_at_sandbox(sandbox, session)] == [
        first.refund_reference
    ]
    assert len(await sandbox.events("refund.created")) == 1
    calls = await logged_calls(sandbox, "create_refund")
    assert [call["idempotency_key"] for call in calls] == [request.idempotency_key] * 2


async def test_the_request_carries_the_idempotency_key_and_metadata(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    request = refund_of(session, 700)

    answer = await gateway.refund(request)

    [call] = await logged_calls(sandbox, "create_refund")
    assert (call["method"], call["path"]) == ("POST", "/v1/refunds")
    assert call["idempotency_key"] == request.idempotency_key
    stored = (await sandbox.api.get(f"/v1/refunds/{answer.refund_reference}")).json()
    assert stored["payment_intent"] == session.gateway_reference
    assert stored["amount"] == 700
    assert stored["metadata"] == {
        "order_id": str(request.order_id),
        "seller_id": str(request.seller_id),
        "refund_id": str(request.refund_id),
        "refund_reason": "Parcel lost in transit",
    }
    # Stripe's own reason is an enum (fraudulent also blocks the card): never guessed
    assert stored["reason"] is None


async def test_without_a_reason_no_reason_travels(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)

    answer = await gateway.refund(refund_of(session, 700, reason=None))

    stored = (await sandbox.api.get(f"/v1/refunds/{answer.refund_reference}")).json()
    assert "refund_reason" not in stored["metadata"]
    assert stored["reason"] is None


async def test_more_than_is_left_is_refused_with_stripes_message(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    await gateway.refund(refund_of(session, 4_000))

    with pytest.raises(ProviderRefused) as too_much:
        await gateway.refund(refund_of(session, 2_000))
    await gateway.refund(refund_of(session, 1_000))
    with pytest.raises(ProviderRefused) as nothing_left:
        await gateway.refund(refund_of(session, 1))

    assert "greater than unrefunded amount on charge (1000)" in str(too_much.value)
    assert "amount_too_large" in str(too_much.value)
    assert too_much.value.provider == "stripe"
    assert not isinstance(too_much.value, ProviderTransientError)
    assert "has already been refunded" in str(nothing_left.value)
    assert "charge_already_refunded" in str(nothing_left.value)
    assert sum(refund["amount"] for refund in await refunds_at_sandbox(sandbox, session)) == PAID


async def test_a_payment_never_captured_is_refused(
    gateway: StripeGateway, make_request: MakeRequest
) -> None:
    unpaid = await gateway.create_payment(make_request())

    with pytest.raises(ProviderRefused, match="does not have a successful charge to refund"):
        await gateway.refund(refund_of(unpaid, 100))


async def test_the_same_key_with_another_amount_is_refused(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    request = refund_of(session, 1_000)
    await gateway.refund(request)

    with pytest.raises(ProviderRefused, match="idempotency_error") as raised:
        await gateway.refund(request.model_copy(update={"amount_minor": 2_000}))

    assert "same parameters" in str(raised.value)
    assert len(await refunds_at_sandbox(sandbox, session)) == 1


# -- pending refunds --------------------------------------------------------------------


async def test_a_pending_refund_is_fetched_until_it_succeeds(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.configure(refunds_start_pending=True)
    session = await paid(gateway, sandbox, make_request)

    answer = await gateway.refund(refund_of(session, 1_200))
    still = await gateway.fetch_refund(
        payment_reference=session.gateway_reference, refund_reference=answer.refund_reference
    )
    await sandbox.act(f"refunds/{answer.refund_reference}/succeed")
    settled = await gateway.fetch_refund(
        payment_reference=session.gateway_reference, refund_reference=answer.refund_reference
    )

    assert answer.state is RefundState.PENDING
    assert still.state is RefundState.PENDING
    assert settled.state is RefundState.SUCCEEDED
    assert (settled.refund_reference, settled.amount_minor, settled.currency) == (
        answer.refund_reference,
        1_200,
        "EUR",
    )
    assert settled.occurred_at == answer.occurred_at
    assert settled.failure_reason is None


async def test_a_pending_refund_that_fails_says_why_and_frees_the_amount(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.configure(refunds_start_pending=True)
    session = await paid(gateway, sandbox, make_request)
    answer = await gateway.refund(refund_of(session, PAID))

    await sandbox.act(f"refunds/{answer.refund_reference}/fail")
    failed = await gateway.fetch_refund(
        payment_reference=session.gateway_reference, refund_reference=answer.refund_reference
    )

    assert failed.state is RefundState.FAILED
    assert failed.failure_reason == "expired_or_canceled_card"
    again = await gateway.refund(refund_of(session, PAID))
    assert again.refund_reference != answer.refund_reference


async def test_fetching_a_refund_of_another_payment_is_an_error(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    other = await paid(gateway, sandbox, make_request)
    answer = await gateway.refund(refund_of(other, 100))

    with pytest.raises(ProviderError, match=f"belongs to PaymentIntent {other.gateway_reference}"):
        await gateway.fetch_refund(
            payment_reference=session.gateway_reference,
            refund_reference=answer.refund_reference,
        )


async def test_fetching_an_unknown_refund_is_an_error_not_a_refusal(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)

    with pytest.raises(ProviderError, match="No such refund") as raised:
        await gateway.fetch_refund(
            payment_reference=session.gateway_reference, refund_reference="re_missing"
        )

    assert type(raised.value) is ProviderError


# -- failures on the way ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient_and_the_retry_refunds_once(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest, status: int
) -> None:
    session = await paid(gateway, sandbox, make_request)
    request = refund_of(session, 900)
    await sandbox.inject("transient", status=status, operation="create_refund")

    with pytest.raises(ProviderTransientError, match=f"{status} api_error"):
        await gateway.refund(request)
    answer = await gateway.refund(request)
    again = await gateway.refund(request)

    assert again.refund_reference == answer.refund_reference
    assert len(await refunds_at_sandbox(sandbox, session)) == 1


async def test_a_refund_whose_answer_was_lost_is_not_made_twice(
    private_sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    gateway = StripeGateway(settings_for(private_sandbox.url, timeout_seconds=0.3))
    session = await paid(gateway, private_sandbox, make_request)
    request = refund_of(session, 900)
    await private_sandbox.configure(latency_seconds=1.0)

    with pytest.raises(ProviderTransientError, match="did not answer"):
        await gateway.refund(request)
    await private_sandbox.configure(latency_seconds=0)
    # the sandbox, like Stripe, finishes the request the client gave up on
    deadline = time.monotonic() + 10
    while not (made := await refunds_at_sandbox(private_sandbox, session)):
        assert time.monotonic() < deadline, "the timed-out refund never reached the sandbox"
        await asyncio.sleep(0.1)
    answer = await gateway.refund(request)

    assert answer.refund_reference == made[0]["id"]
    assert len(await refunds_at_sandbox(private_sandbox, session)) == 1
    await gateway.client.aclose()


async def test_rate_limiting_a_refund_is_throttled(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    session = await paid(gateway, sandbox, make_request)
    await sandbox.inject("throttled", operation="create_refund", retry_after_seconds=2)

    with pytest.raises(StripeRateLimited) as raised:
        await gateway.refund(refund_of(session, 100))

    assert isinstance(raised.value, ProviderThrottled)
    assert raised.value.retry_after_seconds == 2


async def test_a_wrong_key_is_an_auth_error_for_refunds_too(
    sandbox: RunningSandbox, make_request: MakeRequest, gateway: StripeGateway
) -> None:
    session = await paid(gateway, sandbox, make_request)
    wrong_key = "sk_test_wrong_key_5555"
    await sandbox.configure(api_keys=[SECRET_KEY])
    wrong = StripeGateway(settings_for(sandbox.url, secret_key=wrong_key))

    with pytest.raises(ProviderAuthError, match="Invalid API Key provided") as refunding:
        await wrong.refund(refund_of(session, 100))
    with pytest.raises(ProviderAuthError):
        await wrong.fetch_refund(
            payment_reference=session.gateway_reference, refund_reference="re_any"
        )

    assert wrong_key not in str(refunding.value)
    assert await refunds_at_sandbox(sandbox, session) == []
    await wrong.client.aclose()


# -- Stripe answers the sandbox does not give ---------------------------------------------


def scripted_gateway(status: int, body: dict[str, Any]) -> StripeGateway:
    """A gateway whose every call gets ``status`` and ``body``."""

    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"request-id": "req_scripted"}
        )

    settings = settings_for("https://api.stripe.test")
    return StripeGateway(
        settings, client=StripeClient(settings, transport=httpx.MockTransport(answer))
    )


def stripe_error(error_type: str, message: str, code: str | None = None) -> dict[str, Any]:
    error = {"type": error_type, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


REFUND_REQUEST = RefundRequest(
    idempotency_key="refund-scripted",
    seller_id=uuid.uuid4(),
    order_id=uuid.uuid4(),
    refund_id=uuid.uuid4(),
    payment_reference="pi_scripted",
    capture_reference="ch_scripted",
    amount_minor=100,
    currency="EUR",
)


async def test_a_key_still_in_use_is_transient_not_refused() -> None:
    # 409: the first request with this key is still running; its answer will be replayed
    gateway = scripted_gateway(
        409,
        stripe_error(
            "idempotency_error",
            "There is currently another in-progress request using this Idempotent Key.",
            "idempotency_key_in_use",
        ),
    )

    with pytest.raises(ProviderTransientError, match="idempotency_key_in_use") as raised:
        await gateway.refund(REFUND_REQUEST)

    assert not isinstance(raised.value, ProviderRefused)


async def test_a_card_error_is_refused() -> None:
    gateway = scripted_gateway(402, stripe_error("card_error", "Your card was declined."))

    with pytest.raises(ProviderRefused, match="Your card was declined"):
        await gateway.refund(REFUND_REQUEST)


async def test_an_invalid_request_elsewhere_stays_a_plain_provider_error() -> None:
    gateway = scripted_gateway(400, stripe_error("invalid_request_error", "Invalid currency"))

    with pytest.raises(ProviderError, match="Invalid currency") as raised:
        await gateway.client.retrieve_payment_intent("pi_scripted")

    assert type(raised.value) is ProviderError


def refund_object(**fields: Any) -> dict[str, Any]:
    return {
        "id": "re_scripted",
        "object": "refund",
        "amount": 100,
        "currency": "eur",
        "created": 1_765_000_000,
        "payment_intent": "pi_scripted",
        "status": "succeeded",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "state", "failure_reason"),
    [
        ({"status": "pending"}, RefundState.PENDING, None),
        ({"status": "requires_action"}, RefundState.PENDING, None),
        ({"status": "succeeded"}, RefundState.SUCCEEDED, None),
        (
            {"status": "failed", "failure_reason": "lost_or_stolen_card"},
            RefundState.FAILED,
            "lost_or_stolen_card",
        ),
        ({"status": "canceled", "failure_reason": None}, RefundState.FAILED, "canceled"),
        ({"status": None}, RefundState.PENDING, None),
        ({"status": "something_new"}, RefundState.PENDING, None),
    ],
)
async def test_stripe_refund_statuses_become_refund_states(
    fields: dict[str, Any], state: RefundState, failure_reason: str | None
) -> None:
    gateway = scripted_gateway(200, refund_object(**fields))

    answer = await gateway.refund(REFUND_REQUEST)

    assert (answer.state, answer.failure_reason) == (state, failure_reason)
    assert answer.occurred_at == datetime.fromtimestamp(1_765_000_000, UTC)
    assert answer.currency == "EUR"


async def test_a_refund_answer_without_an_amount_is_a_provider_error() -> None:
    gateway = scripted_gateway(200, refund_object(amount=None))

    with pytest.raises(ProviderError, match="'amount' should be an integer"):
        await gateway.refund(REFUND_REQUEST)
