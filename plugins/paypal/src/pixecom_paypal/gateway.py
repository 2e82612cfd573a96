"""The PayPal payment gateway provider.

It creates PayPal orders, verifies webhooks from their transmission headers and normalises
their events. Until the PayPal plugin issue lands, every operation raises
``NotImplementedError``: the plugin is installable and discoverable, not usable.
"""

from collections.abc import Mapping

from pixecom_core.providers import (
    GatewayPaymentEvent,
    PaymentRequest,
    PaymentSession,
    VerifiedWebhook,
)

_PENDING = "implemented by the PayPal plugin issue"


class PayPalGateway:
    """The ``paypal`` payment gateway; implements ``pixecom_core.providers.PaymentGateway``."""

    identifier = "paypal"
    display_name = "PayPal"

    async def create_payment(self, request: PaymentRequest) -> PaymentSession:
        """Create the gateway's payment object for ``request``."""
        raise NotImplementedError(f"create_payment: {_PENDING}")

    async def verify_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> VerifiedWebhook:
        """Check the webhook's signature."""
        raise NotImplementedError(f"verify_webhook: {_PENDING}")

    async def parse_events(self, webhook: VerifiedWebhook) -> list[GatewayPaymentEvent]:
        """Translate a verified webhook into normalised payment events."""
        raise NotImplementedError(f"parse_events: {_PENDING}")
