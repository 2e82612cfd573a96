"""CreativeService: a seller builds creatives from its uploaded assets.

Rules this service holds:

- a creative has at most :data:`MAX_ASSETS_PER_CREATIVE` assets, so a creative and its
  assets are always read in one bounded query (SCALE-4);
- only ``READY`` assets (they passed the post-upload checks) can be attached, and an
  ``ARCHIVED`` creative takes no new assets;
- deleting a creative that an ad is built from **archives** it instead (status
  ``ARCHIVED``): the ad keeps pointing at what it showed, the seller's live lists no longer
  include it (``ix_creatives_seller_id_status_live`` skips archived rows), and it can be
  restored with a status change. A creative no ad uses is deleted, its asset links with
  it (``ON DELETE CASCADE``); the assets themselves stay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from enum import Enum, StrEnum

from pixecom_core.creatives.repositories import (
    AssetRepository,
    CreativeAssetRepository,
    CreativeRepository,
)
from pixecom_core.errors import ConflictError, NotFoundError
from pixecom_core.models.ads import (
    Asset,
    AssetStatus,
    Creative,
    CreativeAsset,
    CreativeAssetRole,
    CreativeStatus,
)
from pixecom_core.models.base import utcnow
from pixecom_core.tenancy import Page, PageRequest, SellerContext

#: The most assets one creative may use (a carousel has at most ten cards, each with an
#: image and a thumbnail); it keeps "a creative with its assets" a bounded read.
MAX_ASSETS_PER_CREATIVE = 20


class _Unset(Enum):
    UNSET = "UNSET"


#: "Leave this field as it is" in :class:`CreativeChanges` (``None`` means "clear it").
UNSET = _Unset.UNSET


@dataclass(frozen=True)
class CreativeDraft:
    """A new creative."""

    name: str
    status: CreativeStatus = CreativeStatus.DRAFT
    headline: str | None = None
    primary_text: str | None = None
    call_to_action: str | None = None


@dataclass(frozen=True)
class CreativeChanges:
    """What to change in a creative; fields left :data:`UNSET` keep their value."""

    name: str | _Unset = UNSET
    status: CreativeStatus | _Unset = UNSET
    headline: str | None | _Unset = UNSET
    primary_text: str | None | _Unset = UNSET
    call_to_action: str | None | _Unset = UNSET


@dataclass(frozen=True)
class CreativeDetail:
    """A creative and its asset links in display order (``position``)."""

    creative: Creative
    assets: list[CreativeAsset]


@dataclass(frozen=True)
class AssetUsage:
    """One creative that uses an asset, and how."""

    creative: Creative
    role: CreativeAssetRole
    position: int


class CreativeRemoval(StrEnum):
    """What deleting a creative did."""

    #: No ad used it: the creative and its asset links are gone.
    DELETED = "DELETED"
    #: An ad is built from it: it was archived instead, and stays readable.
    ARCHIVED = "ARCHIVED"


class CreativeService:
    """Create, read, change and delete one seller's creatives; read its assets.

    Ids of another seller are not found (:class:`NotFoundError`), like unknown ids.
    """

    def __init__(self, context: SellerContext) -> None:
        self._context = context

    # -- creatives --------------------------------------------------------------------

    async def create_creative(self, draft: CreativeDraft) -> CreativeDetail:
        """Create a creative (with no assets yet) and return it."""
        async with self._context.scope() as scope:
            creative = CreativeRepository(scope).add(
                Creative(
                    seller_id=scope.seller_id,
                    name=draft.name,
                    status=draft.status,
                    headline=draft.headline,
                    primary_text=draft.primary_text,
                    call_to_action=draft.call_to_action,
                )
            )
            await scope.session.flush()
            return CreativeDetail(creative=creative, assets=[])

    async def list_creatives(
        self, page: PageRequest, *, status: CreativeStatus | None = None
    ) -> Page[Creative]:
        """One page of the seller's creatives, oldest first, optionally in one status."""
        async with self._context.scope() as scope:
            return await CreativeRepository(scope).list_matching(page, status=status)

    async def get_creative(self, creative_id: uuid.UUID) -> CreativeDetail:
        """The seller's creative with its assets; :class:`NotFoundError` otherwise."""
        async with self._context.scope() as scope:
            creative = await CreativeRepository(scope).get(creative_id)
            if creative is None:
                raise NotFoundError("no such creative")
            assets = await CreativeAssetRepository(scope).of_creative(
                creative_id, limit=MAX_ASSETS_PER_CREATIVE
            )
            return CreativeDetail(creative=creative, assets=assets)

    async def update_creative(
        self, creative_id: uuid.UUID, changes: CreativeChanges
    ) -> CreativeDetail:
        """Apply ``changes`` to the seller's creative and return it.

        Any status may be set, ``ARCHIVED`` included (and from ``ARCHIVED`` back, which
        restores a creative archived by :meth:`delete_creative`).
        """
        async with self._context.scope() as scope:
            creative = await CreativeRepository(scope).get_for_update(creative_id)
            if creative is None:
                raise NotFoundError("no such creative")
            changed = False
            for field in fields(changes):
                value = getattr(changes, field.name)
                if value is not UNSET and getattr(creative, field.name) != value:
                    setattr(creative, field.name, value)
                    changed = True
            if changed:
                creative.updated_at = utcnow()
                await scope.session.flush()
            assets = await CreativeAssetRepository(scope).of_creative(
                creative_id, limit=MAX_ASSETS_PER_CREATIVE
            )
            return CreativeDetail(creative=creative, assets=assets)

    async def delete_creative(self, creative_id: uuid.UUID) -> CreativeRemoval:
        """Delete the seller's creative, or archive it when an ad is built from it.

        The creative is locked first, so an ad created concurrently either commits
        before the check (and the creative is archived) or waits until the creative is
        gone (and its foreign key then refuses the ad).
        """
        async with self._context.scope() as scope:
            creatives = CreativeRepository(scope)
            creative = await creatives.get_for_update(creative_id)
            if creative is None:
                raise NotFoundError("no such creative")
            if await creatives.is_used_by_ads(creative_id):
                if creative.status is not CreativeStatus.ARCHIVED:
                    creative.status = CreativeStatus.ARCHIVED
                    creative.updated_at = utcnow()
                return CreativeRemoval.ARCHIVED
            await creatives.delete(creative)
            return CreativeRemoval.DELETED

    # -- a creative's assets ----------------------------------------------------------

    async def attach_asset(
        self,
        creative_id: uuid.UUID,
        asset_id: uuid.UUID,
        *,
        role: CreativeAssetRole = CreativeAssetRole.PRIMARY,
        position: int = 0,
    ) -> CreativeAsset:
        """Use the asset in the creative with ``role`` at ``position``; if it is already
        used, change its role and position instead (the call is idempotent).

        :raises NotFoundError: the creative or the asset is not the seller's.
        :raises ConflictError: the asset is not ``READY`` (``asset_not_ready``), the
            creative is archived (``creative_archived``) or already has
            :data:`MAX_ASSETS_PER_CREATIVE` assets (``too_many_assets``).
        """
        async with self._context.scope() as scope:
            # Locked, so two concurrent attaches cannot both pass the count check.
            creative = await CreativeRepository(scope).get_for_update(creative_id)
            if creative is None:
                raise NotFoundError("no such creative")
            asset = await AssetRepository(scope).get(asset_id)
            if asset is None:
                raise NotFoundError("no such asset", code="asset_not_found")
            if creative.status is CreativeStatus.ARCHIVED:
                raise ConflictError(
                    "the creative is archived; set another status before adding assets",
                    code="creative_archived",
                )
            if asset.status is not AssetStatus.READY:
                raise ConflictError(
                    f"the asset is {asset.status.value}; only READY assets can be used",
                    code="asset_not_ready",
                )
            links = CreativeAssetRepository(scope)
            link = await links.find(creative_id, asset_id)
            if link is None:
                if await links.count_for_creative(creative_id) >= MAX_ASSETS_PER_CREATIVE:
                    raise ConflictError(
                        f"a creative uses at most {MAX_ASSETS_PER_CREATIVE} assets; "
                        "detach one first",
                        code="too_many_assets",
                    )
                link = links.add(
                    CreativeAsset(
                        seller_id=scope.seller_id,
                        creative_id=creative_id,
                        asset_id=asset_id,
                        role=role,
                        position=position,
                    )
                )
            else:
                link.role = role
                link.position = position
            creative.updated_at = utcnow()
            await scope.session.flush()
            return link

    async def detach_asset(self, creative_id: uuid.UUID, asset_id: uuid.UUID) -> None:
        """Stop using the asset in the creative (the asset itself stays).

        :raises NotFoundError: the creative is not the seller's, or does not use the asset.
        """
        async with self._context.scope() as scope:
            creative = await CreativeRepository(scope).get_for_update(creative_id)
            if creative is None:
                raise NotFoundError("no such creative")
            links = CreativeAssetRepository(scope)
            link = await links.find(creative_id, asset_id)
            if link is None:
                raise NotFoundError(
                    "the creative does not use this asset", code="creative_asset_not_found"
                )
            await links.delete(link)
            creative.updated_at = utcnow()

    # -- assets -----------------------------------------------------------------------

    async def list_assets(
        self,
        page: PageRequest,
        *,
        status: AssetStatus | None = None,
        content_type: str | None = None,
    ) -> Page[Asset]:
        """One page of the seller's assets, oldest first, optionally in one status and/or
        of one exact content type (``image/png``)."""
        async with self._context.scope() as scope:
            return await AssetRepository(scope).list_matching(
                page, status=status, content_type=content_type
            )

    async def get_asset(self, asset_id: uuid.UUID) -> Asset:
        """The seller's asset ``asset_id``; :class:`NotFoundError` otherwise."""
        async with self._context.scope() as scope:
            asset = await AssetRepository(scope).get(asset_id)
        if asset is None:
            raise NotFoundError("no such asset")
        return asset

    async def asset_usage(self, asset_id: uuid.UUID, page: PageRequest) -> Page[AssetUsage]:
        """One page of the creatives that use the seller's asset, in the order they
        started using it.

        :raises NotFoundError: the asset is not the seller's (an unused asset answers an
            empty page).
        """
        async with self._context.scope() as scope:
            if await AssetRepository(scope).get(asset_id) is None:
                raise NotFoundError("no such asset")
            links = await CreativeAssetRepository(scope).list_for_asset(page, asset_id)
            creatives = await CreativeRepository(scope).get_many(
                {link.creative_id for link in links.items}
            )
        usages = [
            AssetUsage(creative=creatives[link.creative_id], role=link.role, position=link.position)
            for link in links.items
            if link.creative_id in creatives
        ]
        return Page(items=usages, next_cursor=links.next_cursor, limit=links.limit)
