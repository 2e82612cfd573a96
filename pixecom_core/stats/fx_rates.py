"""Loading reference exchange rates, and the manual rates sellers set (issue 16 item 1).

A rate source (:class:`pixecom_core.providers.CurrencyRateSource`) answers what it
published; :func:`load_rates` stores it in ``fx_rates`` with a row for *every* calendar
day the answer is final for: a publication day under its own rates, any other day (a
weekend, a holiday) under the previous publication's, saying so (``carried_from``). So
the roll-up (:mod:`pixecom_core.stats.rollup`) reads "no row for this day" as one thing
only: not published yet. Then every seller with days that waited for a rate in the range
gets them marked for re-aggregation, and the caller queues their refresh.

Manual rates (:class:`ManualRates`) are the seller's own, for one day and pair, for
currencies the source does not publish; every change is recorded in
``seller_fx_rate_changes`` with who made it and why, and marks that day for
re-aggregation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.errors import InvalidRequestError
from pixecom_core.providers import CurrencyRateSource, Publication
from pixecom_core.settings import Settings
from pixecom_core.stats.aggregate import (
    mark_all_days_dirty,
    mark_days_dirty,
    mark_rate_days_dirty,
)
from pixecom_core.stats.currency import is_iso_4217
from pixecom_core.tenancy import SellerScope, open_seller_scope

#: The longest range one load or backfill stores (a full history is loaded in ranges).
MAX_LOAD_DAYS = 3660

_LAST_PUBLICATION = text(
    """
    SELECT rate_date, quote_currency, rate FROM fx_rates
     WHERE source = :source AND base_currency = :base AND carried_from IS NULL
       AND rate_date = (SELECT max(rate_date) FROM fx_rates
                         WHERE source = :source AND base_currency = :base
                           AND carried_from IS NULL AND rate_date < :before)
    """
)
_STORE = text(
    """
    INSERT INTO fx_rates (rate_date, base_currency, quote_currency, rate, source, carried_from)
    SELECT * FROM unnest(CAST(:days AS date[]), CAST(:bases AS text[]),
                         CAST(:quotes AS text[]), CAST(:rates AS numeric[]),
                         CAST(:sources AS text[]), CAST(:carried AS date[]))
    ON CONFLICT (rate_date, base_currency, quote_currency) DO UPDATE
       SET rate = EXCLUDED.rate, source = EXCLUDED.source, carried_from = EXCLUDED.carried_from
     WHERE (fx_rates.rate, fx_rates.source, fx_rates.carried_from)
           IS DISTINCT FROM (EXCLUDED.rate, EXCLUDED.source, EXCLUDED.carried_from)
    """
)
_WAITING = text("SELECT seller_id FROM pixecom_sellers_waiting_for_rates(:since, :until)")


@dataclass(frozen=True)
class RateLoad:
    """What one load stored.

    :param stored_through: the last day stored (the source's ``complete_through``, or the
        range's end when earlier); ``None`` when nothing was final yet.
    :param publication_days: days the source published.
    :param carried_days: days stored under an earlier publication's rates.
    :param rows_changed: ``fx_rates`` rows inserted or changed.
    :param sellers_marked: sellers whose days waited for these rates, now marked for
        re-aggregation; queue their refresh.
    """

    source: str
    since: date
    until: date
    stored_through: date | None
    publication_days: int
    carried_days: int
    rows_changed: int
    sellers_marked: tuple[uuid.UUID, ...]


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


async def load_rates(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    source: CurrencyRateSource,
    since: date,
    until: date,
) -> RateLoad:
    """Fetch ``source``'s rates of [since, until], store every final day, and mark the
    days of sellers that waited for them.

    Idempotent: loading the same range again changes no row. A day the source has not
    published yet is left out (the next load stores it); a day before the source's first
    publication known here has nothing to carry and is left out too.
    """
    if until < since:
        raise InvalidRequestError("until is before since", code="empty_date_range")
    if (until - since).days + 1 > MAX_LOAD_DAYS:
        raise InvalidRequestError(
            f"a load covers at most {MAX_LOAD_DAYS} days", code="date_range_too_long"
        )
    answer = await source.fetch_rates(since, until)
    base = answer.base_currency
    last_day = min(until, answer.complete_through)
    by_day: dict[date, Publication] = {p.published_on: p for p in answer.publications}
    rows: list[tuple[date, str, Decimal, date | None]] = []
    carried = 0
    async with sessions() as session, session.begin():
        previous: tuple[date, dict[str, Decimal]] | None = None
        stored = (
            await session.execute(
                _LAST_PUBLICATION, {"source": source.identifier, "base": base, "before": since}
            )
        ).all()
        if stored:
            previous = (stored[0].rate_date, {r.quote_currency: r.rate for r in stored})
        for day in _days(since, until):
            publication = by_day.get(day)
            if publication is not None:
                previous = (day, dict(publication.rates))
                rows.extend((day, quote, rate, None) for quote, rate in publication.rates.items())
            elif day <= last_day and previous is not None:
                carried += 1
                rows.extend((day, quote, rate, previous[0]) for quote, rate in previous[1].items())
        changed = 0
        if rows:
            result = await session.execute(
                _STORE,
                {
                    "days": [r[0] for r in rows],
                    "bases": [base] * len(rows),
                    "quotes": [r[1] for r in rows],
                    "rates": [r[2] for r in rows],
                    "sources": [source.identifier] * len(rows),
                    "carried": [r[3] for r in rows],
                },
            )
            changed = int(result.rowcount)  # type: ignore[attr-defined]
        stored_through = max((r[0] for r in rows), default=None)
        waiting: list[uuid.UUID] = []
        if stored_through is not None:
            waiting = list(
                (await session.scalars(_WAITING, {"since": since, "until": stored_through})).all()
            )
    marked: list[uuid.UUID] = []
    if stored_through is not None:
        for seller_id in waiting:
            async with open_seller_scope(sessions, seller_id, settings) as scope:
                if await mark_rate_days_dirty(scope, since, stored_through):
                    marked.append(seller_id)
    return RateLoad(
        source=source.identifier,
        since=since,
        until=until,
        stored_through=stored_through,
        publication_days=sum(1 for day in by_day if since <= day <= until),
        carried_days=carried,
        rows_changed=changed,
        sellers_marked=tuple(marked),
    )


# -- manual rates ------------------------------------------------------------------------

_CURRENT = text(
    "SELECT rate FROM seller_fx_rates WHERE seller_id = :seller_id AND rate_date = :day"
    " AND base_currency = :base AND quote_currency = :quote FOR UPDATE"
)
_UPSERT = text(
    """
    INSERT INTO seller_fx_rates
        (seller_id, rate_date, base_currency, quote_currency, rate, note, set_by)
    VALUES (:seller_id, :day, :base, :quote, :rate, :note, :by)
    ON CONFLICT (seller_id, rate_date, base_currency, quote_currency) DO UPDATE
       SET rate = EXCLUDED.rate, note = EXCLUDED.note, set_by = EXCLUDED.set_by,
           updated_at = now()
    """
)
_DELETE = text(
    "DELETE FROM seller_fx_rates WHERE seller_id = :seller_id AND rate_date = :day"
    " AND base_currency = :base AND quote_currency = :quote"
)
_AUDIT = text(
    """
    INSERT INTO seller_fx_rate_changes
        (seller_id, rate_date, base_currency, quote_currency, old_rate, new_rate, note,
         changed_by)
    VALUES (:seller_id, :day, :base, :quote, :old, :new, :note, :by)
    """
)
_LIST = text(
    """
    SELECT rate_date, base_currency, quote_currency, rate, note, set_by, updated_at
      FROM seller_fx_rates
     WHERE seller_id = :seller_id AND rate_date BETWEEN :since AND :until
     ORDER BY rate_date, base_currency, quote_currency
     LIMIT :limit
    """
)
_CHANGES = text(
    """
    SELECT rate_date, base_currency, quote_currency, old_rate, new_rate, note, changed_by,
           created_at AS changed_at
      FROM seller_fx_rate_changes
     WHERE seller_id = :seller_id
     ORDER BY created_at DESC, id
     LIMIT :limit
    """
)

#: The most rows one manual-rate listing returns.
MAX_LISTED = 1000


@dataclass(frozen=True)
class ManualRate:
    """A seller's rate: one ``base_currency`` bought ``rate`` of ``quote_currency``."""

    day: date
    base_currency: str
    quote_currency: str
    rate: Decimal
    note: str | None
    set_by: str


@dataclass(frozen=True)
class ManualRateChange:
    """One entry of the manual rates' audit."""

    day: date
    base_currency: str
    quote_currency: str
    old_rate: Decimal | None
    new_rate: Decimal | None
    note: str | None
    changed_by: str
    changed_at: datetime


def _check_pair(base: str, quote: str, rate: Decimal | None) -> None:
    for code in (base, quote):
        if not is_iso_4217(code):
            raise InvalidRequestError(f"{code!r} is not an ISO 4217 code", code="invalid_currency")
    if base == quote:
        raise InvalidRequestError("a rate needs two different currencies", code="same_currency")
    if rate is not None and (not rate.is_finite() or rate <= 0 or rate >= Decimal(10) ** 10):
        raise InvalidRequestError("a rate is a positive number below 10^10", code="invalid_rate")


class ManualRates:
    """A seller's manual rates: set, remove, list, and the audit of every change."""

    def __init__(self, scope: SellerScope) -> None:
        self._scope = scope

    async def set(
        self,
        day: date,
        base: str,
        quote: str,
        rate: Decimal,
        *,
        changed_by: str,
        note: str | None = None,
    ) -> ManualRate:
        """Set the seller's rate of ``base``→``quote`` for ``day``; audited, and the day is
        marked for re-aggregation (commits with the scope)."""
        _check_pair(base, quote, rate)
        rate = rate.quantize(Decimal("0.0000000001"))
        keys = {"seller_id": self._scope.seller_id, "day": day, "base": base, "quote": quote}
        session = self._scope.session
        old = await session.scalar(_CURRENT, keys)
        await session.execute(_UPSERT, {**keys, "rate": rate, "note": note, "by": changed_by})
        if old != rate:
            await session.execute(
                _AUDIT, {**keys, "old": old, "new": rate, "note": note, "by": changed_by}
            )
            await mark_days_dirty(self._scope, [day])
        return ManualRate(day, base, quote, rate, note, changed_by)

    async def remove(
        self, day: date, base: str, quote: str, *, changed_by: str, note: str | None = None
    ) -> bool:
        """Remove the seller's rate of ``base``→``quote`` for ``day``; ``False`` when there
        was none. Audited; the day is marked for re-aggregation."""
        _check_pair(base, quote, None)
        keys = {"seller_id": self._scope.seller_id, "day": day, "base": base, "quote": quote}
        session = self._scope.session
        old = await session.scalar(_CURRENT, keys)
        if old is None:
            return False
        await session.execute(_DELETE, keys)
        await session.execute(
            _AUDIT, {**keys, "old": old, "new": None, "note": note, "by": changed_by}
        )
        await mark_days_dirty(self._scope, [day])
        return True

    async def list(self, since: date, until: date) -> Sequence[ManualRate]:
        """The seller's rates of [since, until] (at most :data:`MAX_LISTED`)."""
        rows = await self._scope.session.execute(
            _LIST,
            {
                "seller_id": self._scope.seller_id,
                "since": since,
                "until": until,
                "limit": MAX_LISTED,
            },
        )
        return [
            ManualRate(r.rate_date, r.base_currency, r.quote_currency, r.rate, r.note, r.set_by)
            for r in rows
        ]

    async def changes(self, limit: int = 100) -> Sequence[ManualRateChange]:
        """The latest changes, newest first."""
        rows = await self._scope.session.execute(
            _CHANGES,
            {"seller_id": self._scope.seller_id, "limit": max(1, min(limit, MAX_LISTED))},
        )
        return [
            ManualRateChange(
                r.rate_date,
                r.base_currency,
                r.quote_currency,
                r.old_rate,
                r.new_rate,
                r.note,
                r.changed_by,
                r.changed_at,
            )
            for r in rows
        ]


_CURRENT_CURRENCY = text("SELECT reporting_currency FROM sellers WHERE id = :seller_id")
_SET_CURRENCY = text("UPDATE sellers SET reporting_currency = :currency WHERE id = :seller_id")


async def change_reporting_currency(scope: SellerScope, currency: str) -> int:
    """Report the scope's seller's figures in ``currency`` from now on; return how many
    days of history are marked for recomputation in it (0 when it was already the
    reporting currency). Commits with the scope; queue the recomputation after it.

    :raises InvalidRequestError: ``currency`` is not in ISO 4217's list.
    """
    if not is_iso_4217(currency):
        raise InvalidRequestError(
            f"{currency!r} is not an ISO 4217 currency", code="invalid_currency"
        )
    keys = {"seller_id": scope.seller_id, "currency": currency}
    if await scope.session.scalar(_CURRENT_CURRENCY, keys) == currency:
        return 0
    await scope.session.execute(_SET_CURRENCY, keys)
    return await mark_all_days_dirty(scope)
