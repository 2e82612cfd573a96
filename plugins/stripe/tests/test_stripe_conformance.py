"""The conformance kit against the Stripe plugin: discovered through its hooks, served as
``pixecom dev`` serves it, paid through the sandbox's control API."""

from collections.abc import Mapping
from datetime import datetime

import pixecom_stripe.plugin
from pixecom_stripe.plugin import DEV_WEBHOOK_SECRET
from pixecom_stripe.sandbox import signature_header

from pixecom_core.providers import PaymentSession
from pixecom_core.testing.conformance import PaymentGatewayConformance, SandboxUnderTest


class TestStripeConformance(PaymentGatewayConformance):
    plugin = pixecom_stripe.plugin
    identifier = "stripe"
    sandbox_name = "stripe"

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
