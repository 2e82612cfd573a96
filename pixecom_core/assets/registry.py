"""The asset registry: uploads straight to object storage, checked, deduplicated.

SEC-6 ("R2 signed URLs: no file size limit, no content-type validation post-upload")
and keeps the previous version's registry dedup logic, which the audit praised:

1. A seller asks to upload a file, declaring its size, type and SHA-256. The type must be
   on the allow-list and the size within ``max_upload_bytes``. If the seller already has
   a READY asset with those bytes, that asset is the answer: no upload at all.
2. Otherwise a PENDING asset is recorded and the storage plugin presigns a PUT for exactly
   that size and type, under ``sellers/{seller_id}/``, valid ``upload_url_seconds``.
3. After uploading, the seller confirms. The object is checked — its size, its declared
   type, the type its magic bytes say and its SHA-256 — and becomes READY, or is deleted
   from storage and the asset REJECTED with the reason. The signature alone is not
   trusted: some stores (and emulators) accept a body that differs from what was signed.

Other services register assets for a seller through the same path (the ingest API,
authenticated with an API key).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from pixecom_core.assets.sniff import ALLOWED_CONTENT_TYPES, SNIFF_BYTES, sniff
from pixecom_core.errors import InvalidRequestError, NotFoundError
from pixecom_core.models.ads import Asset, AssetStatus
from pixecom_core.plugins import ProviderRegistry
from pixecom_core.providers import PresignedUpload, Storage, UploadRequest
from pixecom_core.resilience import ProviderBreakers
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UploadTicket:
    """The answer to an upload request: the asset, and where to upload unless the seller
    already had these bytes (``duplicate``)."""

    asset: Asset
    upload: PresignedUpload | None
    duplicate: bool


def storage_key(seller_id: uuid.UUID, sha256: str) -> str:
    """Where an asset's bytes live: under the seller's prefix, named by content."""
    return f"sellers/{seller_id}/assets/{sha256[:2]}/{sha256}"


class AssetRegistry:
    """Uploads and checks of one deployment's assets (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: ProviderRegistry,
        breakers: ProviderBreakers,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._registry = registry
        self._breakers = breakers

    def storage(self) -> Storage:
        """The configured storage plugin."""
        return self._registry.storage(self._settings.storage_provider)

    def _check_declared(self, content_type: str, size_bytes: int, sha256: str) -> None:
        if content_type not in ALLOWED_CONTENT_TYPES:
            raise InvalidRequestError(
                f"content type {content_type!r} is not accepted; use one of "
                f"{', '.join(sorted(ALLOWED_CONTENT_TYPES))}",
                code="content_type_not_allowed",
            )
        if not 0 < size_bytes <= self._settings.max_upload_bytes:
            raise InvalidRequestError(
                f"size must be between 1 and {self._settings.max_upload_bytes} bytes",
                code="file_too_large",
            )
        if not _SHA256.match(sha256):
            raise InvalidRequestError("sha256 must be 64 lower-case hex digits", code="bad_hash")

    async def request_upload(
        self, context: SellerContext, *, content_type: str, size_bytes: int, sha256: str
    ) -> UploadTicket:
        """Reuse the seller's asset with these bytes, or record one and presign its upload."""
        self._check_declared(content_type, size_bytes, sha256)
        async with context.scope() as scope:
            existing = (
                await scope.session.scalars(
                    select(Asset)
                    .where(col(Asset.seller_id) == context.seller_id, col(Asset.sha256) == sha256)
                    .with_for_update()
                )
            ).first()
            if existing is not None and existing.status is AssetStatus.READY:
                return UploadTicket(asset=existing, upload=None, duplicate=True)
            if existing is None:
                existing = Asset(
                    seller_id=context.seller_id,
                    sha256=sha256,
                    storage_key=storage_key(context.seller_id, sha256),
                    content_type=content_type,
                    size_bytes=size_bytes,
                    status=AssetStatus.PENDING,
                )
                scope.session.add(existing)
            else:  # a pending or rejected upload of the same bytes: try again
                existing.content_type = content_type
                existing.size_bytes = size_bytes
                existing.status = AssetStatus.PENDING
            await scope.session.flush()
            asset = existing
        storage = self.storage()
        async with self._breakers.guard("storage", storage.identifier):
            upload = await storage.presign_upload(
                UploadRequest(
                    seller_id=context.seller_id,
                    key=asset.storage_key,
                    content_type=content_type,
                    content_length=size_bytes,
                    expires_in=timedelta(seconds=self._settings.upload_url_seconds),
                )
            )
        return UploadTicket(asset=asset, upload=upload, duplicate=False)

    async def confirm_upload(self, context: SellerContext, asset_id: uuid.UUID) -> Asset:
        """Check the uploaded object; READY, or deleted and REJECTED with the reason
        (raised as :class:`InvalidRequestError` after the rejection is recorded)."""
        async with context.scope() as scope:
            asset = await scope.session.get(Asset, (context.seller_id, asset_id))
            if asset is None:
                raise NotFoundError("no such asset")
            if asset.status is AssetStatus.READY:
                return asset
            key, size, declared, sha256 = (
                asset.storage_key,
                asset.size_bytes,
                asset.content_type,
                asset.sha256,
            )
        problem = await self._check_object(key, size, declared, sha256)
        async with context.scope() as scope:
            asset = await scope.session.get(Asset, (context.seller_id, asset_id))
            if asset is None:  # deleted while its object was being checked
                raise NotFoundError("no such asset")
            asset.status = AssetStatus.REJECTED if problem else AssetStatus.READY
        if problem:
            raise InvalidRequestError(f"upload rejected: {problem}", code="upload_rejected")
        return asset

    async def _check_object(self, key: str, size: int, declared: str, sha256: str) -> str | None:
        storage = self.storage()
        async with self._breakers.guard("storage", storage.identifier):
            info = await storage.head(key)
            if info is None:
                return "nothing was uploaded"
            problem: str | None = None
            if info.size != size:
                problem = f"{info.size} bytes uploaded, {size} declared"
            elif info.content_type not in (None, declared):
                problem = f"stored as {info.content_type}, {declared} declared"
            else:
                # Bounded by max_upload_bytes: the whole object is read to hash it.
                body = await storage.read_prefix(key, size + 1)
                actual = sniff(body[:SNIFF_BYTES])
                if actual != declared:
                    problem = f"the bytes are {actual or 'no accepted type'}, {declared} declared"
                elif len(body) != size or hashlib.sha256(body).hexdigest() != sha256:
                    problem = "the bytes do not match the declared SHA-256"
            if problem:
                # Quarantine by deletion: nothing unchecked stays in the bucket.
                await storage.delete(key)
        return problem
