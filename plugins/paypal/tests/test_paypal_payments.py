"""Creating and capturing PayPal orders through the gateway, against the sandbox."""

import uuid

import pytest
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.client import PayPalAPIError
from pixecom_paypal.gateway import PayPalGateway

from pixecom_core.providers import PaymentGateway, PaymentRequest, ProviderError


def payment_request(
    *,
    amount_minor: int = 1999,
    currency: str = "USD",
    idempotency_key: str | None = None,
    order_id: uuid.UUID | None = None,
) -> PaymentRequest:
    return PaymentRequest(
        idempotency_key=idempotency_key or f"attempt-{uuid.uuid4()}",
        seller_id=uuid.uuid4(),
        order_id=order_id or uuid.uuid4(),
        amount_minor=amount_minor,
        currency=currency,
        return_url="https://shop.example/paid",
        cancel_url="https://shop.example/cancelled",
        description="Blue mug",
    )


async def test_the_gateway_implements_the_protocol(gateway: PayPalGateway) -> None:
    assert isinstance(gateway, PaymentGateway)


async def test_create_payment_returns_the_paypal_order_and_its_approval_page(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    request = payment_request()

    session = await gateway.create_payment(request)

    order = sandbox.state.orders[session.gateway_reference]
    unit = order["purchase_units"][0]
    assert session.gateway == "paypal"
    assert session.approval_url == f"{sandbox.url}/checkoutnow?token={order['id']}"
    assert order["intent"] == "CAPTURE"
    assert unit["custom_id"] == str(request.order_id)
    assert unit["invoice_id"] == str(request.order_id)
    assert unit["amount"] == {"currency_code": "USD", "value": "19.99"}
    assert unit["description"] == "Blue mug"


async def test_create_payment_is_idempotent_on_the_key(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    request = payment_request(idempotency_key="attempt-1")

    first = await gateway.create_payment(request)
    again = await gateway.create_payment(request)

    assert again == first
    assert len(sandbox.state.orders) == 1
    assert sandbox.calls("create_order") == 2


async def test_a_new_attempt_creates_a_new_order(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    order_id = uuid.uuid4()

    first = await gateway.create_payment(payment_request(order_id=order_id))
    second = await gateway.create_payment(payment_request(order_id=order_id))

    assert first.gateway_reference != second.gateway_reference
    assert len(sandbox.state.orders) == 2


async def test_a_create_retried_after_a_server_error_creates_one_order(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    sandbox.fault("transient", "create_order")
    request = payment_request(idempotency_key="retried")

    with pytest.raises(ProviderError):
        await gateway.create_payment(request)
    session = await gateway.create_payment(request)

    assert list(sandbox.state.orders) == [session.gateway_reference]


@pytest.mark.parametrize(
    ("currency", "amount_minor", "value"),
    [
        ("USD", 1999, "19.99"),
        ("USD", 5, "0.05"),
        ("JPY", 1500, "1500"),
        ("KWD", 12345, "12.345"),
        ("BHD", 1, "0.001"),
        ("HUF", 150000, "1500"),
    ],
)
async def test_amounts_reach_paypal_exactly(
    gateway: PayPalGateway,
    sandbox: SandboxControl,
    currency: str,
    amount_minor: int,
    value: str,
) -> None:
    session = await gateway.create_payment(
        payment_request(amount_minor=amount_minor, currency=currency)
    )

    amount = sandbox.state.orders[session.gateway_reference]["purchase_units"][0]["amount"]
    assert amount == {"currency_code": currency, "value": value}


async def test_a_fraction_paypal_cannot_take_is_refused_before_calling(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    with pytest.raises(ProviderError, match="whole units"):
        await gateway.create_payment(payment_request(amount_minor=150050, currency="HUF"))

    assert sandbox.calls("create_order") == 0


async def test_capture_is_idempotent_on_the_request_id(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    session = await gateway.create_payment(payment_request())
    sandbox.approve(session.gateway_reference)

    first = await gateway.capture_payment(session.gateway_reference, idempotency_key="cap-1")
    again = await gateway.capture_payment(session.gateway_reference, idempotency_key="cap-1")

    captures = first["purchase_units"][0]["payments"]["captures"]
    assert again == first
    assert first["status"] == "COMPLETED"
    assert len(sandbox.state.captures) == 1
    assert [e["type"] for e in sandbox.events()].count("PAYMENT.CAPTURE.COMPLETED") == 1
    assert captures[0]["supplementary_data"]["related_ids"]["order_id"] == (
        session.gateway_reference
    )


async def test_capturing_an_already_captured_order_returns_it(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    session = await gateway.create_payment(payment_request())
    sandbox.capture(session.gateway_reference)

    order = await gateway.capture_payment(session.gateway_reference, idempotency_key="other")

    assert order["status"] == "COMPLETED"
    assert len(sandbox.state.captures) == 1


async def test_capturing_an_unapproved_order_is_refused(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    session = await gateway.create_payment(payment_request())

    with pytest.raises(PayPalAPIError) as raised:
        await gateway.capture_payment(session.gateway_reference)

    assert raised.value.status_code == 422
    assert raised.value.issues == ("ORDER_NOT_APPROVED",)
    assert sandbox.state.captures == {}


async def test_capturing_an_unknown_order_is_refused(gateway: PayPalGateway) -> None:
    with pytest.raises(PayPalAPIError, match="RESOURCE_NOT_FOUND"):
        await gateway.capture_payment("NO-SUCH-ORDER")


async def test_paypal_refuses_a_second_payment_for_the_same_order(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    order_id = uuid.uuid4()
    paid = await gateway.create_payment(payment_request(order_id=order_id))
    sandbox.capture(paid.gateway_reference)
    second = await gateway.create_payment(payment_request(order_id=order_id))
    sandbox.approve(second.gateway_reference)

    with pytest.raises(PayPalAPIError) as raised:
        await gateway.capture_payment(second.gateway_reference)

    assert raised.value.issues == ("DUPLICATE_INVOICE_ID",)


async def test_a_long_idempotency_key_still_deduplicates(
    gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    request = payment_request(idempotency_key="k" * 300)

    first = await gateway.create_payment(request)
    again = await gateway.create_payment(request)

    assert again == first
    assert len(sandbox.state.orders) == 1
