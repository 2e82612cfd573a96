"""Prometheus metrics: what a PixEcom process exposes at ``/metrics``.

Each app or worker has its own :class:`prometheus_client.CollectorRegistry` (never the
global default), so tests can build many apps and every worker process is scraped on its
own port (see docs/operations.md, "Metrics").

API processes that share one port (``pixecom serve --workers N``) are one scrape target:
a scrape reaches whichever process accepts it. ``pixecom serve`` then runs them in
prometheus-client's multiprocess mode (:func:`multiprocess_directory`): every process
writes its samples to files in one directory and the scraped process exposes all of them
(:func:`exposition_registry`). Counters and histograms add up; each gauge says how
(``multiprocess_mode``): ``livesum`` for what each live process holds (requests in
flight, pool connections), ``mostrecent`` for what is read from Redis at scrape time.

No label ever carries seller data: routes are labelled by their template
(``/orders/{order_id}``, never the id), tasks by name, queues and tiers by their fixed
names, breakers by provider identifier. Values that are about the whole deployment (queue
depth, breaker states, sync lag) are read when scraped, so they are never stale.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from pixecom_core.events import count_hook_failures
from pixecom_core.resilience import ProviderBreakers

_log = logging.getLogger(__name__)

#: Request and task durations, in seconds: from a cache hit to a job near its timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 600.0)

BREAKER_STATES = ("closed", "half-opened", "opened")


#: The environment variable prometheus-client reads, when it is imported, to write samples
#: to files shared by the processes of one scrape target.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory() -> Path | None:
    """The directory this process shares its samples through, or ``None`` when it is
    scraped on its own. Set by ``pixecom serve --workers N`` (N > 1) for its processes,
    before prometheus-client is imported in them."""
    value = os.environ.get(MULTIPROCESS_ENV)
    return Path(value) if value else None


@contextmanager
def multiprocess_target(processes: int) -> Iterator[Path | None]:
    """Set up the shared sample directory for ``processes`` processes about to be started
    on one port (they inherit the environment), and remove it when they have stopped.

    A directory the operator names in ``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied of
    the last run's samples, as prometheus-client requires); otherwise, for two or more
    processes, a fresh private one. One process alone needs none.
    """
    given = multiprocess_directory()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):
            stale.unlink()
        yield given
        return
    if processes < 2:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="pixecom-metrics-"))
    os.environ[MULTIPROCESS_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What a scrape of this process exposes: ``own``, or in multiprocess mode a registry
    reading the samples every process of the target wrote (this one's included)."""
    if multiprocess_directory() is None:
        return own
    shared = CollectorRegistry()
    # prometheus-client leaves these two untyped.
    multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return shared


def retire_process() -> None:
    """Forget this process's ``livesum`` gauges (it is shutting down), so the target's
    requests in flight and pool connections stop counting it. Counters and histograms
    stay: they are totals since the target started."""
    if multiprocess_directory() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class PoolGauges:
    """SQLAlchemy pool usage of one engine (SCALE-3: the pool is bounded, so running out
    of connections must be visible before requests time out).

    Refreshed by the API after each request and at each scrape, so every process of a
    multiprocess target reports its own pool and a scrape adds them up.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checked_out = Gauge(
            "pixecom_db_pool_checked_out_connections",
            "Connections lent to requests or tasks right now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.size = Gauge(
            "pixecom_db_pool_size_connections",
            "Connections the pool keeps (db_pool_size, per process).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.overflow = Gauge(
            "pixecom_db_pool_overflow_connections",
            "Connections open beyond the pool size (at most db_pool_max_overflow per "
            "process); negative while the pool is not yet full.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._pool: QueuePool | None = None

    def watch(self, engine: AsyncEngine | None) -> None:
        """Report the pool of ``engine`` from now on (``None``: stop reporting)."""
        pool = engine.sync_engine.pool if engine is not None else None
        self._pool = pool if isinstance(pool, QueuePool) else None
        self.refresh()

    def refresh(self) -> None:
        """Read the pool now (cheap: three counters of the pool object)."""
        pool = self._pool
        if pool is None:
            for gauge in (self.checked_out, self.size, self.overflow):
                gauge.set(0)
            return
        self.checked_out.set(pool.checkedout())
        self.size.set(pool.size())
        self.overflow.set(pool.overflow())


@dataclass(frozen=True)
class QueueDepth:
    """One taskiq stream: entries kept, entries delivered but not acknowledged, and
    entries not yet delivered to the worker group (``None`` when the server does not say:
    Redis before 7)."""

    queue: str
    length: int
    pending: int
    undelivered: int | None


async def queue_depths(
    client: redis.Redis, streams: Mapping[str, str], group: str
) -> list[QueueDepth]:
    """XLEN, XPENDING and the group's lag (XINFO GROUPS) of each ``queue → stream``.

    A stream that does not exist yet (no task ever queued) has depth 0.
    """
    depths = []
    for queue, stream in streams.items():
        length = int(await client.xlen(stream))
        pending = 0
        undelivered: int | None = 0
        if length:
            try:
                summary = await client.xpending(stream, group)
                pending = int(summary["pending"])
                groups = await client.xinfo_groups(stream)
            except redis.ResponseError:  # NOGROUP: no worker has started on this queue
                groups = []
                undelivered = length
            for info in groups:
                name = info["name"]
                if (name.decode() if isinstance(name, bytes) else name) == group:
                    lag = info.get("lag")
                    undelivered = None if lag is None else int(lag)
        depths.append(QueueDepth(queue, length, pending, undelivered))
    return depths


@dataclass(frozen=True)
class BreakerState:
    """The stored state of one provider's circuit breaker."""

    kind: str
    provider: str
    state: str


async def breaker_states(
    breakers: ProviderBreakers, providers: Sequence[tuple[str, str]]
) -> list[BreakerState]:
    """The state of each ``(kind, identifier)`` breaker, as every process sees it (the
    state lives in Redis, through purgatory's store)."""
    return [
        BreakerState(kind, provider, await breakers.state(kind, provider))
        for kind, provider in providers
    ]


class DeploymentGauges:
    """Queue depth and breaker states, refreshed from Redis when scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_length = Gauge(
            "pixecom_queue_stream_length",
            "Entries kept in the queue's Redis stream (XLEN; acknowledged ones stay until "
            "the stream is trimmed).",
            ["queue"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.queue_pending = Gauge(
            "pixecom_queue_pending_tasks",
            "Tasks delivered to a worker and not yet acknowledged (XPENDING).",
            ["queue"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.queue_undelivered = Gauge(
            "pixecom_queue_undelivered_tasks",
            "Tasks waiting for a worker (the consumer group's lag).",
            ["queue"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.breaker_state = Gauge(
            "pixecom_breaker_state",
            "1 for the state each provider's circuit breaker is in, 0 for the others.",
            ["kind", "provider", "state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.scrape_errors = Gauge(
            "pixecom_metrics_source_up",
            "1 when the source could be read at the last scrape, 0 when it failed.",
            ["source"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    async def refresh(
        self,
        client: redis.Redis,
        streams: Mapping[str, str],
        group: str,
        breakers: ProviderBreakers | None,
        providers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Read queue depths and breaker states; a failed read marks its source down
        rather than failing the scrape (Redis down is exactly when metrics matter)."""
        try:
            for depth in await queue_depths(client, streams, group):
                self.queue_length.labels(depth.queue).set(depth.length)
                self.queue_pending.labels(depth.queue).set(depth.pending)
                if depth.undelivered is not None:
                    self.queue_undelivered.labels(depth.queue).set(depth.undelivered)
            self.scrape_errors.labels("queues").set(1)
        except Exception as exc:  # a scrape reports, never raises
            _log.warning("metrics: reading queue depths failed: %r", exc)
            self.scrape_errors.labels("queues").set(0)
        if breakers is None:
            return
        try:
            for breaker in await breaker_states(breakers, providers):
                for state in BREAKER_STATES:
                    self.breaker_state.labels(breaker.kind, breaker.provider, state).set(
                        1 if breaker.state == state else 0
                    )
            self.scrape_errors.labels("breakers").set(1)
        except Exception as exc:
            _log.warning("metrics: reading breaker states failed: %r", exc)
            self.scrape_errors.labels("breakers").set(0)


class HttpMetrics:
    """Request latency by method, route template and status class, and requests in flight."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "pixecom_http_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ["method", "route", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "pixecom_http_requests_in_flight",
            "Requests being served right now (by all processes of the target).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.processes = Gauge(
            "pixecom_api_processes",
            "API processes serving this scrape target (each live one counts 1).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.event_hook_failures = count_hook_failures(registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.latency.labels(method, route, f"{status // 100}xx").observe(seconds)


class TaskMetrics:
    """Task durations and failures, by queue and task name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "pixecom_task_duration_seconds",
            "How long tasks ran, failed ones included.",
            ["queue", "task"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "pixecom_task_failures",
            "Tasks that raised (each redelivery or retry that raises counts again).",
            ["queue", "task"],
            registry=registry,
        )
        self.last_finished = Gauge(
            "pixecom_task_last_finished_timestamp_seconds",
            "When a task of this name last finished in this process (Unix time).",
            ["queue", "task"],
            registry=registry,
        )
        # Event hooks run in the task that made the change (ledger, tracking, stats).
        self.event_hook_failures = count_hook_failures(registry)

    def observe(self, queue: str, task: str, seconds: float, *, failed: bool) -> None:
        """Count one finished task."""
        self.duration.labels(queue, task).observe(seconds)
        if failed:
            self.failures.labels(queue, task).inc()
        self.last_finished.labels(queue, task).set(time.time())


def label_values(registry: CollectorRegistry) -> Sequence[str]:
    """Every label value the registry would expose (tests check none is seller data)."""
    return [
        value
        for family in registry.collect()
        for sample in family.samples
        for value in sample.labels.values()
    ]


__all__ = [
    "BreakerState",
    "DeploymentGauges",
    "HttpMetrics",
    "MULTIPROCESS_ENV",
    "PoolGauges",
    "QueueDepth",
    "TaskMetrics",
    "breaker_states",
    "exposition_registry",
    "label_values",
    "multiprocess_directory",
    "multiprocess_target",
    "queue_depths",
    "retire_process",
]
