"""Owner-side database operations shared by ``pixecom db …`` and ``pixecom dev``.

Both run as the schema owner (``DATABASE_URL``): the API and worker connect as the
application role, which owns nothing and so cannot migrate or create partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pixecom_core.db import admin, partitions, retention
from pixecom_core.db.partitions import MaintenanceReport
from pixecom_core.db.retention import PruneReport
from pixecom_core.db.urls import owner_conninfo
from pixecom_core.settings import Settings
from reference_app.worker.stream_retention import StreamTrim, trim_queue_streams


def migrate(settings: Settings, *, revision: str = "head") -> None:
    """Create the application role (if missing) and migrate the schema to ``revision``.

    The role comes first because migrations grant privileges to it.
    """
    owner_dsn = owner_conninfo(settings)
    password = settings.app_role_password
    admin.ensure_app_role(
        owner_dsn,
        role=settings.app_role,
        password=password.get_secret_value() if password is not None else None,
        statement_timeout_ms=settings.statement_timeout_ms,
        lock_timeout_ms=settings.lock_timeout_ms,
    )
    admin.upgrade(owner_dsn, app_role=settings.app_role, revision=revision)


def maintain_partitions(
    settings: Settings,
    *,
    months_ahead: int | None = None,
    raw_retention_days: int | None = None,
    inbox_retention_days: int | None = None,
    today: datetime | None = None,
) -> MaintenanceReport:
    """Create monthly partitions ahead; drop raw-stats and inbox partitions past retention.

    Defaults come from ``PIXECOM_PARTITION_MONTHS_AHEAD``,
    ``PIXECOM_RAW_STATS_RETENTION_DAYS`` and ``PIXECOM_WEBHOOK_INBOX_RETENTION_DAYS``.
    """
    return partitions.maintain_partitions(
        owner_conninfo(settings),
        months_ahead=months_ahead if months_ahead is not None else settings.partition_months_ahead,
        raw_retention_days=(
            raw_retention_days
            if raw_retention_days is not None
            else settings.raw_stats_retention_days
        ),
        inbox_retention_days=(
            inbox_retention_days
            if inbox_retention_days is not None
            else settings.webhook_inbox_retention_days
        ),
        today=today.astimezone(UTC).date() if today is not None else None,
    )


@dataclass(frozen=True)
class DailyMaintenance:
    """What ``pixecom db maintain`` did: partitions, job records, queue streams."""

    partitions: MaintenanceReport
    pruned: PruneReport
    #: One entry per queue stream; empty when no Redis is configured.
    streams: tuple[StreamTrim, ...]

    @property
    def changed(self) -> bool:
        """Whether anything was created, dropped, deleted or trimmed."""
        return (
            self.partitions.changed
            or self.pruned.changed
            or any(stream.trimmed for stream in self.streams)
        )


def maintain(
    settings: Settings,
    *,
    months_ahead: int | None = None,
    raw_retention_days: int | None = None,
    inbox_retention_days: int | None = None,
    now: datetime | None = None,
) -> DailyMaintenance:
    """The daily maintenance (issue 18 item 5: nothing grows without bound).

    Partitions (:func:`maintain_partitions`), then resolved dead letters and old sync runs
    (``PIXECOM_DEAD_LETTER_RETENTION_DAYS``, ``PIXECOM_SYNC_RUN_RETENTION_DAYS``), then the
    queue streams' acknowledged entries (``PIXECOM_QUEUE_RETENTION_DAYS``) when Redis is
    configured. Idempotent: a second run at the same time changes nothing.

    :param now: the reference time (now, UTC, when omitted); tests pass their own.
    """
    at = now or datetime.now(UTC)
    report = maintain_partitions(
        settings,
        months_ahead=months_ahead,
        raw_retention_days=raw_retention_days,
        inbox_retention_days=inbox_retention_days,
        today=at,
    )
    pruned = retention.prune_job_records(
        owner_conninfo(settings),
        dead_letter_retention_days=settings.dead_letter_retention_days,
        sync_run_retention_days=settings.sync_run_retention_days,
        now=at,
    )
    streams = tuple(trim_queue_streams(settings, now=at)) if settings.redis_url else ()
    return DailyMaintenance(partitions=report, pruned=pruned, streams=streams)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def describe_maintenance(report: MaintenanceReport) -> list[str]:
    """Lines saying which partitions maintenance created, filled and dropped."""
    held_back = [
        f"kept {_count(len(report.held_back), 'inbox partition')} past retention: a"
        " delivery in it or later still waits or is parked (`pixecom webhooks failed`)",
        *(f"  {name}" for name in report.held_back),
    ]
    if not report.changed and not report.moved_rows:
        if report.held_back:
            return ["nothing to do: every partition needed already exists", *held_back]
        return ["nothing to do: every partition needed already exists, none is past retention"]
    lines = [f"created {_count(len(report.created), 'partition')}"]
    lines.extend(f"  {name}" for name in report.created)
    if report.moved_rows:
        moved = sum(report.moved_rows.values())
        lines.append(
            f"moved {_count(moved, 'row')} out of default partitions into "
            f"{_count(len(report.moved_rows), 'partition')}"
        )
        lines.extend(f"  {name}: {rows}" for name, rows in report.moved_rows.items())
    lines.append(f"dropped {_count(len(report.dropped), 'partition')} past retention")
    lines.extend(f"  {name}" for name in report.dropped)
    if report.held_back:
        lines.extend(held_back)
    return lines


def describe_daily_maintenance(result: DailyMaintenance) -> list[str]:
    """Lines saying what the daily maintenance changed, with counts."""
    lines = describe_maintenance(result.partitions)
    lines.append(
        f"deleted {_count(result.pruned.dead_letters, 'resolved dead letter')} and "
        f"{_count(result.pruned.sync_runs, 'sync run')} past retention"
    )
    if not result.streams:
        lines.append("queue streams: not trimmed (REDIS_URL is not set)")
    for stream in result.streams:
        if stream.floor is None:
            lines.append(
                f"queue stream {stream.stream}: left alone (no stream or consumer group yet)"
            )
        else:
            lines.append(
                f"queue stream {stream.stream}: trimmed {stream.trimmed}"
                f" entr{'y' if stream.trimmed == 1 else 'ies'}"
                f" (kept from {stream.floor})"
            )
    return lines
