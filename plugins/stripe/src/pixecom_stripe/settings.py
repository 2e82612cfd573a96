"""Settings of the Stripe gateway, read from ``PIXECOM_STRIPE_*`` environment variables.

Every field has a default or may be unset, so building the settings (and registering the
plugin) never fails on a machine without Stripe keys; the call that needs a missing key
fails instead, with a message naming the variable to set.

Lists are accepted as JSON (``'["whsec_old","whsec_new"]'``) or comma-separated
(``whsec_old,whsec_new``).
"""

from typing import Annotated, Any, Final

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pixecom_core.providers.settings_fields import split_list, validate_http_base_url
from pixecom_core.secret_files import SettingsWithSecretFiles

ENV_PREFIX = "PIXECOM_STRIPE_"
STRIPE_API_BASE = "https://api.stripe.com"
#: Where Connect's OAuth lives: the consent page, ``/oauth/token``, ``/oauth/deauthorize``
#: (https://docs.stripe.com/connect/oauth-reference; stripe-python's ``connect_api_base``).
STRIPE_CONNECT_BASE = "https://connect.stripe.com"


SecretList = Annotated[list[SecretStr], NoDecode, Field(default_factory=list)]


class StripeSettings(SettingsWithSecretFiles):
    """How the plugin reaches Stripe (or its sandbox) and checks Stripe's webhooks.

    :param api_base: scheme and host of the Stripe API; point it at the sandbox
        (``http://127.0.0.1:<port>``) in dev mode and tests.
    :param secret_key: the account's secret (``sk_…``) or restricted (``rk_…``) key, sent as
        ``Authorization: Bearer``; never logged.
    :param webhook_secrets: the webhook endpoint's signing secrets (``whsec_…``). During a
        rotation Stripe signs with the old and the new secret for a while: configure both,
        and a webhook is accepted when any of them verifies it.
    :param webhook_tolerance_seconds: how old a ``Stripe-Signature`` timestamp may be before
        the webhook is refused as a possible replay (Stripe's libraries use 300).
    :param timeout_seconds: the limit on each call to the Stripe API (connect, read, write).
    :param api_version: sent as ``Stripe-Version`` when set; otherwise the account's default
        API version shapes the responses. Webhook shapes follow the endpoint's version.
    :param connect_client_id: the platform's Connect client id (``ca_…``, Dashboard →
        Settings → Connect → Onboarding options → OAuth), named on the consent page. Unset:
        sellers cannot connect their Stripe accounts (the consent URL names the setting).
    :param connect_base: scheme and host of Connect's OAuth (the consent page, the code
        exchange, deauthorization); point it at the sandbox, like ``api_base``.
    :param connect_webhook_secrets: the signing secrets of the platform's *Connect* webhook
        endpoint, which receives the events of connected accounts (Stripe gives it a
        ``whsec_…`` of its own). A delivery is accepted when any secret of either list
        verifies it.
    :param platform_account_payments: single-account mode. Off (the default), a payment or
        refund without a connected account is refused (``ProviderRefused``): a seller's
        money must never land on the platform's account. On, such a payment or refund is
        made on the platform's own account, as before Connect (tests, ``pixecom dev``, a
        deployment with one seller); payments that name an account still go to it.
    :param hosted_checkout: take payments on Stripe Checkout's hosted page (a Checkout
        Session; ``PaymentSession.approval_url`` is the page, ``gateway_reference`` the
        ``cs_…``) instead of a bare PaymentIntent confirmed by Stripe.js with its client
        secret. Payments made before it was turned on keep their ``pi_…`` references; turned
        off again, the facts of sessions paid meanwhile (a late refund, a dispute) would name
        their PaymentIntents, which core does not know: leave it on once used.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    api_base: str = STRIPE_API_BASE
    secret_key: SecretStr | None = None
    webhook_secrets: SecretList
    webhook_tolerance_seconds: int = Field(default=300, gt=0)
    timeout_seconds: float = Field(default=15.0, gt=0)
    api_version: str | None = None
    connect_client_id: str | None = Field(default=None, pattern=r"^ca_[A-Za-z0-9_]+$")
    connect_base: str = STRIPE_CONNECT_BASE
    connect_webhook_secrets: SecretList
    platform_account_payments: bool = False
    hosted_checkout: bool = False

    @field_validator("api_base")
    @classmethod
    def _check_api_base(cls, value: str) -> str:
        return validate_http_base_url(value, example=STRIPE_API_BASE)

    @field_validator("connect_base")
    @classmethod
    def _check_connect_base(cls, value: str) -> str:
        return validate_http_base_url(value, example=STRIPE_CONNECT_BASE)

    @field_validator("webhook_secrets", "connect_webhook_secrets", mode="before")
    @classmethod
    def _split_webhook_secrets(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("webhook_secrets", "connect_webhook_secrets")
    @classmethod
    def _drop_empty_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        # an empty entry would make every check fail with a confusing message
        return [secret for secret in value if secret.get_secret_value().strip()]


SANDBOX_ENV_PREFIX = "PIXECOM_STRIPE_SANDBOX_"
#: Signs sandbox webhooks when neither sandbox nor gateway secrets are configured; only ever
#: meaningful against the sandbox.
SANDBOX_DEFAULT_WEBHOOK_SECRET = "whsec_pixecom_sandbox_only_not_a_real_secret"
#: Signs the sandbox's connected accounts' events when no Connect secret is configured.
SANDBOX_DEFAULT_CONNECT_WEBHOOK_SECRET = "whsec_pixecom_sandbox_connect_only_not_a_real_secret"
#: Seconds the sandbox waits before each retry of an automatic delivery the endpoint did not
#: answer with 2xx: Stripe's exponential backoff (live mode: up to three days), compressed
#: to about two minutes so a sandbox run sees it.
SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 60.0)
#: The longest single retry delay the sandbox accepts (a day).
SANDBOX_MAX_RETRY_DELAY_SECONDS: Final = 86_400.0

RetryDelay = Annotated[float, Field(ge=0, le=SANDBOX_MAX_RETRY_DELAY_SECONDS)]


class StripeSandboxSettings(BaseSettings):
    """How the Stripe sandbox starts when built without arguments (dev mode).

    Everything can also be changed while it runs, through ``POST /_sandbox/config``.

    :param webhook_url: where ``POST /_sandbox/deliver`` (and ``auto_deliver``) send events,
        e.g. the reference app's Stripe webhook route.
    :param webhook_secrets: the endpoint secrets events are signed with, one ``v1=`` entry
        each (two while rotating). Unset: the gateway's ``PIXECOM_STRIPE_WEBHOOK_SECRETS``,
        so one variable configures both ends; both unset: a fixed sandbox-only secret.
    :param connect_webhook_secrets: the Connect endpoint's secrets, which sign the events
        of connected accounts. Unset: the gateway's ``PIXECOM_STRIPE_CONNECT_WEBHOOK_SECRETS``;
        both unset: a fixed sandbox-only secret.
    :param api_keys: the secret keys the sandbox accepts. Unset: any test-mode key
        (``sk_test_…``, ``rk_test_…``); live keys are always refused.
    :param auto_deliver: send each event to ``webhook_url`` as soon as it happens, as Stripe
        does; otherwise events wait for ``POST /_sandbox/deliver``.
    :param retry_delays_seconds: when an automatic delivery is not answered with 2xx (or not
        answered at all), send it again after each of these delays in turn, until one is
        answered 2xx; empty: no retries. Default: 1, 2, 4, 8, 16, 30, 60, Stripe's
        exponential backoff compressed for a sandbox. JSON list or comma-separated.
    :param latency_seconds: added before every API answer (at most 120).
    :param seed: makes ids and injected failures with a ``probability`` reproducible.

    Failures are queued while it runs, through ``POST /_sandbox/faults``.
    """

    model_config = SettingsConfigDict(env_prefix=SANDBOX_ENV_PREFIX, env_file=None, extra="ignore")

    webhook_url: str | None = None
    webhook_secrets: SecretList
    connect_webhook_secrets: SecretList
    api_keys: SecretList
    auto_deliver: bool = False
    retry_delays_seconds: Annotated[list[RetryDelay], NoDecode] = Field(
        default_factory=lambda: list(SANDBOX_DEFAULT_RETRY_DELAYS_SECONDS)
    )
    latency_seconds: float = Field(default=0.0, ge=0, le=120)
    seed: int | None = None

    @field_validator(
        "webhook_secrets",
        "connect_webhook_secrets",
        "api_keys",
        "retry_delays_seconds",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_list(value)
