"""``pixecom worker``: run tasks from one queue until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from taskiq.api import run_receiver_task

from pixecom_core.settings import Settings
from reference_app.worker.broker import Queue, build_broker

_log = logging.getLogger(__name__)


async def serve(settings: Settings, queue: Queue, *, max_tasks: int = 50) -> None:
    """Consume ``queue`` until cancelled; in-flight tasks that are cut short are delivered
    again (their messages are not acknowledged)."""
    broker = build_broker(settings, queue)
    broker.is_worker_process = True
    await broker.startup()
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
        await broker.shutdown()


def run_worker(settings: Settings, queue: Queue, *, max_tasks: int = 50) -> None:
    """Blocking entry point of ``pixecom worker``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(settings, queue, max_tasks=max_tasks))
