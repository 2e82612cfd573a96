"""Settings of the Meta Ads plugin, read from ``PIXECOM_META_*`` environment variables.

Every field has a default, so building the settings (and registering the plugin) never fails
on a machine where nothing is configured: the seller's token comes with every call, not from
the environment. Point ``PIXECOM_META_GRAPH_BASE`` at the sandbox in dev mode and tests.

Two settings are the deployment's, not the plugin's, and keep core's variable names:
``REDIS_URL`` and ``PIXECOM_REDIS_KEY_PREFIX`` (core's ``Settings.redis_url`` and
``redis_key_prefix``), where the plugin keeps the pacing state every worker shares.
"""

from typing import Final, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixecom_core.providers.settings_fields import validate_http_base_url
from pixecom_core.secret_files import SettingsWithSecretFiles

ENV_PREFIX: Final = "PIXECOM_META_"
GRAPH_BASE: Final = "https://graph.facebook.com"
DIALOG_BASE: Final = "https://www.facebook.com"
#: Meta's pixel library, as the pixel base code loads it (developers.facebook.com/docs/
#: meta-pixel/get-started, "Base Code").
PIXEL_SCRIPT_URL: Final = "https://connect.facebook.net/en_US/fbevents.js"
SANDBOX_ENV_PREFIX: Final = "PIXECOM_META_SANDBOX_"
#: After the deployment's Redis key prefix: ``pixecom:meta:pacing:<account number>``.
PACING_KEY_STEM: Final = "meta:pacing:"


class MetaAdsSettings(SettingsWithSecretFiles):
    """How the plugin reaches the Graph API (or its sandbox) and paces its calls.

    :param graph_base: scheme, host and optional path prefix of the Graph API; the sandbox's
        URL (``http://127.0.0.1:<port>``) in dev mode and tests. ``paging.next`` links are
        only followed to this origin, so the token never travels elsewhere.
    :param api_version: the Graph API version in every path (``/v25.0/act_…/insights``).
    :param purchase_action_type: the one ``action_type`` counted as purchases and purchase
        value. Meta reports the same purchase under several types (``purchase``,
        ``omni_purchase``, ``offsite_conversion.fb_pixel_purchase`` …); summing them would
        double revenue.
    :param clicks_field: which Graph field fills ``InsightRow.clicks``: link clicks
        (``inline_link_clicks``, what core's ``InsightRow`` asks for) or all clicks
        (``clicks``, which include likes, expands and profile clicks).
    :param page_limit: rows asked per page (``limit``).
    :param max_pages: bound on pages read for one window (SCALE-4: every list is bounded).
    :param timeout_seconds: limit on each HTTP call (connect, read, write).
    :param max_connections: concurrent calls (and pooled connections) for every account of
        the process together; further calls wait their turn. Spread over pools of 20, so a
        large value stays cheap (one httpx pool grows quadratically in CPU).
    :param slow_down_at_pct: above this usage percentage (any of the rate-limit headers)
        calls for that account are spaced out, proportionally to how close usage is to 100.
    :param max_pace_delay_seconds: the pause before a call when usage reaches 100 %.
    :param throttle_backoff_seconds: the wait after a throttling error whose headers name no
        time to regain access.
    :param max_inline_wait_seconds: a wait up to this long (throttled, or blocked by the
        headers) is slept inside the fetch and the call retried; a longer one is raised as
        ``ProviderThrottled`` so the worker reschedules instead of holding a slot.
    :param transient_retries: retries of one call after a transient failure (code 1/2,
        ``is_transient``, 5xx, timeout) before ``ProviderTransientError`` is raised.
    :param transient_backoff_seconds: the first pause between those retries; doubles each time.
    :param async_report_threshold_days: windows longer than this are read through an async
        report run (POST → poll → read) instead of paging the synchronous endpoint. A
        one-day window that Meta still finds too large also goes async.
    :param async_poll_interval_seconds: pause between two polls of a report run.
    :param async_poll_timeout_seconds: give up on a report run that has not completed by then.
    :param app_secret: the Meta app's secret (``PIXECOM_META_APP_SECRET``, or a file named by
        ``PIXECOM_META_APP_SECRET_FILE``). Connecting an account through Facebook Login needs
        it (code exchange, long-lived tokens, ``debug_token``); when set, every Graph call
        also carries ``appsecret_proof`` (HMAC-SHA256 of the token), which apps with
        "Require App Secret" enabled must send.
    :param app_id: the Meta app's id (``client_id`` of Facebook Login); needed, with
        ``app_secret``, to connect accounts.
    :param dialog_base: scheme and host of Facebook Login's consent dialog
        (``{dialog_base}/{api_version}/dialog/oauth``); the sandbox's URL in dev mode.
    :param login_config_id: a Facebook Login for Business configuration id; when set the
        consent URL names it (``config_id``) instead of a ``scope`` list, because the
        configuration fixes the token type, assets and permissions.
    :param pixel_script_url: the pixel library sellpages load (``fbevents.js``); the
        sandbox's stand-in (``<sandbox>/en_US/fbevents.js``) in dev mode and tests, so no
        page loads a script from Meta there.
    :param usage_memory_seconds: a usage percentage older than this no longer slows calls
        down; also how long an account's shared pacing state stays in Redis after its last
        update (longer while a block lasts).
    :param shared_pacing: keep the pacing state in Redis, so a block one worker was told
        about holds back every worker, when ``redis_url`` is set (issue 18 item 4). Off, or
        without a Redis URL, each process paces from its own memory.
    :param redis_url: the deployment's Redis (``REDIS_URL`` or ``PIXECOM_REDIS_URL``, the
        variables core reads; ``REDIS_URL_FILE`` too); unset: pacing stays in memory.
    :param redis_key_prefix: the deployment's prefix of every Redis key
        (``PIXECOM_REDIS_KEY_PREFIX``, as core's); pacing keys are
        ``{prefix}meta:pacing:{account number}``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, extra="ignore", populate_by_name=True
    )

    graph_base: str = GRAPH_BASE
    api_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    purchase_action_type: str = Field(default="omni_purchase", min_length=1)
    clicks_field: Literal["inline_link_clicks", "clicks"] = "inline_link_clicks"
    page_limit: int = Field(default=500, gt=0, le=5000)
    max_pages: int = Field(default=10_000, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=200, gt=0)
    slow_down_at_pct: float = Field(default=75.0, ge=0, lt=100)
    max_pace_delay_seconds: float = Field(default=30.0, ge=0)
    throttle_backoff_seconds: float = Field(default=60.0, gt=0)
    max_inline_wait_seconds: float = Field(default=30.0, ge=0)
    transient_retries: int = Field(default=2, ge=0, le=10)
    transient_backoff_seconds: float = Field(default=1.0, ge=0)
    async_report_threshold_days: int = Field(default=31, gt=0)
    async_poll_interval_seconds: float = Field(default=2.0, gt=0)
    async_poll_timeout_seconds: float = Field(default=600.0, gt=0)
    app_secret: SecretStr | None = None
    app_id: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    dialog_base: str = DIALOG_BASE
    login_config_id: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    pixel_script_url: str = PIXEL_SCRIPT_URL
    usage_memory_seconds: float = Field(default=300.0, gt=0)
    shared_pacing: bool = True
    redis_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "PIXECOM_REDIS_URL")
    )
    redis_key_prefix: str = Field(
        default="pixecom:",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        validation_alias=AliasChoices("PIXECOM_REDIS_KEY_PREFIX"),
    )

    @property
    def pacing_redis_url(self) -> str | None:
        """The Redis the pacing state is shared through, or ``None`` for process memory."""
        if not self.shared_pacing or self.redis_url is None:
            return None
        return self.redis_url.get_secret_value() or None

    @property
    def pacing_key_prefix(self) -> str:
        """What every pacing key in Redis starts with."""
        return f"{self.redis_key_prefix}{PACING_KEY_STEM}"

    @field_validator("graph_base")
    @classmethod
    def _check_graph_base(cls, value: str) -> str:
        return validate_http_base_url(value, example=GRAPH_BASE)

    @field_validator("dialog_base")
    @classmethod
    def _check_dialog_base(cls, value: str) -> str:
        return validate_http_base_url(value, example=DIALOG_BASE)

    @field_validator("pixel_script_url")
    @classmethod
    def _check_pixel_script_url(cls, value: str) -> str:
        # the same rules as a base URL: http(s), a host, no query or fragment
        return validate_http_base_url(value, example=PIXEL_SCRIPT_URL)


class MetaSandboxSettings(BaseSettings):
    """How the Meta sandbox starts when built without arguments (dev mode).

    Everything can also be changed while it runs, through ``POST /_sandbox/config``.

    :param latency_seconds: added before every Graph answer (not the control endpoints).
    :param call_budget: calls one ad account may make per ``budget_window_seconds``; past it
        the sandbox answers with Meta's throttling error (code 80000, subcode 2446079).
    :param budget_window_seconds: length of the window the budget counts in.
    :param campaigns_per_account: campaigns every account has (each with ad sets and ads).
    :param max_rows_per_query: a synchronous insights query that would produce more rows
        (entities × days) is refused as "too much data" (code 100, subcode 1487534).
    :param max_page_size: the largest ``limit`` honoured.
    :param report_polls_to_complete: status polls a report run needs before it completes.
    :param today_grows: an account's "today" shows only the share of the day's delivery
        that its local time of day has reached, so each sync sees more spend (``pixecom
        dev``); off, today is reported whole, as every other day (deterministic tests).
    :param refuse_unknown_tokens: Facebook Login refuses tokens it never issued (code
        190/467); off, the Graph routes serve the fixed test tokens.
    """

    model_config = SettingsConfigDict(env_prefix=SANDBOX_ENV_PREFIX, env_file=None, extra="ignore")

    latency_seconds: float = Field(default=0.0, ge=0)
    call_budget: int = Field(default=10_000, gt=0)
    budget_window_seconds: float = Field(default=3600.0, gt=0)
    campaigns_per_account: int = Field(default=3, gt=0, le=99)
    max_rows_per_query: int = Field(default=50_000, gt=0)
    max_page_size: int = Field(default=5000, gt=0)
    report_polls_to_complete: int = Field(default=3, ge=1, le=50)
    today_grows: bool = False
    refuse_unknown_tokens: bool = False
