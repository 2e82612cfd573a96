"""Hook implementations of the PayPal plugin."""

from pixecom_core import hookimpl
from pixecom_core.providers import PaymentGateway
from pixecom_paypal.gateway import PayPalGateway


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    """Offer the ``paypal`` payment gateway."""
    return [PayPalGateway()]
