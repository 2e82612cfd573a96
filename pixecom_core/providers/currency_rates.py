"""The currency-rate source interface and the values it exchanges with core (issue 16).

Core converts every amount a seller sees into the seller's reporting currency with the
rate of the day the money moved (an ad account's spend, a payment, a refund). It gets
those rates from a *currency-rate source*: a plugin that reads a publisher's reference
rates, such as the European Central Bank's euro foreign exchange reference rates.

A source answers one question, :meth:`CurrencyRateSource.fetch_rates`: what did you
publish for the days ``since`` … ``until``, and up to which day is that answer final?
Publishers do not publish every day (the ECB publishes on TARGET business days only), so
the answer separates two kinds of missing day:

- a day on or before :attr:`RateAnswer.complete_through` that has no publication is a day
  the publisher does not publish: core uses the last publication before it and records
  that it did (``published_on`` of the stored rate is that earlier day);
- a day after ``complete_through`` has no final rate *yet*: core marks the figures that
  need it pending and re-aggregates them when a later load brings the rate.

All rates of one source are quoted against one base currency (the ECB's is EUR); core
derives every other pair through the base (a cross rate), so the source never computes
one itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Protocol, runtime_checkable

from pydantic import Field, field_validator, model_validator

from pixecom_core.providers.values import CurrencyCode, FrozenValue


class Publication(FrozenValue):
    """The rates a source published for one day.

    :param published_on: the day the rates are for (the publisher's reference day).
    :param rates: quote currency → units of it that one unit of the source's base
        currency bought that day (``{"USD": Decimal("1.0843")}`` for EUR/USD 1.0843).
        Every rate is positive; the base currency itself is not listed.
    """

    published_on: date
    rates: Mapping[CurrencyCode, Decimal] = Field(min_length=1)

    @field_validator("rates")
    @classmethod
    def _positive(cls, rates: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
        for currency, rate in rates.items():
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"the rate of {currency} must be a positive number, not {rate}")
        return rates


class RateAnswer(FrozenValue):
    """What a source published for a range of days.

    :param base_currency: the currency every rate is quoted against.
    :param publications: one per publication day within the asked range, oldest first,
        no day twice.
    :param complete_through: the last day for which the answer is final. Every day up to
        it without a publication is a day the publisher does not publish (a weekend, a
        holiday), and takes the previous publication's rates; days after it may still get
        their own. Never later than the day the publisher will publish next, minus one.
    """

    base_currency: CurrencyCode
    publications: tuple[Publication, ...] = ()
    complete_through: date

    @model_validator(mode="after")
    def _ordered(self) -> RateAnswer:
        days = [publication.published_on for publication in self.publications]
        if days != sorted(set(days)):
            raise ValueError("publications must be oldest first, one per day")
        if any(self.base_currency in p.rates for p in self.publications):
            raise ValueError("a publication must not quote the base currency against itself")
        return self


@runtime_checkable
class CurrencyRateSource(Protocol):
    """A publisher of daily reference exchange rates.

    Return instances from ``pixecom_register_currency_rates``. Core calls
    :meth:`fetch_rates` from its daily load (a worker task), from ``pixecom fx backfill``
    and from the conformance kit; a source holds no state core depends on.
    """

    #: Stored with every rate it supplied (``fx_rates.source``): lower case, stable.
    identifier: str
    #: The publisher, for people (``"European Central Bank"``).
    display_name: str
    #: The currency every rate of this source is quoted against (``"EUR"``).
    base_currency: str

    async def fetch_rates(self, since: date, until: date) -> RateAnswer:
        """The publications of the days ``since`` … ``until`` (both included).

        Fetch as little as the range allows (the ECB's daily file for the latest day, its
        90-day file for recent history, its full history for older days). A range the
        publisher cannot answer in full (older than it keeps) answers what it has;
        ``complete_through`` stays honest about the end of the range.

        :raises ProviderUnavailable: the publisher cannot be reached or answered a
            server error; try again later.
        :raises ProviderTransientError: a malformed or cut-off answer; try again.
        """
        ...

    async def aclose(self) -> None:
        """Release the source's HTTP client."""
        ...


def cross_rate(base_rates: Mapping[str, Decimal], base: str, source: str, target: str) -> Decimal:
    """Units of ``target`` one unit of ``source`` buys, from rates quoted against ``base``.

    ``base_rates[X]`` is units of X per unit of ``base``. Raises :class:`KeyError` when a
    currency is not quoted. Core does the same in SQL; this is for plugins' and tests' use.
    """
    per_base = {**base_rates, base: Decimal(1)}
    return per_base[target] / per_base[source]
