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

from pydantic import AwareDatetime, NonNegativeInt, SecretStr, field_validator, model_validator

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


class AdEntityStatus(StrEnum):
    """Whether a campaign, ad set or ad delivers, in core's four words.

    Networks say more (Meta's ``effective_status`` alone has a dozen values); a provider
    maps each of its values to the one here that tells a seller what they need to know.
    """

    #: Delivering, or allowed to deliver (a network's review or billing states included).
    ACTIVE = "active"
    #: Stopped by the seller, itself or through a parent (Meta's ``CAMPAIGN_PAUSED``).
    PAUSED = "paused"
    #: Kept for its history, never delivers again.
    ARCHIVED = "archived"
    #: Deleted on the network; its past numbers still count.
    DELETED = "deleted"


class AdEntity(FrozenValue):
    """A campaign, ad set or ad as the network names it now.

    :param entity_type: campaign, ad set or ad.
    :param entity_id: the network's id, as :attr:`InsightRow.entity_id` spells it.
    :param name: the name the seller gave it on the network (never empty: a provider names
        an unnamed entity itself, e.g. by its id).
    :param status: whether it delivers.
    :param parent_id: the campaign of an ad set, the ad set of an ad; ``None`` for a campaign.
    """

    entity_type: EntityLevel
    entity_id: str
    name: str
    status: AdEntityStatus
    parent_id: str | None = None

    @field_validator("entity_id", "name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # the dashboard shows the name where it used to show the id: a blank one hides the row
        if not value.strip():
            raise ValueError("must not be blank; name an unnamed entity by its id")
        return value

    @model_validator(mode="after")
    def _parent_matches_level(self) -> Self:
        # core files an ad set under its campaign and an ad under its ad set: without the
        # parent it cannot place them, and a campaign has none to place it under
        if (self.entity_type is EntityLevel.CAMPAIGN) != (self.parent_id is None):
            raise ValueError(
                f"a {self.entity_type.value} "
                + ("has no parent_id" if self.parent_id is not None else "needs its parent_id")
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


# -- connecting an account: the authorization flow ------------------------------------------


class AuthorizationKind(StrEnum):
    """How a seller gives PixEcom access to a network."""

    #: The network's OAuth consent page: PixEcom redirects the seller there with a ``state``
    #: and gets a single-use code back on its callback.
    OAUTH = "oauth"
    #: The seller pastes a token the network's own UI issued (no consent page).
    TOKEN = "token"


class AdAccountStatus(StrEnum):
    """Whether the network lets an ad account deliver (and so be synced)."""

    ACTIVE = "active"
    #: Disabled by the network (policy, risk review) — spend stops, history remains.
    DISABLED = "disabled"
    #: Unpaid balance, pending review or grace period: usable, but the seller must act.
    NEEDS_ATTENTION = "needs_attention"
    CLOSED = "closed"


class AdNetworkGrant(FrozenValue):
    """What a seller's consent gave PixEcom: a token, how long it lasts, what it may do.

    Core stores it encrypted, never logs it and never returns the token in a response.

    :param access_token: the token every call for the seller's accounts sends.
    :param expires_at: when it stops working; ``None`` when the network says it does not
        expire (a system-user token).
    :param scopes: the permissions the seller actually granted (a seller can untick some on
        the consent page; core checks them against :attr:`AdNetworkAuthorization.required_scopes`).
    :param subject: the network's id of the person or system user who granted it, to tell
        two people's connections apart; never a secret.
    """

    access_token: SecretStr
    expires_at: AwareDatetime | None = None
    scopes: tuple[str, ...] = ()
    subject: str | None = None


class ReachableAdAccount(FrozenValue):
    """One ad account a grant can read, as the account chooser lists it.

    :param account_id: the network's id, as :attr:`AdAccountCredentials.account_id` takes it.
    :param name: the account's display name.
    :param currency: the currency it reports spend in (ISO 4217).
    :param timezone: the IANA time zone it cuts days in.
    :param status: whether it can deliver.
    """

    account_id: str
    name: str
    currency: CurrencyCode
    timezone: str
    status: AdAccountStatus


@runtime_checkable
class AdNetworkAuthorization(Protocol):
    """How a seller connects their own accounts of a network: part of the ad-network
    contract, implemented by the same object as :class:`AdNetwork`.

    Core's connect flow (``POST /ad-accounts/connections``, the callback, the account
    chooser, reconnect) calls only these methods, so a new network needs no core change.
    An OAuth network builds a consent URL and exchanges the code it gets back; a network
    whose sellers paste a token (``authorization_kind = TOKEN``) answers ``None`` from
    :meth:`authorization_url` and turns the pasted token into a grant in
    :meth:`grant_from_token`. Every method raises the classes of
    :mod:`pixecom_core.providers.errors`: ``ProviderAuthError`` when a code, token or grant is
    refused (bad, used, expired, revoked) — never with the token in its message.
    """

    @property
    def authorization_kind(self) -> AuthorizationKind:
        """OAuth consent page or pasted token."""
        ...

    @property
    def required_scopes(self) -> tuple[str, ...]:
        """The permissions syncing needs (Meta: ``ads_read``); a grant without all of them
        is refused at connect time rather than failing at the first sync."""
        ...

    def authorization_url(self, *, state: str, redirect_uri: str) -> str | None:
        """The network's consent page for this seller, or ``None`` for a pasted-token network.

        :param state: core's signed, single-use value; the network hands it back unchanged
            on the redirect, next to the code.
        :param redirect_uri: core's callback; the code exchange must name the same URI.
        """
        ...

    async def exchange_code(self, *, code: str, redirect_uri: str) -> AdNetworkGrant:
        """Turn the code from the consent redirect into the longest-lived grant the network
        gives (Meta: a short-lived token exchanged for a ~60-day one at once).

        :param code: the single-use code from the redirect.
        :param redirect_uri: exactly the URI the consent URL named.
        """
        ...

    async def grant_from_token(self, access_token: SecretStr) -> AdNetworkGrant:
        """Check a token the seller pasted (or a network issued out of band) and describe it
        as a grant: expiry, scopes, subject. Raises ``ProviderAuthError`` if it is invalid."""
        ...

    async def extend_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """A grant that lasts longer, where the network allows it; the same grant where it
        does not. Core calls it when a grant nears expiry; an expired or revoked grant raises
        ``ProviderAuthError`` (the seller must reconnect)."""
        ...

    async def inspect_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """The grant as the network sees it now (Meta: ``debug_token``): its current expiry
        and scopes. Raises ``ProviderAuthError`` when it is no longer valid."""
        ...

    def list_ad_accounts(self, grant: AdNetworkGrant) -> AsyncIterator[ReachableAdAccount]:
        """Every ad account the grant reaches, following the network's paging; an
        ``async def`` generator."""
        ...


# -- naming the hierarchy: campaigns, ad sets and ads with their names and statuses ----------


@runtime_checkable
class AdNetworkEntities(Protocol):
    """How a network names its campaigns, ad sets and ads: an optional part of the
    ad-network contract, implemented by the same object as :class:`AdNetwork`.

    Insight rows carry ids only. After each successful sync of an account (regular or a
    backfill chunk) core asks a network that implements this protocol for the account's
    entities and writes their names, statuses and parents into ``campaigns``, ``adsets`` and
    ``ads``, so sellers see "Summer sale — paused" instead of a bare id. A network without
    it keeps working: its campaigns stay named by their id. A failing listing never fails
    the sync (the numbers have landed by then); core logs it and tries again next cycle.

    Errors: the classes of :mod:`pixecom_core.providers.errors`, as for :class:`AdNetwork`.
    """

    def list_entities(
        self, account: AdAccountCredentials, *, level: EntityLevel
    ) -> AsyncIterator[AdEntity]:
        """Yield every entity of ``level`` in the account, following the network's paging;
        an ``async def`` generator.

        List at least every entity the account's insights report, paused and archived
        ones included (a network that hides them by default must ask for them); a parent
        (``parent_id``) must itself be listed at its level.

        :param account: the seller's account and token.
        :param level: campaigns, ad sets or ads.
        """
        ...
