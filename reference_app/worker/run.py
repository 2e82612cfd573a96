"""``pixecom worker``: run tasks from one queue until SIGINT or SIGTERM.

On SIGTERM (systemd's stop, a deploy) the worker stops taking messages and lets the tasks
it is running finish — each is bounded by its own task timeout — before it exits, so a
routine restart does not leave work waiting for redelivery. A task still running when
the drain ends is cut short unacknowledged and delivered again later, as after a crash.

With ``worker_metrics_port`` (``--metrics-port``) set, the worker also serves
``/metrics`` and ``/readyz`` on that port (see :mod:`reference_app.worker.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from pixecom_core.observability import configure_logging
from pixecom_core.settings import Settings
from reference_app.worker.broker import Queue, WorkerResources, build_broker
from reference_app.worker.metrics import (
    TaskObservabilityMiddleware,
    WorkerMetrics,
    WorkerProbeTargets,
    serve_worker_metrics,
)

_log = logging.getLogger(__name__)


#: Beyond the longest task timeout, for acknowledging and logging after the last task.
DRAIN_MARGIN_SECONDS = 5.0


def drain_seconds(settings: Settings) -> float:
    """How long a stopping worker waits for its running tasks: every task has finished or
    timed out by then. systemd's ``TimeoutStopSec`` for workers must be longer."""
    longest = max(settings.webhook_task_timeout_seconds, settings.stats_task_timeout_seconds)
    return longest + DRAIN_MARGIN_SECONDS


async def receive_until(
    broker: AsyncBroker, stop: asyncio.Event, *, max_tasks: int, drain_timeout: float
) -> None:
    """Run tasks from ``broker`` until ``stop`` is set, then drain the running ones.

    taskiq's receiver stops prefetching when ``stop`` is set and waits up to
    ``drain_timeout`` for running tasks. A receiver that fails (its broker lost Redis) is
    started again after the broker's own backoff, as ``taskiq.api.run_receiver_task`` does.
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


async def serve(settings: Settings, queue: Queue, *, max_tasks: int = 50) -> None:
    """Consume ``queue`` until SIGINT or SIGTERM, then let running tasks finish (see the
    module docstring); tasks cut short are delivered again (never acknowledged)."""
    broker = build_broker(settings, queue)
    broker.is_worker_process = True
    metrics = WorkerMetrics(queue=queue.value)
    broker.add_middlewares(TaskObservabilityMiddleware(metrics))
    # Tasks find this worker's gauges here (the slow-query watch sets its own).
    broker.state.pixecom_metrics = metrics
    await broker.startup()
    runner: web.AppRunner | None = None
    if settings.worker_metrics_port:
        resources: WorkerResources = broker.state.pixecom
        targets = WorkerProbeTargets(
            metrics=metrics, engine=resources.services.engine, redis=resources.services.redis
        )
        runner = await serve_worker_metrics(
            targets, settings.api_host, settings.worker_metrics_port
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    drain = drain_seconds(settings)
    receiver = asyncio.create_task(
        receive_until(broker, stop, max_tasks=max_tasks, drain_timeout=drain)
    )
    _log.info("worker consuming %s", queue.value)
    try:
        await stop.wait()
        _log.info("worker stopping: waiting up to %.0f s for running tasks", drain)
        try:
            await asyncio.wait_for(asyncio.shield(receiver), drain + DRAIN_MARGIN_SECONDS)
        except TimeoutError:
            _log.warning("worker stopping: tasks still running after the drain are cut short")
    finally:
        if not receiver.done():
            receiver.cancel()
            try:
                await receiver
            except asyncio.CancelledError:
                pass
        if runner is not None:
            await runner.cleanup()
        await broker.shutdown()


def run_worker(settings: Settings, queue: Queue, *, max_tasks: int = 50) -> None:
    """Blocking entry point of ``pixecom worker``."""
    configure_logging(settings, process=f"worker-{queue.value}")
    asyncio.run(serve(settings, queue, max_tasks=max_tasks))
