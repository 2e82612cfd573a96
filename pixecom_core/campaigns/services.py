"""CampaignService: a seller reads its campaign hierarchy and ties campaigns to sellpages.

Campaigns, ad sets and ads come from the ad networks (the sync writes them); sellers only
read them here. The one change a seller makes is which sellpage a campaign sends traffic
to: that link is what attributes the campaign's spend to a sellpage's revenue (ROAS).
"""

from __future__ import annotations

import uuid

from pixecom_core.campaigns.repositories import AdRepository, AdsetRepository, CampaignRepository
from pixecom_core.catalog.repositories import SellpageRepository
from pixecom_core.dashboard_cache import dashboard_changed_on_commit
from pixecom_core.errors import InvalidRequestError, NotFoundError
from pixecom_core.models.ads import Ad, AdEntityStatus, Adset, Campaign
from pixecom_core.models.base import utcnow
from pixecom_core.stats.aggregate import mark_campaign_days_dirty
from pixecom_core.tenancy import Page, PageRequest, SellerContext


class CampaignService:
    """Read campaigns, ad sets and ads of one seller; link campaigns to sellpages.

    Every id is looked up in the seller's scope, so another seller's id is simply not
    found (:class:`NotFoundError`), never "forbidden": a response never tells whether an
    id exists elsewhere.
    """

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    # -- campaigns --------------------------------------------------------------------

    async def list_campaigns(
        self,
        page: PageRequest,
        *,
        status: AdEntityStatus | None = None,
        ad_account_id: uuid.UUID | None = None,
        sellpage_id: uuid.UUID | None = None,
        linked: bool | None = None,
    ) -> Page[Campaign]:
        """One page of the seller's campaigns, oldest first; each filter narrows it.

        :param linked: ``True`` for campaigns tied to a sellpage, ``False`` for untied
            ones. Asking for a ``sellpage_id`` together with ``linked=False`` can match
            nothing and is refused with :class:`InvalidRequestError`.
        """
        if sellpage_id is not None and linked is False:
            raise InvalidRequestError(
                "sellpage_id and linked=false contradict each other; drop one of them",
                code="contradictory_filters",
            )
        async with self._context.scope() as scope:
            return await CampaignRepository(scope).list_matching(
                page,
                status=status,
                ad_account_id=ad_account_id,
                sellpage_id=sellpage_id,
                linked=linked,
            )

    async def get_campaign(self, campaign_id: uuid.UUID) -> Campaign:
        """The seller's campaign ``campaign_id``; :class:`NotFoundError` otherwise."""
        async with self._context.scope() as scope:
            campaign = await CampaignRepository(scope).get(campaign_id)
        if campaign is None:
            raise NotFoundError("no such campaign")
        return campaign

    async def link_campaign(
        self, campaign_id: uuid.UUID, sellpage_id: uuid.UUID | None
    ) -> Campaign:
        """Tie the campaign to ``sellpage_id``, or untie it when ``sellpage_id`` is None.

        Both ids must be the seller's: an unknown campaign or sellpage (another seller's
        included) raises :class:`NotFoundError` and changes nothing. The composite foreign
        key ``(seller_id, sellpage_id)`` would refuse another seller's sellpage anyway;
        checking first gives the caller a 404 instead of a database error.

        A change moves the campaign's spend between sellpages (or in and out of the
        unattributed line) on every day it spent, however old: those days are marked for
        re-aggregation in the same transaction (issue 16 item 4); the next sync or
        revenue refresh recomputes them. Returns after the commit.
        """
        async with self._context.scope() as scope:
            campaign = await CampaignRepository(scope).get(campaign_id)
            if campaign is None:
                raise NotFoundError("no such campaign")
            if sellpage_id is not None and await SellpageRepository(scope).get(sellpage_id) is None:
                raise NotFoundError("no such sellpage", code="sellpage_not_found")
            if campaign.sellpage_id != sellpage_id:
                campaign.sellpage_id = sellpage_id
                campaign.updated_at = utcnow()
                await scope.session.flush()
                await mark_campaign_days_dirty(scope, campaign.id)
                # Issue 18: the link moves spend between the seller's cached stats lines.
                dashboard_changed_on_commit(scope)
            return campaign

    # -- ad sets ----------------------------------------------------------------------

    async def list_adsets(
        self,
        page: PageRequest,
        *,
        campaign_id: uuid.UUID | None = None,
        status: AdEntityStatus | None = None,
    ) -> Page[Adset]:
        """One page of the seller's ad sets, oldest first, optionally of one campaign
        (another seller's campaign id matches nothing) and/or in one status."""
        async with self._context.scope() as scope:
            return await AdsetRepository(scope).list_matching(
                page, campaign_id=campaign_id, status=status
            )

    async def get_adset(self, adset_id: uuid.UUID) -> Adset:
        """The seller's ad set ``adset_id``; :class:`NotFoundError` otherwise."""
        async with self._context.scope() as scope:
            adset = await AdsetRepository(scope).get(adset_id)
        if adset is None:
            raise NotFoundError("no such ad set")
        return adset

    # -- ads --------------------------------------------------------------------------

    async def list_ads(
        self,
        page: PageRequest,
        *,
        adset_id: uuid.UUID | None = None,
        status: AdEntityStatus | None = None,
    ) -> Page[Ad]:
        """One page of the seller's ads, oldest first, optionally of one ad set and/or
        in one status."""
        async with self._context.scope() as scope:
            return await AdRepository(scope).list_matching(page, adset_id=adset_id, status=status)

    async def get_ad(self, ad_id: uuid.UUID) -> Ad:
        """The seller's ad ``ad_id``; :class:`NotFoundError` otherwise."""
        async with self._context.scope() as scope:
            ad = await AdRepository(scope).get(ad_id)
        if ad is None:
            raise NotFoundError("no such ad")
        return ad
