"""What a simulation samples while it runs, once a second, from outside the processes.

- PostgreSQL connections of the simulation's database from ``pg_stat_activity``: open,
  and in use (``active`` or ``idle in transaction``) — SCALE-3, the audit counted pool exhaustion;
- queue depth per taskiq stream: messages not yet delivered to a worker (the consumer
  group's ``lag``) plus delivered but not acknowledged (``pending``) — SCALE-5, the
  audit's scenario B: "jobs pile up, queue grows unboundedly";
- Redis ``used_memory`` — OPS-3, the audit's scenario B and thresholds: "Redis OOM",
  "500 MB: eviction starts";
- resident memory (RSS) and CPU time of each process of the deployment, of the load
  generator and of PostgreSQL when it runs here (psutil) — the audit's memory figures and
  "CPU: 100% sustained" — and how long each process's main thread waited for a core (Linux
  ``/proc/<pid>/schedstat``): on a shared machine a load generator starved of CPU sends
  less than it should, and the API's figures then measure the generator;

and, at the end, exact row counts of the tables the audit sized (its "Database" figures).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis.asyncio as redis

from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from reference_app.worker.broker import Queue, stream_name

#: The name the probes give the load generator (the simulation's own process).
LOAD_GENERATOR = "load generator"

#: Tables whose rows are counted at the end (partitioned parents count every partition).
COUNTED_TABLES = (
    "sellers",
    "users",
    "products",
    "sellpages",
    "ad_accounts",
    "campaigns",
    "adsets",
    "ads",
    "ad_stats_raw",
    "ad_stats_daily",
    "sellpage_stats_daily",
    "entity_stats_daily",
    "seller_stats_daily",
    "orders",
    "order_payments",
    "order_events",
    "payment_events",
    "webhook_inbox",
    "tracking_records",
    "dead_letters",
)

#: Seconds :meth:`Probes.stop` waits for the sampling loop to end.
STOP_SECONDS = 10.0


@dataclass
class Sample:
    """One probe reading, ``at`` seconds after sampling started."""

    at: float
    connections_open: int
    connections_in_use: int
    queue_depth: dict[str, int]
    redis_used_bytes: int
    rss_bytes: dict[str, int]
    #: CPU seconds (user + system) each process has used since it started.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: Seconds each process's main thread has waited for a core since it started.
    cpu_wait_seconds: dict[str, float] = field(default_factory=dict)
    #: The watched circuit breaker's state (``closed``, ``opened``, ``half-opened``).
    breaker_state: str | None = None

    @property
    def total_queue_depth(self) -> int:
        """Messages waiting or running across every queue."""
        return sum(self.queue_depth.values())


@dataclass
class Probes:
    """Samples the deployment every ``interval`` seconds until :meth:`stop`.

    :param owner_dsn: the simulation database, as its owner (reads ``pg_stat_activity``).
    :param settings: for the Redis URL and the queues' stream names.
    :param pids: process name → pid of the deployment's processes.
    """

    owner_dsn: str
    settings: Settings
    pids: dict[str, int]
    interval: float = 1.0
    #: A provider breaker to watch, as (kind, identifier), e.g. ("tracker", "17track").
    breaker: tuple[str, str] | None = None
    #: Name → pid of processes measured with their children (nginx: its worker does the
    #: work, its master only waits).
    trees: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    _started: float = 0.0
    _postmaster: psutil.Process | None = None
    _breakers: ProviderBreakers | None = None

    async def start(self) -> None:
        """Begin sampling in the background."""
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling (the last sample stays).

        The sampling loop also checks a flag between samples: a scenario B run hung
        here for minutes, the probe still sampling after its cancellation — a client
        library inside a sample must have swallowed the CancelledError.
        """
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait, not wait_for: wait_for would wait for the cancellation too
            done, _pending = await asyncio.wait({self._task}, timeout=STOP_SECONDS)
            task, self._task = self._task, None
            if done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # a failed probe says so

    async def _run(self) -> None:
        assert self.settings.redis_url is not None
        client = redis.Redis.from_url(self.settings.redis_url)
        processes = {}
        # the load generator (this process) is measured too: on a shared machine it
        # competes with the deployment for the same cores
        for name, pid in {**self.pids, LOAD_GENERATOR: os.getpid()}.items():
            try:
                processes[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
        try:
            async with await psycopg.AsyncConnection.connect(
                self.owner_dsn, autocommit=True
            ) as conn:
                self._postmaster = await _postmaster(conn)
                while not self._stopping:
                    self.samples.append(await self.sample(conn, client, processes))
                    await asyncio.sleep(self.interval)
        finally:
            await client.aclose()

    async def sample(
        self,
        conn: psycopg.AsyncConnection[tuple[Any, ...]],
        client: redis.Redis,
        processes: dict[str, psutil.Process],
    ) -> Sample:
        """Take one reading."""
        cursor = await conn.execute(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE state IN ('active', 'idle in transaction',
                                                     'idle in transaction (aborted)'))
              FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
            """
        )
        row = await cursor.fetchone()
        depth = {
            queue.value: await queue_depth(client, stream_name(self.settings, queue))
            for queue in Queue
        }
        info = await client.info("memory")
        rss: dict[str, int] = {}
        cpu: dict[str, float] = {}
        waits: dict[str, float] = {}
        for name, process in processes.items():
            try:
                rss[name] = int(process.memory_info().rss)
                times = process.cpu_times()
                cpu[name] = times.user + times.system
            except psutil.Error:
                rss[name] = 0
            wait = runqueue_wait_seconds(process.pid)
            if wait is not None:
                waits[name] = wait
        if self._postmaster is not None:
            cpu["postgresql"] = _tree_cpu_seconds(self._postmaster)
        for name, pid in self.trees.items():
            try:
                cpu[name] = _tree_cpu_seconds(psutil.Process(pid))
            except psutil.Error:
                continue
        breaker_state = None
        if self.breaker is not None:
            if self._breakers is None:
                self._breakers = ProviderBreakers(self.settings)
            breaker_state = await self._breakers.state(*self.breaker)
        return Sample(
            at=time.monotonic() - self._started,
            connections_open=int(row[0]) if row else 0,
            connections_in_use=int(row[1]) if row else 0,
            queue_depth=depth,
            redis_used_bytes=int(info.get("used_memory", 0)),
            rss_bytes=rss,
            cpu_seconds=cpu,
            cpu_wait_seconds=waits,
            breaker_state=breaker_state,
        )


def runqueue_wait_seconds(pid: int) -> float | None:
    """Seconds the main thread of process ``pid`` has spent runnable but waiting for a
    core since it started (``/proc/<pid>/schedstat``, second field, nanoseconds); ``None``
    where the kernel does not tell (not Linux, no schedstats, the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def _postmaster(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> psutil.Process | None:
    """The PostgreSQL server process, when it runs on this machine (its backends are its
    children): the database's CPU is part of what the deployment uses."""
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    try:
        return psutil.Process(int(row[0])).parent() if row else None
    except psutil.Error:
        return None  # a server on another machine


def _tree_cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds of ``process``, of its children it has reaped, and of its live children.

    A backend that exits moves its time into the postmaster's reaped-children counters
    (``cutime``/``cstime`` of ``/proc/<pid>/stat``), so the total only grows: summing the
    live processes alone lost every exited backend's time, and a window's difference
    could come out negative on a server whose connections come and go.
    """
    try:
        own = process.cpu_times()
    except psutil.Error:
        return 0.0
    total = own.user + own.system + own.children_user + own.children_system
    try:
        children = process.children()
    except psutil.Error:
        children = []
    for each in children:
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def queue_depth(client: redis.Redis, stream: str) -> int:
    """Messages of ``stream`` not yet acknowledged: undelivered (the group's ``lag``, or
    every entry when no group reads it yet) plus delivered and pending."""
    if not await client.exists(stream):
        return 0
    groups = await client.xinfo_groups(stream)
    if not groups:
        return int(await client.xlen(stream))
    depth = 0
    for group in groups:
        lag = group.get("lag")
        pending = group.get("pending") or 0
        depth += int(lag or 0) + int(pending)
    return depth


def count_rows(owner_dsn: str) -> dict[str, int]:
    """Exact rows of each table in :data:`COUNTED_TABLES` that exists."""
    counts: dict[str, int] = {}
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for table in COUNTED_TABLES:
            exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if not exists or exists[0] is None:
                continue
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            counts[table] = int(row[0]) if row else 0
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        counts["(database bytes)"] = int(size[0]) if size else 0
    return counts
