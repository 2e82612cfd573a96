"""Uploads: request a presigned upload, confirm it; the ingest API for other services.

The API never streams file bodies: the browser (or service) uploads straight to object
storage with the presigned URL, then confirms, and the registry checks what arrived.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, status
from pydantic import BaseModel, ConfigDict, Field

from pixecom_core.assets import UploadTicket
from pixecom_core.errors import AuthenticationError
from pixecom_core.models.ads import Asset, AssetStatus
from pixecom_core.security.api_keys import ApiKeyVerifier
from pixecom_core.security.rate_limits import Limit
from pixecom_core.tenancy import SellerContext
from reference_app.api.dependencies import ClientIP, CurrentSeller
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(tags=["assets"])

_EXAMPLE_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class UploadIn(BaseModel):
    """What the seller is about to upload."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content_type": "image/png", "size_bytes": 48_213, "sha256": _EXAMPLE_SHA}
            ]
        }
    )

    content_type: str = Field(max_length=100)
    size_bytes: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the file.")


class IngestIn(UploadIn):
    """An asset another service registers for a seller."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seller_id": "0b0f2f9e-6a55-4c8e-9b1e-5d6e1c2a3b4c",
                    "content_type": "image/png",
                    "size_bytes": 48_213,
                    "sha256": _EXAMPLE_SHA,
                }
            ]
        }
    )

    seller_id: uuid.UUID


class AssetOut(BaseModel):
    """An asset; only READY ones passed the post-upload checks."""

    id: uuid.UUID
    sha256: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    created_at: datetime

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls.model_validate(asset, from_attributes=True)


class PresignedOut(BaseModel):
    """Send the file with exactly this method and these headers before ``expires_at``."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


class UploadOut(BaseModel):
    """The asset, and where to upload unless these bytes were uploaded before."""

    asset: AssetOut
    upload: PresignedOut | None
    duplicate: bool = Field(description="True: the seller already has these bytes; no upload.")

    @classmethod
    def of(cls, ticket: UploadTicket) -> UploadOut:
        upload = None
        if ticket.upload is not None:
            upload = PresignedOut(
                url=ticket.upload.url,
                method=ticket.upload.method,
                headers=dict(ticket.upload.headers),
                expires_at=ticket.upload.expires_at,
            )
        return cls(asset=AssetOut.of(ticket.asset), upload=upload, duplicate=ticket.duplicate)


@router.post(
    "/assets/uploads",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    summary="Request an upload URL for a file",
    responses=error_responses(404, 422, 503),
)
async def request_upload(
    body: UploadIn, seller: CurrentSeller, resources: ResourcesDep
) -> UploadOut:
    """422 for a type off the allow-list, a size over the limit or a malformed hash;
    404 ``unknown_provider`` when the deployment has no storage plugin installed."""
    ticket = await resources.assets.request_upload(
        seller, content_type=body.content_type, size_bytes=body.size_bytes, sha256=body.sha256
    )
    return UploadOut.of(ticket)


@router.post(
    "/assets/{asset_id}/confirm",
    response_model=AssetOut,
    summary="Check an uploaded file",
    responses=error_responses(404, 422, 503),
)
async def confirm_upload(
    asset_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> AssetOut:
    """READY when size, type (declared and sniffed) and SHA-256 match; otherwise the
    object is deleted and 422 ``upload_rejected`` says why."""
    return AssetOut.of(await resources.assets.confirm_upload(seller, asset_id))


@router.post(
    "/ingest/assets",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    summary="Register an asset for a seller (service-to-service)",
    responses=error_responses(401, 422, 429, 503),
)
async def ingest_asset(
    body: IngestIn,
    resources: ResourcesDep,
    ip: ClientIP,
    x_api_key: Annotated[str | None, Header(description="CURRENT or NEXT ingest key.")] = None,
) -> UploadOut:
    """Authenticated by ``X-Api-Key`` (the CURRENT or, during rotation, the NEXT key) and
    rate limited per client IP through Redis."""
    settings = resources.settings
    await resources.limiter.hit(Limit("ingest", settings.ingest_rate), ip)
    verifier = ApiKeyVerifier(settings.ingest_api_key_current, settings.ingest_api_key_next)
    if not verifier.verify(x_api_key):
        raise AuthenticationError("missing or unknown X-Api-Key", code="invalid_api_key")
    context = SellerContext(
        seller_id=body.seller_id, sessions=resources.sessions, settings=settings
    )
    ticket = await resources.assets.request_upload(
        context, content_type=body.content_type, size_bytes=body.size_bytes, sha256=body.sha256
    )
    return UploadOut.of(ticket)
