"""Prometheus metrics: what a PixEcom process exposes at ``/metrics``.

Each process has its own :class:`prometheus_client.CollectorRegistry` (one per app or
worker, never the global default), so tests can build many apps and every API or worker
process is scraped on its own (see docs/operations.md, "Metrics").

No label ever carries seller data: routes are labelled by their template
(``/orders/{order_id}``, never the id), tasks by name, queues and tiers by their fixed
names, breakers by provider identifier. Values that are about the whole deployment (queue
depth, breaker states, sync lag) are read when scraped, so they are never stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from pixecom_core.resilience import ProviderBreakers

_log = logging.getLogger(__name__)

#: Request and task durations, in seconds: from a cache hit to a job near its timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 600.0)

BREAKER_STATES = ("closed", "half-opened", "opened")


class PoolCollector(Collector):
    """SQLAlchemy pool usage of one engine, read at scrape time (audit B3: the pool is
    bounded, so running out of connections must be visible before requests time out)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Checked-out connections, pool size and overflow in use."""
        pool = self._engine.sync_engine.pool
        checked_out = GaugeMetricFamily(
            "pixecom_db_pool_checked_out_connections",
            "Connections lent to requests or tasks right now.",
        )
        size = GaugeMetricFamily(
            "pixecom_db_pool_size_connections", "Connections the pool keeps (db_pool_size)."
        )
        overflow = GaugeMetricFamily(
            "pixecom_db_pool_overflow_connections",
            "Connections open beyond the pool size (at most db_pool_max_overflow); "
            "negative while the pool is not yet full.",
        )
        if isinstance(pool, QueuePool):
            checked_out.add_metric([], pool.checkedout())
            size.add_metric([], pool.size())
            overflow.add_metric([], pool.overflow())
        yield from (checked_out, size, overflow)


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
        )
        self.queue_pending = Gauge(
            "pixecom_queue_pending_tasks",
            "Tasks delivered to a worker and not yet acknowledged (XPENDING).",
            ["queue"],
            registry=registry,
        )
        self.queue_undelivered = Gauge(
            "pixecom_queue_undelivered_tasks",
            "Tasks waiting for a worker (the consumer group's lag).",
            ["queue"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "pixecom_breaker_state",
            "1 for the state each provider's circuit breaker is in, 0 for the others.",
            ["kind", "provider", "state"],
            registry=registry,
        )
        self.scrape_errors = Gauge(
            "pixecom_metrics_source_up",
            "1 when the source could be read at the last scrape, 0 when it failed.",
            ["source"],
            registry=registry,
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
            "Requests being served right now by this process.",
            registry=registry,
        )

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
    "PoolCollector",
    "QueueDepth",
    "TaskMetrics",
    "breaker_states",
    "label_values",
    "queue_depths",
]
