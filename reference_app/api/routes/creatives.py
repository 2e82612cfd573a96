"""Creatives (full CRUD, and which assets they use) and the seller's uploaded assets.

``DELETE /creatives/{creative_id}`` deletes a creative no ad uses and archives one an ad
is built from (see :mod:`pixecom_core.creatives.services`); either way it answers 204,
and a later ``GET`` tells which happened (404, or the creative with status ``ARCHIVED``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixecom_core.creatives import (
    AssetUsage,
    CreativeChanges,
    CreativeDetail,
    CreativeDraft,
    CreativeService,
)
from pixecom_core.models.ads import (
    Asset,
    AssetStatus,
    Creative,
    CreativeAsset,
    CreativeAssetRole,
    CreativeStatus,
)
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.schemas import NotNull, PageOut, omittable

router = APIRouter(tags=["creatives"])

#: Every authenticated route can answer these: no valid token, or the seller's quota spent.
_AUTH_ERRORS = (401, 429)

#: Longest texts accepted, a little above what the ad networks themselves allow.
_MAX_NAME = 200
_MAX_HEADLINE = 255
_MAX_PRIMARY_TEXT = 5000
_MAX_CALL_TO_ACTION = 64


class CreativeIn(BaseModel):
    """A new creative; assets are attached afterwards."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Summer hero",
                    "status": "DRAFT",
                    "headline": "Beat the heat",
                    "primary_text": "Quiet fans, 30% off this week.",
                    "call_to_action": "SHOP_NOW",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=_MAX_NAME)
    status: CreativeStatus = CreativeStatus.DRAFT
    headline: str | None = Field(default=None, max_length=_MAX_HEADLINE)
    primary_text: str | None = Field(default=None, max_length=_MAX_PRIMARY_TEXT)
    call_to_action: str | None = Field(
        default=None, max_length=_MAX_CALL_TO_ACTION, description="e.g. SHOP_NOW."
    )


class CreativePatchIn(BaseModel):
    """Fields to change; absent fields keep their value, ``null`` clears a text field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Summer hero v2", "status": "READY"}]},
    )

    name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)] | NotNull = omittable()
    status: CreativeStatus | NotNull = omittable()
    headline: str | None = Field(default=None, max_length=_MAX_HEADLINE)
    primary_text: str | None = Field(default=None, max_length=_MAX_PRIMARY_TEXT)
    call_to_action: str | None = Field(default=None, max_length=_MAX_CALL_TO_ACTION)

    @model_validator(mode="after")
    def _required_fields_are_not_cleared(self) -> CreativePatchIn:
        for name in ("name", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self

    def changes(self) -> CreativeChanges:
        """The fields the client sent, as core's change set."""
        sent: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set}
        return CreativeChanges(**sent)


class CreativeOut(BaseModel):
    """A creative."""

    id: uuid.UUID
    name: str
    status: CreativeStatus
    headline: str | None
    primary_text: str | None
    call_to_action: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, creative: Creative) -> CreativeOut:
        return cls.model_validate(creative, from_attributes=True)


class CreativeAssetIn(BaseModel):
    """How a creative uses an asset."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "PRIMARY", "position": 0}]}
    )

    role: CreativeAssetRole = CreativeAssetRole.PRIMARY
    position: int = Field(default=0, ge=0, le=1000, description="Display order, ascending.")


class CreativeAssetOut(BaseModel):
    """An asset a creative uses, and how."""

    creative_id: uuid.UUID
    asset_id: uuid.UUID
    role: CreativeAssetRole
    position: int
    attached_at: datetime

    @classmethod
    def of(cls, link: CreativeAsset) -> CreativeAssetOut:
        return cls(
            creative_id=link.creative_id,
            asset_id=link.asset_id,
            role=link.role,
            position=link.position,
            attached_at=link.created_at,
        )


class CreativeDetailOut(CreativeOut):
    """A creative with the assets it uses, in display order."""

    assets: list[CreativeAssetOut]

    @classmethod
    def of_detail(cls, detail: CreativeDetail) -> CreativeDetailOut:
        return cls(
            **CreativeOut.of(detail.creative).model_dump(),
            assets=[CreativeAssetOut.of(link) for link in detail.assets],
        )


class AssetOut(BaseModel):
    """An uploaded file; only ``READY`` assets passed the post-upload checks."""

    id: uuid.UUID
    sha256: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    created_at: datetime

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls.model_validate(asset, from_attributes=True)


class AssetUsageOut(BaseModel):
    """A creative that uses the asset, and how."""

    creative: CreativeOut
    role: CreativeAssetRole
    position: int

    @classmethod
    def of(cls, usage: AssetUsage) -> AssetUsageOut:
        return cls(
            creative=CreativeOut.of(usage.creative), role=usage.role, position=usage.position
        )


# -- creatives ----------------------------------------------------------------------------


@router.post(
    "/creatives",
    status_code=status.HTTP_201_CREATED,
    response_model=CreativeDetailOut,
    summary="Create a creative",
    responses=error_responses(*_AUTH_ERRORS, 422),
)
async def create_creative(body: CreativeIn, seller: CurrentSeller) -> CreativeDetailOut:
    """A new creative of the seller, without assets."""
    detail = await CreativeService(seller).create_creative(
        CreativeDraft(
            name=body.name,
            status=body.status,
            headline=body.headline,
            primary_text=body.primary_text,
            call_to_action=body.call_to_action,
        )
    )
    return CreativeDetailOut.of_detail(detail)


@router.get(
    "/creatives",
    response_model=PageOut[CreativeOut],
    summary="List creatives",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_creatives(
    seller: CurrentSeller,
    paging: Paging,
    status: Annotated[CreativeStatus | None, Query(description="Only this status.")] = None,
) -> PageOut[CreativeOut]:
    """The seller's creatives, oldest first."""
    page = await CreativeService(seller).list_creatives(paging, status=status)
    return PageOut[CreativeOut].of(page, CreativeOut.of)


@router.get(
    "/creatives/{creative_id}",
    response_model=CreativeDetailOut,
    summary="Get a creative with its assets",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_creative(creative_id: uuid.UUID, seller: CurrentSeller) -> CreativeDetailOut:
    """One of the seller's creatives; 404 for any other id."""
    return CreativeDetailOut.of_detail(await CreativeService(seller).get_creative(creative_id))


@router.patch(
    "/creatives/{creative_id}",
    response_model=CreativeDetailOut,
    summary="Change a creative",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def update_creative(
    creative_id: uuid.UUID, body: CreativePatchIn, seller: CurrentSeller
) -> CreativeDetailOut:
    """Changes the fields sent; setting a status other than ``ARCHIVED`` restores an
    archived creative."""
    detail = await CreativeService(seller).update_creative(creative_id, body.changes())
    return CreativeDetailOut.of_detail(detail)


@router.delete(
    "/creatives/{creative_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a creative (archive it if an ad uses it)",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def delete_creative(creative_id: uuid.UUID, seller: CurrentSeller) -> Response:
    """Deletes the creative, or archives it when an ad is built from it; 404 for an id
    that is not the seller's."""
    await CreativeService(seller).delete_creative(creative_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/creatives/{creative_id}/assets/{asset_id}",
    response_model=CreativeAssetOut,
    summary="Use an asset in a creative (or change its role and position)",
    responses=error_responses(*_AUTH_ERRORS, 404, 409, 422),
)
async def attach_asset(
    creative_id: uuid.UUID, asset_id: uuid.UUID, body: CreativeAssetIn, seller: CurrentSeller
) -> CreativeAssetOut:
    """Idempotent. 404 when the creative or the asset is not the seller's; 409
    ``asset_not_ready``, ``creative_archived`` or ``too_many_assets``."""
    link = await CreativeService(seller).attach_asset(
        creative_id, asset_id, role=body.role, position=body.position
    )
    return CreativeAssetOut.of(link)


@router.delete(
    "/creatives/{creative_id}/assets/{asset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Stop using an asset in a creative",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def detach_asset(
    creative_id: uuid.UUID, asset_id: uuid.UUID, seller: CurrentSeller
) -> Response:
    """The asset itself stays; 404 when the creative is not the seller's or does not use
    the asset."""
    await CreativeService(seller).detach_asset(creative_id, asset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- assets -------------------------------------------------------------------------------


@router.get(
    "/assets",
    response_model=PageOut[AssetOut],
    summary="List assets",
    responses=error_responses(400, *_AUTH_ERRORS, 422),
)
async def list_assets(
    seller: CurrentSeller,
    paging: Paging,
    status: Annotated[AssetStatus | None, Query(description="Only this status.")] = None,
    content_type: Annotated[
        str | None,
        Query(
            max_length=127,
            pattern=r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$",
            description="Only this exact media type, e.g. `image/png`.",
        ),
    ] = None,
) -> PageOut[AssetOut]:
    """The seller's assets, oldest first."""
    page = await CreativeService(seller).list_assets(
        paging, status=status, content_type=content_type
    )
    return PageOut[AssetOut].of(page, AssetOut.of)


# `:uuid` so that `GET /assets/uploads` is not this route with a bad id (422) but the
# upload route's 405 (issue 12 item 7: concrete paths win, as OpenAPI says).
@router.get(
    "/assets/{asset_id:uuid}",
    response_model=AssetOut,
    summary="Get an asset",
    responses=error_responses(*_AUTH_ERRORS, 404, 422),
)
async def get_asset(asset_id: uuid.UUID, seller: CurrentSeller) -> AssetOut:
    """One of the seller's assets; 404 for any other id."""
    return AssetOut.of(await CreativeService(seller).get_asset(asset_id))


@router.get(
    "/assets/{asset_id}/usage",
    response_model=PageOut[AssetUsageOut],
    summary="Which creatives use an asset",
    responses=error_responses(400, *_AUTH_ERRORS, 404, 422),
)
async def asset_usage(
    asset_id: uuid.UUID, seller: CurrentSeller, paging: Paging
) -> PageOut[AssetUsageOut]:
    """The creatives using one of the seller's assets; 404 for any other id, an empty
    page for an unused asset."""
    page = await CreativeService(seller).asset_usage(asset_id, paging)
    return PageOut[AssetUsageOut].of(page, AssetUsageOut.of)
