"""Currency: a seller's manual rates and reporting currency (issue 16 item 1).

Rates from the installed rate source (the ECB's euro reference rates) load on their own;
a seller enters a rate here only for a currency the source does not publish, or to use
their own bank's. A manual rate holds for one day and pair, wins over the source's for
that seller's figures, and every change is kept in an audit (who, when, old and new
rate, why). Setting, removing or changing the reporting currency recomputes the days it
touches — the whole history for a new reporting currency — within seconds.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field

from pixecom_core.errors import NotFoundError
from pixecom_core.providers import CurrencyCode
from pixecom_core.stats.fx_rates import (
    ManualRate,
    ManualRateChange,
    ManualRates,
    change_reporting_currency,
)
from pixecom_core.stats.reports import check_range
from reference_app.api.dependencies import CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.schemas import IsoDate

router = APIRouter(tags=["currency"])

Currency = Annotated[str, Path(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]


class ManualRateIn(BaseModel):
    """One day's rate: one ``base_currency`` bought ``rate`` of ``quote_currency``."""

    day: IsoDate
    base_currency: CurrencyCode
    quote_currency: CurrencyCode
    rate: Decimal = Field(gt=0, lt=Decimal(10) ** 10, max_digits=20, decimal_places=10)
    note: str | None = Field(default=None, max_length=500, description="Why; kept in the audit.")


class ManualRateOut(BaseModel):
    day: date
    base_currency: str
    quote_currency: str
    rate: Decimal
    note: str | None
    set_by: str

    @classmethod
    def of(cls, rate: ManualRate) -> ManualRateOut:
        return cls.model_validate(rate, from_attributes=True)


class ManualRateChangeOut(BaseModel):
    day: date
    base_currency: str
    quote_currency: str
    old_rate: Decimal | None = Field(description="Null: there was no manual rate.")
    new_rate: Decimal | None = Field(description="Null: the manual rate was removed.")
    note: str | None
    changed_by: str
    changed_at: datetime

    @classmethod
    def of(cls, change: ManualRateChange) -> ManualRateChangeOut:
        return cls.model_validate(change, from_attributes=True)


class ReportingCurrencyIn(BaseModel):
    reporting_currency: CurrencyCode


class ReportingCurrencyOut(BaseModel):
    reporting_currency: str
    days_to_recompute: int = Field(description="Days of history being recomputed in it.")


def _author(seller: CurrentSeller) -> str:
    return f"user:{seller.user_id}" if seller.user_id else "api"


@router.get(
    "/fx/rates",
    response_model=list[ManualRateOut],
    summary="The seller's manual rates in a range",
    responses=error_responses(401, 422),
)
async def list_rates(
    seller: CurrentSeller,
    since: Annotated[IsoDate, Query()],
    until: Annotated[IsoDate, Query()],
) -> list[ManualRateOut]:
    """At most 1,000 rates, by day and pair. 422 when ``until`` is before ``since`` or the
    range is longer than 366 days."""
    check_range(since, until)
    async with seller.scope() as scope:
        rates = await ManualRates(scope).list(since, until)
    return [ManualRateOut.of(rate) for rate in rates]


@router.put(
    "/fx/rates",
    response_model=ManualRateOut,
    summary="Set the seller's rate of a currency pair for a day",
    responses=error_responses(401, 422),
)
async def set_rate(
    body: ManualRateIn, seller: CurrentSeller, resources: ResourcesDep
) -> ManualRateOut:
    """Sets (or replaces) the rate; audited. The day's figures are recomputed with it.
    422 when the two currencies are the same, or the rate is not a positive decimal number
    below 10^10 with at most 10 decimal places."""
    async with seller.scope() as scope:
        rate = await ManualRates(scope).set(
            body.day,
            body.base_currency,
            body.quote_currency,
            body.rate,
            changed_by=_author(seller),
            note=body.note,
        )
    await resources.queue_reaggregation(seller.seller_id)
    return ManualRateOut.of(rate)


@router.delete(
    "/fx/rates/{day}/{base_currency}/{quote_currency}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove the seller's rate of a currency pair for a day",
    responses=error_responses(401, 404, 422),
)
async def remove_rate(
    day: date,
    base_currency: Currency,
    quote_currency: Currency,
    seller: CurrentSeller,
    resources: ResourcesDep,
) -> Response:
    """Removes it (audited); the day falls back to the source's rate. 404 without one;
    422 when the two currencies are the same."""
    async with seller.scope() as scope:
        removed = await ManualRates(scope).remove(
            day, base_currency, quote_currency, changed_by=_author(seller)
        )
    if not removed:
        raise NotFoundError("no manual rate for that day and pair")
    await resources.queue_reaggregation(seller.seller_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/fx/rates/changes",
    response_model=list[ManualRateChangeOut],
    summary="The audit of the seller's manual rates, newest first",
    responses=error_responses(401, 422),
)
async def rate_changes(
    seller: CurrentSeller, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[ManualRateChangeOut]:
    """Who changed which rate, when, from what to what, and why."""
    async with seller.scope() as scope:
        changes = await ManualRates(scope).changes(limit)
    return [ManualRateChangeOut.of(change) for change in changes]


@router.put(
    "/seller/reporting-currency",
    response_model=ReportingCurrencyOut,
    summary="Change the currency the seller's figures are reported in",
    responses=error_responses(401, 422),
)
async def set_reporting_currency(
    body: ReportingCurrencyIn, seller: CurrentSeller, resources: ResourcesDep
) -> ReportingCurrencyOut:
    """Every day of the seller's history is recomputed in the new currency (each at its
    own day's rate); until then the overview counts those days as pending. 422
    ``invalid_currency`` for a code not in ISO 4217's list."""
    async with seller.scope() as scope:
        days = await change_reporting_currency(scope, body.reporting_currency)
    if days:
        await resources.queue_reaggregation(seller.seller_id)
    return ReportingCurrencyOut(reporting_currency=body.reporting_currency, days_to_recompute=days)
