"""Benchmark: raw stats ingest and daily re-aggregation, against baselines of the same run.

    .venv/bin/python -m bench.stats_pipeline [--ads 100000] [--snapshots 4] [--days 3]

STORE-1, SCALE-10 (ad_stats_raw would explode; raw SQL / COPY for the stats worker) and STATS-1
("re-aggregate the last 3 days every cycle"). On real PostgreSQL (DATABASE_URL, else an
embedded one), as the application role under row-level security:

1. raw ingest — ``ingest_raw`` (COPY into a staging table, then a plain INSERT into the
   partitioned, RLS-guarded ``ad_stats_raw``, INSERT … ON CONFLICT when a row is already
   stored) — against
   a. a bare ``COPY`` of the same rows into an unlogged table with no keys (the floor),
      in text rows (the floor of earlier figures) and in binary rows (what the ingest's
      staging COPY sends) — also for the same rows ingested again (a retried fetch: all
      duplicates); the ingest's rows are counted after each run (each fetch's row exactly
      once), and
   b. a per-row ORM insert (one ``session.add`` + flush per row, the previous version's
      way; measured on a sample, rows/s extrapolated);
2. re-aggregating a ``--days`` window of ``--ads`` ads × ``--snapshots`` snapshots into
   ``ad_stats_daily`` (latest snapshot per ad-day) against a baseline of reading the same
   rows with the same ``DISTINCT ON`` and writing nothing.

Prints rows/s and the ratio of each to its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pixecom_core.db.engine import create_engine, create_sessionmaker  # noqa: E402
from pixecom_core.models.stats import AdStatsRaw  # noqa: E402
from pixecom_core.providers import EntityLevel, InsightRow  # noqa: E402
from pixecom_core.settings import Settings  # noqa: E402
from pixecom_core.stats import aggregate_daily, ingest_raw  # noqa: E402
from pixecom_core.tenancy import open_seller_scope  # noqa: E402
from pixecom_core.testing.databases import provision_test_database, test_servers  # noqa: E402
from tests.db.tenant_rows import insert_seller  # noqa: E402

ORM_SAMPLE_ROWS = 3_000
BACKEND_PID = text("SELECT pg_backend_pid()")


def server_cpu_seconds(backend_pid: int) -> float | None:
    """CPU seconds a server backend has used, when the server runs on this machine.

    Read from ``/proc`` (user + system time); ``None`` when the process is not visible (a
    remote server). Wall time is noisy on a shared machine; CPU seconds much less so.
    """
    try:
        with open(f"/proc/{backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """CPU seconds of this process and of one server backend, between start and stop."""

    def __init__(self, backend_pid: int) -> None:
        self.backend_pid = backend_pid
        self.client = time.process_time()
        self.server = server_cpu_seconds(backend_pid)

    def stop(self) -> tuple[float, float | None]:
        """(client CPU seconds, server CPU seconds or ``None``) since the start."""
        server = server_cpu_seconds(self.backend_pid)
        spent = None if server is None or self.server is None else server - self.server
        return time.process_time() - self.client, spent


def make_rows(ads: int, snapshots: int, days: int, today: date) -> list[InsightRow]:
    base = datetime(2026, 11, 26, tzinfo=UTC)
    rows = []
    for snapshot in range(snapshots):
        fetched_at = base + timedelta(minutes=15 * snapshot)
        for day_offset in range(days):
            day = today - timedelta(days=day_offset)
            for ad in range(ads):
                rows.append(
                    InsightRow(
                        network="meta",
                        entity_type=EntityLevel.AD,
                        entity_id=f"ad_{ad}",
                        date_start=day,
                        date_stop=day,
                        spend_micros=1_000_000 + ad + snapshot,
                        impressions=100 + snapshot,
                        clicks=3,
                        purchases=snapshot % 2,
                        purchase_value_micros=0,
                        currency="USD",
                        fetched_at=fetched_at,
                    )
                )
    return rows


async def run(ads: int, snapshots: int, days: int) -> None:
    today = datetime.now(UTC).date()
    with (
        test_servers() as (server_dsn, redis_url),
        provision_test_database(server_dsn, redis_url) as db,
    ):
        settings: Settings = db.settings.model_copy(update={"statement_timeout_ms": 600_000})
        seller_id = uuid.uuid4()
        with psycopg.connect(db.owner_dsn, autocommit=True) as conn:
            insert_seller(conn, seller_id)
        rows = make_rows(ads, snapshots, days, today)
        engine = create_engine(settings, role="app")
        sessions = create_sessionmaker(engine)

        # 1a. bare COPY floors, as the owner into unlogged tables without keys: text rows
        # (the floor of earlier figures) and binary rows, as the ingest's staging COPY sends.
        cpu: dict[str, tuple[float, float | None]] = {}
        floors: dict[str, float] = {}
        for name, binary in (("bare COPY", False), ("bare COPY, binary", True)):
            floors[name], cpu[name] = bare_copy_floor(db.owner_dsn, seller_id, rows, binary)
        bare_copy, bare_copy_binary = floors["bare COPY"], floors["bare COPY, binary"]

        # 1. the pipeline's ingest, under RLS, deduplicating.
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            clock = CpuClock((await scope.session.execute(BACKEND_PID)).scalar_one())
            started = time.perf_counter()
            report = await ingest_raw(scope, rows)
        ingest = len(rows) / (time.perf_counter() - started)
        cpu["ingest"] = clock.stop()
        assert report.rows_inserted == len(rows)
        assert await stored_once(sessions, seller_id, settings) == (len(rows), len(rows))

        # 1'. the same rows again: a retried fetch, every row a duplicate (the ingest's
        # plain insert is refused and its ON CONFLICT fallback runs).
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            clock = CpuClock((await scope.session.execute(BACKEND_PID)).scalar_one())
            started = time.perf_counter()
            retried = await ingest_raw(scope, rows)
        ingest_retried = len(rows) / (time.perf_counter() - started)
        cpu["ingest, retried"] = clock.stop()
        # exactly once: the retry stored nothing, and every fetch's row is there once
        assert retried.rows_inserted == 0
        assert await stored_once(sessions, seller_id, settings) == (len(rows), len(rows))

        # 1b. per-row ORM inserts, on a sample (other day, so no key collides).
        sample = make_rows(ORM_SAMPLE_ROWS, 1, 1, today - timedelta(days=days + 1))
        started = time.perf_counter()
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            for row in sample:
                scope.session.add(
                    AdStatsRaw(
                        seller_id=seller_id,
                        network=row.network,
                        entity_type=row.entity_type,
                        entity_id=row.entity_id,
                        date_start=row.date_start,
                        date_stop=row.date_stop,
                        fetched_at=row.fetched_at,
                        spend_micros=row.spend_micros,
                        impressions=row.impressions,
                        clicks=row.clicks,
                        purchases=row.purchases,
                        purchase_value_micros=row.purchase_value_micros,
                        currency=row.currency,
                    )
                )
                await scope.session.flush()
        per_row_orm = len(sample) / (time.perf_counter() - started)

        # 2. re-aggregation of the window, and its read-only baseline.
        since, until = today - timedelta(days=days - 1), today
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            started = time.perf_counter()
            await scope.session.execute(
                text(
                    "SELECT count(*) FROM (SELECT DISTINCT ON (network, entity_type, entity_id,"
                    " date_start) * FROM ad_stats_raw WHERE seller_id = :s AND network = 'meta'"
                    " AND date_start BETWEEN :a AND :b AND date_stop = date_start"
                    " ORDER BY network, entity_type, entity_id, date_start, fetched_at DESC) AS x"
                ),
                {"s": seller_id, "a": since, "b": until},
            )
            read_only = len(rows) / (time.perf_counter() - started)
        started = time.perf_counter()
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            written = await aggregate_daily(scope, network="meta", since=since, until=until)
        aggregate = len(rows) / (time.perf_counter() - started)
        started = time.perf_counter()
        async with open_seller_scope(sessions, seller_id, settings) as scope:
            rewritten = await aggregate_daily(scope, network="meta", since=since, until=until)
        rerun = len(rows) / (time.perf_counter() - started)
        await engine.dispose()

    print(f"stats pipeline: {ads} ads x {snapshots} snapshots x {days} days = {len(rows)} rows")
    print(f"{'measure':<44}{'rows/s':>12}{'baseline':>12}{'ratio':>8}")
    print(
        f"{'raw ingest (COPY+dedup, RLS)':<44}{ingest:>12.0f}{bare_copy:>12.0f}"
        f"{ingest / bare_copy:>8.2f}   baseline: bare COPY, no keys"
    )
    print(
        f"{'raw ingest, retried (all duplicates)':<44}{ingest_retried:>12.0f}{bare_copy:>12.0f}"
        f"{ingest_retried / bare_copy:>8.2f}"
    )
    print(
        f"{'raw ingest vs binary bare COPY':<44}{ingest:>12.0f}{bare_copy_binary:>12.0f}"
        f"{ingest / bare_copy_binary:>8.2f}   baseline: bare COPY, binary rows, no keys"
    )
    print(
        f"{'raw ingest, retried, vs binary bare COPY':<44}{ingest_retried:>12.0f}"
        f"{bare_copy_binary:>12.0f}{ingest_retried / bare_copy_binary:>8.2f}"
    )
    print(
        f"{'raw ingest vs per-row ORM':<44}{ingest:>12.0f}{per_row_orm:>12.0f}"
        f"{ingest / per_row_orm:>8.1f}x  baseline: session.add+flush per row"
    )
    print(
        f"{'re-aggregate window (first run)':<44}{aggregate:>12.0f}{read_only:>12.0f}"
        f"{aggregate / read_only:>8.2f}   baseline: same DISTINCT ON, read only"
    )
    print(
        f"{'re-aggregate window (unchanged rerun)':<44}{rerun:>12.0f}{read_only:>12.0f}"
        f"{rerun / read_only:>8.2f}"
    )
    print("CPU seconds (this process + the server backend; the server's only when local):")
    for name, (client, server) in cpu.items():
        spent = client + (server or 0.0)
        ratio = ""
        if server is not None:
            ratio = (
                f"  {cpu_total(cpu['bare COPY']) / spent:.2f}x bare COPY"
                f"  {cpu_total(cpu['bare COPY, binary']) / spent:.2f}x binary bare COPY"
            )
        server_text = "?" if server is None else f"{server:.2f}"
        print(f"  {name:<18} client {client:6.2f}  server {server_text:>6}{ratio}")
    print(f"daily rows written: first run {written}, rerun {rewritten} (expected {ads * days}, 0)")


#: The bare COPY's columns, and their types for a binary COPY (which sends no type names;
#: psycopg has no binary dumper for ``char(n)``, whose binary input is text's anyway).
BARE_COLUMNS = (
    "seller_id uuid, network text, entity_type text, entity_id text, date_start date,"
    " date_stop date, fetched_at timestamptz, spend_micros bigint, impressions bigint,"
    " clicks bigint, purchases bigint, purchase_value_micros bigint, currency char(3)"
)
BARE_BINARY_TYPES = (
    *("uuid", "text", "text", "text", "date", "date", "timestamptz"),
    *("int8", "int8", "int8", "int8", "int8", "text"),
)


def bare_copy_floor(
    owner_dsn: str, seller_id: uuid.UUID, rows: list[InsightRow], binary: bool
) -> tuple[float, tuple[float, float | None]]:
    """COPY ``rows`` into a new unlogged table with no keys; rows/s and CPU seconds.

    ``binary`` sends binary rows, as the ingest's staging COPY does (psycopg packs them and
    the server parses no text); otherwise text rows, the floor of the figures before it.
    """
    table = "bench_copy_binary" if binary else "bench_copy"
    statement = f"COPY {table} FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE UNLOGGED TABLE {table} ({BARE_COLUMNS})")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        clock = CpuClock(pid[0])
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            if binary:
                copy.set_types(BARE_BINARY_TYPES)
            for row in rows:
                copy.write_row(
                    (
                        seller_id,
                        row.network,
                        row.entity_type.value,
                        row.entity_id,
                        row.date_start,
                        row.date_stop,
                        row.fetched_at,
                        row.spend_micros,
                        row.impressions,
                        row.clicks,
                        row.purchases,
                        row.purchase_value_micros,
                        row.currency,
                    )
                )
        return len(rows) / (time.perf_counter() - started), clock.stop()


async def stored_once(
    sessions: async_sessionmaker[AsyncSession], seller_id: uuid.UUID, settings: Settings
) -> tuple[int, int]:
    """The seller's raw rows, and how many distinct fetches of an entity-day they hold."""
    async with open_seller_scope(sessions, seller_id, settings) as scope:
        counted = await scope.session.execute(
            text(
                "SELECT count(*), count(DISTINCT (network, entity_type, entity_id, date_start,"
                " date_stop, fetched_at)) FROM ad_stats_raw"
            )
        )
        total, distinct = counted.one()
    return int(total), int(distinct)


def cpu_total(spent: tuple[float, float | None]) -> float:
    """Client plus server CPU seconds (the client's alone for a remote server)."""
    return spent[0] + (spent[1] or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ads", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.ads, args.snapshots, args.days))


if __name__ == "__main__":
    main()
