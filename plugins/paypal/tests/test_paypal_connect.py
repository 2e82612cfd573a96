"""Sellers' own PayPal REST apps (issue 15): connecting with credentials, payments,
refunds and webhooks on the seller's app, and nothing on another's or the platform's."""

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from paypal_sandbox_control import SandboxControl
from pixecom_paypal.client import PayPalAPIError
from pixecom_paypal.gateway import WEBHOOK_EVENT_TYPES, PayPalGateway
from pydantic import SecretStr

from pixecom_core.providers import (
    MerchantAccount,
    PaymentConnectionKind,
    PaymentEventKind,
    PaymentGatewayConnections,
    PaymentRequest,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    RefundRequest,
    RefundState,
    WebhookVerificationError,
)

API = "https://api.pixecom.example"


@pytest.fixture
def seller_gateway(make_gateway: Callable[..., PayPalGateway]) -> PayPalGateway:
    """The gateway as a multi-seller deployment runs it: single-account mode off."""
    return make_gateway(platform_account_payments=False)


def _new_app(sandbox: SandboxControl) -> dict[str, Any]:
    app: dict[str, Any] = sandbox.call("POST", "/apps", json={"name": "Seller shop"})
    return app


def _fields(app: dict[str, Any], **changes: str) -> dict[str, SecretStr]:
    values = {"client_id": app["client_id"], "client_secret": app["client_secret"], **changes}
    return {name: SecretStr(value) for name, value in values.items()}


def _webhook_url(account_id: str) -> str:
    return f"{API}/webhooks/paypal/accounts/{account_id}"


async def _connect(gateway: PayPalGateway, sandbox: SandboxControl) -> MerchantAccount:
    """Connect a new seller app as core does: verify, then prepare with its own URL."""
    account = await gateway.verify_credentials(_fields(_new_app(sandbox)))
    return await gateway.prepare_account(account, webhook_url=_webhook_url(account.account_id))


def _payment(account: MerchantAccount | None) -> PaymentRequest:
    return PaymentRequest(
        idempotency_key=f"pay-{uuid.uuid4()}",
        seller_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        amount_minor=1_000,
        currency="USD",
        return_url="https://shop.example/paid",
        cancel_url="https://shop.example/cart",
        account=account,
    )


def _refund(order: str, capture: str, account: MerchantAccount | None) -> RefundRequest:
    return RefundRequest(
        idempotency_key=f"refund-{uuid.uuid4()}",
        seller_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        refund_id=uuid.uuid4(),
        payment_reference=order,
        capture_reference=capture,
        amount_minor=400,
        currency="USD",
        account=account,
    )


def _subscription_events(sandbox: SandboxControl, account: MerchantAccount) -> list[Any]:
    app = sandbox.state.apps[account.client_id]
    subscription = app.webhooks[account.settings["webhook_id"]]
    return list(subscription.outbox.events())


# -- connecting ---------------------------------------------------------------------------


async def test_a_seller_connects_with_their_apps_client_id_and_secret(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    app = _new_app(sandbox)

    account = await seller_gateway.verify_credentials(_fields(app))

    assert isinstance(seller_gateway, PaymentGatewayConnections)
    assert seller_gateway.connection_kind is PaymentConnectionKind.CREDENTIALS
    assert [(f.name, f.secret) for f in seller_gateway.credential_fields] == [
        ("client_id", False),
        ("client_secret", True),
    ]
    # The token answer's app_id: stable across secret rotation (see verify_credentials).
    assert account.account_id == app["app_id"]
    assert account.client_id == app["client_id"]
    assert account.credentials is not None
    assert account.credentials.get_secret_value() == app["client_secret"]


async def test_wrong_credentials_are_refused_without_quoting_the_secret(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    app = _new_app(sandbox)
    wrong = f"wrong-{uuid.uuid4().hex}"

    with pytest.raises(ProviderAuthError) as refused:
        await seller_gateway.verify_credentials(_fields(app, client_secret=wrong))
    with pytest.raises(ProviderAuthError):
        await seller_gateway.verify_credentials(_fields(app, client_id="no-such-app"))

    shown = f"{refused.value!r} {refused.value} {refused.value.__cause__!r}"
    assert wrong not in shown
    assert app["client_secret"] not in shown
    assert "invalid_client" in shown
    assert "PIXECOM_PAYPAL_CLIENT_SECRET" not in shown, "a seller's app is not the operator's"


async def test_prepare_account_subscribes_the_app_once_and_reuses_it_on_reconnect(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    app = _new_app(sandbox)
    account = await seller_gateway.verify_credentials(_fields(app))
    url = _webhook_url(account.account_id)

    prepared = await seller_gateway.prepare_account(account, webhook_url=url)
    again = await seller_gateway.prepare_account(
        await seller_gateway.verify_credentials(_fields(app)), webhook_url=url
    )

    webhook_id = prepared.settings["webhook_id"]
    assert again.settings["webhook_id"] == webhook_id
    [subscription] = sandbox.state.apps[app["client_id"]].webhooks.values()
    assert (subscription.id, subscription.url) == (webhook_id, url)
    assert subscription.event_types == WEBHOOK_EVENT_TYPES
    assert sandbox.calls("create_webhook") == 2
    assert sandbox.calls("list_webhooks") == 1


# -- payments and refunds on the seller's app ---------------------------------------------


async def test_each_sellers_order_is_made_with_their_app_and_invisible_to_the_other(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    first = await _connect(seller_gateway, sandbox)
    second = await _connect(seller_gateway, sandbox)

    first_order = (await seller_gateway.create_payment(_payment(first))).gateway_reference
    second_order = (await seller_gateway.create_payment(_payment(second))).gateway_reference

    assert sandbox.state.owners[first_order] == first.client_id
    assert sandbox.state.owners[second_order] == second.client_id
    payee = sandbox.state.orders[first_order]["purchase_units"][0]["payee"]["merchant_id"]
    assert payee == sandbox.state.apps[first.client_id].merchant_id
    sandbox.approve(first_order)
    with pytest.raises(PayPalAPIError) as hidden:
        await seller_gateway.capture_payment(first_order, account=second)
    assert (hidden.value.status_code, hidden.value.name) == (404, "RESOURCE_NOT_FOUND")
    captured = await seller_gateway.capture_payment(first_order, account=first)
    assert captured["status"] == "COMPLETED"


async def test_a_refund_is_made_on_the_sellers_app_and_refused_on_another(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    seller = await _connect(seller_gateway, sandbox)
    other = await _connect(seller_gateway, sandbox)
    order = (await seller_gateway.create_payment(_payment(seller))).gateway_reference
    capture = sandbox.capture(order)

    with pytest.raises(ProviderRefused):
        await seller_gateway.refund(_refund(order, capture, other))
    refund = await seller_gateway.refund(_refund(order, capture, seller))

    assert refund.state is RefundState.SUCCEEDED
    assert refund.amount_minor == 400
    assert sandbox.state.owners[refund.refund_reference] == seller.client_id
    fetched = await seller_gateway.fetch_refund(
        payment_reference=order, refund_reference=refund.refund_reference, account=seller
    )
    assert fetched.refund_reference == refund.refund_reference
    with pytest.raises(ProviderError):
        await seller_gateway.fetch_refund(
            payment_reference=order, refund_reference=refund.refund_reference, account=other
        )


async def test_without_an_account_nothing_is_charged_unless_single_account_mode_is_on(
    seller_gateway: PayPalGateway,
    make_gateway: Callable[..., PayPalGateway],
    sandbox: SandboxControl,
) -> None:
    for call in (
        seller_gateway.create_payment(_payment(None)),
        seller_gateway.refund(_refund("ORDER", "CAPTURE", None)),
        seller_gateway.fetch_refund(payment_reference="ORDER", refund_reference="REFUND"),
        seller_gateway.capture_payment("ORDER"),
    ):
        with pytest.raises(ProviderRefused, match="PIXECOM_PAYPAL_PLATFORM_ACCOUNT_PAYMENTS"):
            await call
    assert sandbox.calls("create_order") == 0

    single = make_gateway(platform_account_payments=True)
    order = (await single.create_payment(_payment(None))).gateway_reference
    assert order not in sandbox.state.owners, "the platform app's order, as before"


async def test_tokens_are_cached_per_app(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    first = await _connect(seller_gateway, sandbox)
    second = await _connect(seller_gateway, sandbox)
    before = sandbox.calls("token")

    for _ in range(2):
        await seller_gateway.create_payment(_payment(first))
        await seller_gateway.create_payment(_payment(second))

    assert sandbox.calls("token") == before, "verify_credentials' tokens are reused"


# -- webhooks from the seller's app ---------------------------------------------------------


async def _captured_on(
    gateway: PayPalGateway, sandbox: SandboxControl, account: MerchantAccount
) -> tuple[str, str]:
    order = (await gateway.create_payment(_payment(account))).gateway_reference
    return order, sandbox.capture(order)


def _signed(sandbox: SandboxControl, account: MerchantAccount, event_type: str) -> Any:
    [event_id] = [e.id for e in _subscription_events(sandbox, account) if e.type == event_type][-1:]
    return sandbox.transmission(event_id)


@pytest.mark.parametrize("verification", ["offline", "api"])
async def test_a_delivery_signed_for_a_sellers_webhook_verifies_only_with_their_account(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl, verification: str
) -> None:
    gateway = make_gateway(platform_account_payments=False, verification=verification)
    seller = await _connect(gateway, sandbox)
    other = await _connect(gateway, sandbox)
    await _captured_on(gateway, sandbox, seller)
    body, headers = _signed(sandbox, seller, "PAYMENT.CAPTURE.COMPLETED")

    webhook = await gateway.verify_webhook(body=body, headers=headers, account=seller)

    assert webhook.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert webhook.body == body
    with pytest.raises(WebhookVerificationError):
        await gateway.verify_webhook(body=body, headers=headers, account=other)
    with pytest.raises(WebhookVerificationError):
        await gateway.verify_webhook(body=body, headers=headers)  # the platform's webhook id
    unprepared = seller.model_copy(update={"settings": {}})
    with pytest.raises(WebhookVerificationError, match="no webhook subscription"):
        await gateway.verify_webhook(body=body, headers=headers, account=unprepared)


async def test_a_sellers_events_go_to_their_subscription_not_the_platforms(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    seller = await _connect(seller_gateway, sandbox)
    other = await _connect(seller_gateway, sandbox)

    order, capture = await _captured_on(seller_gateway, sandbox, seller)

    types = [event.type for event in _subscription_events(sandbox, seller)]
    assert types == ["CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED"]
    assert _subscription_events(sandbox, other) == []
    assert sandbox.events() == [], "nothing about a seller's app reaches the platform's webhook"
    body, _ = _signed(sandbox, seller, "PAYMENT.CAPTURE.COMPLETED")
    resource = json.loads(body)["resource"]
    assert resource["id"] == capture
    assert resource["supplementary_data"]["related_ids"]["order_id"] == order


async def test_parse_events_reads_details_with_the_sellers_app(
    make_gateway: Callable[..., PayPalGateway], sandbox: SandboxControl
) -> None:
    connecting = make_gateway(platform_account_payments=False)
    seller = await _connect(connecting, sandbox)
    other = await _connect(connecting, sandbox)
    order, capture = await _captured_on(connecting, sandbox, seller)
    await connecting.refund(_refund(order, capture, seller))
    body, headers = _signed(sandbox, seller, "PAYMENT.CAPTURE.REFUNDED")
    webhook = await connecting.verify_webhook(body=body, headers=headers, account=seller)

    # A fresh gateway knows nothing of the capture: the refund's order is read from PayPal.
    fresh = make_gateway(platform_account_payments=False)
    with pytest.raises(ProviderError, match="could not be read"):
        await fresh.parse_events(webhook, account=other)
    with pytest.raises(ProviderError, match="could not be read"):
        await fresh.parse_events(webhook)  # the platform app cannot read it either
    events = await fresh.parse_events(webhook, account=seller)

    assert [(e.kind, e.gateway_reference, e.amount_minor) for e in events] == [
        (PaymentEventKind.REFUNDED, order, 400)
    ]
    assert sandbox.calls("get_capture") == 3


async def test_disconnect_deletes_the_subscription_and_stops_payments(
    seller_gateway: PayPalGateway, sandbox: SandboxControl
) -> None:
    app = _new_app(sandbox)
    account = await seller_gateway.verify_credentials(_fields(app))
    url = _webhook_url(account.account_id)
    seller = await seller_gateway.prepare_account(account, webhook_url=url)
    await seller_gateway.create_payment(_payment(seller))

    await seller_gateway.disconnect(seller)
    await seller_gateway.disconnect(seller)  # already gone: not an error

    assert sandbox.state.apps[seller.client_id].webhooks == {}
    assert sandbox.calls("delete_webhook") == 2
    with pytest.raises(ProviderRefused, match="disconnected"):
        await seller_gateway.create_payment(_payment(seller))
    # Connecting the same app again (as core does) subscribes it anew and takes payments.
    again = await seller_gateway.verify_credentials(_fields(app))
    reconnected = await seller_gateway.prepare_account(again, webhook_url=url)
    assert reconnected.settings["webhook_id"] != seller.settings["webhook_id"]
    await seller_gateway.create_payment(_payment(reconnected))


def _token(sandbox: SandboxControl, app: dict[str, Any]) -> dict[str, str]:
    answer = sandbox.http.post(
        "/v1/oauth2/token",
        auth=(app["client_id"], app["client_secret"]),
        data={"grant_type": "client_credentials"},
    ).json()
    assert answer["app_id"] == app["app_id"]
    return {"Authorization": f"Bearer {answer['access_token']}"}


def test_the_sandbox_keeps_each_apps_subscriptions_to_itself(sandbox: SandboxControl) -> None:
    owner, stranger = _new_app(sandbox), _new_app(sandbox)
    mine, theirs = _token(sandbox, owner), _token(sandbox, stranger)
    body = {"url": f"{API}/hook", "event_types": [{"name": "PAYMENT.CAPTURE.COMPLETED"}]}

    created = sandbox.http.post("/v1/notifications/webhooks", json=body, headers=mine)
    duplicate = sandbox.http.post("/v1/notifications/webhooks", json=body, headers=mine)
    elsewhere = sandbox.http.post("/v1/notifications/webhooks", json=body, headers=theirs)

    assert created.status_code == 201
    assert (duplicate.status_code, duplicate.json()["name"]) == (400, "WEBHOOK_URL_ALREADY_EXISTS")
    assert elsewhere.status_code == 201, "another app may subscribe the same URL"
    webhook_id = created.json()["id"]
    listed = sandbox.http.get("/v1/notifications/webhooks", headers=theirs).json()["webhooks"]
    assert [hook["id"] for hook in listed] == [elsewhere.json()["id"]]
    refused = sandbox.http.delete(f"/v1/notifications/webhooks/{webhook_id}", headers=theirs)
    assert (refused.status_code, refused.json()["name"]) == (404, "INVALID_RESOURCE_ID")
    deleted = sandbox.http.delete(f"/v1/notifications/webhooks/{webhook_id}", headers=mine)
    assert deleted.status_code == 204
    platform_app = {
        "client_id": sandbox.settings.client_id,
        "client_secret": sandbox.settings.client_secret.get_secret_value(),
        "app_id": "APP-80W284485P519543T",
    }
    platform = sandbox.http.get("/v1/notifications/webhooks", headers=_token(sandbox, platform_app))
    assert platform.status_code == 403, "the platform's subscription is its configuration"
