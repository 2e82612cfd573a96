"""Settings of the 17TRACK plugin, read from ``PIXECOM_TRACKING17_*`` environment variables.

Every field has a default or may be unset, so building the settings (and registering the
plugin) never fails on a machine without a 17TRACK key; the call that needs a missing key
fails instead, with a message naming the variable to set (``ProviderAuthError`` for API
calls, ``WebhookVerificationError`` for pushes).
"""

from typing import Annotated, Any, Final

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pixecom_core.providers.settings_fields import split_list, validate_http_base_url
from pixecom_core.secret_files import SettingsWithSecretFiles

ENV_PREFIX: Final = "PIXECOM_TRACKING17_"
API_BASE: Final = "https://api.17track.net"
SANDBOX_ENV_PREFIX: Final = "PIXECOM_TRACKING17_SANDBOX_"


def _blank_to_none(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None
    return value


class Track17Settings(SettingsWithSecretFiles):
    """How the plugin reaches 17TRACK (or its sandbox) and checks 17TRACK's pushes.

    :param api_base: scheme and host of the 17TRACK API; requests go to
        ``<api_base>/track/v2.2/<operation>``. The sandbox's URL
        (``http://127.0.0.1:<port>``) in dev mode and tests.
    :param api_key: the account's security key, sent as the ``17token`` header; never
        logged and scrubbed from every error message.
    :param push_key: the key pushes are signed with. Unset: ``api_key``, because 17TRACK
        signs pushes with the account's security key (as far as third-party integrations
        show; the official text does not describe the signature). Set it to verify pushes
        in a process that must not hold the API key, or when the two differ.
    :param timeout_seconds: the limit on one API call as a whole (connect, send, wait,
        read). Short on purpose (SCALE-9: a slow 17TRACK must not hold a worker);
        an expired call raises ``ProviderTransientError`` for core's breaker to count.
    :param requests_per_second: calls this process starts per second at most. 17TRACK
        allows about 3 per account and answers 429 past it; with several worker processes
        sharing one account, give each its share (e.g. 1.5 for two).
    :param max_rate_wait_seconds: a call that would have to wait longer than this for a
        rate-limit slot is not queued: it raises ``ProviderThrottled`` naming the wait, so
        a worker never sits on a long queue.
    :param throttle_backoff_seconds: the wait named in ``ProviderThrottled`` when 17TRACK
        answers 429 without a ``Retry-After`` header.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    api_base: str = API_BASE
    api_key: SecretStr | None = None
    push_key: SecretStr | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    requests_per_second: float = Field(default=3.0, gt=0)
    max_rate_wait_seconds: float = Field(default=10.0, ge=0)
    throttle_backoff_seconds: float = Field(default=1.0, gt=0)

    @field_validator("api_base")
    @classmethod
    def _check_api_base(cls, value: str) -> str:
        return validate_http_base_url(value, example=API_BASE)

    @field_validator("api_key", "push_key")
    @classmethod
    def _drop_blank_keys(cls, value: SecretStr | None) -> SecretStr | None:
        # an empty variable means "unset", not "sign with the empty string"
        return _blank_to_none(value)

    def signing_key(self) -> SecretStr | None:
        """The key pushes are verified with: ``push_key``, else ``api_key``, else ``None``."""
        return self.push_key if self.push_key is not None else self.api_key


SecretList = Annotated[list[SecretStr], NoDecode, Field(default_factory=list)]

#: The key the sandbox accepts and signs with when nothing else is configured; only ever
#: meaningful against the sandbox.
SANDBOX_DEFAULT_KEY: Final = "pixecom-17track-sandbox-only-key"


class Track17SandboxSettings(BaseSettings):
    """How the 17TRACK sandbox starts when built without arguments (dev mode).

    Everything can also be changed while it runs, through ``POST /_sandbox/config``; an
    outage is a fault (``POST /_sandbox/faults``), not a setting.

    :param api_keys: the ``17token`` values accepted. Unset: the tracker's
        ``PIXECOM_TRACKING17_API_KEY``, else :data:`SANDBOX_DEFAULT_KEY`.
    :param push_url: where pushes are delivered (the API's tracking push route in dev mode).
    :param push_key: the key pushes are signed with. Unset: the tracker's
        ``PIXECOM_TRACKING17_PUSH_KEY``, else its ``PIXECOM_TRACKING17_API_KEY`` (what
        17TRACK does), else :data:`SANDBOX_DEFAULT_KEY`.
    :param auto_push: push ``TRACKING_UPDATED`` whenever a parcel's status changes and
        ``TRACKING_STOPPED`` when a number is stopped, as 17TRACK does; otherwise pushes wait
        for ``POST /_sandbox/push``.
    :param advance_every_seconds: parcels move one step (InfoReceived → InTransit →
        OutForDelivery → Delivered) every this many seconds; 0: only
        ``POST /_sandbox/parcels/{number}/advance`` moves them.
    :param rate_limit_per_second: API calls one key may make per second; past it: 429.
    :param retry_after_seconds: sent as ``Retry-After`` with a 429 when set (17TRACK is not
        known to send one, so unset by default).
    :param latency_seconds: added before every API answer (not the control endpoints).
    :param quota_total: numbers that can be registered before ``-18019908`` (no quota).
    :param push_timeout_seconds: how long one push delivery may take.
    """

    model_config = SettingsConfigDict(env_prefix=SANDBOX_ENV_PREFIX, env_file=None, extra="ignore")

    api_keys: SecretList
    push_url: str | None = None
    push_key: SecretStr | None = None
    auto_push: bool = False
    advance_every_seconds: float = Field(default=0.0, ge=0)
    rate_limit_per_second: int = Field(default=3, gt=0)
    retry_after_seconds: float | None = Field(default=None, ge=0)
    latency_seconds: float = Field(default=0.0, ge=0)
    quota_total: int = Field(default=100_000, ge=0)
    push_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("push_key")
    @classmethod
    def _drop_blank_push_key(cls, value: SecretStr | None) -> SecretStr | None:
        return _blank_to_none(value)

    def accepted_keys(self) -> list[str]:
        """The ``17token`` values the sandbox accepts (see ``api_keys``)."""
        keys = [key.get_secret_value() for key in self.api_keys if key.get_secret_value()]
        if keys:
            return keys
        tracker_key = Track17Settings().api_key
        return [tracker_key.get_secret_value() if tracker_key else SANDBOX_DEFAULT_KEY]

    def signing_key(self) -> str:
        """The key pushes are signed with (see ``push_key``)."""
        if self.push_key is not None:
            return self.push_key.get_secret_value()
        tracker_key = Track17Settings().signing_key()
        return tracker_key.get_secret_value() if tracker_key else SANDBOX_DEFAULT_KEY
