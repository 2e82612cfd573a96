"""PixEcom settings: one pydantic-settings class, validated at start.

Environment variables use the ``PIXECOM_`` prefix, except the two connection URLs that
every tool in this ecosystem already understands: ``DATABASE_URL`` and ``REDIS_URL``.
When either is unset, dev mode and the tests start embedded servers instead
(see :mod:`pixecom_core.devservers`).

Every secret can also be read from a file, ``<VARIABLE>_FILE`` or a systemd credential,
so production keeps secrets out of the environment (:mod:`pixecom_core.secret_files`).
"""

from __future__ import annotations

import enum
import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pixecom_core.secret_files import SettingsWithSecretFiles

if TYPE_CHECKING:
    from pixecom_core.plugins import ProviderRegistry

#: Values that appear in examples and templates; refusing them outside dev mode means a
#: copied `.env.example` never reaches production unchanged (SEC-4).
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "dev", "test", "example"}
)
MIN_SECRET_LENGTH = 32
MIN_SECRET_ENTROPY_BITS = 128


class Mode(enum.StrEnum):
    """How the deployment runs; only ``dev`` accepts weak secrets and seeds demo data."""

    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(enum.StrEnum):
    """How log lines are written: JSON for machines, console for people."""

    JSON = "json"
    CONSOLE = "console"


class ProviderChoiceError(RuntimeError):
    """Several plugins of a kind used one at a time are installed and none is configured."""


class WeakSecretError(RuntimeError):
    """A secret is missing, a placeholder or too weak for a non-dev deployment.

    Raised as itself (not wrapped in a pydantic ``ValidationError``) so a process can
    print the one-line reason and exit.
    """


def secret_strength_problem(value: str) -> str | None:
    """Say why ``value`` is not fit to be a production secret, or ``None`` if it is.

    The check is deliberately simple and explainable: a minimum length, no known
    placeholder, and an estimated Shannon entropy over the characters actually used.
    """
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is empty or a known placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is {len(value)} characters long; at least {MIN_SECRET_LENGTH} are required"
    counts = Counter(value)
    entropy_per_char = -sum((n / len(value)) * math.log2(n / len(value)) for n in counts.values())
    if entropy_per_char * len(value) < MIN_SECRET_ENTROPY_BITS:
        return "has too little entropy (repeated or predictable characters)"
    return None


def one_or_many_secrets(value: Any) -> Any:
    """A key list from a variable or a file: a JSON array, or one bare key.

    A bare key keeps a deployment configured before its setting became a list working
    (``PIXECOM_REFRESH_TOKEN_PEPPER=…``), and lets a file hold just the key.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [text]


SecretList = Annotated[
    list[SecretStr],
    NoDecode,
    BeforeValidator(one_or_many_secrets),
    Field(default_factory=list),
]

#: Connection URLs may carry a password: they may be read from ``<VARIABLE>_FILE`` too.
SECRET_URL_FIELDS = frozenset(
    {"database_url", "app_database_url", "read_database_url", "redis_url"}
)


class Settings(SettingsWithSecretFiles):
    """Every knob of a PixEcom deployment.

    Secrets that rotate are lists: the first entry signs, encrypts or hashes, every entry
    is accepted for verification or decryption, so keys rotate without a flag day.
    """

    model_config = SettingsConfigDict(
        env_prefix="PIXECOM_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
    )

    mode: Mode = Mode.PRODUCTION
    data_dir: Path = Path(".pixecom")

    # -- PostgreSQL ---------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "PIXECOM_DATABASE_URL"),
        description="Owner connection: runs migrations and partition maintenance.",
    )
    app_database_url: str | None = Field(
        default=None,
        description=(
            "Connection for the API and worker, as a role that owns nothing (so row-level "
            "security applies). Derived from DATABASE_URL with app_role when unset."
        ),
    )
    read_database_url: str | None = Field(
        default=None,
        description=(
            "Connection to a streaming read replica, as the application role, for "
            "read-only dashboard and report routes (SCALE-6). Unset, those "
            "routes read the primary. Replica lag is tolerated there; writes and "
            "read-your-writes paths always use the primary."
        ),
    )
    app_role: str = "pixecom_app"
    app_role_password: SecretStr | None = None
    # SCALE-3: an explicit, bounded pool per process
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # SCALE-7: runaway queries and lock waits are cut short
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    lock_timeout_ms: int = Field(default=5_000, ge=0)
    idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    #: PgBouncer in transaction mode cannot keep server-side prepared statements.
    db_behind_pgbouncer: bool = False

    # -- Redis / Valkey -----------------------------------------------------------
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "PIXECOM_REDIS_URL")
    )
    #: Every Redis key PixEcom writes starts with this, so deployments (and test runs)
    #: can share one server without seeing each other's counters and caches.
    redis_key_prefix: str = Field(default="pixecom:", pattern=r"^[A-Za-z0-9_.:-]+$")

    # -- Pagination (SCALE-4) --------------------------------------------------------
    max_page_size: int = Field(default=200, ge=1, le=1000)
    default_page_size: int = Field(default=50, ge=1)

    # -- Partitions -----------------------------------------------------------------
    partition_months_ahead: int = Field(default=3, ge=1, le=24)
    raw_stats_retention_days: int = Field(default=90, ge=1)
    #: Months of ``webhook_inbox`` whose whole month is older than this are dropped by
    #: ``pixecom db maintain`` (issue 18 item 5). Long enough for chargebacks and late
    #: refunds to find their delivery; the ledger keeps its own facts for ever.
    webhook_inbox_retention_days: int = Field(default=180, ge=30)
    #: Resolved dead letters older than this are deleted (open ones are kept: an operator
    #: still has to act on them).
    dead_letter_retention_days: int = Field(default=30, ge=1)
    #: Acknowledged queue messages older than this are trimmed from the streams.
    queue_retention_days: int = Field(default=7, ge=1)

    # -- Secrets ----------------------------------------------------------------------
    jwt_signing_keys: SecretList
    refresh_token_peppers: SecretList = Field(
        validation_alias=AliasChoices(
            "PIXECOM_REFRESH_TOKEN_PEPPERS",
            # Before peppers rotated: one bare value, still read as a one-entry list.
            "PIXECOM_REFRESH_TOKEN_PEPPER",
        ),
        description=(
            "Peppers of stored refresh-token hashes: the first hashes new tokens, every one "
            "is tried when a token comes back. Rotate by putting a new one first; drop the "
            "old one after PIXECOM_REFRESH_TOKEN_TTL_DAYS (its sessions are over then)."
        ),
    )
    token_encryption_keys: SecretList
    ingest_api_key_current: SecretStr | None = None
    ingest_api_key_next: SecretStr | None = None
    #: Guards seller sign-up outside dev mode (header ``X-Admin-Key``); unset, sign-up
    #: is closed outside dev mode.
    admin_api_key: SecretStr | None = None

    # -- Auth (SEC-1, SEC-2) --------------------------------------------------------------
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    #: Password checks for one account from one client address within the failure
    #: window; past them that (account, address) pair is refused for the lockout period
    #: (issue 12: the slot is taken before the password is checked, so this holds under
    #: any concurrency). A correct password clears the pair's count.
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    #: Failed logins for one account from every address (within the failure window)
    #: after which attempts from addresses that never logged in to it wait, doubling
    #: per further failure from ``login_slowdown_base_seconds`` up to the maximum.
    login_slowdown_after_failures: int = Field(default=5, ge=1)
    login_slowdown_base_seconds: float = Field(default=0.5, ge=0)
    login_slowdown_max_seconds: float = Field(default=5.0, ge=0)
    #: Failed logins for one account (every address) after which a login from an
    #: address that never logged in to it must carry a solved proof-of-work challenge.
    login_challenge_after_failures: int = Field(default=10, ge=1)
    #: Proof-of-work difficulty: the largest secret number of a challenge (the client
    #: tries up to this many SHA-256 hashes, half on average).
    login_challenge_max_number: int = Field(default=100_000, ge=1)
    login_challenge_ttl_seconds: int = Field(default=300, ge=1)
    #: How long an address that logged in successfully stays known for that account.
    login_known_address_days: int = Field(default=30, ge=1)
    #: Login attempts per client IP (limits' rate-limit string syntax).
    login_ip_rate: str = "20/minute"
    #: Requests per authenticated seller across all API processes (SEC-1 quotas).
    seller_request_rate: str = "600/minute"
    #: Requests per client IP on public (storefront) routes.
    public_ip_rate: str = "300/minute"
    #: Create the demo seller and its known-password user (dev mode only; SEC-4).
    seed_demo_data: bool = True

    # -- Payments (MONEY-1) -------------------------------------------------------------
    #: Attempts before an undeliverable webhook is parked as FAILED (the dead letter).
    webhook_max_attempts: int = Field(default=20, ge=1)
    #: First retry delay of a deferred webhook; doubles per attempt up to the maximum.
    webhook_retry_base_seconds: float = Field(default=15.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    #: The platform's fee on each payment into a seller's connected account, in basis
    #: points of the total (150 = 1.5 %), where the gateway can take one (Stripe Connect's
    #: ``application_fee_amount``); 0 takes none (issue 15 item 1).
    platform_fee_basis_points: int = Field(default=0, ge=0, le=10_000)

    # -- Worker (taskiq) ------------------------------------------------------------------
    #: A message unacknowledged this long (its worker died) is redelivered; keep it above
    #: the longest task timeout, or a slow task runs twice (taskiq-redis redelivers it).
    worker_redelivery_after_seconds: float = Field(default=600.0, gt=0)
    #: Longest a webhook-processing task may run before it is abandoned (and retried).
    webhook_task_timeout_seconds: float = Field(default=120.0, gt=0)
    #: How often a worker looks for inbox deliveries whose task was lost.
    inbox_sweep_seconds: float = Field(default=30.0, gt=0)
    #: Shortest time between the starts of one seller's revenue refreshes after payment
    #: facts (issue 18 item 2): a fact arriving sooner is picked up by a refresh the
    #: payments worker queues when that time is over, so a burst of payments recomputes each of
    #: its sellers' days a few times instead of once per fact. 0 refreshes at once.
    revenue_refresh_spacing_seconds: float = Field(default=15.0, ge=0, le=120)
    #: Messages kept per queue stream (XACK does not delete; the stream is trimmed).
    queue_max_length: int = Field(default=100_000, ge=1_000)

    # -- Stats sync (SCALE-5) -----------------------------------------------------------
    #: Days re-read every cycle, and by the daily restatement sweep (Meta: up to 28).
    sync_window_days: int = Field(default=3, ge=1, le=90)
    sweep_window_days: int = Field(default=28, ge=1, le=90)
    #: Seconds between syncs per tier (SCALE-5: high 1 min, medium 5 min, low 30 min).
    sync_interval_high_seconds: int = Field(default=60, ge=10)
    sync_interval_medium_seconds: int = Field(default=300, ge=10)
    sync_interval_low_seconds: int = Field(default=1800, ge=10)
    #: Trailing daily spend (reporting currency, major units) that makes a seller medium
    #: or high tier (SCALE-5: > $100/day, > $1K/day).
    tier_medium_daily_spend: int = Field(default=100, ge=0)
    tier_high_daily_spend: int = Field(default=1000, ge=0)
    #: A sync job is stopped after this long, all its retries included (SCALE-5: 4 min).
    stats_task_timeout_seconds: float = Field(default=240.0, gt=0)
    #: Attempts of a sync job that raised before it is parked as a dead letter.
    stats_task_attempts: int = Field(default=3, ge=1)
    #: Ad accounts of one seller synced at once by its sync job (issue 18 item 3): 50
    #: accounts at 6 take 9 rounds of one account's time, not 50.
    sync_accounts_concurrency: int = Field(default=6, ge=1, le=64)
    #: One ad account's sync is stopped after this long, recorded on the account as timed
    #: out and retried next cycle; the seller's other accounts go on.
    sync_account_timeout_seconds: float = Field(default=90.0, gt=0)
    #: Days of ``sync_runs`` history kept per seller (pruned as new runs finish).
    sync_run_retention_days: int = Field(default=14, ge=1)
    #: How often the scheduler looks for due sellers.
    scheduler_tick_seconds: float = Field(default=5.0, gt=0)

    # -- History backfill (issue 14 item 4) ---------------------------------------------
    #: Days of history fetched when an ad account is connected (ending yesterday in the
    #: account's time zone). At most 1095 (three years): inside the 37 months Meta keeps
    #: insights, the longest-lived network the plugins reach.
    backfill_days: int = Field(default=28, ge=1, le=1095)
    #: Days fetched by one backfill job; each chunk is a separate, resumable job.
    backfill_chunk_days: int = Field(default=7, ge=1, le=90)
    #: A backfill that made no progress for this long (its job was lost, or it waits
    #: after a throttle or failure) is queued again by the scheduler.
    backfill_stall_seconds: int = Field(default=900, ge=1)
    #: How long a backfill waits after a chunk failed before it is tried again.
    backfill_retry_seconds: int = Field(default=300, ge=1)
    #: How often the scheduler looks for backfills to resume.
    backfill_sweep_seconds: int = Field(default=60, ge=5)

    # -- Conversion events (issue 17) ----------------------------------------
    #: Attempts at sending one order's conversion event before it is dead-lettered.
    conversion_max_attempts: int = Field(default=8, ge=1, le=50)
    #: The first retry's wait; each further one doubles it (capped at an hour).
    conversion_retry_base_seconds: float = Field(default=30.0, gt=0)
    #: How long a claimed event is left to its sender before another may take it.
    conversion_lease_seconds: int = Field(default=120, ge=10)

    # -- Currency rates (issue 16) -------------------------------------------
    #: The currency-rate source rates are loaded from, by identifier. Empty: the only
    #: installed one (none installed: no load; foreign-currency days stay pending).
    fx_source: str | None = None
    #: How often the scheduler loads the latest rates (claimed in Redis: once for all
    #: schedulers). Cheap: the source's recent file, and nothing changes when it did not.
    fx_load_interval_seconds: int = Field(default=3600, ge=60)
    #: How many days back each scheduled load covers, so a missed load catches up.
    fx_load_days_back: int = Field(default=7, ge=1, le=90)

    # -- Tracking and resilience (SCALE-9) ----------------------------------
    #: The tracker plugin parcels are registered with, by identifier. Empty: the only
    #: installed tracker (issue 13 item 6: core defaults to no plugin); set it when several
    #: are installed (:meth:`with_chosen_providers`).
    tracking_provider: str = ""
    #: How often an undelivered parcel is polled (pushes arrive in between).
    tracking_refresh_seconds: int = Field(default=21_600, ge=60)
    #: Consecutive provider failures that open a provider's circuit breaker.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    #: Seconds an open breaker waits before letting one trial call through (half-open).
    breaker_reset_seconds: float = Field(default=30.0, gt=0)

    # -- Assets (SEC-6, R2 signed URLs) ---------------------------------------------
    #: The storage plugin uploads go to, by identifier. Empty: the only installed one.
    storage_provider: str = ""
    #: Largest file a seller may upload (also bounds the post-upload hash check).
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    #: How long an upload URL stays valid (the audit's 5 minutes).
    upload_url_seconds: int = Field(default=300, ge=30, le=3600)
    #: Ingest API calls per key and client IP (other services registering assets).
    ingest_rate: str = "120/minute"

    # -- HTTP -------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: Largest request body accepted unless a route says otherwise (SEC-3).
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    #: How long a CDN or browser may hold a public sellpage (SCALE-6).
    public_cache_seconds: int = Field(default=60, ge=0)
    #: How long a seller's cached dashboard read (stats, orders) may live in Redis. Writes
    #: make it stale at once (pixecom_core.dashboard_cache); this bounds memory, and what a
    #: read replica's lag or a lost invalidation could show. 0 turns the cache off.
    dashboard_cache_seconds: int = Field(default=300, ge=0, le=86_400)
    #: Client IPs are taken from X-Forwarded-For only when the peer is one of these.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: Requests one API process serves at once before it sheds the rest with 503 and
    #: ``Retry-After`` (SCALE-8: past its capacity the previous version timed
    #: out for everyone). About three times the pool (size + overflow): more requests than
    #: that only wait for a connection until the pool times out. 0 turns shedding off.
    #: Webhooks and probes are never shed.
    shed_max_in_flight: int = Field(default=64, ge=0)

    # -- Observability (issue 7) --------------------------------------------------------
    #: ``json`` (one JSON object per line, for log shippers) or ``console`` (coloured,
    #: for people); unset: ``console`` in dev mode, ``json`` otherwise.
    log_format: LogFormat | None = None
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    #: Clients allowed to read the API's ``/metrics`` (the client address as
    #: ``trusted_proxies`` resolves it). Metrics carry no seller data, but they do describe
    #: the deployment: keep it to the scraper's network.
    metrics_allowed_networks: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    #: When set, ``/metrics`` also needs ``Authorization: Bearer <token>``.
    metrics_bearer_token: SecretStr | None = None
    #: The port a worker serves ``/metrics`` and ``/readyz`` on; 0 serves nothing.
    worker_metrics_port: int = Field(default=0, ge=0, le=65_535)
    #: A statement running longer than this is reported by the slow-query watch
    #: (OPS-1: "use pg_stat_activity monitoring for long-running queries").
    slow_query_threshold_seconds: float = Field(default=5.0, gt=0)
    #: How often the scheduler queues the slow-query watch.
    slow_query_watch_seconds: int = Field(default=60, ge=5)

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """The connection URLs, besides every ``SecretStr`` setting."""
        return SECRET_URL_FIELDS

    def with_chosen_providers(self, registry: ProviderRegistry) -> Self:
        """These settings with the tracker and the storage chosen: the configured
        identifier, else the only one installed. Left empty when none is installed (its
        first use then says which plugin to install).

        Call it once where the registry is built, before the services read the settings.

        :raises ProviderChoiceError: several are installed and none is configured.
        """
        from pixecom_core.plugins import ProviderKind

        chosen: dict[str, str] = {}
        for field, kind in (
            ("tracking_provider", ProviderKind.TRACKER),
            ("storage_provider", ProviderKind.STORAGE),
            ("fx_source", ProviderKind.CURRENCY_RATES),
        ):
            if getattr(self, field):
                continue
            installed = registry.names(kind)
            if len(installed) > 1:
                raise ProviderChoiceError(
                    f"several {kind.label}s are installed ({', '.join(installed)}): set "
                    f"PIXECOM_{field.upper()} to the identifier of the one to use"
                )
            if installed:
                chosen[field] = installed[0]
        return self.model_copy(update=chosen) if chosen else self

    @model_validator(mode="after")
    def _check_limits(self) -> Self:
        if self.default_page_size > self.max_page_size:
            raise ValueError("default_page_size must not exceed max_page_size")
        if max(self.webhook_task_timeout_seconds, self.stats_task_timeout_seconds) >= (
            self.worker_redelivery_after_seconds
        ):
            raise ValueError(
                "worker_redelivery_after_seconds must exceed every task timeout "
                "(webhook_task_timeout_seconds, stats_task_timeout_seconds), or a slow task is "
                "redelivered while it still runs"
            )
        return self

    def model_post_init(self, _context: Any, /) -> None:
        """Refuse missing or weak secrets outside dev mode (SEC-4)."""
        if self.mode is Mode.DEV:
            return
        problems: list[str] = []
        required: dict[str, list[SecretStr]] = {
            "PIXECOM_JWT_SIGNING_KEYS": self.jwt_signing_keys,
            "PIXECOM_TOKEN_ENCRYPTION_KEYS": self.token_encryption_keys,
            "PIXECOM_REFRESH_TOKEN_PEPPERS": self.refresh_token_peppers,
        }
        for name, values in required.items():
            if not values:
                problems.append(f"{name} is not set")
            for index, secret in enumerate(values):
                problem = secret_strength_problem(secret.get_secret_value())
                if problem:
                    problems.append(f"{name}[{index}] {problem}")
        for name, optional in {
            "PIXECOM_INGEST_API_KEY_CURRENT": self.ingest_api_key_current,
            "PIXECOM_INGEST_API_KEY_NEXT": self.ingest_api_key_next,
            "PIXECOM_ADMIN_API_KEY": self.admin_api_key,
            "PIXECOM_METRICS_BEARER_TOKEN": self.metrics_bearer_token,
        }.items():
            if optional is not None:
                problem = secret_strength_problem(optional.get_secret_value())
                if problem:
                    problems.append(f"{name} {problem}")
        # Database passwords may be chosen by a managed service, so only the template's
        # placeholders are refused here (a copied .env.example must not reach production).
        if self.app_role_password is not None and (
            self.app_role_password.get_secret_value().lower() in PLACEHOLDER_SECRETS
        ):
            problems.append("PIXECOM_APP_ROLE_PASSWORD is a placeholder")
        for name, url in {
            "DATABASE_URL": self.database_url,
            "PIXECOM_APP_DATABASE_URL": self.app_database_url,
            "PIXECOM_READ_DATABASE_URL": self.read_database_url,
        }.items():
            password = urlsplit(url).password if url else None
            if password is not None and unquote(password).lower() in PLACEHOLDER_SECRETS:
                problems.append(f"{name} has a placeholder password")
        if problems:
            raise WeakSecretError(
                f"refusing to start in {self.mode.value} mode: "
                + "; ".join(problems)
                + ". Generate secrets with `pixecom keys generate`, or set PIXECOM_MODE=dev "
                "for a local deployment."
            )
