"""Running syncs as jobs: one at a time per seller, bounded in time, never lost silently.

SCALE-5 ("what happens if a job runs longer than 5 minutes", "no distributed locks"):

- a per-seller Redis lock (redis-py's ``Lock``, shared by every worker process) means two
  syncs of one seller never overlap; a sync that finds the lock held is skipped, not
  queued behind it — the next cycle's sync reads the same days. The daily restatement
  sweep (a job reading more than ``sync_window_days``) is the exception: its slot is claimed
  for the day and no later job reads its older days, so it waits for the running sync,
  which holds the lock no longer than its own bound;
- the whole job, retries included, is bounded by ``stats_task_timeout_seconds``; a job cut
  off there is stopped and recorded;
- a job that raises is retried with exponential backoff, and after
  ``stats_task_attempts`` it is parked as a dead letter (``dead_letters``) with its error.

Tiers (SCALE-5, "priority queue based on seller tier / ad spend"): after a successful
sync the seller's tier is recomputed from its trailing 7-day spend as the day roll-up
converted it into its reporting currency (``seller_stats_daily``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.models.sellers import SellerTier
from pixecom_core.settings import Settings
from pixecom_core.stats.currency import minor_per_major_sql
from pixecom_core.stats.runs import SyncRunLog, run_outcome
from pixecom_core.stats.sync import SellerSync, StatsSync
from pixecom_core.tenancy import open_seller_scope

_log = logging.getLogger(__name__)

SYNC_TASK = "pixecom.sync_seller"

#: Records (or refreshes) a dead letter; in the seller's scope (``dead_letters`` has forced RLS).
RECORD_DEAD_LETTER = text(
    """
    INSERT INTO dead_letters (task_name, task_id, seller_id, arguments, error, attempts)
    VALUES (:task_name, :task_id, :seller_id, CAST(:arguments AS jsonb), :error, :attempts)
    ON CONFLICT (task_name, task_id) DO UPDATE
       SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now(),
           resolved_at = NULL
    """
)

# Trailing average daily spend over the last 7 days, in the reporting currency's major
# units: the seller's days as the roll-up converted them (issue 16: every account, each
# day at its own rate, cross rates included — a GBP account of a USD seller counts).
_TRAILING_SPEND = text(
    f"""
    SELECT coalesce(sum(d.spend_minor), 0)::numeric
           / {minor_per_major_sql("min(s.reporting_currency)")} / 7 AS daily
      FROM sellers AS s
      LEFT JOIN seller_stats_daily AS d
        ON d.seller_id = s.id AND d.stat_date > CURRENT_DATE - 7
     WHERE s.id = :seller_id
    """
)
_SET_TIER = text("UPDATE sellers SET tier = :tier WHERE id = :seller_id AND tier <> :tier")


class JobOutcome(StrEnum):
    """How a sync job ended."""

    DONE = "done"
    SKIPPED_RUNNING = "skipped_running"
    TIMED_OUT = "timed_out"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class JobResult:
    """A sync job's outcome, and the sync's own result when it ran to the end."""

    outcome: JobOutcome
    sync: SellerSync | None = None
    error: str | None = None


async def take_over_lock(client: redis.Redis, lock: Lock, task_id: str) -> bool:
    """Whether ``lock`` is held under this task's own id (an earlier delivery of the task
    died holding it); if so, refresh it for this delivery. Job locks take the task id as
    their token, so a redelivered job is not locked out by its dead predecessor."""
    token = task_id.encode()
    if await client.get(lock.name) != token:
        return False
    lock.local.token = token
    try:
        await lock.reacquire()
    except LockError:  # expired or taken between the two calls
        return False
    _log.warning("task %s redelivered: taking over its dead predecessor's lock", task_id)
    return True


#: What a waiting sweep leaves between its wait plus its own bound and the queue's
#: redelivery of an unacknowledged task.
SWEEP_LOCK_WAIT_MARGIN_SECONDS = 30.0


def tier_for(daily_spend: float, settings: Settings) -> SellerTier:
    """The tier a trailing daily spend puts a seller in."""
    if daily_spend >= settings.tier_high_daily_spend:
        return SellerTier.HIGH
    if daily_spend >= settings.tier_medium_daily_spend:
        return SellerTier.MEDIUM
    return SellerTier.LOW


class SyncJobs:
    """Runs :meth:`StatsSync.sync_seller` under the job rules above.

    :param client: the Redis shared by every worker (locks).
    :param sessions: app-role session factory (dead letters, run log and tiers, each
        written in the seller's scope).
    """

    def __init__(
        self,
        stats_sync: StatsSync,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: redis.Redis,
        *,
        backoff_base_seconds: float = 2.0,
    ) -> None:
        self._sync = stats_sync
        self._sessions = sessions
        self._settings = settings
        self._redis = client
        self._backoff = backoff_base_seconds
        self.runs = SyncRunLog(sessions, settings)

    def lock_name(self, seller_id: uuid.UUID) -> str:
        """The Redis key of a seller's sync lock."""
        return f"{self._settings.redis_key_prefix}lock:sync:{seller_id}"

    async def run(self, seller_id: uuid.UUID, *, days_back: int, task_id: str) -> JobResult:
        """Sync ``seller_id`` unless a sync of it is running; see the module docstring."""
        settings = self._settings
        lock = self._redis.lock(
            self.lock_name(seller_id),
            # Held at most the job's own bound (plus a margin): a worker that died
            # mid-sync cannot block the seller for longer.
            timeout=settings.stats_task_timeout_seconds + 30,
            blocking=False,
        )
        # The lock's token is the task id: a task redelivered because its worker died
        # holding the lock (SCALE-2: a killed worker loses no task) finds its
        # own token there and takes the lock over instead of being skipped until it expires.
        if not await self._acquire(lock, days_back=days_back, task_id=task_id):
            _log.info("sync of %s skipped: another sync of this seller is running", seller_id)
            return JobResult(JobOutcome.SKIPPED_RUNNING)
        result: JobResult | None = None
        run_id: int | None = None
        try:
            run_id = await self.runs.start(seller_id, task_id=task_id, days_back=days_back)
            async with asyncio.timeout(settings.stats_task_timeout_seconds):
                result = await self._attempts(seller_id, days_back=days_back, task_id=task_id)
                return result
        except TimeoutError:
            error = f"stopped after {settings.stats_task_timeout_seconds:g} s (job timeout)"
            await self._dead_letter(seller_id, days_back, task_id, error, attempts=1)
            result = JobResult(JobOutcome.TIMED_OUT, error=error)
            return result
        finally:
            try:
                # No result: the job was cancelled (worker stopping) or failed outside
                # its attempts; its run is closed as interrupted.
                outcome = (
                    run_outcome(result.outcome.value, result.sync) if result else "interrupted"
                )
                if run_id is not None:
                    await self.runs.finish(seller_id, run_id, outcome)
            except Exception:  # bookkeeping must not keep the lock held
                _log.exception("could not record the end of sync run %s", run_id)
            try:
                await lock.release()
            except Exception:  # expired meanwhile: nothing to release
                _log.warning("sync lock of %s had already expired", seller_id)

    async def _acquire(self, lock: Lock, *, days_back: int, task_id: str) -> bool:
        """Take the seller's lock for this job: at once for a regular sync, waiting for the
        running sync for a sweep (see the module docstring)."""
        if await lock.acquire(token=task_id) or await take_over_lock(self._redis, lock, task_id):
            return True
        settings = self._settings
        if days_back <= settings.sync_window_days:
            return False
        # The running sync releases the lock within its bound (the lock expires then at the
        # latest); the wait ends early enough that this job, bounded too, is over before
        # the queue would deliver it again to another worker.
        wait = settings.worker_redelivery_after_seconds - settings.stats_task_timeout_seconds
        wait -= SWEEP_LOCK_WAIT_MARGIN_SECONDS
        if wait <= 0:
            return False
        _log.info("sweep of %s waits up to %.0f s for the running sync", lock.name, wait)
        return bool(await lock.acquire(token=task_id, blocking=True, blocking_timeout=wait))

    async def _attempts(self, seller_id: uuid.UUID, *, days_back: int, task_id: str) -> JobResult:
        attempts = self._settings.stats_task_attempts
        for attempt in range(1, attempts + 1):
            try:
                result = await self._sync.sync_seller(seller_id, days_back=days_back)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                _log.warning(
                    "sync of %s failed (attempt %s/%s): %s", seller_id, attempt, attempts, error
                )
                if attempt == attempts:
                    await self._dead_letter(seller_id, days_back, task_id, error, attempts)
                    return JobResult(JobOutcome.DEAD_LETTER, error=error)
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
                continue
            await self.update_tier(seller_id)
            return JobResult(JobOutcome.DONE, sync=result)
        raise AssertionError("unreachable")

    async def update_tier(self, seller_id: uuid.UUID) -> SellerTier:
        """Recompute the seller's tier from its trailing spend; return it."""
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            daily = await scope.session.scalar(_TRAILING_SPEND, {"seller_id": seller_id})
            tier = tier_for(float(daily or 0), self._settings)
            await scope.session.execute(_SET_TIER, {"seller_id": seller_id, "tier": tier.value})
        return tier

    async def _dead_letter(
        self, seller_id: uuid.UUID, days_back: int, task_id: str, error: str, attempts: int
    ) -> None:
        # In the seller's scope: dead_letters has forced row-level security (migration
        # 0010); the seller reads it in GET /problems, operators through `pixecom jobs`.
        async with open_seller_scope(self._sessions, seller_id, self._settings) as scope:
            await scope.session.execute(
                RECORD_DEAD_LETTER,
                {
                    "task_name": SYNC_TASK,
                    "task_id": task_id,
                    "seller_id": seller_id,
                    "arguments": json.dumps({"seller_id": str(seller_id), "days_back": days_back}),
                    "error": error[:4000],
                    "attempts": attempts,
                },
            )
