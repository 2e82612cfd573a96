"""Hook implementations of the PayPal plugin: the ``paypal`` gateway and its sandbox."""

from pixecom_core import hookimpl
from pixecom_core.providers import PaymentGateway, Sandbox
from pixecom_paypal.gateway import PayPalGateway
from pixecom_paypal.sandbox import create_sandbox_app
from pixecom_paypal.settings import PayPalSettings


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    """Offer the ``paypal`` payment gateway, configured from ``PIXECOM_PAYPAL_*``.

    Unset credentials do not stop the plugin from loading; the first call that needs one
    raises ``ProviderAuthError`` naming the variable.
    """
    return [PayPalGateway(PayPalSettings())]


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``paypal`` sandbox: a fake PayPal REST API that also sends signed webhooks."""
    return [Sandbox(name="paypal", provider="paypal", create_app=create_sandbox_app)]
