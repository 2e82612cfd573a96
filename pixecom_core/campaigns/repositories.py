"""Seller-scoped repositories for the campaign hierarchy: campaigns, ad sets and ads."""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import ColumnElement
from sqlmodel import col

from pixecom_core.models.ads import Ad, AdEntityStatus, Adset, Campaign
from pixecom_core.tenancy import Page, PageRequest, SellerRepository


class CampaignRepository(SellerRepository[Campaign]):
    """Campaigns of the scope's seller, oldest first."""

    model: ClassVar[type[Campaign]] = Campaign

    async def list_matching(
        self,
        page: PageRequest,
        *,
        status: AdEntityStatus | None = None,
        ad_account_id: uuid.UUID | None = None,
        sellpage_id: uuid.UUID | None = None,
        linked: bool | None = None,
    ) -> Page[Campaign]:
        """One page of campaigns; each given filter narrows it.

        :param linked: ``True`` keeps campaigns tied to some sellpage, ``False`` those
            tied to none (the ones whose spend no sellpage accounts for yet).
        """
        filters: list[ColumnElement[bool]] = []
        if status is not None:
            filters.append(col(Campaign.status) == status)
        if ad_account_id is not None:
            filters.append(col(Campaign.ad_account_id) == ad_account_id)
        if sellpage_id is not None:
            # STORE-4, TENANT-2: served by ix_campaigns_sellpage_id_seller_id.
            filters.append(col(Campaign.sellpage_id) == sellpage_id)
        if linked is True:
            filters.append(col(Campaign.sellpage_id).is_not(None))
        elif linked is False:
            filters.append(col(Campaign.sellpage_id).is_(None))
        return await self.list(page, *filters)


class AdsetRepository(SellerRepository[Adset]):
    """Ad sets of the scope's seller, oldest first."""

    model: ClassVar[type[Adset]] = Adset

    async def list_matching(
        self,
        page: PageRequest,
        *,
        campaign_id: uuid.UUID | None = None,
        status: AdEntityStatus | None = None,
    ) -> Page[Adset]:
        """One page of ad sets, optionally of one campaign and/or in one status."""
        filters: list[ColumnElement[bool]] = []
        if campaign_id is not None:
            filters.append(col(Adset.campaign_id) == campaign_id)
        if status is not None:
            filters.append(col(Adset.status) == status)
        return await self.list(page, *filters)


class AdRepository(SellerRepository[Ad]):
    """Ads of the scope's seller, oldest first."""

    model: ClassVar[type[Ad]] = Ad

    async def list_matching(
        self,
        page: PageRequest,
        *,
        adset_id: uuid.UUID | None = None,
        status: AdEntityStatus | None = None,
    ) -> Page[Ad]:
        """One page of ads, optionally of one ad set and/or in one status."""
        filters: list[ColumnElement[bool]] = []
        if adset_id is not None:
            filters.append(col(Ad.adset_id) == adset_id)
        if status is not None:
            filters.append(col(Ad.status) == status)
        return await self.list(page, *filters)
