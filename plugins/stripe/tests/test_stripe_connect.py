"""Stripe Connect through the gateway against the sandbox over HTTP: sellers connect their
own Standard accounts (OAuth), each seller's payments and refunds land on that seller's
account (``Stripe-Account``), Connect events name the account, and a seller taking the
platform's access away reaches core as ``revoked``."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.sandbox import SandboxDemoPayments
from pixecom_stripe.sandbox_connect import approve_consent, code_of
from stripe_support import (
    CONNECT_CLIENT_ID,
    CONNECT_WEBHOOK_SECRET,
    SECRET_KEY,
    WEBHOOK_SECRET,
    RunningSandbox,
    settings_for,
    signed,
)

from pixecom_core.providers import (
    DemoPayment,
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
    VerifiedWebhook,
    WebhookVerificationError,
)
from pixecom_core.testing.sandbox_kit import WebhookReceiver

CALLBACK = "https://pixecom.example/payments/connections/stripe/callback"
STATE = "signed-single-use-state-0123456789"


@pytest.fixture
async def connect_gateway(sandbox: RunningSandbox) -> AsyncIterator[StripeGateway]:
    """The gateway as a platform runs it: no payment without a connected account."""
    gateway = StripeGateway(settings_for(sandbox.url, platform_account_payments=False))
    yield gateway
    await gateway.client.aclose()


async def connect(gateway: StripeGateway) -> MerchantAccount:
    """A seller connects a new Stripe account through the consent page."""
    location = await approve_consent(gateway.authorization_url(state=STATE, redirect_uri=CALLBACK))
    return await gateway.exchange_code(code=code_of(location), redirect_uri=CALLBACK)


async def requests_of(sandbox: RunningSandbox, operation: str) -> list[dict[str, Any]]:
    response = await sandbox.control.get("/_sandbox/requests")
    response.raise_for_status()
    return [entry for entry in response.json() if entry.get("operation") == operation]


async def accounts(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    response = await sandbox.control.get("/_sandbox/accounts")
    response.raise_for_status()
    return {listed["id"]: listed for listed in response.json()}


async def delivered(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> list[tuple[bytes, dict[str, str]]]:
    """Deliver every pending event to ``receiver``; the deliveries, oldest first."""
    receiver.clear()
    response = await sandbox.control.post("/_sandbox/deliver", json={"url": receiver.endpoint})
    response.raise_for_status()
    return [(webhook.body, webhook.headers) for webhook in receiver.received]


async def verified(
    gateway: StripeGateway, deliveries: list[tuple[bytes, dict[str, str]]]
) -> list[VerifiedWebhook]:
    return [
        await gateway.verify_webhook(body=body, headers=headers) for body, headers in deliveries
    ]


def refund_request(payment_reference: str, account: MerchantAccount | None) -> RefundRequest:
    return RefundRequest(
        idempotency_key=f"refund-{uuid.uuid4()}",
        seller_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        refund_id=uuid.uuid4(),
        payment_reference=payment_reference,
        capture_reference="ch_unused_by_stripe",
        amount_minor=1_000,
        currency="EUR",
        account=account,
    )


# -- connecting ---------------------------------------------------------------------------


async def test_the_consent_url_is_connect_oauth_for_standard_accounts(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    assert isinstance(connect_gateway, PaymentGatewayConnections)
    assert connect_gateway.connection_kind is PaymentConnectionKind.OAUTH
    assert connect_gateway.credential_fields == ()

    url = connect_gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == sandbox.url
    assert parts.path == "/oauth/authorize"
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [CONNECT_CLIENT_ID],
        "scope": ["read_write"],
        "state": [STATE],
        "redirect_uri": [CALLBACK],
    }
    page = await sandbox.control.get(url)
    assert page.status_code == 200
    assert '<form method="post" action="/oauth/authorize">' in page.text


async def test_the_full_oauth_flow_connects_the_sellers_account(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    location = await approve_consent(
        connect_gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)
    )

    assert location.startswith(f"{CALLBACK}?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [STATE]
    assert query["scope"] == ["read_write"]
    account = await connect_gateway.exchange_code(code=query["code"][0], redirect_uri=CALLBACK)

    assert account.account_id.startswith("acct_")
    assert account.credentials is None  # the platform's key acts through Stripe-Account
    assert account.display_name and account.default_currency == "EUR"
    listed = await accounts(sandbox)
    assert listed[account.account_id]["connected_to"] == CONNECT_CLIENT_ID
    assert [entry["stripe_account"] for entry in await requests_of(sandbox, "oauth_token")] == [
        None
    ]


async def test_a_used_or_expired_code_is_refused_without_quoting_it(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    url = connect_gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)
    code = code_of(await approve_consent(url))
    await connect_gateway.exchange_code(code=code, redirect_uri=CALLBACK)

    with pytest.raises(ProviderAuthError, match="invalid_grant") as used:
        await connect_gateway.exchange_code(code=code, redirect_uri=CALLBACK)
    assert code not in str(used.value)

    late = code_of(await approve_consent(url))
    (
        await sandbox.control.post("/_sandbox/clock", json={"advance_seconds": 301})
    ).raise_for_status()
    with pytest.raises(ProviderAuthError, match="invalid_grant") as expired:
        await connect_gateway.exchange_code(code=late, redirect_uri=CALLBACK)
    assert late not in str(expired.value)

    with pytest.raises(ProviderAuthError) as unknown:
        await connect_gateway.exchange_code(code="ac_never_issued_by_stripe", redirect_uri=CALLBACK)
    assert "ac_never_issued_by_stripe" not in str(unknown.value)


async def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    await sandbox.configure(connect_redirect_uris=[CALLBACK])
    url = connect_gateway.authorization_url(state=STATE, redirect_uri="https://evil.example/cb")

    page = await sandbox.control.get(url)

    assert page.status_code == 400
    assert "not registered" in page.text
    with pytest.raises(RuntimeError, match="refused"):
        await approve_consent(url)
    registered = connect_gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)
    assert (await approve_consent(registered)).startswith(f"{CALLBACK}?")


async def test_a_seller_who_declines_comes_back_with_access_denied(
    connect_gateway: StripeGateway,
) -> None:
    url = connect_gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)

    location = await approve_consent(url, decision="deny")

    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{CALLBACK}?")
    assert query["error"] == ["access_denied"]
    assert query["state"] == [STATE]
    assert "code" not in query


async def test_connecting_needs_the_client_id_setting(sandbox: RunningSandbox) -> None:
    gateway = StripeGateway(settings_for(sandbox.url, connect_client_id=None))

    with pytest.raises(ProviderError, match="PIXECOM_STRIPE_CONNECT_CLIENT_ID"):
        gateway.authorization_url(state=STATE, redirect_uri=CALLBACK)


# -- payments on the seller's account -----------------------------------------------------


async def test_each_sellers_payment_lands_on_their_own_account(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    first, second = await connect(connect_gateway), await connect(connect_gateway)
    assert first.account_id != second.account_id

    paid_first = await connect_gateway.create_payment(make_request(account=first))
    paid_second = await connect_gateway.create_payment(make_request(account=second))

    sent = [
        entry["stripe_account"] for entry in await requests_of(sandbox, "create_payment_intent")
    ]
    assert sent == [first.account_id, second.account_id]
    listed = await accounts(sandbox)
    assert listed[first.account_id]["payment_intents"] == [paid_first.gateway_reference]
    assert listed[second.account_id]["payment_intents"] == [paid_second.gateway_reference]
    # another account's object, or the platform's view, does not see it: 404 as Stripe
    for headers in ({"Stripe-Account": second.account_id}, {}):
        other = await sandbox.api.get(
            f"/v1/payment_intents/{paid_first.gateway_reference}", headers=headers
        )
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "resource_missing"
    own = await sandbox.api.get(
        f"/v1/payment_intents/{paid_first.gateway_reference}",
        headers={"Stripe-Account": first.account_id},
    )
    assert own.status_code == 200


async def test_a_payment_without_an_account_is_refused_unless_single_account_mode(
    connect_gateway: StripeGateway,
    gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    with pytest.raises(ProviderRefused, match="connect a Stripe account"):
        await connect_gateway.create_payment(make_request())
    with pytest.raises(ProviderRefused, match="connect a Stripe account"):
        await connect_gateway.refund(refund_request("pi_anything", None))
    assert await requests_of(sandbox, "create_payment_intent") == []

    # single-account mode (settings_for's default): the platform's own account
    session = await gateway.create_payment(make_request())
    assert [
        entry["stripe_account"] for entry in await requests_of(sandbox, "create_payment_intent")
    ] == [None]
    assert (await sandbox.api.get(f"/v1/payment_intents/{session.gateway_reference}")).is_success


async def test_the_platforms_fee_is_sent_as_application_fee_amount(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)

    session = await connect_gateway.create_payment(
        make_request(account=seller, application_fee_minor=275)
    )
    paid = await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")

    on_seller = {"Stripe-Account": seller.account_id}
    intent = (
        await sandbox.api.get(f"/v1/payment_intents/{session.gateway_reference}", headers=on_seller)
    ).json()
    assert intent["application_fee_amount"] == 275
    charge = (
        await sandbox.api.get(f"/v1/charges/{paid['latest_charge']}", headers=on_seller)
    ).json()
    assert charge["application_fee_amount"] == 275
    fee = (await sandbox.api.get(f"/v1/application_fees/{charge['application_fee']}")).json()
    assert (fee["amount"], fee["account"], fee["charge"]) == (275, seller.account_id, charge["id"])


async def test_a_refund_on_a_connected_account(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)
    session = await connect_gateway.create_payment(make_request(account=seller))
    await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")

    refund = await connect_gateway.refund(refund_request(session.gateway_reference, seller))
    fetched = await connect_gateway.fetch_refund(
        payment_reference=session.gateway_reference,
        refund_reference=refund.refund_reference,
        account=seller,
    )

    assert refund.state is RefundState.SUCCEEDED
    assert fetched.refund_reference == refund.refund_reference
    assert [e["stripe_account"] for e in await requests_of(sandbox, "create_refund")] == [
        seller.account_id
    ]
    assert (await accounts(sandbox))[seller.account_id]["refunds"] == [refund.refund_reference]
    with pytest.raises(ProviderError, match="resource_missing"):
        # the platform's own account has no such refund
        await connect_gateway.fetch_refund(
            payment_reference=session.gateway_reference, refund_reference=refund.refund_reference
        )


# -- webhooks -----------------------------------------------------------------------------


async def test_connect_events_name_the_account_and_follow_up_calls_act_on_it(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    receiver: WebhookReceiver,
    make_request: Callable[..., PaymentRequest],
) -> None:
    first, second = await connect(connect_gateway), await connect(connect_gateway)
    sessions = {}
    for seller in (first, second):
        session = await connect_gateway.create_payment(make_request(account=seller))
        await sandbox.act(f"payment_intents/{session.gateway_reference}/succeed")
        await connect_gateway.refund(refund_request(session.gateway_reference, seller))
        sessions[seller.account_id] = session.gateway_reference

    webhooks = await verified(connect_gateway, await delivered(sandbox, receiver))

    by_account: dict[str, set[str]] = {}
    for webhook in webhooks:
        named = connect_gateway.webhook_account(webhook)
        assert named is not None and not named.revoked
        facts = await connect_gateway.parse_events(webhook)
        by_account.setdefault(named.account_id, set()).update(
            fact.gateway_reference for fact in facts
        )
        if webhook.event_type == "charge.refunded":
            assert [fact.kind for fact in facts] == [PaymentEventKind.REFUNDED]
    assert by_account == {account: {reference} for account, reference in sessions.items()}
    # charge.refunded lists the charge's refunds: on the account the event names
    listed = [e["stripe_account"] for e in await requests_of(sandbox, "list_refunds")]
    assert sorted(listed) == sorted([first.account_id, second.account_id])


async def test_connect_deliveries_are_signed_with_the_connect_endpoints_secret(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    receiver: WebhookReceiver,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)
    await connect_gateway.create_payment(make_request(account=seller))
    (body, headers), *_ = await delivered(sandbox, receiver)

    platform_only = StripeGateway(
        settings_for(sandbox.url, webhook_secrets=[WEBHOOK_SECRET], connect_webhook_secrets=[])
    )
    with pytest.raises(WebhookVerificationError):
        await platform_only.verify_webhook(body=body, headers=headers)
    webhook = await connect_gateway.verify_webhook(body=body, headers=headers)
    assert connect_gateway.webhook_account(webhook) is not None

    foreign_body, foreign_header = signed({"id": "evt_1", "type": "x"}, "whsec_someone_else")
    with pytest.raises(WebhookVerificationError, match="Connect webhook secret"):
        await connect_gateway.verify_webhook(
            body=foreign_body, headers={"stripe-signature": foreign_header}
        )
    connect_body, connect_header = signed(
        {"id": "evt_2", "type": "x", "account": "acct_1"}, CONNECT_WEBHOOK_SECRET
    )
    accepted = await connect_gateway.verify_webhook(
        body=connect_body, headers={"stripe-signature": connect_header}
    )
    assert accepted.event_id == "evt_2"


async def test_platform_events_name_no_account(
    gateway: StripeGateway,
    sandbox: RunningSandbox,
    receiver: WebhookReceiver,
    make_request: Callable[..., PaymentRequest],
) -> None:
    await gateway.create_payment(make_request())

    webhooks = await verified(gateway, await delivered(sandbox, receiver))

    assert webhooks and all(gateway.webhook_account(webhook) is None for webhook in webhooks)


# -- losing access ------------------------------------------------------------------------


async def test_a_seller_removing_the_platform_is_announced_as_revoked(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    receiver: WebhookReceiver,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)

    await sandbox.act(f"accounts/{seller.account_id}/deauthorize")

    (webhook,) = await verified(connect_gateway, await delivered(sandbox, receiver))
    assert webhook.event_type == "account.application.deauthorized"
    named = connect_gateway.webhook_account(webhook)
    assert named is not None and (named.account_id, named.revoked) == (seller.account_id, True)
    assert await connect_gateway.parse_events(webhook) == []
    with pytest.raises(ProviderAuthError, match="account_invalid"):
        await connect_gateway.create_payment(make_request(account=seller))


async def test_disconnecting_deauthorizes_and_twice_is_not_an_error(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)

    await connect_gateway.disconnect(seller)
    await connect_gateway.disconnect(seller)

    assert (await accounts(sandbox))[seller.account_id]["connected_to"] is None
    assert len(await sandbox.events("account.application.deauthorized")) == 1
    with pytest.raises(ProviderAuthError) as refused:
        await connect_gateway.create_payment(make_request(account=seller))
    assert "sk_test_pixecom_fixture_key_4242" not in str(refused.value)


async def test_an_account_never_connected_is_refused_as_stripe_refuses_it(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    stranger = MerchantAccount(account_id="acct_NeverConnected01")

    with pytest.raises(ProviderAuthError, match="account_invalid"):
        await connect_gateway.create_payment(make_request(account=stranger))

    answer = await sandbox.api.get(
        "/v1/payment_intents/pi_x", headers={"Stripe-Account": stranger.account_id}
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "account_invalid"


async def test_the_demo_refunds_a_connected_sellers_payment_on_their_account(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)
    session = await connect_gateway.create_payment(make_request(account=seller))
    demo = SandboxDemoPayments(sandbox.url, secret_key=SECRET_KEY)
    try:
        await sandbox.configure(auto_deliver=True)  # nothing to deliver to: no delivery step
        await demo.pay(DemoPayment(session.gateway_reference, 5_000, "EUR"))
        await demo.refund(DemoPayment(session.gateway_reference, 5_000, "EUR"), 1_000)
    finally:
        await demo.aclose()

    assert len((await accounts(sandbox))[seller.account_id]["refunds"]) == 1


# -- the sandbox's Connect wire format ------------------------------------------------------


async def test_oauth_errors_come_in_oauths_envelope(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    seller = await connect(connect_gateway)

    wrong_grant = await sandbox.api.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "rt_x"}
    )
    unknown_code = await sandbox.api.post(
        "/v1/oauth/token", data={"grant_type": "authorization_code", "code": "ac_nope"}
    )
    other_client = await sandbox.api.post(
        "/oauth/deauthorize",
        data={"client_id": "ca_another_platform", "stripe_user_id": seller.account_id},
    )
    no_key = await sandbox.control.post(
        "/oauth/token", data={"grant_type": "authorization_code", "code": "ac_nope"}
    )

    assert (wrong_grant.status_code, wrong_grant.json()["error"]) == (
        400,
        "unsupported_grant_type",
    )
    assert (unknown_code.status_code, unknown_code.json()["error"]) == (400, "invalid_grant")
    assert (other_client.status_code, other_client.json()["error"]) == (401, "invalid_client")
    assert no_key.status_code == 401
    assert (await accounts(sandbox))[seller.account_id]["connected_to"] == CONNECT_CLIENT_ID


async def test_events_of_a_connected_account_are_retrieved_on_it_only(
    connect_gateway: StripeGateway,
    sandbox: RunningSandbox,
    make_request: Callable[..., PaymentRequest],
) -> None:
    seller = await connect(connect_gateway)
    await connect_gateway.create_payment(make_request(account=seller))
    (created,) = await sandbox.events("payment_intent.created")

    on_seller = await sandbox.api.get(
        f"/v1/events/{created['id']}", headers={"Stripe-Account": seller.account_id}
    )
    on_platform = await sandbox.api.get(f"/v1/events/{created['id']}")

    assert created["account"] == seller.account_id
    assert on_seller.status_code == 200 and on_seller.json()["account"] == seller.account_id
    assert on_platform.status_code == 404


async def test_a_reset_forgets_connected_accounts(
    connect_gateway: StripeGateway, sandbox: RunningSandbox
) -> None:
    seller = await connect(connect_gateway)

    (await sandbox.control.post("/_sandbox/reset")).raise_for_status()

    assert await accounts(sandbox) == {}
    answer = await sandbox.api.get(
        "/v1/payment_intents/pi_x", headers={"Stripe-Account": seller.account_id}
    )
    assert answer.json()["error"]["code"] == "account_invalid"


async def test_a_fee_on_the_platforms_own_payment_is_refused_as_stripe_refuses_it(
    sandbox: RunningSandbox,
) -> None:
    answer = await sandbox.api.post(
        "/v1/payment_intents",
        data={"amount": "1000", "currency": "eur", "application_fee_amount": "100"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "application_fee_amount"
