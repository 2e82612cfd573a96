"""Owner-side database operations shared by ``pixecom db …`` and ``pixecom dev``.

Both run as the schema owner (``DATABASE_URL``): the API and worker connect as the
application role, which owns nothing and so cannot migrate or create partitions.
"""

from __future__ import annotations

from pixecom_core.db import admin, partitions
from pixecom_core.db.partitions import MaintenanceReport
from pixecom_core.db.urls import owner_conninfo
from pixecom_core.settings import Settings


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
) -> MaintenanceReport:
    """Create monthly partitions ahead and drop raw-stats partitions past retention.

    Defaults come from ``PIXECOM_PARTITION_MONTHS_AHEAD`` and
    ``PIXECOM_RAW_STATS_RETENTION_DAYS``.
    """
    return partitions.maintain_partitions(
        owner_conninfo(settings),
        months_ahead=months_ahead if months_ahead is not None else settings.partition_months_ahead,
        raw_retention_days=(
            raw_retention_days
            if raw_retention_days is not None
            else settings.raw_stats_retention_days
        ),
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def describe_maintenance(report: MaintenanceReport) -> list[str]:
    """Lines saying which partitions maintenance created, filled and dropped."""
    if not report.changed and not report.moved_rows:
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
    return lines
