"""The Stripe sandbox's ``demo_payments``: what ``pixecom dev``'s demo shopper pays with.

The demo shopper itself, paying through the reference app, is tested with the app
(``tests/stripe/test_stripe_demo_traffic.py`` in the PixEcom repository).
"""

from __future__ import annotations

import httpx
import pytest
from pixecom_stripe import plugin as stripe_plugin
from pixecom_stripe.sandbox import SandboxDemoPayments
from stripe_support import RunningSandbox

from pixecom_core.plugins import ProviderRegistry, create_plugin_manager
from pixecom_core.providers import DemoPayment
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
