"""Seller-scoped repositories for creatives, assets and the links between them."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import ClassVar

from sqlalchemy import ColumnElement, exists, func, select
from sqlmodel import col

from pixecom_core.models.ads import (
    Ad,
    Asset,
    AssetStatus,
    Creative,
    CreativeAsset,
    CreativeStatus,
)
from pixecom_core.tenancy import Page, PageRequest, SellerRepository


class CreativeRepository(SellerRepository[Creative]):
    """Creatives of the scope's seller, oldest first."""

    model: ClassVar[type[Creative]] = Creative

    async def list_matching(
        self, page: PageRequest, *, status: CreativeStatus | None = None
    ) -> Page[Creative]:
        """One page of creatives, optionally in one status."""
        filters: list[ColumnElement[bool]] = []
        if status is not None:
            filters.append(col(Creative.status) == status)
        return await self.list(page, *filters)

    async def get_for_update(self, creative_id: uuid.UUID) -> Creative | None:
        """The creative, locked until the scope ends (``SELECT … FOR UPDATE``).

        Changes that check something first (is it used by an ad? how many assets does
        it have?) lock the creative so the check still holds when they write: a
        concurrent ad insert waits on the lock its foreign-key check takes.
        """
        statement = (
            select(Creative)
            .where(self._seller_filter, col(Creative.id) == creative_id)
            .with_for_update()
        )
        creative: Creative | None = (await self.scope.session.scalars(statement)).first()
        return creative

    async def get_many(self, creative_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Creative]:
        """The seller's creatives among ``creative_ids`` (at most one page's worth), by id."""
        if not creative_ids:
            return {}
        statement = select(Creative).where(
            self._seller_filter, col(Creative.id).in_(list(creative_ids))
        )
        rows = (await self.scope.session.scalars(statement)).all()
        return {row.id: row for row in rows}

    async def is_used_by_ads(self, creative_id: uuid.UUID) -> bool:
        """Whether any of the seller's ads is built from the creative."""
        statement = select(
            exists().where(
                col(Ad.seller_id) == self.scope.seller_id, col(Ad.creative_id) == creative_id
            )
        )
        return bool(await self.scope.session.scalar(statement))


class AssetRepository(SellerRepository[Asset]):
    """Assets of the scope's seller, oldest first."""

    model: ClassVar[type[Asset]] = Asset

    async def list_matching(
        self,
        page: PageRequest,
        *,
        status: AssetStatus | None = None,
        content_type: str | None = None,
    ) -> Page[Asset]:
        """One page of assets, optionally in one status and/or of one exact content type."""
        filters: list[ColumnElement[bool]] = []
        if status is not None:
            filters.append(col(Asset.status) == status)
        if content_type is not None:
            filters.append(col(Asset.content_type) == content_type)
        return await self.list(page, *filters)


class CreativeAssetRepository(SellerRepository[CreativeAsset]):
    """Links between the scope's seller's creatives and assets, oldest first."""

    model: ClassVar[type[CreativeAsset]] = CreativeAsset

    async def find(self, creative_id: uuid.UUID, asset_id: uuid.UUID) -> CreativeAsset | None:
        """The link of ``asset_id`` to ``creative_id``, if there is one."""
        statement = select(CreativeAsset).where(
            self._seller_filter,
            col(CreativeAsset.creative_id) == creative_id,
            col(CreativeAsset.asset_id) == asset_id,
        )
        link: CreativeAsset | None = (await self.scope.session.scalars(statement)).first()
        return link

    async def of_creative(self, creative_id: uuid.UUID, *, limit: int) -> list[CreativeAsset]:
        """The creative's links in display order (``position``, then when attached).

        ``limit`` bounds the read; the service caps how many assets a creative may have,
        so a creative's links fit in one read.
        """
        statement = (
            select(CreativeAsset)
            .where(self._seller_filter, col(CreativeAsset.creative_id) == creative_id)
            .order_by(
                col(CreativeAsset.position),
                col(CreativeAsset.created_at),
                col(CreativeAsset.id),
            )
            .limit(limit)
        )
        return list((await self.scope.session.scalars(statement)).all())

    async def count_for_creative(self, creative_id: uuid.UUID) -> int:
        """How many assets the creative has."""
        statement = select(func.count()).where(
            self._seller_filter, col(CreativeAsset.creative_id) == creative_id
        )
        return int(await self.scope.session.scalar(statement) or 0)

    async def list_for_asset(self, page: PageRequest, asset_id: uuid.UUID) -> Page[CreativeAsset]:
        """One page of the links that use ``asset_id`` (STORE-4: served by
        ``ix_creative_assets_asset_id``)."""
        return await self.list(page, col(CreativeAsset.asset_id) == asset_id)
