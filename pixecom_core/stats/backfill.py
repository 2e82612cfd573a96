"""History backfill: when an ad account is connected, its recent past is fetched too.

Issue 14 item 4. A regular sync reads the last few days (:mod:`pixecom_core.stats.sync`);
a seller who connects an account also wants the weeks before it. The backfill covers
the last ``backfill_days`` days (28 by default) **ending yesterday** in the account's time
zone: today is still growing and belongs to the regular syncs, which read it every cycle;
every day of the window is closed, so a finished backfill stays finished. The window is at
most 1095 days (``Settings.backfill_days``' bound), inside the 37 months of history Meta
keeps: a longer window would be refused by the network, not fetched.

The window is stored on the account (``backfill_since``, ``backfill_until``) and worked
through from its first day in chunks of ``backfill_chunk_days`` (7); after each chunk
``backfill_done_through`` moves to the chunk's last day, which is all the API needs to
show ``backfilling`` and its progress. A chunk goes through the same code path as a
regular sync (:meth:`StatsSync.sync_account_days`: fetch at three levels, ingest, adopt
the latest snapshot, zero what the network no longer reports, re-aggregate the sellpage
days), so re-running a chunk replaces snapshots and never adds to them. A throttled or
failed chunk does not advance; a refused token marks the account for reconnection, as a
regular sync does.

Jobs (:class:`BackfillJobs`): one chunk per job, under a per-account Redis lock — never
the seller's sync lock, so a regular sync is never skipped because a backfill runs — on a
queue of its own (the reference app's ``backfill`` queue), so backfills never delay the
tier queues. A job that finished a chunk hands the backfill on to the next job; which job
carries it on is recorded in Redis (the *baton*), so a duplicated kick does not fork the
backfill into two. A job lost with its worker is delivered again by the broker; if even
that is lost, the baton expires after ``backfill_stall_seconds`` and the scheduler's sweep
(:func:`backfills_to_resume`, :func:`claim_stalled`) queues the backfill
again from where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import redis.asyncio as redis
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, or_

from pixecom_core.models.ads import AdAccount
from pixecom_core.settings import Settings
from pixecom_core.stats.jobs import take_over_lock
from pixecom_core.stats.sync import AccountOutcome, DayWindow, StatsSync
from pixecom_core.tenancy import SellerContext

_log = logging.getLogger(__name__)

BACKFILL_TASK = "pixecom.backfill_account"

_RESUMABLE = text(
    "SELECT seller_id, ad_account_id FROM pixecom_backfills_to_resume(:after, :max_rows)"
)
#: Accounts the sweep reads per call of the owner function.
RESUME_PAGE = 500


class ChunkOutcome(StrEnum):
    """What one backfill chunk did."""

    #: The chunk's days were fetched and adopted; ``done_through`` moved on.
    ADVANCED = "advanced"
    #: Nothing was left to fetch: the backfill is complete.
    DONE = "done"
    #: The network asked to wait; nothing advanced.
    THROTTLED = "throttled"
    #: The network failed (or the account's network is not installed); nothing advanced.
    FAILED = "failed"
    #: The token was refused: the account waits for its seller to reconnect it.
    NEEDS_RECONNECT = "needs_reconnect"
    #: The account is not synced (paused, disconnected, no token) or does not exist.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class BackfillChunk:
    """One chunk's outcome: the days it covered and how far the backfill now is."""

    outcome: ChunkOutcome
    window: DayWindow | None = None
    done_through: date | None = None
    #: The whole window is fetched.
    complete: bool = False
    retry_after_seconds: float | None = None
    error: str | None = None


def backfill_window(timezone: str, days: int, now: datetime) -> DayWindow:
    """The last ``days`` closed days of ``timezone`` at ``now``: ending yesterday."""
    yesterday = now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)
    return DayWindow(yesterday - timedelta(days=days - 1), yesterday)


def next_chunk(
    since: date, until: date, done_through: date | None, chunk_days: int
) -> DayWindow | None:
    """The ``chunk_days`` days after ``done_through`` (from ``since`` when nothing is
    done), cut at ``until``; ``None`` once ``until`` is done."""
    first = since if done_through is None else max(since, done_through + timedelta(days=1))
    if first > until:
        return None
    return DayWindow(first, min(until, first + timedelta(days=chunk_days - 1)))


async def plan_backfill(
    context: SellerContext,
    ad_account_id: uuid.UUID,
    *,
    days: int,
    now: datetime | None = None,
    replan: bool = False,
    catch_up: bool = False,
) -> DayWindow | None:
    """Store the backfill window of an account (see :func:`backfill_window`), with nothing
    done yet, and return it; ``None`` when the seller has no such account.

    An account that has a window keeps it and its progress, unless ``replan``. The connect
    flow plans right away, so ``GET /ad-accounts`` shows ``backfilling`` at once;
    otherwise the first job plans.

    ``catch_up`` is for a *reconnected* account (issue 14: "reconnecting resumes syncing
    with no gap"): the days since its last regular sync were not fetched while its token
    was refused, so the window becomes those days through yesterday (at most ``days``) —
    an unfinished window is only stretched to yesterday, keeping its progress. Days fetched
    twice are adopted as the same snapshots: nothing is counted twice.
    """
    now = now or datetime.now(UTC)
    async with context.scope() as scope:
        account = await scope.session.scalar(
            select(AdAccount)
            .where(
                col(AdAccount.seller_id) == context.seller_id, col(AdAccount.id) == ad_account_id
            )
            .with_for_update()
        )
        if account is None:
            return None
        planned = account.backfill_since is not None and account.backfill_until is not None
        full = backfill_window(account.timezone, days, now)
        if catch_up and planned and account.last_synced_at is not None:
            assert account.backfill_since is not None and account.backfill_until is not None
            unfinished = (
                account.backfill_done_through is None
                or account.backfill_done_through < account.backfill_until
            )
            if unfinished:
                account.backfill_until = max(account.backfill_until, full.until)
                return DayWindow(account.backfill_since, account.backfill_until)
            zone = ZoneInfo(account.timezone)
            missed_since = max(account.last_synced_at.astimezone(zone).date(), full.since)
            if missed_since > full.until:
                return DayWindow(account.backfill_since, account.backfill_until)
            window = DayWindow(missed_since, full.until)
        elif planned and not replan:
            assert account.backfill_since is not None and account.backfill_until is not None
            return DayWindow(account.backfill_since, account.backfill_until)
        else:
            window = full
        account.backfill_since = window.since
        account.backfill_until = window.until
        account.backfill_done_through = None
    return window


async def backfill_chunk(
    stats_sync: StatsSync,
    context: SellerContext,
    ad_account_id: uuid.UUID,
    *,
    chunk_days: int,
    now: datetime | None = None,
) -> BackfillChunk:
    """Fetch the next ``chunk_days`` days of an account's planned backfill through the
    regular sync's code path, then advance ``backfill_done_through`` to the chunk's last
    day. Only a chunk that synced advances; running one again changes no total (the
    same snapshots are adopted again). An account without a plan is ``SKIPPED``.
    """
    now = now or datetime.now(UTC)
    async with context.scope() as scope:
        account = await scope.session.scalar(
            select(AdAccount).where(
                col(AdAccount.seller_id) == context.seller_id, col(AdAccount.id) == ad_account_id
            )
        )
    if account is None or account.backfill_since is None or account.backfill_until is None:
        return BackfillChunk(ChunkOutcome.SKIPPED)
    since, until = account.backfill_since, account.backfill_until
    window = next_chunk(since, until, account.backfill_done_through, chunk_days)
    if window is None:
        return BackfillChunk(
            ChunkOutcome.DONE, done_through=account.backfill_done_through, complete=True
        )
    sync = await stats_sync.sync_account_days(context.seller_id, ad_account_id, window, now=now)
    [result] = sync.accounts
    if result.outcome is not AccountOutcome.SYNCED:
        outcome = {
            AccountOutcome.THROTTLED: ChunkOutcome.THROTTLED,
            AccountOutcome.NEEDS_RECONNECT: ChunkOutcome.NEEDS_RECONNECT,
            AccountOutcome.FAILED: ChunkOutcome.FAILED,
            AccountOutcome.SKIPPED: ChunkOutcome.SKIPPED,
        }[result.outcome]
        return BackfillChunk(
            outcome,
            window=window,
            done_through=account.backfill_done_through,
            retry_after_seconds=result.retry_after_seconds,
            error=result.error,
        )
    async with context.scope() as scope:
        # Only forward, and only within the plan this chunk was cut from (a plan made
        # meanwhile starts over on its own).
        await scope.session.execute(
            update(AdAccount)
            .where(
                col(AdAccount.seller_id) == context.seller_id,
                col(AdAccount.id) == ad_account_id,
                col(AdAccount.backfill_since) == since,
                col(AdAccount.backfill_until) == until,
                or_(
                    col(AdAccount.backfill_done_through).is_(None),
                    col(AdAccount.backfill_done_through) < window.until,
                ),
            )
            .values(backfill_done_through=window.until)
        )
    return BackfillChunk(
        ChunkOutcome.ADVANCED,
        window=window,
        done_through=window.until,
        complete=window.until >= until,
    )


async def backfills_to_resume(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[uuid.UUID, uuid.UUID]]:
    """(seller id, ad account id) of every incomplete backfill of an account that can
    sync, one page at a time. Every seller's accounts: read through the owner function
    ``pixecom_backfills_to_resume`` (migration 0014), which answers ids only."""
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(_RESUMABLE, {"after": after, "max_rows": RESUME_PAGE})
            ).all()
        for row in rows:
            yield row.seller_id, row.ad_account_id
        if len(rows) < RESUME_PAGE:
            return
        after = rows[-1].ad_account_id


def baton_key(settings: Settings, ad_account_id: uuid.UUID) -> str:
    """The Redis key naming the job that carries an account's backfill on."""
    return f"{settings.redis_key_prefix}backfill:{ad_account_id}"


async def claim_stalled(
    client: redis.Redis, settings: Settings, ad_account_id: uuid.UUID
) -> str | None:
    """A new task id to queue an account's backfill under when no job carries it on
    (its baton expired: the job was lost, or the wait after a throttle or failure is
    over); ``None`` while one does."""
    task_id = uuid.uuid4().hex
    claimed = await client.set(
        baton_key(settings, ad_account_id), task_id, nx=True, ex=settings.backfill_stall_seconds
    )
    return task_id if claimed else None


class JobOutcome(StrEnum):
    """How a backfill job ended."""

    #: A chunk advanced and more is left: the next job is to be queued.
    CONTINUE = "continue"
    #: The backfill is complete.
    DONE = "done"
    #: Throttled or failed: the sweep queues the backfill again after a wait.
    WAITING = "waiting"
    #: The account cannot sync (reconnect needed, paused, disconnected): stopped until
    #: it is connected again.
    STOPPED = "stopped"
    #: Another job of this account holds its lock; that one carries the backfill on.
    SKIPPED_RUNNING = "skipped_running"
    #: Another job carries the backfill on (a duplicated kick): this one did nothing.
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class BackfillJobResult:
    """A backfill job's outcome and, when it ran one, its chunk."""

    outcome: JobOutcome
    chunk: BackfillChunk | None = None


class BackfillJobs:
    """Runs one backfill chunk per job under the rules of the module docstring.

    :param client: the Redis shared by every worker (the account's lock and baton).
    :param clock: the time jobs plan and sync at (tests pin it).
    """

    def __init__(
        self,
        stats_sync: StatsSync,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: redis.Redis,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._sync = stats_sync
        self._sessions = sessions
        self._settings = settings
        self._redis = client
        self._clock = clock or (lambda: datetime.now(UTC))

    def lock_name(self, ad_account_id: uuid.UUID) -> str:
        """The Redis key of an account's backfill lock (not the seller's sync lock)."""
        return f"{self._settings.redis_key_prefix}lock:backfill:{ad_account_id}"

    async def run(
        self,
        seller_id: uuid.UUID,
        ad_account_id: uuid.UUID,
        *,
        task_id: str,
        next_task_id: str,
        now: datetime | None = None,
    ) -> BackfillJobResult:
        """Run the account's next chunk (planning the backfill first if it has none).
        On ``CONTINUE`` the caller queues the next job under ``next_task_id``."""
        settings = self._settings
        now = now or self._clock()
        lock = self._redis.lock(
            self.lock_name(ad_account_id),
            timeout=settings.stats_task_timeout_seconds + 30,
            blocking=False,
        )
        if not await lock.acquire(token=task_id) and not await take_over_lock(
            self._redis, lock, task_id
        ):
            return BackfillJobResult(JobOutcome.SKIPPED_RUNNING)
        try:
            baton = baton_key(settings, ad_account_id)
            holder = await self._redis.get(baton)
            if holder is not None and holder != task_id.encode():
                return BackfillJobResult(JobOutcome.SUPERSEDED)
            await self._redis.set(baton, task_id, ex=settings.backfill_stall_seconds)
            try:
                async with asyncio.timeout(settings.stats_task_timeout_seconds):
                    chunk = await self._chunk(seller_id, ad_account_id, now)
            except Exception as exc:  # a bug or an outage: retried after a wait
                _log.exception("backfill chunk of ad account %s failed", ad_account_id)
                chunk = BackfillChunk(ChunkOutcome.FAILED, error=f"{type(exc).__name__}: {exc}")
            return BackfillJobResult(await self._hand_on(baton, chunk, next_task_id), chunk)
        finally:
            try:
                await lock.release()
            except Exception:  # expired meanwhile: nothing to release
                _log.warning("backfill lock of %s had already expired", ad_account_id)

    async def _chunk(
        self, seller_id: uuid.UUID, ad_account_id: uuid.UUID, now: datetime
    ) -> BackfillChunk:
        settings = self._settings
        context = SellerContext(seller_id=seller_id, sessions=self._sessions, settings=settings)
        chunk = await backfill_chunk(
            self._sync, context, ad_account_id, chunk_days=settings.backfill_chunk_days, now=now
        )
        if chunk.outcome is ChunkOutcome.SKIPPED and chunk.window is None:
            # No plan yet (the connect flow only queued the job): plan, then start.
            if await plan_backfill(context, ad_account_id, days=settings.backfill_days, now=now):
                chunk = await backfill_chunk(
                    self._sync,
                    context,
                    ad_account_id,
                    chunk_days=settings.backfill_chunk_days,
                    now=now,
                )
        return chunk

    async def _hand_on(self, baton: str, chunk: BackfillChunk, next_task_id: str) -> JobOutcome:
        """Record who carries the backfill on, and how this job ended."""
        settings = self._settings
        if chunk.outcome is ChunkOutcome.ADVANCED and not chunk.complete:
            await self._redis.set(baton, next_task_id, ex=settings.backfill_stall_seconds)
            return JobOutcome.CONTINUE
        if chunk.outcome in (ChunkOutcome.THROTTLED, ChunkOutcome.FAILED):
            # No job carries it on; the sweep queues one once the baton expires.
            wait = (
                chunk.retry_after_seconds
                if chunk.outcome is ChunkOutcome.THROTTLED and chunk.retry_after_seconds
                else settings.backfill_retry_seconds
            )
            await self._redis.set(baton, "waiting", ex=max(1, math.ceil(wait)))
            return JobOutcome.WAITING
        await self._redis.delete(baton)
        if chunk.outcome in (ChunkOutcome.NEEDS_RECONNECT, ChunkOutcome.SKIPPED):
            return JobOutcome.STOPPED
        return JobOutcome.DONE


__all__ = [
    "BACKFILL_TASK",
    "BackfillChunk",
    "BackfillJobResult",
    "BackfillJobs",
    "ChunkOutcome",
    "JobOutcome",
    "backfill_chunk",
    "backfill_window",
    "backfills_to_resume",
    "baton_key",
    "claim_stalled",
    "next_chunk",
    "plan_backfill",
]
