"""One seller's stats sync: fetch, ingest, aggregate — the pipeline's unit of work.

For each ad account of the seller that can be synced, the last ``days_back`` days (in
the account's time zone; 3 every cycle, 28 in the daily restatement sweep — Meta restates
up to 28 days) are fetched at campaign, ad-set and ad level, streamed into
``ad_stats_raw`` in batches (a transaction is open only while a batch is written, never
while the network answers: SCALE-3, pool exhaustion), and adopted into
``ad_stats_daily``; an entity-day of the account that the complete fetch no longer reports
is zeroed (networks omit entities without delivery). Then the seller's sellpage days — the
window plus days marked by late refunds or attribution — are re-aggregated. The window
is a parameter (:class:`DayWindow`): the history backfill
(:mod:`pixecom_core.stats.backfill`) runs one account over older days through these same
steps (:meth:`StatsSync.sync_account_days`).

Once an account's numbers have landed, a network that names its entities
(:class:`~pixecom_core.providers.AdNetworkEntities`) is asked for its campaigns, ad sets and
ads, and their names and statuses are written into ``campaigns``, ``adsets`` and ``ads``
(issue 14: the dashboard shows names, not ids) — in batches, never inside a transaction
held while the network answers. The network's name wins: sellers cannot rename a campaign
in PixEcom (only its sellpage is theirs, and it is left alone). Listing costs a call per
level and page, so it runs when the fetch reported an entity not named yet (a new
campaign, an account's first sync or backfill chunk) and on the daily restatement sweep
(renames and pauses show within a day); the regular cycles skip it. A failing listing is
logged and recorded on the account's outcome (``entities_error``); the sync still counts
as a success, since its numbers are in.

Provider errors decide what happens to an account, never to the others: a throttled
account is delayed (``throttled_until``), not failed; a refused token marks it for
reconnection; anything else is recorded as the account's last error and retried next
cycle.

A seller's accounts sync side by side (issue 18 item 3; the audit's "big sellers'
accounts synced one after another under one timeout"): at most
``sync_accounts_concurrency`` at once, the least recently synced first, each under its own
``sync_account_timeout_seconds``. An account cut off there is recorded as timed out and
tried again next cycle while the others' numbers land; the seller's sellpage days are
re-aggregated once, after every account.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo

import pluggy
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.dashboard_cache import DashboardPart, dashboard_changed_on_commit
from pixecom_core.events import announce
from pixecom_core.models.ads import AdAccount, AdAccountStatus
from pixecom_core.models.sellers import Seller
from pixecom_core.plugins import ProviderRegistry, UnknownProviderError
from pixecom_core.providers import (
    AdAccountCredentials,
    AdEntity,
    AdNetwork,
    AdNetworkEntities,
    EntityLevel,
    InsightRow,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    StatsAggregationSummary,
)
from pixecom_core.security.secret_box import SecretBox
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import (
    SellpageAggregation,
    aggregate_daily,
    aggregate_sellpages,
    dirty_days,
    lock_sellpage_aggregation,
    zero_unreported,
)
from pixecom_core.stats.ingest import ingest_raw
from pixecom_core.tenancy import SellerContext, SellerScope

_log = logging.getLogger(__name__)

#: Rows written per transaction while a report streams in.
INGEST_BATCH_ROWS = 5_000
#: How long a throttled account waits when the network did not say.
DEFAULT_THROTTLE_SECONDS = 60.0
LEVELS = (EntityLevel.CAMPAIGN, EntityLevel.ADSET, EntityLevel.AD)

#: Entities written per transaction while a listing streams in.
ENTITY_BATCH_ROWS = 1_000

# The network's names and statuses of an account's campaigns, ad sets and ads. A row is
# only rewritten when something changed, so ``updated_at`` says when the network last
# changed it. Ad sets find their campaign, ads their ad set, within the same ad account;
# one whose parent is unknown is left for the next sync (parents are written first).
_UPSERT_CAMPAIGNS = text(
    """
    INSERT INTO campaigns (seller_id, ad_account_id, external_id, name, status)
    SELECT :seller_id, :ad_account_id, e.external_id, e.name, e.status
      FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:statuses AS text[]))
           AS e(external_id, name, status)
    ON CONFLICT (seller_id, ad_account_id, external_id) DO UPDATE
       SET name = EXCLUDED.name, status = EXCLUDED.status, updated_at = now()
     WHERE (campaigns.name, campaigns.status) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.status)
    """
)
_UPSERT_ADSETS = text(
    """
    INSERT INTO adsets (seller_id, campaign_id, external_id, name, status)
    SELECT c.seller_id, c.id, e.external_id, e.name, e.status
      FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:statuses AS text[]),
                  CAST(:parents AS text[])) AS e(external_id, name, status, parent)
      JOIN campaigns AS c
        ON c.seller_id = :seller_id AND c.ad_account_id = :ad_account_id
       AND c.external_id = e.parent
    ON CONFLICT (seller_id, campaign_id, external_id) DO UPDATE
       SET name = EXCLUDED.name, status = EXCLUDED.status, updated_at = now()
     WHERE (adsets.name, adsets.status) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.status)
    """
)
_UPSERT_ADS = text(
    """
    INSERT INTO ads (seller_id, adset_id, external_id, name, status)
    SELECT s.seller_id, s.id, e.external_id, e.name, e.status
      FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:statuses AS text[]),
                  CAST(:parents AS text[])) AS e(external_id, name, status, parent)
      JOIN adsets AS s ON s.seller_id = :seller_id AND s.external_id = e.parent
      JOIN campaigns AS c
        ON c.seller_id = s.seller_id AND c.id = s.campaign_id
       AND c.ad_account_id = :ad_account_id
    ON CONFLICT (seller_id, adset_id, external_id) DO UPDATE
       SET name = EXCLUDED.name, status = EXCLUDED.status, updated_at = now()
     WHERE (ads.name, ads.status) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.status)
    """
)
_UPSERT_ENTITIES = {
    EntityLevel.CAMPAIGN: _UPSERT_CAMPAIGNS,
    EntityLevel.ADSET: _UPSERT_ADSETS,
    EntityLevel.AD: _UPSERT_ADS,
}
# What an account's complete fetch leaves behind, in one statement (issue 18 item 3: a
# sync costs a fifth; three round trips were one each):
# - campaigns the network reported that core does not know yet become campaign rows (named
#   by their id until the network names them: _UPSERT_CAMPAIGNS), so a seller can link
#   them to a sellpage;
# - a regular sync records its success on the account (``:synced_at``; a backfill chunk
#   passes NULL and leaves the bookkeeping alone);
# - whether the fetch reported an entity of the account that has no name from the network
#   yet (a campaign only discovered by id, an ad set or ad never listed): then it is worth
#   the listing calls; otherwise names wait for the daily sweep (``:check_names`` false
#   skips the question).
# The CTEs run to completion whatever the SELECT reads; the SELECT sees the tables as
# they were before them, so a campaign discovered here counts as unnamed, as it is.
_SETTLE_ACCOUNT = text(
    """
    WITH discovered AS (
        INSERT INTO campaigns (seller_id, ad_account_id, external_id, name)
        SELECT :seller_id, :ad_account_id, campaign, campaign
          FROM unnest(CAST(:campaigns AS text[])) AS campaign
        ON CONFLICT (seller_id, ad_account_id, external_id) DO NOTHING
    ), recorded AS (
        UPDATE ad_accounts
           SET last_synced_at = :synced_at, last_sync_error = NULL, sync_failures = 0,
               throttled_until = NULL
         WHERE seller_id = :seller_id AND id = :ad_account_id
           AND CAST(:synced_at AS timestamptz) IS NOT NULL
    )
    SELECT CAST(:check_names AS boolean) AND (
        EXISTS (
        SELECT 1 FROM unnest(CAST(:campaigns AS text[])) AS e(id)
         WHERE NOT EXISTS (
               SELECT 1 FROM campaigns AS c
                WHERE c.seller_id = :seller_id AND c.ad_account_id = :ad_account_id
                  AND c.external_id = e.id AND c.name <> c.external_id))
        OR EXISTS (
        SELECT 1 FROM unnest(CAST(:adsets AS text[])) AS e(id)
         WHERE NOT EXISTS (
               SELECT 1 FROM adsets AS s JOIN campaigns AS c
                 ON c.seller_id = s.seller_id AND c.id = s.campaign_id
                WHERE s.seller_id = :seller_id AND c.ad_account_id = :ad_account_id
                  AND s.external_id = e.id))
        OR EXISTS (
        SELECT 1 FROM unnest(CAST(:ads AS text[])) AS e(id)
         WHERE NOT EXISTS (
               SELECT 1 FROM ads AS d JOIN adsets AS s
                 ON s.seller_id = d.seller_id AND s.id = d.adset_id
               JOIN campaigns AS c ON c.seller_id = s.seller_id AND c.id = s.campaign_id
                WHERE d.seller_id = :seller_id AND c.ad_account_id = :ad_account_id
                  AND d.external_id = e.id)))
    """
)

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class DayWindow:
    """Days of an ad account's time zone, ``since`` to ``until``, both included."""

    since: date
    until: date

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"a window cannot end ({self.until}) before it starts ({self.since})")

    def days(self) -> list[date]:
        """Every day of the window, oldest first."""
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]


def recent_days(account: AdAccount, days_back: int, now: datetime) -> DayWindow:
    """The last ``days_back`` days of ``account``'s time zone at ``now``, today included."""
    today = now.astimezone(ZoneInfo(account.timezone)).date()
    return DayWindow(today - timedelta(days=days_back - 1), today)


class AccountOutcome(StrEnum):
    """What a sync did with one ad account."""

    SYNCED = "synced"
    THROTTLED = "throttled"
    NEEDS_RECONNECT = "needs_reconnect"
    FAILED = "failed"
    #: Cut off by ``sync_account_timeout_seconds``; retried next cycle.
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class AccountSync:
    """One ad account's part of a sync."""

    ad_account_id: uuid.UUID
    outcome: AccountOutcome
    rows_received: int = 0
    rows_inserted: int = 0
    daily_rows: int = 0
    error: str | None = None
    retry_after_seconds: float | None = None
    #: Campaigns, ad sets and ads whose names and statuses were written.
    entities_named: int = 0
    #: Why naming the entities failed (the numbers still landed); ``None`` when it did not.
    entities_error: str | None = None


@dataclass
class SellerSync:
    """What one seller's sync did."""

    seller_id: uuid.UUID
    accounts: list[AccountSync] = field(default_factory=list)
    sellpage_days: tuple[date, ...] = ()
    sellpage_rows: int = 0

    @property
    def throttled(self) -> bool:
        """Whether some account is waiting for the network's rate limit."""
        return any(a.outcome is AccountOutcome.THROTTLED for a in self.accounts)


def _entity_parameters(
    seller_id: uuid.UUID, ad_account_id: uuid.UUID, batch: list[AdEntity]
) -> dict[str, object]:
    # one entity per id: a network repeating one across pages must not hit ON CONFLICT twice
    unique = list({entity.entity_id: entity for entity in batch}.values())
    return {
        "seller_id": seller_id,
        "ad_account_id": ad_account_id,
        "ids": [entity.entity_id for entity in unique],
        "names": [entity.name for entity in unique],
        "statuses": [entity.status.value.upper() for entity in unique],
        "parents": [entity.parent_id or "" for entity in unique],
    }


async def _batches(rows: AsyncIterator[_Item], size: int) -> AsyncIterator[list[_Item]]:
    batch: list[_Item] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class StatsSync:
    """Syncs sellers' ad accounts through their ad-network plugins.

    :param sessions: app-role session factory; every write happens in the seller's scope.
    :param registry: ad networks by identifier.
    :param box: decrypts stored account tokens (plaintext lives only for the calls).
    :param plugin_manager: receives ``pixecom_on_stats_aggregated`` after each sync.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        box: SecretBox,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._box = box
        self._pm = plugin_manager

    async def sync_seller(
        self, seller_id: uuid.UUID, *, days_back: int, now: datetime | None = None
    ) -> SellerSync:
        """Sync every ad account of ``seller_id`` over its last ``days_back`` days, then
        re-aggregate the seller's sellpage days. Safe to run again: nothing doubles."""
        now = now or datetime.now(UTC)
        context = SellerContext(
            seller_id=seller_id, sessions=self._sessions, settings=self._settings
        )
        async with context.scope() as scope:
            accounts = list(
                (
                    await scope.session.scalars(
                        select(AdAccount)
                        .where(col(AdAccount.seller_id) == seller_id)
                        # the least recently synced first: an account a job cut short
                        # (or a timeout) did not sync goes ahead of the others next time
                        .order_by(
                            col(AdAccount.last_synced_at).asc().nulls_first(),
                            col(AdAccount.id),
                        )
                    )
                ).all()
            )
            # Every attempt of this sync at once, in the listing's transaction (the same
            # ``now`` each account would record): a transaction less per account.
            attempted = [account.id for account in accounts if self._will_fetch(account, now)]
            if attempted:
                await scope.session.execute(
                    update(AdAccount)
                    .where(col(AdAccount.seller_id) == seller_id, col(AdAccount.id).in_(attempted))
                    .values(last_sync_attempt_at=now)
                    # the accounts were loaded as they were: no object to refresh here
                    .execution_options(synchronize_session=False)
                )
        # Each account on its own (issue 18 item 3): at most ``sync_accounts_concurrency``
        # of the seller's accounts at once, each under its own timeout, so a big seller's
        # accounts no longer wait for one another and a hanging one delays nobody.
        bound = asyncio.Semaphore(self._settings.sync_accounts_concurrency)
        # Most sellers have one ad account: its write transaction re-aggregates the
        # seller's days too, rather than a transaction of its own after it.
        roll_up = _RollUpSlot() if len(accounts) == 1 and len(attempted) == 1 else None

        async def one(account: AdAccount) -> tuple[AccountSync, set[date]]:
            async with bound:
                return await self._sync_account_bounded(
                    context,
                    account,
                    recent_days(account, days_back, now),
                    now,
                    attempted,
                    roll_up,
                )

        synced = await asyncio.gather(
            *(one(account) for account in accounts), return_exceptions=True
        )
        result = SellerSync(seller_id=seller_id)
        touched: set[date] = set()
        # reported in the accounts' id order, whatever order they ran in
        for account_sync in sorted(
            synced, key=lambda r: r[0].ad_account_id.int if isinstance(r, tuple) else -1
        ):
            # Not a provider's error (those are the account's outcome) but a bug or the
            # database gone: raised once every other account has finished, so the job
            # retries the seller and parks it as a dead letter if it keeps failing.
            if isinstance(account_sync, BaseException):
                raise account_sync
            outcome, account_days = account_sync
            result.accounts.append(outcome)
            touched |= account_days
        if roll_up is not None and roll_up.value is not None:
            self._announce_roll_up(seller_id, result, roll_up.value)
        else:
            await self._aggregate_sellpages(context, result, touched)
        return result

    def _will_fetch(self, account: AdAccount, now: datetime) -> bool:
        """Whether :meth:`_sync_account` goes as far as asking the network."""
        if (
            account.status is not AdAccountStatus.ACTIVE
            or account.needs_reconnect
            or account.token_ciphertext is None
            or (account.throttled_until is not None and account.throttled_until > now)
        ):
            return False
        try:
            self._registry.ad_network(account.network)
        except UnknownProviderError:
            return False
        return True

    async def _sync_account_bounded(
        self,
        context: SellerContext,
        account: AdAccount,
        window: DayWindow,
        now: datetime,
        attempted: list[uuid.UUID],
        roll_up: _RollUpSlot | None = None,
    ) -> tuple[AccountSync, set[date]]:
        """:meth:`_sync_account` under the account's own timeout
        (``sync_account_timeout_seconds``): a timed-out account is recorded as such
        (``last_sync_error``, ``sync_failures``) and tried again next cycle."""
        limit = self._settings.sync_account_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                return await self._sync_account(
                    context,
                    account,
                    window,
                    now,
                    attempt_recorded=account.id in attempted,
                    roll_up=roll_up,
                )
        except TimeoutError:
            error = f"timed out after {limit:g} s (account timeout)"
        _log.warning("sync of %s ad account %s: %s", account.network, account.id, error)
        await self._record(context, account.id, error=error, failed=True)
        return AccountSync(account.id, AccountOutcome.TIMED_OUT, error=error), set()

    async def sync_account_days(
        self,
        seller_id: uuid.UUID,
        ad_account_id: uuid.UUID,
        window: DayWindow,
        *,
        now: datetime | None = None,
    ) -> SellerSync:
        """Sync one ad account over ``window`` (days of its time zone, both ends
        included) through the same steps as :meth:`sync_seller`, then re-aggregate the
        seller's sellpage days of that window (and days marked dirty). The history
        backfill's chunk (:mod:`pixecom_core.stats.backfill`).

        The account's sync bookkeeping (last attempt, last success, failures) is the
        regular syncs' and is left alone; a throttle and a refused token are recorded,
        since they hold for every fetch of the account. An unknown account is skipped.
        """
        now = now or datetime.now(UTC)
        context = SellerContext(
            seller_id=seller_id, sessions=self._sessions, settings=self._settings
        )
        async with context.scope() as scope:
            account = await scope.session.scalar(
                select(AdAccount).where(
                    col(AdAccount.seller_id) == seller_id, col(AdAccount.id) == ad_account_id
                )
            )
        result = SellerSync(seller_id=seller_id)
        if account is None:
            result.accounts.append(AccountSync(ad_account_id, AccountOutcome.SKIPPED))
            return result
        outcome, days = await self._sync_account(context, account, window, now, regular=False)
        result.accounts.append(outcome)
        await self._aggregate_sellpages(context, result, days)
        return result

    async def _aggregate_sellpages(
        self, context: SellerContext, result: SellerSync, touched: set[date]
    ) -> None:
        """Re-aggregate the seller's sellpage days ``touched`` and those marked dirty,
        then announce the aggregation."""
        async with context.scope() as scope:
            roll_up = await _roll_up_in(scope, touched)
        self._announce_roll_up(context.seller_id, result, roll_up)

    def _announce_roll_up(self, seller_id: uuid.UUID, result: SellerSync, roll_up: _RollUp) -> None:
        """Note a committed roll-up on ``result`` and announce it to the plugins."""
        aggregation, days = roll_up.aggregation, roll_up.days
        result.sellpage_days = aggregation.days
        result.sellpage_rows = aggregation.rows_written
        if days and roll_up.reporting_currency is not None:
            summary = StatsAggregationSummary(
                seller_id=seller_id,
                since=days[0],
                until=days[-1],
                ad_entity_days=sum(a.daily_rows for a in result.accounts),
                sellpage_days=aggregation.rows_written,
                reporting_currency=roll_up.reporting_currency,
                aggregated_at=datetime.now(UTC),
            )
            # After the aggregation's scope committed; each plugin on its own.
            announce(self._pm, "pixecom_on_stats_aggregated", summary=summary)

    async def _sync_account(
        self,
        context: SellerContext,
        account: AdAccount,
        window: DayWindow,
        now: datetime,
        *,
        regular: bool = True,
        attempt_recorded: bool = False,
        roll_up: _RollUpSlot | None = None,
    ) -> tuple[AccountSync, set[date]]:
        """Fetch, ingest and adopt ``window`` of one account. ``regular``: a scheduled
        sync, which records its attempt, success and failures on the account; a backfill
        chunk records only what holds for every fetch (a throttle, a refused token).
        ``attempt_recorded``: the caller already recorded this attempt. ``roll_up``: the
        account is the seller's only one, so its write transaction also re-aggregates the
        seller's sellpage days (a transaction less per sync); the slot holds the roll-up
        once it committed, and stays empty when the account did not get that far."""
        if (
            account.status is not AdAccountStatus.ACTIVE
            or account.needs_reconnect
            or account.token_ciphertext is None
        ):
            return AccountSync(account.id, AccountOutcome.SKIPPED), set()
        if account.throttled_until is not None and account.throttled_until > now:
            wait = (account.throttled_until - now).total_seconds()
            return AccountSync(
                account.id, AccountOutcome.THROTTLED, retry_after_seconds=wait
            ), set()
        try:
            provider = self._registry.ad_network(account.network)
        except UnknownProviderError as exc:
            await self._record(context, account.id, error=str(exc), failed=True)
            return AccountSync(account.id, AccountOutcome.FAILED, error=str(exc)), set()
        since, until = window.since, window.until
        credentials = AdAccountCredentials(
            seller_id=context.seller_id,
            account_id=account.external_id,
            access_token=SecretStr(self._box.decrypt(account.token_ciphertext)),
        )
        if regular and not attempt_recorded:
            await self._record(context, account.id, attempt_at=now)
        received = inserted = 0
        reported: dict[EntityLevel, set[str]] = {level: set() for level in LEVELS}
        campaigns = reported[EntityLevel.CAMPAIGN]
        # No row of this fetch is older than this: whatever still holds an older snapshot
        # after the fetch was not reported by it (a plugin's clock may lag: take its rows'
        # own times into account too).
        fetch_started_at = datetime.now(UTC)
        began = time.monotonic()
        # Rows of every level wait here until a batch is full (INGEST_BATCH_ROWS): most
        # accounts' whole fetch is one batch, written in the same transaction that adopts
        # it, rather than a transaction per level (issue 18 item 3: a sync costs a fifth).
        pending: list[InsightRow] = []
        try:
            for level in LEVELS:
                rows = provider.fetch_daily_insights(
                    credentials, level=level, since=since, until=until
                )
                async for batch in _batches(rows, INGEST_BATCH_ROWS):
                    reported[level].update(row.entity_id for row in batch)
                    fetch_started_at = min(fetch_started_at, *(row.fetched_at for row in batch))
                    pending.extend(batch)
                    if len(pending) < INGEST_BATCH_ROWS:
                        continue
                    async with context.scope() as scope:
                        report = await ingest_raw(scope, pending, ad_account_id=account.id)
                    pending = []
                    received += report.rows_received
                    inserted += report.rows_inserted
            # The network has answered: the last batch, the adoption, the discovered
            # campaigns and the account's success are one transaction.
            async with context.scope() as scope:
                if pending:
                    report = await ingest_raw(scope, pending, ad_account_id=account.id)
                    received += report.rows_received
                    inserted += report.rows_inserted
                daily_rows = await aggregate_daily(
                    scope,
                    network=account.network,
                    since=since,
                    until=until,
                    ad_account_id=account.id,
                )
                # Every level of the window was fetched in full: an entity it no longer
                # reports delivered nothing (Meta omits such rows), and must stop counting.
                daily_rows += await zero_unreported(
                    scope,
                    network=account.network,
                    ad_account_id=account.id,
                    since=since,
                    until=until,
                    fetched_at=fetch_started_at,
                )
                # On the sync's clock (``now``, the wall clock unless a caller fixes it), as
                # the attempt was: the connect flow reads it to know which days a
                # reconnected account missed.
                synced_at = now + timedelta(seconds=time.monotonic() - began)
                # Three more calls per account: on the daily sweep (renames, pauses), or
                # when this fetch reported something never named (new campaigns, a first
                # backfill).
                sweep = len(window.days()) >= self._settings.sweep_window_days
                unnamed = await scope.session.scalar(
                    _SETTLE_ACCOUNT,
                    {
                        "seller_id": context.seller_id,
                        "ad_account_id": account.id,
                        "campaigns": sorted(campaigns),
                        "adsets": sorted(reported[EntityLevel.ADSET]),
                        "ads": sorted(reported[EntityLevel.AD]),
                        "synced_at": synced_at if regular else None,
                        "check_names": not sweep,
                    },
                )
                naming = sweep or bool(unnamed)
                if naming:
                    # Issue 18: campaigns discovered by id just now (they count as
                    # unnamed; a sweep does not ask) are in the seller's list once this
                    # commits. The roll-up below marks the stats only.
                    dashboard_changed_on_commit(scope, {DashboardPart.CAMPAIGNS})
                # A seller's only account: its roll-up commits with its numbers (issue 18
                # item 3), after every write of the account, so the advisory lock is held
                # only for the commit.
                rolled_up = (
                    await _roll_up_in(scope, set(window.days())) if roll_up is not None else None
                )
            if roll_up is not None:
                roll_up.value = rolled_up
        except ProviderThrottled as exc:
            wait = exc.retry_after_seconds or DEFAULT_THROTTLE_SECONDS
            await self._record(
                context, account.id, throttled_until=now + timedelta(seconds=wait), error=str(exc)
            )
            return (
                AccountSync(
                    account.id, AccountOutcome.THROTTLED, error=str(exc), retry_after_seconds=wait
                ),
                set(),
            )
        except ProviderAuthError as exc:
            await self._record(context, account.id, error=str(exc), failed=True, reconnect=True)
            return AccountSync(account.id, AccountOutcome.NEEDS_RECONNECT, error=str(exc)), set()
        except ProviderError as exc:
            if regular:
                await self._record(context, account.id, error=str(exc), failed=True)
            return AccountSync(account.id, AccountOutcome.FAILED, error=str(exc)), set()
        named, entities_error = 0, None
        if naming:
            named, entities_error = await self._name_entities(
                context, account, provider, credentials
            )
        days = set(window.days())
        return (
            AccountSync(
                account.id,
                AccountOutcome.SYNCED,
                rows_received=received,
                rows_inserted=inserted,
                daily_rows=daily_rows,
                entities_named=named,
                entities_error=entities_error,
            ),
            days,
        )

    async def _name_entities(
        self,
        context: SellerContext,
        account: AdAccount,
        provider: AdNetwork,
        credentials: AdAccountCredentials,
    ) -> tuple[int, str | None]:
        """Write the network's names and statuses of the account's campaigns, then ad sets,
        then ads (parents first), a batch per transaction; a network that does not name its
        entities is left alone. Returns how many were written and why naming failed."""
        if not isinstance(provider, AdNetworkEntities):
            return 0, None
        named = 0
        try:
            for level in LEVELS:
                entities = provider.list_entities(credentials, level=level)
                async for batch in _batches(entities, ENTITY_BATCH_ROWS):
                    async with context.scope() as scope:
                        written = await scope.session.execute(
                            _UPSERT_ENTITIES[level],
                            _entity_parameters(context.seller_id, account.id, batch),
                        )
                        # Names land after the account's numbers and roll-up committed:
                        # a campaign list cached meanwhile is stale once these commit.
                        if written.rowcount:  # type: ignore[attr-defined]
                            dashboard_changed_on_commit(scope)
                    named += len(batch)
        except ProviderError as exc:
            # the numbers are in: a missing name must not make the sync fail or retry
            _log.warning(
                "naming the entities of %s ad account %s failed: %s",
                account.network,
                account.id,
                exc,
            )
            return named, str(exc)[:1000]
        return named, None

    async def _record(
        self,
        context: SellerContext,
        ad_account_id: uuid.UUID,
        *,
        attempt_at: datetime | None = None,
        throttled_until: datetime | None = None,
        error: str | None = None,
        failed: bool = False,
        reconnect: bool = False,
    ) -> None:
        async with context.scope() as scope:
            await _record_in(
                scope,
                ad_account_id,
                attempt_at=attempt_at,
                throttled_until=throttled_until,
                error=error,
                failed=failed,
                reconnect=reconnect,
            )


@dataclass(frozen=True)
class _RollUp:
    """A committed re-aggregation of a seller's sellpage days, to be announced."""

    days: list[date]
    aggregation: SellpageAggregation
    reporting_currency: str | None


@dataclass
class _RollUpSlot:
    """Where an account's sync leaves the roll-up it committed with its numbers."""

    value: _RollUp | None = None


async def _roll_up_in(scope: SellerScope, touched: set[date]) -> _RollUp:
    """Re-aggregate the scope's seller's days ``touched`` and those marked dirty, in the
    scope's transaction."""
    await lock_sellpage_aggregation(scope)
    days = sorted(touched | set(await dirty_days(scope)))
    aggregation = await aggregate_sellpages(scope, days)
    currency = (
        await scope.session.scalar(
            select(col(Seller.reporting_currency)).where(col(Seller.id) == scope.seller_id)
        )
        if days
        else None
    )
    return _RollUp(days, aggregation, currency)


async def _record_in(
    scope: SellerScope,
    ad_account_id: uuid.UUID,
    *,
    attempt_at: datetime | None = None,
    synced_at: datetime | None = None,
    throttled_until: datetime | None = None,
    error: str | None = None,
    failed: bool = False,
    reconnect: bool = False,
) -> None:
    """Write how a sync of the account went, in ``scope``'s transaction."""
    values: dict[str, object] = {}
    if attempt_at is not None:
        values["last_sync_attempt_at"] = attempt_at
    if synced_at is not None:
        values.update(
            last_synced_at=synced_at,
            last_sync_error=None,
            sync_failures=0,
            throttled_until=None,
        )
    if throttled_until is not None:
        values.update(throttled_until=throttled_until, last_sync_error=error)
    if failed:
        values.update(
            last_sync_error=(error or "")[:1000],
            sync_failures=col(AdAccount.sync_failures) + 1,
        )
    if reconnect:
        values["needs_reconnect"] = True
    await scope.session.execute(
        update(AdAccount)
        .where(col(AdAccount.seller_id) == scope.seller_id, col(AdAccount.id) == ad_account_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
