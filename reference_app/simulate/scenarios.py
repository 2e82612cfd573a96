"""The audit's scale scenarios A, B and C as data (docs/requirements.md, docs/scaling.md).

Each :class:`Scenario` holds what the audit assumed (sellers, campaigns, orders a day, API
traffic, the Meta latency it computed the sync cycle with) and what it predicted for the
previous version, metric by metric, so the verdict table can put our measurement next to
the audit's figure.

Time is compressed honestly: "orders a day" becomes order history in the database
(``history_days`` days at the daily volume) plus live checkouts, paid through the Stripe
sandbox, at the scenario's *peak* rate (``PEAK_FACTOR`` × the daily average) for the
measurement window. The API rate is the audit's own: "normal 100" req/s for 100 sellers
(scenario C: "~500 req/sec (normal 100 × 5)"), i.e. one request per second per seller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

#: Peak-hour orders relative to the day's average (an evening peak about 3× the mean).
PEAK_FACTOR = 3.0
#: The sync window the audit measures every cycle against (SCALE-5: "every 5 minutes").
SYNC_WINDOW_SECONDS = 300.0
SECONDS_PER_DAY = 86_400


class WorkerLayout(StrEnum):
    """How the deployment's workers are laid out in processes."""

    #: One ``pixecom worker`` process per queue (scale by adding processes).
    PER_QUEUE = "per-queue"
    #: One process consuming every queue, each with its own concurrency (issue 18 item 6:
    #: the small-VPS layout, ``pixecom-worker-all.service``).
    ONE_PROCESS = "one-process"


class Metric(StrEnum):
    """Rows of the verdict table."""

    CYCLE = "sync cycle"
    API = "API latency / errors"
    DB_CONNECTIONS = "DB connections in use"
    QUEUE_DEPTH = "queue depth"
    REDIS_MEMORY = "Redis memory"
    RSS = "process RSS"
    ROWS = "rows per table"
    WEBHOOKS = "payment webhooks"
    TRACKER = "slow tracker"


@dataclass(frozen=True)
class Scenario:
    """One of the audit's scenarios.

    :param name: ``A``, ``B`` or ``C``.
    :param sellers: sellers, each with one ad account and one published sellpage.
    :param campaigns_per_seller: campaigns on each ad account (the ad network's sandbox serves them
        with one or two ad sets of one or two ads each).
    :param orders_per_day: the daily order volume.
    :param api_rate: API requests per second at peak (storefront reads and seller
        dashboard reads), besides checkouts.
    :param ad_network_latency_seconds: added by the ad network's sandbox to every answer (the
        audit's "realistic" 1.5 s).
    :param webhook_burst: payments paid with their webhooks held back, then delivered at
        once (each twice, shuffled), during the window; 0 for none.
    :param slow_tracker: make the tracker's sandbox slower than the tracker's timeout.
    :param parcels_per_seller: parcels (tracking records) per seller to refresh.
    :param history_days: days of order history generated before the run.
    :param worker_layout: one worker process per queue, or one for all queues.
    :param audit: the audit's figure for each metric, for the previous version.
    :param audit_verdict: the audit's overall verdict.
    """

    name: str
    title: str
    sellers: int
    campaigns_per_seller: int
    orders_per_day: int
    api_rate: float
    ad_network_latency_seconds: float = 1.5
    webhook_burst: int = 0
    slow_tracker: bool = False
    parcels_per_seller: int = 0
    history_days: int = 3
    worker_layout: WorkerLayout = WorkerLayout.PER_QUEUE
    audit: dict[Metric, str] = field(default_factory=dict)
    audit_verdict: str = ""

    @property
    def campaigns(self) -> int:
        """Campaigns across all sellers."""
        return self.sellers * self.campaigns_per_seller

    @property
    def checkout_rate(self) -> float:
        """Checkouts per second at peak."""
        return self.orders_per_day / SECONDS_PER_DAY * PEAK_FACTOR

    def scaled(self, fraction: float) -> Scenario:
        """The same scenario with volumes multiplied by ``fraction`` (for tests and quick
        looks); at least one seller, one order a day and one request a second remain."""
        if not 0 < fraction <= 1:
            raise ValueError("scale must be in (0, 1]")
        if fraction == 1:
            return self
        return replace(
            self,
            sellers=max(1, math.ceil(self.sellers * fraction)),
            orders_per_day=max(1, math.ceil(self.orders_per_day * fraction)),
            api_rate=max(1.0, self.api_rate * fraction),
            webhook_burst=math.ceil(self.webhook_burst * fraction) if self.webhook_burst else 0,
        )


_RSS_AUDIT = "API ~300 MB + worker ~200 MB (PostgreSQL ~800 MB, Redis ~150 MB)"
_POOL_AUDIT = "10 (Prisma default, shared by API and worker)"

SCENARIOS: dict[str, Scenario] = {
    "A": Scenario(
        name="A",
        title="100 sellers / 500 campaigns / 10K orders a day",
        sellers=100,
        campaigns_per_seller=5,
        orders_per_day=10_000,
        api_rate=100.0,
        # The small VPS the audit describes: one worker process for every queue.
        worker_layout=WorkerLayout.ONE_PROCESS,
        audit={
            Metric.CYCLE: "150 s (500 / 5 × 1.5 s): tight but survivable",
            Metric.API: "pool exhaustion from 20-30 concurrent requests; occasional errors",
            Metric.DB_CONNECTIONS: _POOL_AUDIT + ": exhaustion starts here",
            Metric.QUEUE_DEPTH: "no figure (BullMQ, 5 concurrency)",
            Metric.REDIS_MEMORY: "~150 MB",
            Metric.RSS: _RSS_AUDIT,
            Metric.ROWS: "ad_stats_raw ~150K/day (4.5M in 30 d); orders ~300K/month",
        },
        audit_verdict="SURVIVABLE but stressed",
    ),
    "B": Scenario(
        name="B",
        title="1,000 sellers / 10,000 campaigns / 100K orders a day",
        sellers=1_000,
        campaigns_per_seller=10,
        orders_per_day=100_000,
        # The audit gives no API rate for B; one request per second per seller, as in A.
        api_rate=1_000.0,
        audit={
            Metric.CYCLE: "3,000 s (10K × 1.5 s / 5): 5-minute window completely blown",
            Metric.API: "immediate pool exhaustion: API returns 503 errors",
            Metric.DB_CONNECTIONS: _POOL_AUDIT + ": immediate exhaustion",
            Metric.QUEUE_DEPTH: "jobs pile up, queue grows unboundedly",
            Metric.REDIS_MEMORY: "Redis OOM",
            Metric.RSS: _RSS_AUDIT + "; 4 GB VPS insufficient, OOM killer",
            Metric.ROWS: "ad_stats_raw ~3M/day (90M in 30 d): table explodes; orders ~3M/month",
        },
        audit_verdict="COMPLETE FAILURE",
    ),
    "C": Scenario(
        name="C",
        title="Black Friday: 5× scenario A's traffic, webhook burst, slow tracker",
        sellers=100,
        campaigns_per_seller=5,
        orders_per_day=50_000,
        api_rate=500.0,
        webhook_burst=1_000,
        slow_tracker=True,
        parcels_per_seller=5,
        audit={
            Metric.CYCLE: "stats lag 30-60 min (throttling); failed calls lost (no DLQ)",
            Metric.API: "~500 req/s: no pool can handle it; API timeout errors",
            Metric.DB_CONNECTIONS: _POOL_AUDIT,
            Metric.QUEUE_DEPTH: "no webhook queue",
            Metric.REDIS_MEMORY: "500 MB: eviction starts (the audit's thresholds)",
            Metric.RSS: _RSS_AUDIT,
            Metric.ROWS: "orders ~50K/day",
            Metric.WEBHOOKS: "no queue, no idempotency: duplicate payment events possible",
            Metric.TRACKER: "no circuit breaker: worker hangs, blocks other jobs",
        },
        audit_verdict="PARTIAL OUTAGE",
    ),
}


def scenario(name: str, scale: float = 1.0) -> Scenario:
    """The scenario called ``name`` (case-insensitive), scaled by ``scale``."""
    try:
        chosen = SCENARIOS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from None
    return chosen.scaled(scale)
