"""Settings of the ECB plugin, read from ``PIXECOM_ECB_*`` environment variables.

The ECB's files are public: nothing is secret and everything has a default, so the plugin
registers on any machine; only where the files are and how long a call may take can be
changed.
"""

from datetime import date, time
from typing import Final

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixecom_core.providers.settings_fields import validate_http_base_url

ENV_PREFIX: Final = "PIXECOM_ECB_"
BASE_URL: Final = "https://www.ecb.europa.eu/stats/eurofxref"
SANDBOX_ENV_PREFIX: Final = "PIXECOM_ECB_SANDBOX_"
#: The first day the ECB published euro reference rates.
FIRST_PUBLICATION: Final = date(1999, 1, 4)
#: The body of the largest file read, at most (SCALE-4: every read is bounded). The full
#: history is a few megabytes and grows by about 1.5 kB a business day.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


class EcbSettings(BaseSettings):
    """Where the ECB's reference-rate files are, and how long reading one may take.

    :param base_url: the folder holding ``eurofxref-daily.xml``, ``eurofxref-hist-90d.xml``
        and ``eurofxref-hist.xml``; a trailing ``/`` is optional. The sandbox's
        ``<url>/stats/eurofxref`` in dev mode and tests.
    :param timeout_seconds: the limit on one file's download as a whole (connect, send,
        wait, read): the full history is several megabytes, so more than an API call's.
        An expired call raises ``ProviderUnavailable``.
    :param throttle_backoff_seconds: the wait named in ``ProviderThrottled`` when the ECB's
        servers answer 429 without a ``Retry-After`` header.
    :param max_body_bytes: a larger body is refused (``ProviderTransientError``) instead of
        being read into memory.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    base_url: str = BASE_URL
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    throttle_backoff_seconds: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, gt=0)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return validate_http_base_url(value, example=BASE_URL)


class EcbSandboxSettings(BaseSettings):
    """How the ECB sandbox starts when built without arguments (dev mode); everything can be
    changed while it runs through ``POST /_sandbox/config``.

    :param today: the sandbox's day. Unset: the day the sandbox's clock (``POST
        /_sandbox/clock``) shows in Frankfurt (``Europe/Berlin``).
    :param today_published: whether today's rates are out yet (only matters on a business
        day). Unset: whether the clock in Frankfurt shows ``publication_time`` or later.
    :param publication_time: when the ECB publishes, Frankfurt time ("around 16:00 CET").
    :param history_starts_on: the first day served (the ECB's is 4 January 1999; tests
        start later, so the full history stays small).
    :param seed: the rates are a function of it, the currency and the day.
    :param latency_seconds: added before every file is answered (not the control endpoints).
    :param retry_after_seconds: the ``Retry-After`` a ``throttled`` fault sends unless the
        fault names its own; unset: no header.
    """

    model_config = SettingsConfigDict(env_prefix=SANDBOX_ENV_PREFIX, env_file=None, extra="ignore")

    today: date | None = None
    today_published: bool | None = None
    publication_time: time = time(16, 0)
    history_starts_on: date = Field(default=FIRST_PUBLICATION, ge=FIRST_PUBLICATION)
    seed: int = Field(default=16, ge=0, lt=2**32)
    latency_seconds: float = Field(default=0.0, ge=0)
    retry_after_seconds: float | None = Field(default=None, ge=0)
