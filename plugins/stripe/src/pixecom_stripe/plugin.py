"""Hook implementations of the Stripe plugin: the ``stripe`` gateway and its sandbox."""

from pixecom_core import hookimpl
from pixecom_core.providers import ASGIApp, PaymentGateway, Sandbox, SimulatedPayments
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


#: Dev-only credentials shared by the gateway and its sandbox (never valid at Stripe).
DEV_SECRET_KEY = "sk_test_pixecom_dev_sandbox"
DEV_WEBHOOK_SECRET = "whsec_pixecom_dev_sandbox_0000000000"
DEV_CONNECT_CLIENT_ID = "ca_pixecom_dev_sandbox"
DEV_CONNECT_WEBHOOK_SECRET = "whsec_pixecom_dev_sandbox_connect_000"


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:
    """Point the gateway (API and Connect OAuth) at the sandbox and the sandbox's events
    at the API. Single-account mode stays on, so a seller who has not connected a Stripe
    account can still pay in the demo; one who has pays on their own account. Hosted
    checkout is on: the demo's sellpage sends the shopper to the sandbox's Checkout page."""
    return {
        "PIXECOM_STRIPE_API_BASE": sandbox_url,
        "PIXECOM_STRIPE_CONNECT_BASE": sandbox_url,
        "PIXECOM_STRIPE_SECRET_KEY": DEV_SECRET_KEY,
        "PIXECOM_STRIPE_CONNECT_CLIENT_ID": DEV_CONNECT_CLIENT_ID,
        "PIXECOM_STRIPE_WEBHOOK_SECRETS": DEV_WEBHOOK_SECRET,
        "PIXECOM_STRIPE_CONNECT_WEBHOOK_SECRETS": DEV_CONNECT_WEBHOOK_SECRET,
        "PIXECOM_STRIPE_PLATFORM_ACCOUNT_PAYMENTS": "true",
        "PIXECOM_STRIPE_SANDBOX_WEBHOOK_URL": f"{api_url}/webhooks/stripe",
        "PIXECOM_STRIPE_SANDBOX_AUTO_DELIVER": "true",
        "PIXECOM_STRIPE_HOSTED_CHECKOUT": "true",
    }


async def _approve_consent(authorization_url: str) -> str:
    """Play the seller on the sandbox's Connect consent page (a new connected account)."""
    from pixecom_stripe.sandbox_connect import approve_consent

    return await approve_consent(authorization_url)


def _demo_payments(sandbox_url: str) -> SimulatedPayments:
    """Pay and refund at the sandbox for ``pixecom dev``'s demo traffic, and hold and
    replay webhooks for ``pixecom simulate``'s burst."""
    from pixecom_stripe.sandbox import SandboxDemoPayments

    return SandboxDemoPayments(sandbox_url, secret_key=DEV_SECRET_KEY)


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``stripe`` sandbox: a fake Stripe account on loopback (see
    :mod:`pixecom_stripe.sandbox`), configured from ``PIXECOM_STRIPE_SANDBOX_*``."""
    return [
        Sandbox(
            name="stripe",
            provider="stripe",
            create_app=_create_sandbox_app,
            environment=_dev_environment,
            demo_payments=_demo_payments,
            simulation_payments=_demo_payments,
            approve_consent=_approve_consent,
        )
    ]
