"""The Stripe sandbox's ``demo_payments``: what ``pixecom dev``'s demo shopper pays with.

The demo shopper itself, paying through the reference app, is tested with the app
(``tests/stripe/test_stripe_demo_traffic.py`` in the PixEcom repository).
"""

from __future__ import annotations

import json

import httpx
import pytest
from pixecom_stripe import plugin as stripe_plugin
from pixecom_stripe.sandbox import SandboxDemoPayments
from stripe_support import RunningSandbox

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import DemoPayment
from pixecom_core.providers.sandboxes import Receive, Scope, Send
from pixecom_core.testing.loopback import serve


async def test_paying_an_unknown_payment_intent_is_refused(sandbox: RunningSandbox) -> None:
    payments = SandboxDemoPayments(sandbox.url, secret_key=stripe_plugin.DEV_SECRET_KEY)
    try:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await payments.pay(DemoPayment("pi_missing", 1_000, "USD"))
        assert refused.value.response.status_code == 404
    finally:
        await payments.aclose()


async def test_deliveries_the_api_refuses_are_reported(sandbox: RunningSandbox) -> None:
    intent = await sandbox.api.post(
        "/v1/payment_intents", data={"amount": "1000", "currency": "usd"}
    )
    assert intent.status_code == 200, intent.text
    # Nobody listens there: every delivery fails, and pay() says so.
    async with serve(_refusing_receiver) as receiver:
        await sandbox.configure(webhook_url=receiver, auto_deliver=False)
        payments = SandboxDemoPayments(sandbox.url, secret_key=stripe_plugin.DEV_SECRET_KEY)
        try:
            with pytest.raises(RuntimeError, match="refused"):
                await payments.pay(DemoPayment(intent.json()["id"], 1_000, "USD"))
        finally:
            await payments.aclose()


async def _refusing_receiver(scope: dict[str, object], receive: object, send: object) -> None:  # noqa: ARG001
    """An endpoint that refuses every webhook with 400 (a bad signature, say)."""
    if scope["type"] != "http":
        return
    assert callable(send)
    await send({"type": "http.response.start", "status": 400, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_stripe_sandbox_offers_demo_payments() -> None:
    sandbox = ProviderRegistry(create_plugin_manager(allow={"stripe"})).sandbox("stripe")

    assert sandbox.demo_payments is not None
    assert isinstance(sandbox.demo_payments("http://127.0.0.1:1"), SandboxDemoPayments)


def test_the_stripe_sandbox_serves_a_simulation() -> None:
    sandbox = ProviderRegistry(create_plugin_manager(allow={"stripe"})).sandbox("stripe")

    assert sandbox.simulation_payments is not None
    payments = sandbox.simulation_payments("http://127.0.0.1:1")
    assert isinstance(payments, SandboxDemoPayments)
    assert payments.paid_event_type == "payment_intent.succeeded"


class _Receiver:
    """An endpoint that accepts every webhook and keeps the event types it got."""

    def __init__(self) -> None:
        self.types: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.types.append(json.loads(body)["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _intent(sandbox: RunningSandbox) -> str:
    answer = await sandbox.api.post(
        "/v1/payment_intents", data={"amount": "1000", "currency": "usd"}
    )
    assert answer.status_code == 200, answer.text
    reference: str = answer.json()["id"]
    return reference


async def test_held_webhooks_wait_until_delivered_twice_each(sandbox: RunningSandbox) -> None:
    """The simulation's burst: hold, pay, deliver every held event twice, release."""
    receiver = _Receiver()
    async with serve(receiver) as url:
        await sandbox.configure(webhook_url=url, auto_deliver=False)
        first, second = await _intent(sandbox), await _intent(sandbox)
        (await sandbox.control.post("/_sandbox/deliver", json={})).raise_for_status()
        receiver.types.clear()
        payments = SandboxDemoPayments(sandbox.url, secret_key=stripe_plugin.DEV_SECRET_KEY)
        try:
            await payments.hold_webhooks()
            await payments.pay(DemoPayment(first, 1_000, "USD"))
            held = await payments.held_webhooks()
            assert held and receiver.types == []  # pay() left them held

            statuses = await payments.deliver_webhooks(held, copies=2, shuffle=True)

            assert statuses == [200] * (2 * len(held))
            assert receiver.types.count(payments.paid_event_type) == 2
            assert await payments.held_webhooks() == []

            await payments.pay(DemoPayment(second, 1_000, "USD"))
            assert await payments.held_webhooks()
            await payments.release_webhooks()

            assert await payments.held_webhooks() == []
            assert receiver.types.count(payments.paid_event_type) == 3
            # auto_deliver is back to what it was before the hold
            assert (await sandbox.control.get("/_sandbox/config")).json()["auto_deliver"] is False
        finally:
            await payments.aclose()


async def test_delivering_an_unknown_held_event_is_refused(sandbox: RunningSandbox) -> None:
    receiver = _Receiver()
    async with serve(receiver) as url:
        await sandbox.configure(webhook_url=url)
        payments = SandboxDemoPayments(sandbox.url, secret_key=stripe_plugin.DEV_SECRET_KEY)
        try:
            with pytest.raises(httpx.HTTPStatusError) as refused:
                await payments.deliver_webhooks(["evt_missing"], copies=2, shuffle=False)
            assert refused.value.response.status_code == 404
            assert receiver.types == []
        finally:
            await payments.aclose()
