"""The Stripe payment gateway provider.

It creates PaymentIntents, verifies `Stripe-Signature` webhooks and normalises their events.
Until the Stripe plugin issue lands, every operation raises ``NotImplementedError``: the
plugin is installable and discoverable, not usable.
"""

from collections.abc import Mapping

from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentRequest,
    PaymentSession,
    VerifiedWebhook,
)

_PENDING = "implemented by the Stripe plugin issue"


class StripeGateway:
    """The ``stripe`` payment gateway; implements ``pixecom_core.providers.PaymentGateway``."""

    identifier = "stripe"
    display_name = "Stripe"

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        """Create the gateway's payment object for ``request``."""
        raise NotImplementedError(f"create_payment: {_PENDING}")

    async def verify_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> VerifiedWebhook:
        """Check the webhook's signature."""
        raise NotImplementedError(f"verify_webhook: {_PENDING}")

    async def parse_events(self, webhook: VerifiedWebhook) -> list[GatewayPaymentEvent]:
        """Translate a verified webhook into normalised payment events."""
        raise NotImplementedError(f"parse_events: {_PENDING}")
