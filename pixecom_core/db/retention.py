"""Job bookkeeping pruned by age: resolved dead letters and old sync runs.

Issue 18 item 5 ("nothing grows without bound"). Both tables are job bookkeeping with
forced row-level security (migration 0010); this runs as the schema owner, across sellers,
through 0010's ``owner_unscoped_rows`` policy (the setting ``pixecom.unscoped_rows`` is on
for each batch's transaction only).

What is kept, and why:

- ``dead_letters``: every open one (``resolved_at`` NULL), however old: an operator still
  has to act on it (``pixecom jobs dead-letters``, ``GET /problems``). A resolved one is
  deleted once it was resolved ``dead_letter_retention_days`` ago.
- ``sync_runs``: runs started within ``sync_run_retention_days``. The worker already
  prunes a seller's old runs when one of its runs finishes; this catches the sellers that
  stopped syncing (disconnected, paused), whose rows nothing else would delete. No code
  reads a seller's latest run from here (an account's sync state is
  ``ad_accounts.last_synced_at``), so none is kept past the age.

Rows go in batches of at most ``batch_size``, each its own short transaction, so no
statement holds locks on many rows for long and a concurrent writer waits for one batch
at most (SCALE-4: nothing unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

_DELETE_RESOLVED_DEAD_LETTERS = """
    WITH doomed AS (
        SELECT id FROM dead_letters
         WHERE resolved_at IS NOT NULL AND resolved_at < %(cutoff)s
         ORDER BY id
         LIMIT %(batch)s
    )
    DELETE FROM dead_letters AS d USING doomed WHERE d.id = doomed.id
"""
_DELETE_OLD_SYNC_RUNS = """
    WITH doomed AS (
        SELECT seller_id, id FROM sync_runs
         WHERE started_at < %(cutoff)s
         LIMIT %(batch)s
    )
    DELETE FROM sync_runs AS r USING doomed
     WHERE r.seller_id = doomed.seller_id AND r.id = doomed.id
"""


@dataclass(frozen=True)
class PruneReport:
    """How many rows one pruning run deleted, per table."""

    dead_letters: int = 0
    sync_runs: int = 0

    @property
    def changed(self) -> bool:
        """Whether any row was deleted (a second run at the same time deletes none)."""
        return bool(self.dead_letters or self.sync_runs)


def _delete_in_batches(
    conn: psycopg.Connection[tuple[object, ...]],
    statement: str,
    *,
    cutoff: datetime,
    batch_size: int,
    lock_timeout_ms: int,
) -> int:
    deleted = 0
    while True:
        with conn.transaction():
            conn.execute(
                "SELECT set_config('lock_timeout', %s, true),"
                " set_config('pixecom.unscoped_rows', 'on', true)",
                (f"{lock_timeout_ms}ms",),
            )
            batch = conn.execute(statement, {"cutoff": cutoff, "batch": batch_size}).rowcount
        deleted += batch
        if batch < batch_size:
            return deleted


def prune_job_records(
    owner_dsn: str,
    *,
    dead_letter_retention_days: int,
    sync_run_retention_days: int,
    now: datetime | None = None,
    batch_size: int = 5_000,
    lock_timeout_ms: int = 10_000,
) -> PruneReport:
    """Delete resolved dead letters and sync runs past their retention, in batches.

    :param owner_dsn: conninfo of the schema owner.
    :param dead_letter_retention_days: a resolved dead letter goes this long after it was
        resolved; open ones stay.
    :param sync_run_retention_days: a sync run goes this long after it started.
    :param now: the reference time (now, UTC, when omitted); tests pass their own.
    :param batch_size: rows per transaction.
    :param lock_timeout_ms: a batch that cannot get its row locks gives up (the next run
        retries) rather than queueing.
    """
    if dead_letter_retention_days < 1 or sync_run_retention_days < 1:
        raise ValueError("retention periods must be at least one day")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    at = now or datetime.now(UTC)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        dead_letters = _delete_in_batches(
            conn,
            _DELETE_RESOLVED_DEAD_LETTERS,
            cutoff=at - timedelta(days=dead_letter_retention_days),
            batch_size=batch_size,
            lock_timeout_ms=lock_timeout_ms,
        )
        sync_runs = _delete_in_batches(
            conn,
            _DELETE_OLD_SYNC_RUNS,
            cutoff=at - timedelta(days=sync_run_retention_days),
            batch_size=batch_size,
            lock_timeout_ms=lock_timeout_ms,
        )
    return PruneReport(dead_letters=dead_letters, sync_runs=sync_runs)
