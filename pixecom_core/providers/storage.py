"""The object-storage provider interface and the values it exchanges with core.

Sellers upload product images and files straight to the object store with a presigned URL,
so the API never streams file bodies. Core then checks the upload (``head`` for size and
type, ``read_prefix`` for magic bytes) before it refers to the object anywhere.
"""

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol, Self, runtime_checkable

from pydantic import AwareDatetime, Field, PositiveInt, model_validator

from pixecom_core.providers.values import FrozenValue


class UploadRequest(FrozenValue):
    """Core's request for a URL a seller's browser can upload one object to.

    :param seller_id: the seller who uploads; core puts the seller in the key, and a provider
        may add it to the object's metadata.
    :param key: the object key, chosen by core (relative, no ``..`` segments).
    :param content_type: the MIME type the upload must declare.
    :param content_length: the exact size in bytes the upload must have.
    :param expires_in: how long the URL stays valid.
    """

    seller_id: uuid.UUID
    key: str = Field(min_length=1)
    content_type: str
    content_length: PositiveInt
    expires_in: timedelta = timedelta(minutes=15)

    @model_validator(mode="after")
    def _key_stays_relative(self) -> Self:
        # A key that escapes its prefix could overwrite another seller's object.
        if self.key.startswith("/") or ".." in self.key.split("/"):
            raise ValueError(f"object key must be relative without '..' segments: {self.key!r}")
        return self


class PresignedUpload(FrozenValue):
    """Everything the browser needs to upload the object.

    :param url: the URL to send the body to.
    :param method: the HTTP method, usually ``PUT``.
    :param headers: headers the upload must carry exactly (the signature covers them).
    :param expires_at: when the URL stops working.
    """

    url: str
    method: str = "PUT"
    headers: Mapping[str, str] = Field(default_factory=dict)
    expires_at: AwareDatetime


class StoredObjectInfo(FrozenValue):
    """What the store knows about an object.

    :param key: the object key.
    :param size: size in bytes.
    :param content_type: the stored MIME type, if any.
    :param sha256: hex SHA-256 of the body, when the store keeps one.
    """

    key: str
    size: int = Field(ge=0)
    content_type: str | None = None
    sha256: str | None = None


@runtime_checkable
class Storage(Protocol):
    """An S3-compatible object store (Cloudflare R2, S3, MinIO, ...).

    Register an implementation with the ``pixecom_register_storage`` hook.
    """

    @property
    def identifier(self) -> str:
        """The stable key stored with every object reference, e.g. ``"r2"``."""
        ...

    @property
    def display_name(self) -> str:
        """The name shown to operators, e.g. ``"Cloudflare R2"``."""
        ...

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        """Return a URL that accepts exactly one upload matching ``request``.

        The URL must enforce ``content_type`` and ``content_length`` so a seller cannot
        upload something else than core agreed to.

        :param request: the key, type, size and lifetime.
        """
        ...

    async def head(self, key: str) -> StoredObjectInfo | None:
        """Return the object's size and type, or ``None`` when there is no such object.

        :param key: the object key.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error.

        :param key: the object key.
        """
        ...

    async def read_prefix(self, key: str, length: int) -> bytes:
        """Return the first ``length`` bytes of the object (fewer if it is shorter).

        Core sniffs magic bytes with it instead of trusting the declared content type.

        :param key: the object key.
        :param length: how many bytes to read from the start.
        """
        ...
