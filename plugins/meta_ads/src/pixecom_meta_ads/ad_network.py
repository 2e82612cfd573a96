"""The Meta Ads ad network provider: daily campaign, ad set and ad insights.

:class:`MetaAdNetwork` asks the Insights endpoint for one row per entity per day
(``time_increment=1`` over an inclusive ``time_range``), pages through the answer, and
yields core's :class:`~pixecom_core.providers.InsightRow` as pages arrive. It never sums,
caches or stores: core re-reads its window every cycle, so restated days (Meta changes
numbers for up to 28 days) arrive as newer snapshots.

Large windows are handled the way Meta asks: a window longer than
``async_report_threshold_days`` goes through an async report run; a window Meta refuses as
"too much data" is halved until it passes, and a single day that is still too large is read
through an async report run.

It also names the account's campaigns, ad sets and ads (core's ``AdNetworkEntities``) from
the ``/campaigns``, ``/adsets`` and ``/ads`` edges, statuses mapped in
:mod:`pixecom_meta_ads.entities`.

Sellers connect their accounts through Facebook Login for Business: the network is also
core's ``AdNetworkAuthorization``, and delegates those calls to
:class:`~pixecom_meta_ads.oauth.MetaLogin`.

It is core's ``ConversionsDestination`` too (issue 17 item 4):
:meth:`MetaAdNetwork.send_conversions` sends a seller's purchases to their pixel through the
Conversions API, in the wire format of :mod:`pixecom_meta_ads.conversions`, and
:meth:`MetaAdNetwork.browser_tag` gives sellpages the Meta pixel that reports the same
purchases from the browser (:mod:`pixecom_meta_ads.browser_tag`).
"""

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, ValidationError

from pixecom_core.providers import (
    AdAccountCredentials,
    AdAccountInfo,
    AdEntity,
    AdNetworkGrant,
    AuthorizationKind,
    BrowserTag,
    ConversionDestination,
    ConversionEvent,
    ConversionsReceipt,
    EntityLevel,
    InsightRow,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ReachableAdAccount,
)
from pixecom_meta_ads.browser_tag import meta_pixel_tag
from pixecom_meta_ads.client import (
    PROVIDER,
    MetaGraphClient,
    MetaTooMuchData,
    account_number,
    pixel_number,
)
from pixecom_meta_ads.conversions import missing_for_website, server_event
from pixecom_meta_ads.entities import ad_entity
from pixecom_meta_ads.oauth import REQUIRED_SCOPES, MetaLogin
from pixecom_meta_ads.rows import insight_row
from pixecom_meta_ads.settings import MetaAdsSettings


class MetaAdNetwork:
    """The ``meta`` ad network; implements ``pixecom_core.providers.AdNetwork``,
    ``AdNetworkEntities``, ``AdNetworkAuthorization`` (Facebook Login for Business, see
    :mod:`pixecom_meta_ads.oauth`) and ``ConversionsDestination`` (the Conversions API).

    One instance serves every seller: it holds settings and the HTTP clients, and each call
    brings the seller's account and token (or consent code, or grant).

    :param settings: Graph API location, version and limits; from ``PIXECOM_META_*`` when
        omitted.
    :param client: the Graph client to use (tests inject one with a recording sleep).
    :param login: the Facebook Login client to use (tests inject one).
    """

    identifier = "meta"
    display_name = "Meta Ads"
    authorization_kind = AuthorizationKind.OAUTH
    required_scopes = REQUIRED_SCOPES

    def __init__(
        self,
        settings: MetaAdsSettings | None = None,
        *,
        client: MetaGraphClient | None = None,
        login: MetaLogin | None = None,
    ) -> None:
        self.settings = settings if settings is not None else MetaAdsSettings()
        self.client = client if client is not None else MetaGraphClient(self.settings)
        self.login = login if login is not None else MetaLogin(self.settings)

    # -- connecting an account (AdNetworkAuthorization) -----------------------------------

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        """Facebook Login's consent dialog (see :meth:`MetaLogin.authorization_url`)."""
        return self.login.authorization_url(state=state, redirect_uri=redirect_uri)

    async def exchange_code(self, *, code: str, redirect_uri: str) -> AdNetworkGrant:
        """The consent code as a ~60-day grant (see :meth:`MetaLogin.exchange_code`)."""
        return await self.login.exchange_code(code=code, redirect_uri=redirect_uri)

    async def grant_from_token(self, access_token: SecretStr) -> AdNetworkGrant:
        """A pasted token as a grant, checked with ``debug_token``."""
        return await self.login.grant_from_token(access_token)

    async def extend_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """A fresh ~60-day token for the grant (``fb_exchange_token``)."""
        return await self.login.extend_grant(grant)

    async def inspect_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """The grant as ``debug_token`` sees it now; ``ProviderAuthError`` when invalid."""
        return await self.login.inspect_grant(grant)

    async def list_ad_accounts(self, grant: AdNetworkGrant) -> AsyncIterator[ReachableAdAccount]:
        """Every ad account of ``/me/adaccounts``, ids without ``act_``."""
        accounts = self.login.list_ad_accounts(grant)
        async with aclosing(accounts):
            async for account in accounts:
                yield account

    # -- reading an account (AdNetwork) ---------------------------------------------------

    async def describe_account(self, account: AdAccountCredentials) -> AdAccountInfo:
        """Return the ad account's name, currency and time zone (``GET /act_{id}``)."""
        page = await self.client.get_ad_account(
            _checked_account_number(account), account.access_token.get_secret_value()
        )
        body = page.body
        timezone = body.get("timezone_name")
        if not isinstance(timezone, str) or not _is_time_zone(timezone):
            raise ProviderError(
                f"Meta ad account {account.account_id} has no usable timezone_name "
                f"({timezone!r}); its days cannot be computed",
                provider=PROVIDER,
            )
        try:
            return AdAccountInfo(
                account_id=account.account_id,
                name=str(body.get("name") or account.account_id),
                currency=str(body.get("currency", "")).upper(),
                timezone=timezone,
            )
        except ValidationError as exc:
            raise ProviderError(
                f"Meta ad account {account.account_id} reported an unusable currency "
                f"({body.get('currency')!r})",
                provider=PROVIDER,
            ) from exc

    async def fetch_daily_insights(
        self,
        account: AdAccountCredentials,
        *,
        level: EntityLevel,
        since: date,
        until: date,
    ) -> AsyncIterator[InsightRow]:
        """Yield one row per entity per day between ``since`` and ``until``, both inclusive.

        Days are the account's days (Meta cuts them in the account time zone). An entity and
        day seen twice in one fetch (Meta repeating a row across pages, or a window re-read
        after a split) is yielded once.

        :raises ValueError: ``since`` is after ``until``.
        :raises ProviderError: the account id is not a Meta ad account id, and the classes
            listed in :mod:`pixecom_meta_ads.client` for Meta's answers.
        """
        if since > until:
            raise ValueError(f"since {since} is after until {until}")
        number = _checked_account_number(account)
        token = account.access_token.get_secret_value()
        yielded: set[tuple[str, date]] = set()
        rows = self._window(number, token, level=level, since=since, until=until)
        async with aclosing(rows):
            async for row in rows:
                if not since <= row.date_start <= until:
                    raise ProviderError(
                        f"Meta returned {level.value} {row.entity_id} for {row.date_start}, "
                        f"outside the window {since}..{until} that was asked for",
                        provider=PROVIDER,
                    )
                key = (row.entity_id, row.date_start)
                if key in yielded:
                    continue
                yielded.add(key)
                yield row

    async def list_entities(
        self, account: AdAccountCredentials, *, level: EntityLevel
    ) -> AsyncIterator[AdEntity]:
        """Every campaign, ad set or ad of the account, archived ones included, page by
        page; an object Meta repeats across pages is yielded once.

        :raises ProviderError: the account id is not a Meta ad account id, an object has no
            id or parent id, and the classes listed in :mod:`pixecom_meta_ads.client`.
        """
        number = _checked_account_number(account)
        pages = self.client.entity_pages(
            number, account.access_token.get_secret_value(), level=level
        )
        yielded: set[str] = set()
        async with aclosing(pages):
            async for page in pages:
                for item in page.rows:
                    entity = ad_entity(item, level=level)
                    if entity.entity_id not in yielded:
                        yielded.add(entity.entity_id)
                        yield entity

    # -- server-side conversions (ConversionsDestination) ----------------------------------

    #: Events one call takes (core's contract; Meta would take 1,000).
    max_conversions_per_call = 100

    async def send_conversions(
        self, destination: ConversionDestination, events: Sequence[ConversionEvent]
    ) -> ConversionsReceipt:
        """Send ``events`` to the pixel ``destination.destination_id`` as ``website``
        server events (``POST /{version}/{pixel_id}/events``; fields and hashing in
        :mod:`pixecom_meta_ads.conversions`), ``test_event_code`` when the seller set one.

        Meta takes or refuses the batch whole, so send one order per call when one bad
        order must not hold back others. Sending an event again is harmless: Meta keeps
        one event per ``event_name`` and ``event_id`` (the order id).

        :raises ValueError: more than :attr:`max_conversions_per_call` events.
        :raises ProviderRefused: Meta refused an event (code 100: too old, unhashed
            customer data …), or an event lacks what a website event needs
            (``event_source_url``, the shopper's user agent) — checked before sending;
            the pixel id is not a number.
        :raises ProviderAuthError: the token was refused (code 190, permissions), or the
            pixel does not exist for it (code 100/33).
        :raises ProviderThrottled: Meta's rate limit, after the short waits slept through.
        :raises ProviderTransientError: 5xx, timeouts, code 1/2, after the retries.
        """
        if len(events) > self.max_conversions_per_call:
            raise ValueError(
                f"at most {self.max_conversions_per_call} conversion events per call, "
                f"not {len(events)}"
            )
        if not events:
            return ConversionsReceipt(received=0)
        try:
            pixel = pixel_number(destination.destination_id)
        except ValueError as exc:
            raise ProviderRefused(
                f"seller {destination.seller_id}: {exc}; set the Meta pixel id again",
                provider=PROVIDER,
            ) from None
        token = destination.access_token.get_secret_value()
        if not token:
            raise ProviderAuthError(
                f"seller {destination.seller_id} has no Conversions API access token for "
                f"Meta pixel {pixel}",
                provider=PROVIDER,
            )
        for event in events:
            missing = missing_for_website(event)
            if missing:
                # Meta refuses the whole request for one such event; say which, before sending
                raise ProviderRefused(
                    f"Meta needs {' and '.join(missing)} for the website event "
                    f"{event.event_id}; it was not sent",
                    provider=PROVIDER,
                )
        page = await self.client.send_events(
            pixel,
            token,
            [server_event(event) for event in events],
            test_event_code=destination.test_event_code,
        )
        received = page.body.get("events_received")
        if not isinstance(received, int) or isinstance(received, bool) or received < 0:
            raise ProviderError(
                f"Meta answered events for pixel {pixel} without a count of events received",
                provider=PROVIDER,
            )
        trace = page.body.get("fbtrace_id")
        return ConversionsReceipt(
            received=received, trace_id=str(trace) if trace is not None else None
        )

    def browser_tag(self, destination_id: str) -> BrowserTag | None:
        """The Meta pixel ``destination_id`` for sellpages: Meta's base code (``fbq``
        queue, ``init``, ``PageView``) and a ``Purchase`` whose ``eventID`` is the page's
        ``orderId`` — the ``event_id`` :meth:`send_conversions` sends, so Meta counts the
        purchase once ("Handling Duplicate Pixel and Conversions API Events",
        developers.facebook.com/docs/marketing-api/conversions-api/
        deduplicate-pixel-and-server-events: "the eventID parameter for the Pixel is the
        4th argument in the fbq track call"). The library is loaded from
        ``settings.pixel_script_url`` (``PIXECOM_META_PIXEL_SCRIPT_URL``; Meta's
        ``https://connect.facebook.net/en_US/fbevents.js`` by default, the sandbox's
        stand-in in dev mode). Details and escaping in :mod:`pixecom_meta_ads.browser_tag`.

        :returns: ``None`` when ``destination_id`` is not 1 to 32 digits: it is written
            into the page's JavaScript, so nothing else is.
        """
        return meta_pixel_tag(destination_id, script_url=self.settings.pixel_script_url)

    async def _window(
        self,
        number: str,
        token: str,
        *,
        level: EntityLevel,
        since: date,
        until: date,
        use_report_run: bool | None = None,
    ) -> AsyncGenerator[InsightRow, None]:
        days = (until - since).days + 1
        if use_report_run is None:
            use_report_run = days > self.settings.async_report_threshold_days
        read = self.client.report_run_pages if use_report_run else self.client.insight_pages
        pages = read(number, token, level=level, since=since, until=until)
        try:
            async with aclosing(pages):
                async for page in pages:
                    for item in page.rows:
                        yield insight_row(
                            item,
                            level=level,
                            purchase_action_type=self.settings.purchase_action_type,
                            clicks_field=self.settings.clicks_field,
                            fetched_at=page.received_at,
                        )
        except MetaTooMuchData as exc:
            parts = _halves(since, until) if days > 1 else []
            if not parts and use_report_run:
                raise ProviderError(
                    f"Meta finds even one day of {level.value} insights for act_{number} "
                    f"({since}) too large, through an async report run too",
                    provider=PROVIDER,
                ) from exc
            # rows of this window already yielded come again; fetch_daily_insights drops them
            for part_since, part_until in parts or [(since, until)]:
                part = self._window(
                    number,
                    token,
                    level=level,
                    since=part_since,
                    until=part_until,
                    use_report_run=None if parts else True,
                )
                async with aclosing(part):
                    async for row in part:
                        yield row

    async def aclose(self) -> None:
        """Close the HTTP connections (at shutdown)."""
        await self.client.aclose()
        await self.login.aclose()


def _halves(since: date, until: date) -> list[tuple[date, date]]:
    middle = since + timedelta(days=(until - since).days // 2)
    return [(since, middle), (middle + timedelta(days=1), until)]


def _checked_account_number(account: AdAccountCredentials) -> str:
    try:
        return account_number(account.account_id)
    except ValueError as exc:
        # a ProviderError, so core records it against this account and moves on
        raise ProviderError(
            f"seller {account.seller_id}: {exc}; reconnect the Meta ad account",
            provider=PROVIDER,
        ) from None


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
