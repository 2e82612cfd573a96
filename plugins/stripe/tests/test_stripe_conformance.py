"""The conformance kit against the Stripe plugin: discovered through its hooks, served as
``pixecom dev`` serves it, paid through the sandbox's control API."""

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

import pixecom_stripe.plugin
from pixecom_stripe.plugin import DEV_WEBHOOK_SECRET
from pixecom_stripe.sandbox import signature_header

from pixecom_core.providers import PaymentSession
from pixecom_core.testing.conformance import PaymentGatewayConformance, SandboxUnderTest


class TestStripeConformance(PaymentGatewayConformance):
    plugin = pixecom_stripe.plugin
    identifier = "stripe"
    sandbox_name = "stripe"
    # PaymentIntents confirmed by the storefront (dev mode turns hosted checkout on).
    environment: ClassVar[Mapping[str, str]] = {"PIXECOM_STRIPE_HOSTED_CHECKOUT": "false"}

    async def settle_payment(self, sandbox: SandboxUnderTest, session: PaymentSession) -> None:
        response = await sandbox.http.post(
            f"/_sandbox/payment_intents/{session.gateway_reference}/succeed"
        )
        assert response.status_code == 200, response.text

    async def sign_at(
        self,
        sandbox: SandboxUnderTest,  # noqa: ARG002 (the kit's signature)
        body: bytes,
        headers: Mapping[str, str],
        *,
        signed_at: datetime,
    ) -> Mapping[str, str]:
        # The dev secret is the one the sandbox's environment gave both sides.
        header = signature_header(
            body.decode("utf-8"), [DEV_WEBHOOK_SECRET], timestamp=int(signed_at.timestamp())
        )
        return {**headers, "stripe-signature": header}


class TestStripeHostedCheckoutConformance(TestStripeConformance):
    """The same contract with ``hosted_checkout``: payments are Checkout Sessions, paid by
    pressing Pay on the sandbox's hosted page."""

    environment: ClassVar[Mapping[str, str]] = {"PIXECOM_STRIPE_HOSTED_CHECKOUT": "true"}

    async def settle_payment(self, sandbox: SandboxUnderTest, session: PaymentSession) -> None:
        assert session.gateway_reference.startswith("cs_")
        assert session.approval_url is not None
        paid = await sandbox.http.post(session.approval_url, data={"action": "pay"})
        assert paid.status_code == 303, paid.text
