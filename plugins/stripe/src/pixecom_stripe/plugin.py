"""Hook implementations of the Stripe plugin."""

from pixecom_core import hookimpl
from pixecom_core.providers import PaymentGateway
from pixecom_stripe.gateway import StripeGateway


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    """Offer the ``stripe`` payment gateway."""
    return [StripeGateway()]
