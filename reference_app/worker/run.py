"""``pixecom worker``: run tasks from one queue or several until SIGINT or SIGTERM.

One process may consume several queues (issue 18 item 6, "memory for one small VPS"),
each with a concurrency of its own: ``pixecom worker --queue payments:50 --queue
stats-low:20``. Each queue has its own receiver, bounded by its own number of tasks at
once, in one event loop; all of them share one set of services — one database engine,
one Redis pool, one plugin manager — opened once
(:func:`~reference_app.worker.broker.open_worker_resources`). A process per queue costs
an interpreter and its imports per queue; one process for all of them fits a small VPS.

On SIGTERM (systemd's stop, a deploy) every queue stops taking messages and lets the
tasks it is running finish — each is bounded by its own task timeout — before the process
exits, so a routine restart does not leave work waiting for redelivery. A task still
running when the drain ends is cut short unacknowledged and delivered again later, as
after a crash.

With ``worker_metrics_port`` (``--metrics-port``) set, the worker also serves
``/metrics`` (task metrics labelled by queue) and ``/readyz`` on that port (see
:mod:`reference_app.worker.metrics`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass

from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from pixecom_core.observability import configure_logging
from pixecom_core.settings import Settings
from reference_app.worker.broker import (
    Queue,
    build_broker,
    open_worker_resources,
    share_resources,
)
from reference_app.worker.metrics import (
    TaskObservabilityMiddleware,
    WorkerMetrics,
    WorkerProbeTargets,
    serve_worker_metrics,
)

_log = logging.getLogger(__name__)


#: Beyond the longest task timeout, for acknowledging and logging after the last task.
DRAIN_MARGIN_SECONDS = 5.0
#: Tasks run at once from a queue named without ``:N``, unless ``--max-tasks`` says.
DEFAULT_MAX_TASKS = 50
#: Allocations between two young-generation garbage collections in a worker
#: (:func:`tune_garbage_collector`; CPython's default is 700): a few megabytes of young
#: objects at most.
GC_YOUNG_THRESHOLD = 50_000
#: PostgreSQL truncates ``application_name`` to 63 bytes.
_APPLICATION_NAME_LIMIT = 63


class QueueSpecError(ValueError):
    """A ``--queue`` value that names no queue, or a concurrency that is not a positive
    whole number; the message says which and what is allowed."""


@dataclass(frozen=True)
class QueueConcurrency:
    """One queue a worker process consumes, and how many of its tasks run at once."""

    queue: Queue
    max_tasks: int


def parse_queue_spec(text: str, default_max_tasks: int = DEFAULT_MAX_TASKS) -> QueueConcurrency:
    """``"stats-low:20"`` → stats-low, 20 at once; ``"payments"`` → payments,
    ``default_max_tasks`` at once.

    :raises QueueSpecError: an unknown queue, or a concurrency that is not a whole
        number of at least 1.
    """
    name, separator, count = text.strip().partition(":")
    try:
        queue = Queue(name.strip())
    except ValueError:
        raise QueueSpecError(
            f"unknown queue {name.strip()!r} in {text!r}; choose from "
            f"{', '.join(q.value for q in Queue)}"
        ) from None
    if not separator:
        return QueueConcurrency(queue, default_max_tasks)
    count = count.strip()
    if not (count.isascii() and count.isdigit()) or int(count) < 1:
        raise QueueSpecError(
            f"concurrency {count!r} in {text!r} is not a whole number of at least 1"
            " (write QUEUE:N, e.g. stats-low:20)"
        )
    return QueueConcurrency(queue, int(count))


def parse_queue_specs(
    texts: Sequence[str], default_max_tasks: int = DEFAULT_MAX_TASKS
) -> list[QueueConcurrency]:
    """Every ``--queue`` value, in order; each value may also list several queues
    separated by commas (``payments:50,tracking:10``).

    :raises QueueSpecError: as :func:`parse_queue_spec`, for no queue at all, or for a
        queue named twice (two concurrencies for one queue would be ambiguous).
    """
    chosen: list[QueueConcurrency] = []
    for text in texts:
        for part in text.split(","):
            if not part.strip():
                raise QueueSpecError(f"empty queue name in {text!r}")
            spec = parse_queue_spec(part, default_max_tasks)
            if any(existing.queue is spec.queue for existing in chosen):
                raise QueueSpecError(f"queue {spec.queue.value!r} is named twice")
            chosen.append(spec)
    if not chosen:
        raise QueueSpecError("name at least one queue")
    return chosen


def drain_seconds(settings: Settings) -> float:
    """How long a stopping worker waits for its running tasks: every task has finished or
    timed out by then. systemd's ``TimeoutStopSec`` for workers must be longer."""
    longest = max(settings.webhook_task_timeout_seconds, settings.stats_task_timeout_seconds)
    return longest + DRAIN_MARGIN_SECONDS


async def receive_until(
    broker: AsyncBroker, stop: asyncio.Event, *, max_tasks: int, drain_timeout: float
) -> None:
    """Run tasks from ``broker`` until ``stop`` is set, then drain the running ones.

    taskiq's receiver runs at most ``max_tasks`` at once (and fetches no more than it
    can start), stops prefetching when ``stop`` is set and waits up to ``drain_timeout``
    for running tasks. A receiver that fails (its broker lost Redis) is started again
    after the broker's own backoff, as ``taskiq.api.run_receiver_task`` does.
    """
    with ThreadPoolExecutor() as executor:
        while not stop.is_set():
            receiver = Receiver(
                broker=broker,
                executor=executor,
                run_startup=False,
                max_async_tasks=max_tasks,
                wait_tasks_timeout=drain_timeout,
            )
            try:
                await receiver.listen(stop)
            except Exception:
                _log.warning("listening to the broker failed; listening again", exc_info=True)


def _process_name(queues: Sequence[QueueConcurrency]) -> str:
    """``worker-payments`` for one queue, ``worker-all`` for every queue, else the
    names joined with ``+``."""
    if {spec.queue for spec in queues} == set(Queue):
        return "worker-all"
    return "worker-" + "+".join(spec.queue.value for spec in queues)


async def serve(settings: Settings, queues: Sequence[QueueConcurrency]) -> None:
    """Consume ``queues`` until SIGINT or SIGTERM, then let running tasks finish (see the
    module docstring); tasks cut short are delivered again (never acknowledged)."""
    if not queues:
        raise QueueSpecError("name at least one queue")
    metrics = WorkerMetrics()
    brokers: dict[Queue, AsyncBroker] = {}
    for spec in queues:
        broker = build_broker(settings, spec.queue, own_resources=False)
        broker.is_worker_process = True
        broker.add_middlewares(TaskObservabilityMiddleware(metrics, spec.queue.value))
        # Tasks find this worker's gauges here (the slow-query watch sets its own).
        broker.state.pixecom_metrics = metrics
        metrics.concurrency.labels(spec.queue.value).set(spec.max_tasks)
        metrics.running.labels(spec.queue.value).set(0)
        brokers[spec.queue] = broker
    # Follow-up work a task queues without naming a queue (revenue refreshes,
    # conversions) belongs on the payments queue, as in a process of its own.
    follow_ups = brokers.get(Queue.PAYMENTS, brokers[queues[0].queue])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    drain = drain_seconds(settings)
    async with AsyncExitStack() as exits:
        for broker in brokers.values():
            await broker.startup()
            exits.push_async_callback(broker.shutdown)
        resources = await exits.enter_async_context(
            open_worker_resources(
                settings,
                follow_ups,
                application_name=f"pixecom-{_process_name(queues)}"[:_APPLICATION_NAME_LIMIT],
                sweep_inbox=Queue.PAYMENTS in brokers,
            )
        )
        for broker in brokers.values():
            share_resources(broker, resources)
        if settings.worker_metrics_port:
            targets = WorkerProbeTargets(
                metrics=metrics,
                engine=resources.services.engine,
                redis=resources.services.redis,
                queues={spec.queue.value: spec.max_tasks for spec in queues},
            )
            runner = await serve_worker_metrics(
                targets, settings.api_host, settings.worker_metrics_port
            )
            exits.push_async_callback(runner.cleanup)
        receivers = [
            asyncio.create_task(
                receive_until(
                    brokers[spec.queue], stop, max_tasks=spec.max_tasks, drain_timeout=drain
                ),
                name=f"receive-{spec.queue.value}",
            )
            for spec in queues
        ]
        _log.info(
            "worker consuming %s",
            ", ".join(f"{spec.queue.value} ({spec.max_tasks} at once)" for spec in queues),
        )
        try:
            await stop.wait()
            _log.info("worker stopping: waiting up to %.0f s for running tasks", drain)
            _, still_running = await asyncio.wait(receivers, timeout=drain + DRAIN_MARGIN_SECONDS)
            if still_running:
                _log.warning("worker stopping: tasks still running after the drain are cut short")
        finally:
            for receiver in receivers:
                receiver.cancel()
            await asyncio.gather(*receivers, return_exceptions=True)


def worker_event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (a dependency of the reference app outside
    Windows), else asyncio's own: one process running every queue spends its core on
    the loop's bookkeeping for hundreds of sockets at once. ``bench.sync_cycle`` runs its
    syncs on the same loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def tune_garbage_collector() -> None:
    """Make CPython's cyclic garbage collector cheap for a worker (issue 18 item 3).

    With the default threshold (a young collection every 700 allocations net) a stats
    sync, which allocates an object or more per field of every Graph row, ran a
    collection every few rows, and each older one walked every object the imports left
    (bench.sync_cycle: about a tenth of the worker's CPU). Call it once the process has
    imported what it runs and before it serves: what exists then is frozen out of every
    later collection (``gc.freeze``), and young collections come every
    :data:`GC_YOUNG_THRESHOLD` allocations; the older generations keep their thresholds,
    so cyclic garbage is still reclaimed.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def run_worker(settings: Settings, queues: Sequence[QueueConcurrency]) -> None:
    """Blocking entry point of ``pixecom worker``."""
    configure_logging(settings, process=_process_name(queues))
    tune_garbage_collector()
    with asyncio.Runner(loop_factory=worker_event_loop_factory()) as runner:
        runner.run(serve(settings, queues))
