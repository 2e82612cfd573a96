"""The sandbox's own contract: PayPal's refusals and the buyer's page (the kit's controls
are checked by the conformance kit)."""

import base64

import httpx
import pytest
from paypal_sandbox_control import SandboxControl

from pixecom_core.testing.sandbox_kit import WebhookReceiver


def token_response(sandbox: SandboxControl, **kwargs: object) -> httpx.Response:
    return sandbox.http.post("/v1/oauth2/token", **kwargs)  # type: ignore[arg-type]


def test_the_token_endpoint_refuses_a_wrong_secret(sandbox: SandboxControl) -> None:
    response = token_response(
        sandbox,
        auth=(sandbox.settings.client_id, "wrong"),
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client Authentication failed",
    }


@pytest.mark.parametrize(
    "authorization", ["", "Bearer abc", "Basic !!!", f"Basic {base64.b64encode(b'x').decode()}"]
)
def test_the_token_endpoint_refuses_malformed_basic_auth(
    sandbox: SandboxControl, authorization: str
) -> None:
    response = token_response(
        sandbox,
        headers={"Authorization": authorization},
        data={"grant_type": "client_credentials"},
    )

    assert response.status_code == 401


def test_the_token_endpoint_wants_client_credentials(sandbox: SandboxControl) -> None:
    response = token_response(
        sandbox,
        auth=(sandbox.settings.client_id, sandbox.settings.client_secret.get_secret_value()),
        data={"grant_type": "password"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_api_calls_without_a_token_are_refused(sandbox: SandboxControl) -> None:
    response = sandbox.http.get("/v2/checkout/orders/ANY")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_refund_larger_than_what_is_left_is_refused(sandbox: SandboxControl) -> None:
    capture_id = sandbox.capture(sandbox.create_order("10.00"))
    sandbox.refund(capture_id, "6.00")

    with pytest.raises(httpx.HTTPStatusError) as raised:
        sandbox.refund(capture_id, "4.01")

    assert raised.value.response.status_code == 422
    assert raised.value.response.json()["details"][0]["issue"] == "REFUND_AMOUNT_EXCEEDED"


def test_a_fully_refunded_capture_takes_no_more_refunds(sandbox: SandboxControl) -> None:
    capture_id = sandbox.capture(sandbox.create_order("10.00"))
    sandbox.refund(capture_id)

    with pytest.raises(httpx.HTTPStatusError) as raised:
        sandbox.refund(capture_id, "0.01")

    assert raised.value.response.json()["details"][0]["issue"] == "CAPTURE_FULLY_REFUNDED"
    assert sandbox.state.captures[capture_id]["status"] == "REFUNDED"


def test_a_refund_is_idempotent_on_the_request_id(sandbox: SandboxControl) -> None:
    capture_id = sandbox.capture(sandbox.create_order("10.00"))
    refund = {"json": {"amount": {"currency_code": "USD", "value": "1.00"}}}

    first = sandbox.api(
        "POST",
        f"/v2/payments/captures/{capture_id}/refund",
        headers={"PayPal-Request-Id": "refund-1"},
        **refund,
    )
    again = sandbox.api(
        "POST",
        f"/v2/payments/captures/{capture_id}/refund",
        headers={"PayPal-Request-Id": "refund-1"},
        **refund,
    )

    assert again == first
    assert len(sandbox.state.refunds) == 1


def test_a_dispute_is_resolved_once(sandbox: SandboxControl) -> None:
    capture_id = sandbox.capture(sandbox.create_order("10.00"))
    dispute = sandbox.open_dispute(capture_id)
    sandbox.resolve_dispute(dispute["dispute_id"], "RESOLVED_SELLER_FAVOUR")

    with pytest.raises(httpx.HTTPStatusError) as raised:
        sandbox.resolve_dispute(dispute["dispute_id"], "RESOLVED_BUYER_FAVOUR")

    assert raised.value.response.status_code == 422


def test_disputes_are_listed_by_disputed_capture(sandbox: SandboxControl) -> None:
    capture_id = sandbox.capture(sandbox.create_order("10.00"))
    other = sandbox.capture(sandbox.create_order("3.00"))
    dispute = sandbox.open_dispute(capture_id)
    sandbox.open_dispute(other)

    listed = sandbox.api(
        "GET", "/v1/customer/disputes", params={"disputed_transaction_id": capture_id}
    )

    assert [item["dispute_id"] for item in listed["items"]] == [dispute["dispute_id"]]


def test_the_buyer_approves_on_the_checkout_page_and_returns(sandbox: SandboxControl) -> None:
    order = sandbox.api(
        "POST",
        "/v2/checkout/orders",
        json={
            "intent": "CAPTURE",
            "purchase_units": [{"amount": {"currency_code": "EUR", "value": "9.90"}}],
            "payment_source": {
                "paypal": {
                    "experience_context": {
                        "return_url": "https://shop.example/paid?cart=1",
                        "cancel_url": "https://shop.example/cancelled",
                    }
                }
            },
        },
    )
    [page] = [link["href"] for link in order["links"] if link["rel"] == "payer-action"]

    shown = sandbox.http.get(page)
    decided = sandbox.http.post(page, data={"action": "approve"})

    assert order["status"] == "PAYER_ACTION_REQUIRED"
    assert "9.90 EUR" in shown.text
    assert decided.status_code == 303
    assert decided.headers["location"] == (
        f"https://shop.example/paid?cart=1&token={order['id']}&PayerID=SANDBOXBUYER01"
    )
    assert sandbox.state.orders[order["id"]]["status"] == "APPROVED"


def test_the_buyer_can_cancel(sandbox: SandboxControl) -> None:
    order_id = sandbox.create_order("1.00")
    sandbox.state.order_urls[order_id] = (None, "https://shop.example/cancelled")

    decided = sandbox.http.post(f"/checkoutnow?token={order_id}", data={"action": "cancel"})

    assert decided.headers["location"] == f"https://shop.example/cancelled?token={order_id}"
    assert sandbox.state.orders[order_id]["status"] == "CREATED"


def test_signing_options_are_refused_before_anything_is_sent(
    sandbox: SandboxControl, receiver: tuple[str, WebhookReceiver]
) -> None:
    url, recorder = receiver
    sandbox.capture(sandbox.create_order())

    refused = sandbox.http.post(
        "/_sandbox/deliver", json={"url": url, "signing": {"timestamp_offset_seconds": -600}}
    )

    assert refused.status_code == 422
    assert "timestamp_offset_seconds" in refused.json()["detail"]
    assert recorder.received == []
    assert [d["status_code"] for d in sandbox.deliver(url=url)] == [200] * len(sandbox.events())
