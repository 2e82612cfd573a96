"""The Cloudflare R2 storage provider: presigned seller uploads and the reads core's
post-upload check needs.

What a presigned URL allows (SEC-6, "Are R2 Signed URLs Protected?"):

- one ``PUT`` of one key under ``sellers/{seller_id}/``, the seller's own prefix; a key
  elsewhere, or with ``.``, ``..`` or empty segments, is refused before anything is signed;
- a body of exactly ``content_length`` bytes, at most ``max_upload_bytes`` (the audit's
  "no file size limit"), and of one allowed ``content_type``: both headers are in
  ``X-Amz-SignedHeaders``, so R2 refuses a body of another size or declared type;
- ``If-None-Match: *`` is signed too, so the URL creates the object and cannot overwrite it
  afterwards (R2 supports conditional ``PutObject``): once core has checked an upload, the
  seller cannot swap its bytes through the same URL;
- for at most ``presign_expiry_seconds`` (default 300 s, the audit's five minutes).

A signed ``Content-Type`` constrains only the header, never the bytes, and an emulator such
as moto enforces none of the above: core must run
:func:`pixecom_r2_storage.verification.check_upload` after the seller reports the upload
done, before the object is referenced anywhere.
"""

import base64
import binascii
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Final

from pixecom_core.providers import PresignedUpload, StoredObjectInfo, UploadRequest
from pixecom_r2_storage.client import DEFAULT_CHUNK_BYTES, PROVIDER, R2Client
from pixecom_r2_storage.errors import R2RequestRefused
from pixecom_r2_storage.settings import R2Settings

#: S3 and R2 limit keys to 1024 bytes of UTF-8.
MAX_KEY_BYTES: Final = 1024
SELLER_PREFIX: Final = "sellers/{seller_id}/"
_HEX: Final = frozenset("0123456789abcdef")


def seller_prefix(seller_id: object) -> str:
    """The key prefix every object of one seller lives under: ``sellers/{seller_id}/``."""
    return SELLER_PREFIX.format(seller_id=seller_id)


def check_object_key(key: str) -> None:
    """Refuse a key that is not a plain relative path.

    :raises R2RequestRefused: empty, absolute, more than 1024 bytes, with a backslash or a
        control character, or with an empty, ``.`` or ``..`` segment. Intermediaries (and
        some clients) normalise such paths, so the object written could differ from the one
        signed or checked.
    """
    if not key:
        raise R2RequestRefused("object key is empty", provider=PROVIDER)
    if len(key.encode()) > MAX_KEY_BYTES:
        raise R2RequestRefused(
            f"object key is longer than {MAX_KEY_BYTES} bytes", provider=PROVIDER
        )
    if "\\" in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise R2RequestRefused(
            f"object key holds a backslash or control character: {key!r}", provider=PROVIDER
        )
    if any(segment in {"", ".", ".."} for segment in key.split("/")):
        raise R2RequestRefused(
            f"object key must be relative, without empty, '.' or '..' segments: {key!r}",
            provider=PROVIDER,
        )


class R2Storage:
    """The ``r2`` storage; implements :class:`pixecom_core.providers.Storage`.

    Besides the protocol it offers :meth:`read_chunks`, which
    :func:`~pixecom_r2_storage.verification.check_upload` uses to hash an object without
    holding it in memory.

    :param settings: endpoint, bucket, keys and upload limits.
    :param client: the S3 client to use; built from ``settings`` when omitted.
    """

    identifier = "r2"
    display_name = "Cloudflare R2"

    def __init__(self, settings: R2Settings, *, client: R2Client | None = None) -> None:
        self.settings = settings
        self._client = client or R2Client(settings)

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        """Return a presigned ``PUT`` URL accepting exactly one upload matching ``request``.

        The browser must send the returned ``headers`` exactly as given (they are signed):
        ``Content-Type``, ``Content-Length`` (browsers set it from the body themselves) and
        ``If-None-Match``. The URL expires after ``request.expires_in`` or
        ``presign_expiry_seconds``, whichever is shorter.

        :param request: key, type, size and lifetime, from core.
        :raises R2RequestRefused: the key is not under ``sellers/{request.seller_id}/`` or is
            not a plain relative path; ``content_length`` exceeds ``max_upload_bytes``;
            ``content_type`` is not in ``allowed_content_types``; ``expires_in`` is under
            one second. Nothing is signed then.
        :raises R2NotConfigured: endpoint, bucket or keys are unset.
        """
        settings = self.settings
        check_object_key(request.key)
        prefix = seller_prefix(request.seller_id)
        if not request.key.startswith(prefix) or request.key == prefix:
            raise R2RequestRefused(
                f"object key {request.key!r} is outside the seller's prefix {prefix!r}",
                provider=PROVIDER,
            )
        if request.content_length > settings.max_upload_bytes:
            # SEC-6: "a malicious seller could upload a 10GB file"
            raise R2RequestRefused(
                f"upload of {request.content_length} bytes exceeds the limit of "
                f"{settings.max_upload_bytes} bytes",
                provider=PROVIDER,
            )
        # parameters (``; charset=…``) or odd spacing would make the signed header differ
        # from the type the bytes are checked against
        content_type = request.content_type.strip().lower()
        if content_type not in settings.allowed_content_types:
            raise R2RequestRefused(
                f"content type {request.content_type!r} is not allowed; allowed: "
                f"{', '.join(settings.allowed_content_types)}",
                provider=PROVIDER,
            )
        expires_in_seconds = min(
            int(request.expires_in.total_seconds()), settings.presign_expiry_seconds
        )
        if expires_in_seconds < 1:
            raise R2RequestRefused(
                f"expires_in must be at least one second, not {request.expires_in}",
                provider=PROVIDER,
            )

        # X-Amz-Date has whole seconds and is taken after this, so the true expiry is never
        # earlier than the one reported
        signed_from = datetime.now(UTC).replace(microsecond=0)
        url = await self._client.presign_put(
            request.key,
            content_type=content_type,
            content_length=request.content_length,
            expires_in_seconds=expires_in_seconds,
        )
        return PresignedUpload(
            url=url,
            method="PUT",
            headers={
                "Content-Type": content_type,
                "Content-Length": str(request.content_length),
                "If-None-Match": "*",
            },
            expires_at=signed_from + timedelta(seconds=expires_in_seconds),
        )

    async def head(self, key: str) -> StoredObjectInfo | None:
        """Return the object's size, type and SHA-256, or ``None`` when there is no object.

        ``sha256`` is R2's stored ``x-amz-checksum-sha256`` (verified by R2 at upload) when
        the object has a whole-object one, else ``x-amz-meta-sha256`` when that is a
        64-digit hex value. Metadata comes from the uploader: compare, don't trust (the
        post-upload check recomputes the hash).

        :raises R2RequestRefused: the key is not a plain relative path.
        """
        check_object_key(key)
        response = await self._client.head_object(key)
        if response is None:
            return None
        content_type = response.get("ContentType")
        return StoredObjectInfo(
            key=key,
            size=response.get("ContentLength", 0),
            content_type=content_type or None,
            sha256=_stored_sha256(response.get("ChecksumSHA256"), response.get("Metadata", {})),
        )

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error.

        :raises R2RequestRefused: the key is not a plain relative path.
        """
        check_object_key(key)
        await self._client.delete_object(key)

    async def read_prefix(self, key: str, length: int) -> bytes:
        """Return the first ``length`` bytes (fewer if the object is shorter), with one
        ranged ``GET``.

        :raises R2ObjectMissing: there is no such object (also a ``LookupError``).
        :raises R2RequestRefused: the key is not a plain relative path, or ``length`` < 0.
        """
        check_object_key(key)
        if length < 0:
            raise R2RequestRefused(f"length must not be negative, not {length}", provider=PROVIDER)
        return await self._client.get_range(key, length)

    def read_chunks(
        self, key: str, *, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> AsyncGenerator[bytes, None]:
        """Stream the whole object in chunks of at most ``chunk_size`` bytes.

        Close the iterator (:func:`contextlib.aclosing`) when stopping early, so the
        connection is released.

        :raises R2ObjectMissing: there is no such object.
        :raises R2RequestRefused: the key is not a plain relative path.
        """
        check_object_key(key)
        if chunk_size < 1:
            raise R2RequestRefused(
                f"chunk_size must be positive, not {chunk_size}", provider=PROVIDER
            )
        return self._client.iter_object(key, chunk_size=chunk_size)

    async def aclose(self) -> None:
        """Release pooled connections (the storage stays usable)."""
        await self._client.aclose()


def _stored_sha256(checksum: str | None, metadata: dict[str, str]) -> str | None:
    # a multipart upload's checksum is a checksum of part checksums ("…-3"), not the body's
    if checksum and "-" not in checksum:
        try:
            digest = base64.b64decode(checksum, validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) == 32:
            return digest.hex()
    declared = metadata.get("sha256", "").strip().lower()
    if len(declared) == 64 and set(declared) <= _HEX:
        return declared
    return None
