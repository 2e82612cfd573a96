"""Settings of the PayPal gateway: one pydantic-settings class, read from ``PIXECOM_PAYPAL_*``.

Every field has a default, so the plugin loads on a machine that does not use PayPal; a call
that needs a missing credential fails then, naming the variable to set.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pixecom_core.providers.settings_fields import split_list, validate_http_base_url
from pixecom_core.secret_files import SettingsWithSecretFiles

#: PayPal's production REST host; the sandbox account's host is ``https://api-m.sandbox.paypal.com``.
PAYPAL_API_BASE = "https://api-m.paypal.com"

#: Where PayPal serves the certificates that sign webhooks: hosts under ``paypal.com`` only.
PAYPAL_CERT_HOST_SUFFIXES = (".paypal.com",)


class PayPalSettings(SettingsWithSecretFiles):
    """How the ``paypal`` gateway reaches PayPal and checks its webhooks.

    :param api_base: the REST API root, e.g. ``https://api-m.paypal.com`` (live),
        ``https://api-m.sandbox.paypal.com`` (PayPal's sandbox) or the loopback URL of this
        plugin's sandbox.
    :param client_id: the REST app's client id (OAuth2 client credentials).
    :param client_secret: the REST app's secret.
    :param webhook_id: the id PayPal gave the webhook subscription; it is part of the signed
        message, so a delivery meant for another subscription fails verification.
    :param verification: ``"offline"`` checks the signature here with the certificate from
        ``PAYPAL-CERT-URL``; ``"api"`` asks PayPal's verify-webhook-signature endpoint.
    :param allowed_cert_host_suffixes: hosts the signing certificate may be downloaded from.
        An entry with a leading dot (``.paypal.com``) matches any host under that domain, one
        without (``127.0.0.1``) matches that host exactly. Production must keep the default:
        widening it lets anyone who controls an allowed host sign webhooks. Tests and the
        dev deployment add the loopback host their sandbox listens on, and nothing else.
    :param max_transmission_age_seconds: how far ``PAYPAL-TRANSMISSION-TIME`` may be from now,
        either way. PayPal signs every delivery attempt afresh, so retries stay fresh.
    :param tls_ca_file: an extra PEM bundle trusted on top of certifi's, for a sandbox that
        serves TLS on loopback with its own CA. Leave unset against PayPal.
    :param timeout_seconds: the timeout of each HTTP call to PayPal.
    :param capture_on_approval: capture an order when ``CHECKOUT.ORDER.APPROVED`` arrives
        (intent ``CAPTURE``: the approval itself moves no money). Turn off when the
        storefront captures on its return URL with :meth:`PayPalGateway.capture_payment`.
    :param platform_account_payments: single-account mode. Off (the default), a payment,
        capture or refund without a seller's connected REST app is refused
        (``ProviderRefused``): a seller's money must never land on the platform's app. On,
        such a call uses the platform app above, as before sellers connected their own
        apps (tests, ``pixecom dev``, a deployment with one seller); calls that name a
        seller's account still use that seller's app.
    """

    model_config = SettingsConfigDict(
        env_prefix="PIXECOM_PAYPAL_",
        env_file=None,
        extra="ignore",
    )

    api_base: str = PAYPAL_API_BASE
    client_id: str | None = None
    client_secret: SecretStr | None = None
    webhook_id: str | None = None
    verification: Literal["offline", "api"] = "offline"
    allowed_cert_host_suffixes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(PAYPAL_CERT_HOST_SUFFIXES)
    )
    max_transmission_age_seconds: float = Field(default=300.0, gt=0)
    tls_ca_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    capture_on_approval: bool = True
    platform_account_payments: bool = False

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str) -> str:
        return validate_http_base_url(value, example=PAYPAL_API_BASE)

    @field_validator("allowed_cert_host_suffixes", mode="before")
    @classmethod
    def _split_suffixes(cls, value: Any) -> Any:
        # The environment gives one string: accept a JSON list or a comma-separated list.
        return split_list(value)

    @field_validator("allowed_cert_host_suffixes")
    @classmethod
    def _suffixes_name_hosts(cls, value: list[str]) -> list[str]:
        checked = []
        for entry in value:
            suffix = entry.strip().lower()
            if not suffix or any(char in suffix for char in "/:@?#* "):
                raise ValueError(f"{entry!r} is not a host name or a .domain suffix")
            # ".com" would trust every .com host: a suffix must name a domain of its own.
            if suffix.startswith(".") and "." not in suffix[1:]:
                raise ValueError(f"{entry!r} is a bare top-level domain; name the domain itself")
            checked.append(suffix)
        if not checked:
            raise ValueError("at least one certificate host is needed (PayPal's is .paypal.com)")
        return checked
