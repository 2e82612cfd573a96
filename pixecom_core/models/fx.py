"""Foreign-exchange reference rates (global, not seller-owned)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CHAR, CheckConstraint, Date, Numeric, Text
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import currency_check, now_default, timestamp_type, utcnow


class FxRate(SQLModel, table=True):
    """How many units of ``quote_currency`` one unit of ``base_currency`` bought on
    ``rate_date``.

    Sellpage figures are converted into the seller's reporting currency with the rate of
    the day they happened (STATS-3: ROAS must never mix USD and EUR). Shared reference
    data: the app role may only read it; the owner loads it.
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
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
