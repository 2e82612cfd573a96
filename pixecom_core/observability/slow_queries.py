"""The slow-query watch: statements running longer than a threshold, from ``pg_stat_activity``.

OPS-1 ("could a bad query lock a full table?"): "use pg_stat_activity monitoring for
long-running queries". ``statement_timeout`` (SCALE-7) ends a runaway statement of the
application role after 30 s; this watch says which ones ran long before that — and which
statements of other roles (migrations, maintenance, a psql session) run longer still —
with enough to act on: pid, duration, state, what it waits for, the query's beginning and
the ``application_name`` of the process that runs it (``pixecom-api``,
``pixecom-worker-stats-high`` …).

Visibility: PostgreSQL shows a role the text and state of its own sessions only, and of
all sessions to members of ``pg_read_all_stats``. Run as the application role, the watch
sees the API's and workers' statements; ``GRANT pg_read_all_stats TO <app role>`` lets it
see the owner's too (docs/operations.md, "Slow queries"). Only this database is watched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

#: The beginning of a statement is enough to recognise it; whole statements can be huge
#: (bulk inserts) and may carry literal values.
MAX_QUERY_CHARS = 300
#: At most this many statements are reported per check (the count covers all of them).
MAX_REPORTED = 50

_log = structlog.get_logger(__name__)

_SLOW_STATEMENTS = text(
    """
    SELECT pid,
           extract(epoch FROM clock_timestamp() - query_start)::double precision AS seconds,
           state, wait_event_type, wait_event, left(query, :max_chars) AS query,
           application_name, usename AS role,
           count(*) OVER () AS total
      FROM pg_stat_activity
     WHERE datname = current_database()
       AND backend_type = 'client backend'
       AND pid <> pg_backend_pid()
       AND state = 'active'
       AND query_start < clock_timestamp() - make_interval(secs => :threshold)
     ORDER BY query_start
     LIMIT :max_rows
    """
)

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SlowStatement:
    """A statement that has been running longer than the threshold."""

    pid: int
    duration_seconds: float
    state: str
    wait_event_type: str | None
    wait_event: str | None
    query: str
    application_name: str
    role: str | None


@dataclass(frozen=True)
class SlowQueryReport:
    """One check: the statements reported (longest first) and how many there were."""

    statements: list[SlowStatement]
    total: int

    @property
    def longest_seconds(self) -> float:
        """The longest running time among them, 0 when there is none."""
        return max((s.duration_seconds for s in self.statements), default=0.0)


async def find_slow_statements(
    engine: AsyncEngine, threshold_seconds: float, *, max_rows: int = MAX_REPORTED
) -> SlowQueryReport:
    """Active statements of this database running longer than ``threshold_seconds``."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                _SLOW_STATEMENTS,
                {
                    "threshold": threshold_seconds,
                    "max_chars": MAX_QUERY_CHARS,
                    "max_rows": max_rows,
                },
            )
        ).all()
    statements = [
        SlowStatement(
            pid=int(row.pid),
            duration_seconds=round(float(row.seconds), 3),
            state=str(row.state),
            wait_event_type=row.wait_event_type,
            wait_event=row.wait_event,
            query=_WHITESPACE.sub(" ", row.query or "").strip(),
            application_name=row.application_name or "",
            role=row.role,
        )
        for row in rows
    ]
    return SlowQueryReport(statements=statements, total=int(rows[0].total) if rows else 0)


class SlowQueryGauges:
    """What the last check found, as Prometheus gauges (no query text in any label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.count = Gauge(
            "pixecom_slow_statements",
            "Statements running longer than slow_query_threshold_seconds at the last check.",
            registry=registry,
        )
        self.longest = Gauge(
            "pixecom_slow_statement_longest_seconds",
            "Running time of the longest of them at the last check (0 when none).",
            registry=registry,
        )
        self.checked = Gauge(
            "pixecom_slow_query_check_timestamp_seconds",
            "When the last check ran in this process (Unix time).",
            registry=registry,
        )

    def record(self, report: SlowQueryReport) -> None:
        """Set the gauges from one check."""
        self.count.set(report.total)
        self.longest.set(report.longest_seconds)
        self.checked.set_to_current_time()


async def watch_slow_queries(
    engine: AsyncEngine,
    threshold_seconds: float,
    gauges: SlowQueryGauges | None = None,
) -> SlowQueryReport:
    """Check once: log each slow statement (one structured line each), set the gauges."""
    report = await find_slow_statements(engine, threshold_seconds)
    for statement in report.statements:
        _log.warning(
            "slow statement",
            pid=statement.pid,
            duration_seconds=statement.duration_seconds,
            state=statement.state,
            wait_event_type=statement.wait_event_type,
            wait_event=statement.wait_event,
            query=statement.query,
            application_name=statement.application_name,
            role=statement.role,
            threshold_seconds=threshold_seconds,
        )
    if report.total > len(report.statements):
        _log.warning(
            "more slow statements than reported",
            total=report.total,
            reported=len(report.statements),
        )
    if gauges is not None:
        gauges.record(report)
    return report


__all__ = [
    "SlowQueryGauges",
    "SlowQueryReport",
    "SlowStatement",
    "find_slow_statements",
    "watch_slow_queries",
]
