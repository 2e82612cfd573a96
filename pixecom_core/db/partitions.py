"""Monthly partition maintenance: create months ahead, drain the default partitions,
drop raw statistics and webhook deliveries past retention (STORE-3, "Should partitioning
be used?"; issue 18 item 5, "nothing grows without bound").

The work is done by plpgsql functions installed by the initial migration and owned by the
schema owner (``pixecom_ensure_partitions``, ``pixecom_drop_partitions_before``); this
module decides the windows and reports what changed. It runs as the owner — the app role
may not create or drop tables — typically from a daily scheduled task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

from pixecom_core.models import PARTITIONED_TABLES

#: Raw fetches keep only the re-aggregation window (STORE-3: "raw data only needed for
#: re-aggregation window"); the other partitioned tables are the record, except the
#: webhook inbox, whose retention is its own (INBOX_TABLE).
RETAINED_TABLES: tuple[str, ...] = ("ad_stats_raw",)
#: Raw webhook deliveries, kept long enough for chargebacks (issue 18 item 5); a month is
#: dropped only once none of its deliveries waits or is parked for an operator.
INBOX_TABLE = "webhook_inbox"

_OLDEST_UNSETTLED_DELIVERY = (
    # The owner sees every delivery only while the setting is on (0010's owner policy);
    # the two predicates are those of the inbox's partial indexes.
    "SELECT least("
    " (SELECT min(received_at) FROM webhook_inbox WHERE status IN ('RECEIVED', 'DEFERRED')),"
    " (SELECT min(received_at) FROM webhook_inbox WHERE status IN ('DEFERRED', 'FAILED')))"
)


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance run changed.

    :param created: partitions created, by name (``ad_stats_raw_p202603``).
    :param moved_rows: for created partitions that took rows over from their table's
        default partition, how many rows moved.
    :param dropped: partitions dropped because their whole month is past retention.
    :param held_back: inbox partitions past retention that were kept because a delivery
        in them (or in a later month) still waits or is parked for an operator.
    """

    created: tuple[str, ...] = ()
    moved_rows: dict[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    held_back: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the run changed anything (a second run on the same day does not)."""
        return bool(self.created or self.dropped)


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _month_partitions_before(
    conn: psycopg.Connection[tuple[object, ...]], table: str, before: date
) -> list[str]:
    """Monthly partitions (``<table>_pYYYYMM``) of ``table`` whose month ends by ``before``."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass AND c.relname ~ '_p[0-9]{6}$' ORDER BY 1",
        (table,),
    ).fetchall()
    names = [str(name) for (name,) in rows]
    return [
        name
        for name in names
        if add_months(datetime.strptime(name[-6:], "%Y%m").date(), 1) <= before
    ]


def _inbox_cutoff(conn: psycopg.Connection[tuple[object, ...]], retention_cutoff: date) -> date:
    """The retention cutoff, moved back to the month of the oldest unsettled delivery."""
    conn.execute("SELECT set_config('pixecom.unscoped_rows', 'on', true)")
    row = conn.execute(_OLDEST_UNSETTLED_DELIVERY).fetchone()
    conn.execute("SELECT set_config('pixecom.unscoped_rows', 'off', true)")
    oldest = row[0] if row is not None else None
    if not isinstance(oldest, datetime):
        return retention_cutoff
    return min(retention_cutoff, add_months(oldest.astimezone(UTC).date(), 0))


def maintain_partitions(
    owner_dsn: str,
    *,
    months_ahead: int,
    raw_retention_days: int,
    inbox_retention_days: int,
    today: date | None = None,
    lock_timeout_ms: int = 10_000,
) -> MaintenanceReport:
    """Create, fill and drop monthly partitions of every partitioned table.

    For each table in :data:`pixecom_core.models.PARTITIONED_TABLES` this ensures the
    partitions from ``today``'s month to ``months_ahead`` months later exist, plus one for
    every month that has rows waiting in the table's default partition (rows are moved
    into the new partition in the same transaction: nothing is lost). Then it drops the
    ``ad_stats_raw`` partitions whose whole month ended at least ``raw_retention_days``
    before ``today``, and the ``webhook_inbox`` partitions whose whole month ended at
    least ``inbox_retention_days`` before it, except from the month of the oldest
    delivery still ``RECEIVED``, ``DEFERRED`` or ``FAILED`` on (those are reported as
    held back); no other table loses data. Idempotent: a second run the same day changes
    nothing. Everything happens in one transaction.

    :param owner_dsn: conninfo of the schema owner.
    :param months_ahead: how many months after the current one must exist.
    :param raw_retention_days: age past which raw fetches are dropped (default setting 90).
    :param inbox_retention_days: age past which webhook deliveries are dropped (default
        setting 180).
    :param today: the reference day (UTC today when omitted); tests pass their own.
    :param lock_timeout_ms: give up rather than queue behind a long transaction while
        blocking everyone behind the maintenance's own locks; the next run retries.
    """
    if months_ahead < 0:
        raise ValueError("months_ahead must be >= 0")
    if raw_retention_days < 1:
        raise ValueError("raw_retention_days must be >= 1")
    if inbox_retention_days < 1:
        raise ValueError("inbox_retention_days must be >= 1")
    day = today or datetime.now(UTC).date()
    window_start = add_months(day, 0)
    window_end = add_months(day, months_ahead)

    created: list[str] = []
    moved: dict[str, int] = {}
    dropped: list[str] = []
    with psycopg.connect(owner_dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
        for table in PARTITIONED_TABLES:
            rows = conn.execute(
                "SELECT partition_name, moved_rows"
                " FROM pixecom_ensure_partitions(%s::regclass, %s, %s)",
                (table, window_start, window_end),
            ).fetchall()
            for name, moved_rows in rows:
                created.append(name)
                if moved_rows:
                    moved[name] = moved_rows
        cutoffs = {table: day - timedelta(days=raw_retention_days) for table in RETAINED_TABLES}
        inbox_retention_cutoff = day - timedelta(days=inbox_retention_days)
        cutoffs[INBOX_TABLE] = _inbox_cutoff(conn, inbox_retention_cutoff)
        for table, cutoff in cutoffs.items():
            rows = conn.execute(
                "SELECT pixecom_drop_partitions_before(%s::regclass, %s)", (table, cutoff)
            ).fetchall()
            dropped.extend(name for (name,) in rows)
        held_back = _month_partitions_before(conn, INBOX_TABLE, inbox_retention_cutoff)
    return MaintenanceReport(
        created=tuple(created),
        moved_rows=moved,
        dropped=tuple(dropped),
        held_back=tuple(held_back),
    )
