"""Foreign-exchange reference rates (global, not seller-owned)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CHAR, CheckConstraint, Date, Numeric, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import (
    SellerOwned,
    SellerOwnedNaturalKey,
    currency_check,
    now_default,
    timestamp_type,
    utcnow,
)


class FxRate(SQLModel, table=True):
    """How many units of ``quote_currency`` one unit of ``base_currency`` bought on
    ``rate_date``.

    Sellpage figures are converted into the seller's reporting currency with the rate of
    the day they happened (STATS-3: ROAS must never mix USD and EUR). Shared reference
    data, loaded from a currency-rate source by the scheduled load
    (:func:`pixecom_core.stats.fx_rates.load_rates`) with a row for every day; no route
    writes it (a seller's own rates are :class:`SellerFxRate`).
    """

    __tablename__ = "fx_rates"
    __table_args__ = (
        currency_check("base_currency"),
        currency_check("quote_currency"),
        CheckConstraint("rate > 0", name="rate_positive"),
    )

    rate_date: date = Field(sa_type=Date, primary_key=True)
    base_currency: str = Field(sa_type=CHAR(3), primary_key=True)
    quote_currency: str = Field(sa_type=CHAR(3), primary_key=True)
    rate: Decimal = Field(sa_type=Numeric(20, 10), nullable=False)
    source: str = Field(sa_type=Text, nullable=False)
    #: The publication day whose rate this day carries, when the source did not publish
    #: on ``rate_date`` itself (a weekend, a holiday); ``None`` when it did (issue 16).
    carried_from: date | None = Field(default=None, sa_type=Date)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class SellerFxRate(SellerOwnedNaturalKey, table=True):
    """A rate the seller entered for one day and currency pair (issue 16 item 1).

    For currencies the rate source does not publish (or a seller's own bank rate): it
    converts only this seller's figures of that day, and wins over the source's rate.
    Every change is recorded in :class:`SellerFxRateChange`.
    """

    __tablename__ = "seller_fx_rates"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "rate_date", "base_currency", "quote_currency"),
        currency_check("base_currency"),
        currency_check("quote_currency"),
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("base_currency <> quote_currency", name="distinct_currencies"),
    )

    rate_date: date = Field(sa_type=Date, primary_key=True)
    base_currency: str = Field(sa_type=CHAR(3), primary_key=True)
    quote_currency: str = Field(sa_type=CHAR(3), primary_key=True)
    rate: Decimal = Field(sa_type=Numeric(20, 10), nullable=False)
    note: str | None = Field(default=None, sa_type=Text)
    set_by: str = Field(sa_type=Text, nullable=False)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class SellerFxRateChange(SellerOwned, table=True):
    """One change of a seller's manual rate: what it was, what it became, who and why.

    Append-only (the app role may only insert and read it).
    """

    __tablename__ = "seller_fx_rate_changes"
    __table_args__ = (
        currency_check("base_currency"),
        currency_check("quote_currency"),
    )

    rate_date: date = Field(sa_type=Date, nullable=False)
    base_currency: str = Field(sa_type=CHAR(3), nullable=False)
    quote_currency: str = Field(sa_type=CHAR(3), nullable=False)
    #: ``None``: there was no manual rate before.
    old_rate: Decimal | None = Field(default=None, sa_type=Numeric(20, 10))
    #: ``None``: the manual rate was removed.
    new_rate: Decimal | None = Field(default=None, sa_type=Numeric(20, 10))
    note: str | None = Field(default=None, sa_type=Text)
    changed_by: str = Field(sa_type=Text, nullable=False)
