"""``create_payment`` over real HTTP against the sandbox, and how failures are reported."""

import socket
import uuid
from collections.abc import Callable

import pytest
from pixecom_stripe.client import StripeRateLimited
from pixecom_stripe.gateway import StripeGateway
from stripe_support import SECRET_KEY, RunningSandbox, settings_for

from pixecom_core.providers import (
    PaymentRequest,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)

MakeRequest = Callable[..., PaymentRequest]


async def test_create_payment_returns_the_payment_intent_and_client_secret(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request(amount_minor=12_345, currency="EUR")

    session = await gateway.create_payment(request)

    assert session.gateway == "stripe"
    assert session.gateway_reference.startswith("pi_")
    assert session.client_secret is not None
    assert session.client_secret.get_secret_value().startswith(
        f"{session.gateway_reference}_secret_"
    )
    stored = (await sandbox.api.get(f"/v1/payment_intents/{session.gateway_reference}")).json()
    assert stored["amount"] == 12_345
    assert stored["currency"] == "eur"
    assert stored["status"] == "requires_payment_method"
    assert stored["automatic_payment_methods"]["enabled"] is True
    assert stored["metadata"] == {
        "order_id": str(request.order_id),
        "seller_id": str(request.seller_id),
    }


async def test_extra_metadata_and_description_travel_but_cannot_replace_the_order_id(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request(
        description="Order 1042", metadata={"sellpage": "summer-sale", "order_id": "forged"}
    )

    session = await gateway.create_payment(request)

    stored = (await sandbox.api.get(f"/v1/payment_intents/{session.gateway_reference}")).json()
    assert stored["description"] == "Order 1042"
    assert stored["metadata"]["sellpage"] == "summer-sale"
    assert stored["metadata"]["order_id"] == str(request.order_id)


async def test_a_retry_with_the_same_key_returns_the_same_payment_intent(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request()

    first = await gateway.create_payment(request)
    retried = await gateway.create_payment(request)

    assert retried.gateway_reference == first.gateway_reference
    assert retried.client_secret == first.client_secret
    created = await sandbox.events("payment_intent.created")
    assert len(created) == 1


async def test_different_keys_create_different_payment_intents(
    gateway: StripeGateway, make_request: MakeRequest
) -> None:
    request = make_request()

    first = await gateway.create_payment(request)
    second = await gateway.create_payment(
        request.model_copy(update={"idempotency_key": "another-attempt"})
    )

    assert first.gateway_reference != second.gateway_reference


async def test_reusing_a_key_with_another_amount_is_refused(
    gateway: StripeGateway, make_request: MakeRequest
) -> None:
    request = make_request(amount_minor=1_000)
    await gateway.create_payment(request)

    with pytest.raises(ProviderError, match="idempotency_error") as raised:
        await gateway.create_payment(request.model_copy(update={"amount_minor": 2_000}))

    assert not isinstance(raised.value, ProviderTransientError | ProviderAuthError)
    assert "same parameters" in str(raised.value)


async def test_missing_secret_key_fails_before_any_request(
    sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    gateway = StripeGateway(settings_for(sandbox.url, secret_key=None))

    with pytest.raises(ProviderAuthError, match="PIXECOM_STRIPE_SECRET_KEY"):
        await gateway.create_payment(make_request())

    assert await sandbox.events() == []


async def test_a_wrong_key_is_an_auth_error_that_does_not_repeat_the_key(
    sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    wrong_key = "sk_test_wrong_key_9876"
    await sandbox.configure(api_keys=[SECRET_KEY])
    gateway = StripeGateway(settings_for(sandbox.url, secret_key=wrong_key))

    with pytest.raises(ProviderAuthError, match="Invalid API Key provided") as raised:
        await gateway.create_payment(make_request())

    assert wrong_key not in str(raised.value)
    assert raised.value.provider == "stripe"
    await gateway.client.aclose()


async def test_a_live_key_is_refused_by_the_sandbox(
    sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    gateway = StripeGateway(settings_for(sandbox.url, secret_key="sk_live_real_money_1234"))

    with pytest.raises(ProviderAuthError, match="401"):
        await gateway.create_payment(make_request())

    await gateway.client.aclose()


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest, status: int
) -> None:
    await sandbox.inject("transient", status=status)

    with pytest.raises(ProviderTransientError, match=f"{status} api_error"):
        await gateway.create_payment(make_request())


async def test_a_retry_after_an_injected_failure_succeeds_once(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    request = make_request()
    await sandbox.inject("transient")
    with pytest.raises(ProviderTransientError):
        await gateway.create_payment(request)

    session = await gateway.create_payment(request)
    again = await gateway.create_payment(request)

    assert again.gateway_reference == session.gateway_reference
    assert len(await sandbox.events("payment_intent.created")) == 1


async def test_rate_limiting_is_both_throttled_and_transient(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.inject("throttled")

    with pytest.raises(StripeRateLimited, match="rate_limit") as raised:
        await gateway.create_payment(make_request())

    assert isinstance(raised.value, ProviderThrottled)
    assert isinstance(raised.value, ProviderTransientError)
    assert raised.value.retry_after_seconds is None


async def test_a_slow_stripe_is_a_transient_timeout(
    private_sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await private_sandbox.configure(latency_seconds=1.0)
    gateway = StripeGateway(settings_for(private_sandbox.url, timeout_seconds=0.2))

    with pytest.raises(ProviderTransientError, match="did not answer"):
        await gateway.create_payment(make_request())

    await gateway.client.aclose()


async def test_latency_within_the_timeout_is_fine(
    sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.configure(latency_seconds=0.2)
    gateway = StripeGateway(settings_for(sandbox.url, timeout_seconds=3))

    session = await gateway.create_payment(make_request())

    assert session.gateway_reference.startswith("pi_")
    await gateway.client.aclose()


async def test_every_call_failing_keeps_failing_transiently(
    gateway: StripeGateway, sandbox: RunningSandbox, make_request: MakeRequest
) -> None:
    await sandbox.inject("transient", status=503, times=100_000)

    for _ in range(3):
        with pytest.raises(ProviderTransientError):
            await gateway.create_payment(make_request())


async def test_an_unreachable_stripe_is_transient(make_request: MakeRequest) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    gateway = StripeGateway(settings_for(f"http://127.0.0.1:{closed_port}"))

    with pytest.raises(ProviderTransientError, match="could not reach Stripe"):
        await gateway.create_payment(make_request())

    await gateway.client.aclose()


async def test_invalid_requests_carry_stripes_message(
    gateway: StripeGateway, make_request: MakeRequest
) -> None:
    too_long_key = "k" * 41

    with pytest.raises(ProviderError, match="at most 40 characters") as raised:
        await gateway.create_payment(make_request(metadata={too_long_key: "x"}))

    assert type(raised.value) is ProviderError
    assert "request req_" in str(raised.value)


async def test_retrieve_of_an_unknown_payment_intent_is_a_provider_error(
    gateway: StripeGateway,
) -> None:
    with pytest.raises(ProviderError, match="No such payment_intent"):
        await gateway.client.retrieve_payment_intent(f"pi_{uuid.uuid4().hex}")


async def test_ids_cannot_change_the_request_path(gateway: StripeGateway) -> None:
    # a webhook body is data: an id from it is escaped into one path segment, so it
    # cannot turn the retrieve into a list of refunds (which would answer 200)
    with pytest.raises(ProviderError, match="404") as raised:
        await gateway.client.retrieve_payment_intent("pi_x/../../v1/refunds")

    assert "/v1/payment_intents/pi_x%2F..%2F..%2Fv1%2Frefunds" in str(raised.value)
