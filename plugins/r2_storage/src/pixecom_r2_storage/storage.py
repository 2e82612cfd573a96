"""The Cloudflare R2 storage provider.

It presigns seller uploads to an R2 bucket and checks uploaded objects (size, type, magic
bytes). Until the Cloudflare R2 plugin issue lands, every operation raises
``NotImplementedError``: the plugin is installable and discoverable, not usable.
"""

from pixecom_core.providers import (
    PresignedUpload,
    StoredObjectInfo,
    UploadRequest,
)

_PENDING = "implemented by the Cloudflare R2 plugin issue"


class R2Storage:
    """The ``r2`` storage; implements ``pixecom_core.providers.Storage``."""

    identifier = "r2"
    display_name = "Cloudflare R2"

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        """Return a presigned PUT URL for ``request``."""
        raise NotImplementedError(f"presign_upload: {_PENDING}")

    async def head(self, key: str) -> StoredObjectInfo | None:
        """Return the object's size and type, or ``None``."""
        raise NotImplementedError(f"head: {_PENDING}")

    async def delete(self, key: str) -> None:
        """Delete the object."""
        raise NotImplementedError(f"delete: {_PENDING}")

    async def read_prefix(self, key: str, length: int) -> bytes:
        """Return the first ``length`` bytes of the object."""
        raise NotImplementedError(f"read_prefix: {_PENDING}")
