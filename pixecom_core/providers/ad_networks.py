"""The ad-network provider interface and the values it exchanges with core.

An ad network reports what a seller spent and what it got for it. Core's stats pipeline
asks for **per-day** numbers over a window that it re-reads every cycle (networks restate
data for up to 28 days), keeps every fetch in ``ad_stats_raw`` and the latest snapshot per
entity and day in ``ad_stats_daily``. The provider therefore only fetches and normalises:
it never sums, caches or stores.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import date
from enum import StrEnum
from typing import Protocol, Self, runtime_checkable

from pydantic import AwareDatetime, NonNegativeInt, SecretStr, model_validator

from pixecom_core.providers.values import CurrencyCode, FrozenValue, Micros


class EntityLevel(StrEnum):
    """The level of the ad hierarchy an insight row describes."""

    CAMPAIGN = "campaign"
    ADSET = "adset"
    AD = "ad"


class AdAccountCredentials(FrozenValue):
    """What a provider needs to call the network on behalf of one seller's ad account.

    :param seller_id: the seller who connected the account; every call is made for one seller.
    :param account_id: the network's account id, as the network spells it (``act_123`` style
        prefixes are the provider's business).
    :param access_token: the seller's token; never logged, never part of an error message.
    :param token_expires_at: when the token stops working, if the network says.
    """

    seller_id: uuid.UUID
    account_id: str
    access_token: SecretStr
    token_expires_at: AwareDatetime | None = None


class AdAccountInfo(FrozenValue):
    """How the network describes an ad account.

    :param account_id: the network's account id.
    :param name: the account's display name.
    :param currency: the currency spend is reported in (ISO 4217).
    :param timezone: the IANA time zone the network cuts days in (e.g. ``America/New_York``);
        insight dates are days in this zone.
    """

    account_id: str
    name: str
    currency: CurrencyCode
    timezone: str


class InsightRow(FrozenValue):
    """One entity's numbers for one day, as fetched at ``fetched_at``.

    A later fetch of the same entity and day is a newer snapshot that replaces this one; it is
    never added to it. Amounts are in micros of ``currency``.

    :param network: the provider's ``identifier`` (e.g. ``"meta"``).
    :param entity_type: campaign, ad set or ad.
    :param entity_id: the network's id of the entity.
    :param date_start: the day the numbers are for, in the account's time zone.
    :param date_stop: equal to ``date_start``: rows are always per day.
    :param spend_micros: amount spent.
    :param impressions: impressions served.
    :param clicks: clicks (link clicks where the network distinguishes).
    :param purchases: purchases the network attributes to the entity.
    :param purchase_value_micros: value of those purchases as the network reports it.
    :param currency: the account currency (ISO 4217).
    :param fetched_at: when the provider received the numbers (timezone-aware).
    """

    network: str
    entity_type: EntityLevel
    entity_id: str
    date_start: date
    date_stop: date
    spend_micros: Micros
    impressions: NonNegativeInt
    clicks: NonNegativeInt
    purchases: NonNegativeInt
    purchase_value_micros: Micros
    currency: CurrencyCode
    fetched_at: AwareDatetime

    @model_validator(mode="after")
    def _one_day_per_row(self) -> Self:
        # Exactly-once numbers rest on one snapshot per entity per day; a multi-day row would
        # be double counted against the daily rows around it.
        if self.date_start != self.date_stop:
            raise ValueError(
                f"insight rows cover one day: date_start {self.date_start} != "
                f"date_stop {self.date_stop}; ask the network for a daily breakdown"
            )
        return self


@runtime_checkable
class AdNetwork(Protocol):
    """An ad network (Meta, TikTok, Google Ads, ...) that reports spend per entity and day.

    Register an implementation with the ``pixecom_register_ad_networks`` hook. The object is
    shared by every seller and task, so it holds configuration (API version, HTTP client) but
    no per-seller state: the seller's credentials come with every call.

    Errors: raise the classes of :mod:`pixecom_core.providers.errors` —
    ``ProviderThrottled`` with the wait the network asked for, ``ProviderAuthError`` when the
    token is refused, ``ProviderTransientError`` for timeouts and 5xx,
    ``ProviderUnavailable`` when the network is down for everyone.
    """

    @property
    def identifier(self) -> str:
        """The stable key core stores with every row, e.g. ``"meta"``; never change it."""
        ...

    @property
    def display_name(self) -> str:
        """The name shown to sellers, e.g. ``"Meta Ads"``."""
        ...

    def fetch_daily_insights(
        self,
        account: AdAccountCredentials,
        *,
        level: EntityLevel,
        since: date,
        until: date,
    ) -> AsyncIterator[InsightRow]:
        """Yield one row per entity per day between ``since`` and ``until``, both inclusive.

        Implement it as an ``async def`` generator that pages through the network's report
        and yields rows as they arrive, so core can stream them into ``COPY`` without holding
        a whole account in memory. Entities with no delivery on a day may be left out.

        :param account: the seller's account and token.
        :param level: which level of the hierarchy to report on.
        :param since: first day, in the account's time zone.
        :param until: last day, in the account's time zone.
        """
        ...

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        """Return the account's name, currency and time zone.

        Core calls it when an account is connected and before each sync window is computed,
        because the time zone decides which days "the last 3 days" are.

        :param account: the seller's account and token.
        """
        ...
