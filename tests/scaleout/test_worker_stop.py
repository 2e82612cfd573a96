"""A worker told to stop (SIGTERM: systemd's stop, a deploy) finishes the syncs it is
running and acknowledges them before it exits, instead of leaving them for redelivery
``worker_redelivery_after_seconds`` later (SCALE-5, "what happens if a job runs longer")."""

from __future__ import annotations

import signal

import redis

from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue
from tests.scaleout.conftest import (
    Start,
    create_sellers,
    done_per_seller,
    kick_low_syncs,
    process_env,
    sync_runs,
    wait_for,
)
from tests.scaleout.test_workers import pending

SELLERS = 3


async def test_sigterm_lets_running_syncs_finish_then_exits(
    scaleout_database: TestDatabase, scaled_settings: Settings, start_pixecom: Start
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    sellers = create_sellers(dsn, settings, SELLERS)
    client = redis.Redis.from_url(scaleout_database.redis_url)
    worker = start_pixecom(
        process_env(scaleout_database, settings),
        "worker",
        "--queue",
        Queue.STATS_LOW.value,
        "--max-tasks",
        str(SELLERS),
    )
    wait_for(lambda: "Listening started" in worker.output(), 90, "the worker", worker)

    await kick_low_syncs(settings, sellers)

    def all_running() -> bool:
        runs = sync_runs(dsn, sellers)
        return len(runs) == SELLERS and not any(run.finished for run in runs)

    wait_for(all_running, 60, "every sync to be running", worker)
    worker.process.send_signal(signal.SIGTERM)
    # Each sync takes ~1.2 s of fake network; the drain allows the task timeout (5 s).
    assert worker.process.wait(timeout=30) == 0, worker.output()

    runs = sync_runs(dsn, sellers)
    assert done_per_seller(dsn, sellers) == dict.fromkeys(sellers, 1), runs
    assert len(runs) == SELLERS  # none was cut short and run again
    assert {run.worker for run in runs} == {runs[0].worker}
    assert runs[0].worker.endswith(f":{worker.process.pid}")
    assert pending(client, settings) == 0  # acknowledged before exit
    assert "waiting up to" in worker.output()
    client.close()
