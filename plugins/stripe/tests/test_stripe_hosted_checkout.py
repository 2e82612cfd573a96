"""Hosted checkout (``hosted_checkout``): the buyer pays on the sandbox's Checkout page, the
payment is the Checkout Session, and every fact about it — capture, refund — names the
session ``create_payment`` returned, on the platform's account and on a connected one."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox_connect import approve_consent, code_of
from stripe_support import RunningSandbox, settings_for, signed

from pixecom_core.providers import (
    DemoPayment,
    GatewayPaymentEvent,
    MerchantAccount,
    PaymentEventKind,
    PaymentRequest,
    PaymentSession,
    ProviderRefused,
    RefundRequest,
    RefundState,
)

CALLBACK = "https://pixecom.example/payments/connections/stripe/callback"
RETURN_URL = "https://shop.example/paid?session={CHECKOUT_SESSION_ID}"


@pytest.fixture
async def hosted(sandbox: RunningSandbox) -> AsyncIterator[StripeGateway]:
    gateway = StripeGateway(settings_for(sandbox.url, hosted_checkout=True))
    yield gateway
    await gateway.client.aclose()


@pytest.fixture
async def hosted_platform(sandbox: RunningSandbox) -> AsyncIterator[StripeGateway]:
    """Hosted checkout as a platform runs it: payments only on connected accounts."""
    gateway = StripeGateway(
        settings_for(sandbox.url, hosted_checkout=True, platform_account_payments=False)
    )
    yield gateway
    await gateway.client.aclose()


async def facts(
    gateway: StripeGateway, sandbox: RunningSandbox, *types: str
) -> list[GatewayPaymentEvent]:
    """The facts of the sandbox's events (of ``types``), each signed, verified and parsed
    as core does."""
    parsed: list[GatewayPaymentEvent] = []
    for event in await sandbox.events(*types):
        body, header = signed(event)
        webhook = await gateway.verify_webhook(body=body, headers={"stripe-signature": header})
        parsed.extend(await gateway.parse_events(webhook))
    return parsed


async def press(session: PaymentSession, action: str) -> httpx.Response:
    """The buyer's browser presses ``action`` on the hosted page."""
    assert session.approval_url is not None
    async with httpx.AsyncClient() as browser:
        return await browser.post(session.approval_url, data={"action": action})


def refund_of(
    request: PaymentRequest, session: PaymentSession, capture: str, amount: int
) -> RefundRequest:
    return RefundRequest(
        idempotency_key=f"refund-{uuid.uuid4()}",
        seller_id=request.seller_id,
        order_id=request.order_id,
        refund_id=uuid.uuid4(),
        payment_reference=session.gateway_reference,
        capture_reference=capture,
        amount_minor=amount,
        currency=request.currency,
        account=request.account,
    )


async def test_create_payment_answers_the_hosted_page_on_the_sandbox(
    hosted: StripeGateway, sandbox: RunningSandbox, make_request: Callable[..., PaymentRequest]
) -> None:
    session = await hosted.create_payment(make_request(amount_minor=4_990))

    assert session.gateway_reference.startswith("cs_test_")
    assert session.approval_url == f"{sandbox.url}/c/pay/{session.gateway_reference}"
    # Stripe.js would need the secret; the hosted page does not
    assert session.client_secret is None
    assert session.expires_at is not None
    async with httpx.AsyncClient() as browser:
        page = await browser.get(session.approval_url)
    assert page.status_code == 200
    assert "49.90 EUR" in page.text
    assert 'value="pay"' in page.text and 'value="cancel"' in page.text


async def test_create_payment_is_idempotent_on_its_key(
    hosted: StripeGateway, make_request: Callable[..., PaymentRequest]
) -> None:
    request = make_request()

    first = await hosted.create_payment(request)
    again = await hosted.create_payment(request)

    assert again == first


async def test_paying_redirects_to_the_return_url_and_captures_the_session(
    hosted: StripeGateway, sandbox: RunningSandbox, make_request: Callable[..., PaymentRequest]
) -> None:
    request = make_request(return_url=RETURN_URL, amount_minor=5_000)
    session = await hosted.create_payment(request)

    paid = await press(session, "pay")

    assert paid.status_code == 303
    assert (
        paid.headers["location"] == f"https://shop.example/paid?session={session.gateway_reference}"
    )
    types = [event["type"] for event in await sandbox.events()]
    assert types[-3:] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    captured = await facts(hosted, sandbox)
    assert {fact.kind for fact in captured} == {PaymentEventKind.CAPTURED}
    assert {fact.gateway_reference for fact in captured} == {session.gateway_reference}
    assert {fact.fact_reference for fact in captured} == {captured[0].fact_reference}
    assert {fact.order_reference for fact in captured} == {str(request.order_id)}
    assert captured[0].amount_minor == 5_000
    # pressing Pay again (a double submit) pays nothing more
    assert (await press(session, "pay")).status_code == 303
    assert [event["type"] for event in await sandbox.events()] == types


async def test_a_refund_of_a_hosted_payment_names_the_session(
    hosted: StripeGateway, sandbox: RunningSandbox, make_request: Callable[..., PaymentRequest]
) -> None:
    request = make_request(amount_minor=5_000)
    session = await hosted.create_payment(request)
    await press(session, "pay")
    capture = (await facts(hosted, sandbox, "charge.succeeded"))[0].fact_reference

    refund = await hosted.refund(refund_of(request, session, capture, 1_200))

    assert refund.state is RefundState.SUCCEEDED
    refunded = await facts(hosted, sandbox, "refund.created", "charge.refunded")
    assert {fact.kind for fact in refunded} == {PaymentEventKind.REFUNDED}
    assert {fact.gateway_reference for fact in refunded} == {session.gateway_reference}
    assert {fact.fact_reference for fact in refunded} == {refund.refund_reference}
    fetched = await hosted.fetch_refund(
        payment_reference=session.gateway_reference, refund_reference=refund.refund_reference
    )
    assert fetched == refund


async def test_cancel_redirects_to_the_cancel_url_and_captures_nothing(
    hosted: StripeGateway, sandbox: RunningSandbox, make_request: Callable[..., PaymentRequest]
) -> None:
    request = make_request(cancel_url="https://shop.example/cart?id=7")
    session = await hosted.create_payment(request)

    cancelled = await press(session, "cancel")

    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == "https://shop.example/cart?id=7"
    assert await sandbox.events() == []
    stored = await sandbox.api.get(f"/v1/checkout/sessions/{session.gateway_reference}")
    assert (stored.json()["status"], stored.json()["payment_intent"]) == ("open", None)
    with pytest.raises(ProviderRefused, match="has not paid"):
        await hosted.refund(refund_of(request, session, "ch_none", 100))


async def test_an_unknown_session_page_is_not_found(sandbox: RunningSandbox) -> None:
    page = await sandbox.control.get("/c/pay/cs_test_unknown")

    assert page.status_code == 404


async def test_the_sandbox_refuses_a_session_it_cannot_make(sandbox: RunningSandbox) -> None:
    base: dict[str, Any] = {
        "mode": "payment",
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/cart",
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "100",
        "line_items[0][price_data][product_data][name]": "A thing",
    }
    fee = await sandbox.api.post(
        "/v1/checkout/sessions",
        data={**base, "payment_intent_data[application_fee_amount]": "10"},
    )
    no_items = await sandbox.api.post(
        "/v1/checkout/sessions",
        data={k: v for k, v in base.items() if not k.startswith("line_items")},
    )
    subscription = await sandbox.api.post("/v1/checkout/sessions", data={**base, "mode": "setup"})

    assert fee.status_code == 400
    assert fee.json()["error"]["param"] == "payment_intent_data[application_fee_amount]"
    assert no_items.status_code == 400
    assert no_items.json()["error"]["code"] == "parameter_missing"
    assert subscription.status_code == 400


async def test_a_payment_intent_made_before_hosted_checkout_keeps_its_reference(
    hosted: StripeGateway, sandbox: RunningSandbox
) -> None:
    created = await sandbox.api.post(
        "/v1/payment_intents", data={"amount": "700", "currency": "eur"}
    )
    intent = created.json()["id"]
    await sandbox.act(f"payment_intents/{intent}/succeed")

    captured = await facts(hosted, sandbox, "payment_intent.succeeded")

    assert [fact.gateway_reference for fact in captured] == [intent]


async def test_a_connected_accounts_checkout_carries_its_account_and_fee(
    hosted_platform: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    location = await approve_consent(
        hosted_platform.authorization_url(state="state-0123456789", redirect_uri=CALLBACK)
    )
    account: MerchantAccount = await hosted_platform.exchange_code(
        code=code_of(location), redirect_uri=CALLBACK
    )
    request = make_request(account=account, application_fee_minor=250, amount_minor=5_000)

    session = await hosted_platform.create_payment(request)
    await press(session, "pay")

    logged = (await sandbox.control.get("/_sandbox/requests")).json()
    created = [e for e in logged if e.get("operation") == "create_checkout_session"]
    assert [e["stripe_account"] for e in created] == [account.account_id]
    on_account = {"Stripe-Account": account.account_id}
    stored = await sandbox.api.get(
        f"/v1/checkout/sessions/{session.gateway_reference}", headers=on_account
    )
    assert (
        await sandbox.api.get(f"/v1/checkout/sessions/{session.gateway_reference}")
    ).status_code == 404
    intent = await sandbox.api.get(
        f"/v1/payment_intents/{stored.json()['payment_intent']}", headers=on_account
    )
    assert intent.json()["application_fee_amount"] == 250
    assert intent.json()["metadata"]["order_id"] == str(request.order_id)
    captured = await facts(hosted_platform, sandbox, "charge.succeeded", "payment_intent.succeeded")
    assert {fact.gateway_reference for fact in captured} == {session.gateway_reference}
    refund = await hosted_platform.refund(
        refund_of(request, session, captured[0].fact_reference, 5_000)
    )
    assert refund.state is RefundState.SUCCEEDED
    refunded = await facts(hosted_platform, sandbox, "charge.refunded")
    assert [fact.gateway_reference for fact in refunded] == [session.gateway_reference]


async def test_demo_payments_pay_and_refund_a_hosted_payment(
    hosted: StripeGateway, sandbox: RunningSandbox, make_request: Callable[..., PaymentRequest]
) -> None:
    from pixecom_stripe.sandbox import SandboxDemoPayments
    from stripe_support import SECRET_KEY

    request = make_request(amount_minor=3_000)
    session = await hosted.create_payment(request)
    demo = SandboxDemoPayments(sandbox.url, secret_key=SECRET_KEY)
    payment = DemoPayment(
        gateway_reference=session.gateway_reference, amount_minor=3_000, currency="EUR"
    )
    try:
        await sandbox.configure(auto_deliver=True)
        await demo.pay(payment)
        await demo.refund(payment, 1_000)
    finally:
        await demo.aclose()

    kinds = [(f.kind, f.gateway_reference) for f in await facts(hosted, sandbox, "charge.refunded")]
    assert kinds == [(PaymentEventKind.REFUNDED, session.gateway_reference)]
