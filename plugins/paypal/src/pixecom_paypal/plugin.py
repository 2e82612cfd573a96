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


def _dev_environment(sandbox_url: str, api_url: str) -> dict[str, str]:
    """Point the gateway at the sandbox over plain HTTP (so webhooks are verified with the
    verify-webhook-signature call, which needs no https certificate URL) and the
    sandbox's events at the API, sent as they happen. The credentials are the sandbox's
    own, valid nowhere. Single-account mode stays on, so a seller who has not connected a
    PayPal app can still pay in the demo; one who has pays with their own app."""
    return {
        "PIXECOM_PAYPAL_API_BASE": sandbox_url,
        "PIXECOM_PAYPAL_VERIFICATION": "api",
        "PIXECOM_PAYPAL_CLIENT_ID": "sandbox-client-id",
        "PIXECOM_PAYPAL_CLIENT_SECRET": "sandbox-client-secret",
        "PIXECOM_PAYPAL_WEBHOOK_ID": "SANDBOXWEBHOOK0000000001",
        "PIXECOM_PAYPAL_PLATFORM_ACCOUNT_PAYMENTS": "true",
        "PIXECOM_PAYPAL_SANDBOX_WEBHOOK_URL": f"{api_url}/webhooks/paypal",
        # PayPal sends its webhooks on its own; so does the sandbox in dev mode.
        "PIXECOM_PAYPAL_SANDBOX_AUTO_DELIVER": "true",
    }


async def _demo_credentials(sandbox_url: str) -> dict[str, str]:
    """A new seller REST app at the sandbox (``POST /_sandbox/apps``): its client id and
    secret, for ``pixecom dev``'s demo seller to connect."""
    import httpx

    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as client:
        created = await client.post("/_sandbox/apps", json={"name": "Demo shop"})
        created.raise_for_status()
        app = created.json()
    return {"client_id": str(app["client_id"]), "client_secret": str(app["client_secret"])}


@hookimpl
def pixecom_register_sandboxes() -> list[Sandbox]:
    """Offer the ``paypal`` sandbox: a fake PayPal REST API that also sends signed webhooks."""
    return [
        Sandbox(
            name="paypal",
            provider="paypal",
            create_app=create_sandbox_app,
            environment=_dev_environment,
            demo_credentials=_demo_credentials,
        )
    ]
