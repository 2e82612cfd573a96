"""The post-upload check: is the object a seller uploaded what core agreed to?

A presigned URL's signed ``Content-Length`` and ``Content-Type`` make R2 refuse another
size or declared type, but the bytes are the seller's (a ``.png`` can hold HTML), and an
emulator such as moto enforces nothing at all. So once the seller says the upload is done,
core calls :func:`check_upload` before the object is referenced anywhere; an object that
fails is deleted on the spot (quarantine by deletion) and the check says why.

It uses only the :class:`pixecom_core.providers.Storage` protocol (``head``,
``read_prefix``, ``delete``), plus an optional ``read_chunks`` (:class:`ChunkedReader`) to
hash large objects without holding them in memory, so it works with any store and can move
into core as it is.
"""

import hashlib
from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from enum import StrEnum
from typing import Final, Protocol, runtime_checkable

from pixecom_core.providers import FrozenValue, Storage, StoredObjectInfo
from pixecom_r2_storage.content_types import (
    ALLOWED_CONTENT_TYPES,
    SNIFF_LENGTH,
    normalise_content_type,
    sniff_content_type,
)

#: Chunk size when hashing through :class:`ChunkedReader`.
HASH_CHUNK_BYTES: Final = 1024 * 1024
_HEX: Final = frozenset("0123456789abcdef")


class UploadProblem(StrEnum):
    """One reason an uploaded object was refused."""

    #: Nothing is stored at the key (never uploaded, or already deleted).
    MISSING = "missing"
    #: The stored size differs from the agreed ``content_length``.
    SIZE_MISMATCH = "size_mismatch"
    #: The stored ``Content-Type`` header differs from the agreed type.
    CONTENT_TYPE_MISMATCH = "content_type_mismatch"
    #: The agreed type is not one whose bytes can be recognised, so it is never accepted.
    TYPE_NOT_ALLOWED = "type_not_allowed"
    #: The first bytes are not the agreed type's signature (e.g. HTML declared as PNG).
    CONTENT_MISMATCH = "content_mismatch"
    #: The body's SHA-256 differs from the one the seller announced.
    SHA256_MISMATCH = "sha256_mismatch"


class UploadCheck(FrozenValue):
    """The verdict on one uploaded object.

    :param key: the object key checked.
    :param problems: why the object was refused; empty when it was accepted.
    :param reason: the problems in words an operator or seller can act on; ``None`` when
        accepted.
    :param info: what the store reported (``head``), ``None`` when there was no object.
    :param detected_content_type: the type the first bytes show (``"text/html"`` for markup,
        ``None`` when unknown or not read).
    :param sha256: the body's hex SHA-256, when it was computed and matched.
    :param deleted: the object was deleted because it failed.
    """

    key: str
    problems: tuple[UploadProblem, ...] = ()
    reason: str | None = None
    info: StoredObjectInfo | None = None
    detected_content_type: str | None = None
    sha256: str | None = None
    deleted: bool = False

    @property
    def accepted(self) -> bool:
        """The object is what core agreed to and may be referenced."""
        return not self.problems


@runtime_checkable
class ChunkedReader(Protocol):
    """A store that can stream an object (optional; :class:`R2Storage
    <pixecom_r2_storage.storage.R2Storage>` can). Without it, hashing reads the object with
    one bounded ``read_prefix``."""

    def read_chunks(self, key: str, *, chunk_size: int) -> AsyncGenerator[bytes, None]:
        """Yield the object's body in chunks of at most ``chunk_size`` bytes."""
        ...


async def check_upload(
    storage: Storage,
    key: str,
    expected_size: int,
    expected_content_type: str,
    expected_sha256: str | None = None,
    *,
    allowed_content_types: Collection[str] = ALLOWED_CONTENT_TYPES,
) -> UploadCheck:
    """Check an uploaded object against what core presigned, deleting it when it fails.

    In order, stopping at the first step that finds a problem (so an oversized object is
    deleted without reading a byte of it):

    1. the agreed type must be allowed and have a magic-byte signature;
    2. ``head``: the object exists, its size is ``expected_size`` and its stored
       ``Content-Type`` is ``expected_content_type`` (media type, case-insensitive);
    3. ``read_prefix``: its first bytes carry the signature of that type;
    4. when ``expected_sha256`` is given: its SHA-256 matches, reading at most
       ``expected_size + 1`` bytes (streamed when the store is a :class:`ChunkedReader`).

    A failing object is deleted before this returns. Repeating the check is safe: a
    deleted object then reports :attr:`UploadProblem.MISSING`. The store may still accept a
    new upload at the key while the presigned URL is valid (R2 refuses only overwrites), so
    core must check every upload it is told about.

    :param storage: the store holding the object.
    :param key: the object key core presigned.
    :param expected_size: the ``content_length`` core presigned, in bytes.
    :param expected_content_type: the ``content_type`` core presigned.
    :param expected_sha256: the hex SHA-256 the seller announced, if any.
    :param allowed_content_types: the types accepted at all (default: every type with a
        signature in :mod:`pixecom_r2_storage.content_types`).
    :raises ValueError: ``expected_size`` is not positive or ``expected_sha256`` is not 64
        hex digits (a caller bug: nothing is read or deleted).
    :raises pixecom_core.providers.ProviderError: the store failed (transient, auth …); the
        object is left as it is and the check can be repeated.
    """
    if expected_size <= 0:
        raise ValueError(f"expected_size must be positive, not {expected_size}")
    wanted_sha256 = None
    if expected_sha256 is not None:
        wanted_sha256 = expected_sha256.strip().lower()
        if len(wanted_sha256) != 64 or not set(wanted_sha256) <= _HEX:
            raise ValueError(f"expected_sha256 must be 64 hex digits, not {expected_sha256!r}")
    wanted_type = normalise_content_type(expected_content_type)
    allowed = {normalise_content_type(item) for item in allowed_content_types}

    info = await storage.head(key)
    if info is None:
        return _verdict(key, [(UploadProblem.MISSING, "no object is stored at the key")])

    problems: list[tuple[UploadProblem, str]] = []
    if wanted_type not in allowed or wanted_type not in ALLOWED_CONTENT_TYPES:
        problems.append(
            (
                UploadProblem.TYPE_NOT_ALLOWED,
                f"content type {expected_content_type!r} is not allowed",
            )
        )
    if info.size != expected_size:
        # SEC-6: a URL without a size limit let a seller upload 10 GB
        problems.append(
            (
                UploadProblem.SIZE_MISMATCH,
                f"object is {info.size} bytes, {expected_size} were agreed",
            )
        )
    stored_type = normalise_content_type(info.content_type or "")
    if stored_type != wanted_type:
        problems.append(
            (
                UploadProblem.CONTENT_TYPE_MISMATCH,
                f"object is stored as {info.content_type!r}, {expected_content_type!r} was agreed",
            )
        )
    if problems:
        return await _refuse(storage, key, problems, info=info)

    try:
        head = await storage.read_prefix(key, SNIFF_LENGTH)
    except LookupError:
        return _verdict(key, [(UploadProblem.MISSING, "the object vanished while checked")])
    detected = sniff_content_type(head)
    if detected != wanted_type:
        # SEC-6: no content-type validation post-upload
        shown = detected or "no known type"
        problems.append(
            (
                UploadProblem.CONTENT_MISMATCH,
                f"the object's bytes are {shown}, not {wanted_type}",
            )
        )
        return await _refuse(storage, key, problems, info=info, detected=detected)

    if wanted_sha256 is None:
        return UploadCheck(key=key, info=info, detected_content_type=detected)
    try:
        size, actual_sha256 = await _hash_object(storage, key, limit=expected_size + 1)
    except LookupError:
        return _verdict(key, [(UploadProblem.MISSING, "the object vanished while checked")])
    if size != expected_size:
        problems.append(
            (
                UploadProblem.SIZE_MISMATCH,
                f"object read as {size} bytes, {expected_size} were agreed",
            )
        )
    elif actual_sha256 != wanted_sha256:
        problems.append(
            (
                UploadProblem.SHA256_MISMATCH,
                f"object's SHA-256 is {actual_sha256}, {wanted_sha256} was announced",
            )
        )
    if problems:
        return await _refuse(storage, key, problems, info=info, detected=detected)
    return UploadCheck(key=key, info=info, detected_content_type=detected, sha256=actual_sha256)


async def _hash_object(storage: Storage, key: str, *, limit: int) -> tuple[int, str]:
    """Size and hex SHA-256 of the object, reading at most ``limit`` bytes."""
    digest = hashlib.sha256()
    size = 0
    if isinstance(storage, ChunkedReader):
        async with aclosing(storage.read_chunks(key, chunk_size=HASH_CHUNK_BYTES)) as chunks:
            async for chunk in chunks:
                kept = chunk[: limit - size]
                digest.update(kept)
                size += len(kept)
                if size >= limit:
                    break
    else:
        body = await storage.read_prefix(key, limit)
        digest.update(body)
        size = len(body)
    return size, digest.hexdigest()


async def _refuse(
    storage: Storage,
    key: str,
    problems: list[tuple[UploadProblem, str]],
    *,
    info: StoredObjectInfo,
    detected: str | None = None,
) -> UploadCheck:
    # quarantine by deletion: nothing refers to the object yet, so nothing is lost
    await storage.delete(key)
    return _verdict(key, problems, info=info, detected=detected, deleted=True)


def _verdict(
    key: str,
    problems: list[tuple[UploadProblem, str]],
    *,
    info: StoredObjectInfo | None = None,
    detected: str | None = None,
    deleted: bool = False,
) -> UploadCheck:
    return UploadCheck(
        key=key,
        problems=tuple(problem for problem, _ in problems),
        reason="; ".join(sentence for _, sentence in problems),
        info=info,
        detected_content_type=detected,
        deleted=deleted,
    )
