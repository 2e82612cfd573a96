"""Hook implementations of the Stripe plugin: the ``stripe`` gateway and its sandbox."""

from pixecom_core import hookimpl
from pixecom_core.providers import ASGIApp, PaymentGateway, Sandbox
from pixecom_stripe.gateway import StripeGateway
from pixecom_stripe.settings import StripeSettings


@hookimpl
def pixecom_register_payment_gateways() -> list[PaymentGateway]:
    """Offer the ``stripe`` payment gateway, configured from ``PIXECOM_STRIPE_*``.

    Unset keys do not fail here: the first call that needs one raises a
    ``ProviderAuthError`` naming the variable to set.
    """
    return [StripeGateway(StripeSettings())]


def _create_sandbox_app() -> ASGIApp:
    # imported on demand: API and worker processes never serve the sandbox
    from pixecom_stripe.sandbox import create_sandbox_app

    return create_sandbox_app()


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``stripe`` sandbox: a fake Stripe account on loopback (see
    :mod:`pixecom_stripe.sandbox`), configured from ``PIXECOM_STRIPE_SANDBOX_*``."""
    return [Sandbox(name="stripe", provider="stripe", create_app=_create_sandbox_app)]
