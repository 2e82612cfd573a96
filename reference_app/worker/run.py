"""``pixecom worker``: run tasks from one queue until SIGINT or SIGTERM.

With ``worker_metrics_port`` (``--metrics-port``) set, the worker also serves
``/metrics`` and ``/readyz`` on that port (see :mod:`reference_app.worker.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from taskiq.api import run_receiver_task

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


async def serve(settings: Settings, queue: Queue, *, max_tasks: int = 50) -> None:
    """Consume ``queue`` until cancelled; in-flight tasks that are cut short are delivered
    again (their messages are not acknowledged)."""
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
            metrics=metrics, engine=broker.state.pixecom_engine, redis=resources.redis
        )
        runner = await serve_worker_metrics(
            targets, settings.api_host, settings.worker_metrics_port
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    receiver = asyncio.create_task(run_receiver_task(broker, max_async_tasks=max_tasks))
    _log.info("worker consuming %s", queue.value)
    try:
        await stop.wait()
    finally:
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
