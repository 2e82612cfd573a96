"""A worker's observability: task metrics and log context, ``/metrics`` and ``/readyz`` on
its own port, and the slow-query watch task.

- :class:`TaskObservabilityMiddleware` (a taskiq middleware) binds the task's name, id,
  queue and seller (when the task takes a ``seller_id``) to every log line the task
  writes, and records its duration and whether it failed.
- :func:`serve_worker_metrics` serves ``GET /metrics`` (task metrics, the sync lag per
  tier and the webhook inbox's deliveries per state read from the database at scrape
  time, the slow-query gauges) and ``GET /readyz``
  (PostgreSQL and Redis answer) with aiohttp, which taskiq already depends on.
- ``pixecom.watch_slow_queries`` is queued by the scheduler every
  ``slow_query_watch_seconds`` on the payments queue — the queue kept short, so the
  watch runs when the database is slow rather than waiting behind a stats backlog.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import (
    AsyncBroker,
    Context,
    TaskiqDepends,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
)

from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.observability.inbox import InboxGauges
from pixecom_core.observability.logging import bind_log_context, clear_log_context
from pixecom_core.observability.metrics import TaskMetrics
from pixecom_core.observability.slow_queries import SlowQueryGauges, watch_slow_queries
from pixecom_core.observability.sync_lag import SyncLagGauges
from pixecom_core.settings import Settings

if TYPE_CHECKING:
    from reference_app.worker.broker import Queue

_log = logging.getLogger(__name__)

WATCH_SLOW_QUERIES = "pixecom.watch_slow_queries"


@dataclass
class WorkerMetrics:
    """One worker process's registry and metrics, for every queue it consumes (task
    metrics carry the queue as a label)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tasks: TaskMetrics = field(init=False)
    sync_lag: SyncLagGauges = field(init=False)
    inbox: InboxGauges = field(init=False)
    slow_queries: SlowQueryGauges = field(init=False)
    ready: Gauge = field(init=False)
    source_up: Gauge = field(init=False)
    concurrency: Gauge = field(init=False)
    running: Gauge = field(init=False)

    def __post_init__(self) -> None:
        self.tasks = TaskMetrics(self.registry)
        self.sync_lag = SyncLagGauges(self.registry)
        self.inbox = InboxGauges(self.registry)
        self.slow_queries = SlowQueryGauges(self.registry)
        self.ready = Gauge(
            "pixecom_worker_ready",
            "1 when PostgreSQL and Redis answered at the last scrape, else 0.",
            registry=self.registry,
        )
        self.source_up = Gauge(
            "pixecom_metrics_source_up",
            "1 when the source could be read at the last scrape, 0 when it failed.",
            ["source"],
            registry=self.registry,
        )
        self.concurrency = Gauge(
            "pixecom_worker_queue_concurrency",
            "Tasks of the queue this process runs at once at most (--queue NAME:N).",
            ["queue"],
            registry=self.registry,
        )
        self.running = Gauge(
            "pixecom_worker_queue_running_tasks",
            "Tasks of the queue running in this process now.",
            ["queue"],
            registry=self.registry,
        )


class TaskObservabilityMiddleware(TaskiqMiddleware):
    """Log context and metrics around every task one queue's broker runs in this worker.

    :param queue: the label of the broker's queue (one middleware per broker, all
        recording into the process's one :class:`WorkerMetrics`).
    """

    def __init__(self, metrics: WorkerMetrics, queue: str) -> None:
        super().__init__()
        self.metrics = metrics
        self.queue = queue
        self._started: dict[str, float] = {}

    def _seller_id(self, message: TaskiqMessage) -> str | None:
        task = self.broker.find_task(message.task_name)
        if task is None:
            return None
        try:
            bound = inspect.signature(task.original_func).bind_partial(
                *message.args, **message.kwargs
            )
        except TypeError:
            return None
        seller = bound.arguments.get("seller_id")
        return None if seller is None else str(seller)

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Bind the task's context (the task runs in this same context) and start its clock."""
        clear_log_context()
        context: dict[str, Any] = {
            "task_name": message.task_name,
            "task_id": message.task_id,
            "queue": self.queue,
        }
        seller_id = self._seller_id(message)
        if seller_id is not None:
            context["seller_id"] = seller_id
        bind_log_context(**context)
        self._started[message.task_id] = time.perf_counter()
        self.metrics.running.labels(self.queue).inc()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Record how long the task ran and whether it raised; log one line about it."""
        started = self._started.pop(message.task_id, None)
        seconds = time.perf_counter() - started if started is not None else result.execution_time
        if started is not None:
            self.metrics.running.labels(self.queue).dec()
        self.metrics.tasks.observe(self.queue, message.task_name, seconds, failed=result.is_err)
        _log.log(
            logging.WARNING if result.is_err else logging.INFO,
            "task finished",
            extra={
                "duration_ms": round(seconds * 1000, 2),
                "outcome": "failed" if result.is_err else "done",
                "error": None if result.error is None else type(result.error).__name__,
            },
        )
        clear_log_context()


async def _check_ready(engine: AsyncEngine, client: redis.Redis) -> dict[str, Any]:
    # The API's probe, so both answer the same way (and time out the same way).
    from reference_app.api.health import check_readiness

    return (await check_readiness(engine, client)).model_dump()


@dataclass
class WorkerProbeTargets:
    """What the worker's HTTP endpoint reads: set once the brokers have started.

    :param queues: the queues this process consumes and how many tasks of each it runs
        at once; ``/readyz`` lists them.
    """

    metrics: WorkerMetrics
    engine: AsyncEngine
    redis: redis.Redis
    queues: dict[str, int] = field(default_factory=dict)


async def serve_worker_metrics(targets: WorkerProbeTargets, host: str, port: int) -> web.AppRunner:
    """Serve ``/metrics`` and ``/readyz`` on ``host:port``; the caller cleans the runner up."""
    sessions = create_sessionmaker(targets.engine)

    async def metrics(_request: web.Request) -> web.Response:
        report = await _check_ready(targets.engine, targets.redis)
        targets.metrics.ready.set(1 if report["status"] == "ready" else 0)
        try:
            await targets.metrics.sync_lag.refresh(sessions)
            targets.metrics.source_up.labels("sync_lag").set(1)
        except Exception as exc:  # a scrape reports, never raises
            _log.warning("metrics: reading the sync lag failed: %r", exc)
            targets.metrics.source_up.labels("sync_lag").set(0)
        try:
            await targets.metrics.inbox.refresh(sessions)
            targets.metrics.source_up.labels("webhook_inbox").set(1)
        except Exception as exc:  # a scrape reports, never raises
            _log.warning("metrics: reading the webhook inbox states failed: %r", exc)
            targets.metrics.source_up.labels("webhook_inbox").set(0)
        return web.Response(
            body=generate_latest(targets.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def readyz(_request: web.Request) -> web.Response:
        report = await _check_ready(targets.engine, targets.redis)
        ready = report["status"] == "ready"
        targets.metrics.ready.set(1 if ready else 0)
        report["queues"] = targets.queues
        return web.json_response(report, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    _log.info("worker metrics on http://%s:%s/metrics", host, port)
    return runner


def register_observability_tasks(broker: AsyncBroker, settings: Settings) -> None:
    """Register ``pixecom.watch_slow_queries`` on ``broker``."""

    async def watch_slow_queries_task(context: Annotated[Context, TaskiqDepends()]) -> int:
        """Log every statement running longer than the threshold; set the gauges of this
        worker (when it serves metrics). Returns how many there were."""
        engine: AsyncEngine = context.state.pixecom_engine
        metrics: WorkerMetrics | None = getattr(context.state, "pixecom_metrics", None)
        report = await watch_slow_queries(
            engine,
            settings.slow_query_threshold_seconds,
            metrics.slow_queries if metrics is not None else None,
        )
        return report.total

    broker.register_task(watch_slow_queries_task, task_name=WATCH_SLOW_QUERIES)


async def kick_slow_query_watch_if_due(
    client: redis.Redis, broker: AsyncBroker, settings: Settings, now: datetime | None = None
) -> bool:
    """Queue the watch once per ``slow_query_watch_seconds`` slot (claimed in Redis, so
    two schedulers queue it once); return whether this call queued it."""
    from reference_app.worker.broker import Queue, registered_task, stream_name

    now = now or datetime.now(UTC)
    interval = settings.slow_query_watch_seconds
    slot = int(now.timestamp()) // interval
    key = f"{settings.redis_key_prefix}claim:slow-query-watch:{slot}"
    if not await client.set(key, "1", nx=True, ex=interval * 2):
        return False
    task = registered_task(broker, WATCH_SLOW_QUERIES)
    queue: Queue = Queue.PAYMENTS
    await task.kicker().with_labels(queue_name=stream_name(settings, queue)).kiq()
    return True


__all__ = [
    "WATCH_SLOW_QUERIES",
    "TaskObservabilityMiddleware",
    "WorkerMetrics",
    "WorkerProbeTargets",
    "kick_slow_query_watch_if_due",
    "register_observability_tasks",
    "serve_worker_metrics",
]
