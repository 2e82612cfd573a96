"""The sync run log: one ``sync_runs`` row per run of a seller's sync job.

A row is opened when a job has taken the seller's lock and closed with the job's outcome.
Several workers share the queues (SCALE-2), so this is how an operator sees that
each seller synced once per cycle, and which runs a dying worker cut short (never
finished; the redelivered task records its own run). Old rows are pruned per seller as
new runs finish, so the table stays bounded without a maintenance job.

A run whose job ended but cut some ad accounts off at their own timeout
(``sync_account_timeout_seconds``, issue 18 item 3) says so in its outcome: ``done (2 of
12 accounts timed out)``; those accounts carry the timeout as their last error and are
tried again next cycle.
"""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.settings import Settings
from pixecom_core.stats.sync import AccountOutcome, SellerSync
from pixecom_core.tenancy import open_seller_scope

_START = text(
    "INSERT INTO sync_runs (seller_id, task_id, days_back, worker)"
    " VALUES (:seller_id, :task_id, :days_back, :worker) RETURNING id"
)
_FINISH = text(
    "UPDATE sync_runs SET finished_at = now(), outcome = :outcome"
    " WHERE seller_id = :seller_id AND id = :id"
)
_PRUNE = text(
    "DELETE FROM sync_runs WHERE seller_id = :seller_id"
    " AND started_at < now() - make_interval(days => :days)"
)


def run_outcome(job_outcome: str, sync: SellerSync | None) -> str:
    """What a run's ``outcome`` records: the job's outcome, and how many of the seller's
    ad accounts the sync cut off at their own timeout, if any."""
    if sync is None:
        return job_outcome
    timed_out = sum(a.outcome is AccountOutcome.TIMED_OUT for a in sync.accounts)
    if not timed_out:
        return job_outcome
    return f"{job_outcome} ({timed_out} of {len(sync.accounts)} accounts timed out)"


def worker_name() -> str:
    """``host:pid`` of this process, as recorded on its runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SyncRunLog:
    """Opens and closes ``sync_runs`` rows.

    :param sessions: app-role session factory. Every row is written in its seller's scope:
        ``sync_runs`` has forced row-level security like the seller's own tables
        (migration 0010, issue 12 item 3).
    :param settings: ``sync_run_retention_days``: runs older than this are deleted when
        a seller's run finishes; the scope's timeouts.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._retention_days = settings.sync_run_retention_days
        self._worker = worker_name()

    async def start(self, seller_id: uuid.UUID, *, task_id: str, days_back: int) -> int:
        """Record that a run of ``seller_id``'s sync started; return the run's id."""
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            started = await scope.session.execute(
                _START,
                {
                    "seller_id": seller_id,
                    "task_id": task_id,
                    "days_back": days_back,
                    "worker": self._worker,
                },
            )
            run_id = started.scalar_one()  # INSERT … RETURNING id: exactly one row
        return int(run_id)

    async def finish(self, seller_id: uuid.UUID, run_id: int, outcome: str) -> None:
        """Record how the run ended, and prune the seller's runs past retention."""
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                _FINISH, {"seller_id": seller_id, "id": run_id, "outcome": outcome}
            )
            await scope.session.execute(
                _PRUNE, {"seller_id": seller_id, "days": self._retention_days}
            )
