"""The post-upload check catches what moto (unlike R2) lets through, and deletes it.

moto enforces neither the signed ``Content-Length`` nor the signed ``Content-Type`` of a
presigned URL, so these tests upload exactly what a hostile seller would and prove that
:func:`check_upload` refuses and deletes it.
"""

import hashlib
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from pixecom_r2_storage.storage import R2Storage
from pixecom_r2_storage.verification import (
    ChunkedReader,
    UploadCheck,
    UploadProblem,
    check_upload,
)
from r2_support import HTML, PNG, SAMPLES, put_through, seller_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

from pixecom_core.providers import (
    PresignedUpload,
    ProviderTransientError,
    Storage,
    StoredObjectInfo,
    UploadRequest,
)


async def presign(
    storage: R2Storage, seller_id: uuid.UUID, content_type: str, size: int
) -> tuple[str, PresignedUpload]:
    key = seller_key(seller_id)
    presigned = await storage.presign_upload(
        UploadRequest(seller_id=seller_id, key=key, content_type=content_type, content_length=size)
    )
    return key, presigned


async def assert_refused_and_deleted(
    storage: R2Storage, check: UploadCheck, problem: UploadProblem
) -> None:
    assert not check.accepted
    assert problem in check.problems
    assert check.reason
    assert check.deleted
    assert await storage.head(check.key) is None


# -- what is accepted ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(SAMPLES))
async def test_an_upload_as_agreed_is_accepted_and_kept(
    storage: R2Storage, seller_id: uuid.UUID, content_type: str
) -> None:
    body = SAMPLES[content_type]
    key, presigned = await presign(storage, seller_id, content_type, len(body))
    assert (await put_through(presigned, body)).status_code == 200

    check = await check_upload(storage, key, len(body), content_type)

    assert check.accepted, check.reason
    assert (check.problems, check.reason, check.deleted) == ((), None, False)
    assert check.detected_content_type == content_type
    assert check.info is not None and check.info.size == len(body)
    assert await storage.head(key) is not None


async def test_a_matching_sha256_is_confirmed(storage: R2Storage, seller_id: uuid.UUID) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(PNG))
    await put_through(presigned, PNG)
    digest = hashlib.sha256(PNG).hexdigest()

    check = await check_upload(storage, key, len(PNG), "image/png", digest.upper())

    assert check.accepted, check.reason
    assert check.sha256 == digest


async def test_a_large_object_is_hashed_in_chunks(
    storage: R2Storage, seller_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = PNG + bytes(range(256)) * 200  # ~51 kB, under the test cap
    key, presigned = await presign(storage, seller_id, "image/png", len(body))
    await put_through(presigned, body)
    monkeypatch.setattr("pixecom_r2_storage.verification.HASH_CHUNK_BYTES", 4096)
    chunk_sizes: list[int] = []
    read_chunks = storage.read_chunks

    async def recording_read_chunks(key: str, *, chunk_size: int) -> AsyncGenerator[bytes, None]:
        async for chunk in read_chunks(key, chunk_size=chunk_size):
            chunk_sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(storage, "read_chunks", recording_read_chunks)
    digest = hashlib.sha256(body).hexdigest()

    check = await check_upload(storage, key, len(body), "image/png", digest)

    assert check.accepted, check.reason
    assert len(chunk_sizes) > 1
    assert max(chunk_sizes) <= 4096
    assert sum(chunk_sizes) == len(body)


# -- what moto lets through and the check catches --------------------------------------------


async def test_an_oversized_body_is_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(PNG))
    oversized = PNG + b"\x00" * 50_000
    # R2 would refuse this body (signed Content-Length); moto stores it
    response = await put_through(presigned, oversized)
    assert response.status_code == 200

    check = await check_upload(storage, key, len(PNG), "image/png")

    await assert_refused_and_deleted(storage, check, UploadProblem.SIZE_MISMATCH)
    assert check.info is not None and check.info.size == len(oversized)


async def test_a_short_body_is_caught_and_deleted(storage: R2Storage, seller_id: uuid.UUID) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(PNG))
    await put_through(presigned, PNG[:10])

    check = await check_upload(storage, key, len(PNG), "image/png")

    await assert_refused_and_deleted(storage, check, UploadProblem.SIZE_MISMATCH)


async def test_html_sent_as_html_instead_of_png_is_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(HTML))
    # another Content-Type than the signed one: R2 would refuse it, moto stores it
    response = await put_through(
        presigned, HTML, headers={"Content-Type": "text/html", "If-None-Match": "*"}
    )
    assert response.status_code == 200

    check = await check_upload(storage, key, len(HTML), "image/png")

    await assert_refused_and_deleted(storage, check, UploadProblem.CONTENT_TYPE_MISMATCH)
    assert check.info is not None and check.info.content_type == "text/html"


async def test_html_behind_the_signed_png_header_is_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    # the upload R2 itself accepts: right size, right header, wrong bytes
    key, presigned = await presign(storage, seller_id, "image/png", len(HTML))
    assert (await put_through(presigned, HTML)).status_code == 200

    check = await check_upload(storage, key, len(HTML), "image/png")

    await assert_refused_and_deleted(storage, check, UploadProblem.CONTENT_MISMATCH)
    assert check.detected_content_type == "text/html"
    assert check.reason is not None and "text/html" in check.reason


async def test_a_png_declared_as_jpeg_is_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    key, presigned = await presign(storage, seller_id, "image/jpeg", len(PNG))
    await put_through(presigned, PNG)

    check = await check_upload(storage, key, len(PNG), "image/jpeg")

    await assert_refused_and_deleted(storage, check, UploadProblem.CONTENT_MISMATCH)
    assert check.detected_content_type == "image/png"


async def test_unknown_bytes_are_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    body = b"MZ\x90\x00" + bytes(60)  # a Windows executable's header
    key, presigned = await presign(storage, seller_id, "application/pdf", len(body))
    await put_through(presigned, body)

    check = await check_upload(storage, key, len(body), "application/pdf")

    await assert_refused_and_deleted(storage, check, UploadProblem.CONTENT_MISMATCH)
    assert check.detected_content_type is None


async def test_a_sha256_mismatch_is_caught_and_deleted(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(PNG))
    await put_through(presigned, PNG)

    check = await check_upload(
        storage, key, len(PNG), "image/png", hashlib.sha256(b"x").hexdigest()
    )

    await assert_refused_and_deleted(storage, check, UploadProblem.SHA256_MISMATCH)
    assert check.sha256 is None


async def test_a_type_that_cannot_be_sniffed_is_never_accepted(
    storage: R2Storage, admin: "S3Client", bucket: str, seller_id: uuid.UUID
) -> None:
    key = seller_key(seller_id, "page.html")
    admin.put_object(Bucket=bucket, Key=key, Body=HTML, ContentType="text/html")

    check = await check_upload(storage, key, len(HTML), "text/html")

    await assert_refused_and_deleted(storage, check, UploadProblem.TYPE_NOT_ALLOWED)


async def test_a_type_left_out_by_the_caller_is_refused(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    body = SAMPLES["application/pdf"]
    key, presigned = await presign(storage, seller_id, "application/pdf", len(body))
    await put_through(presigned, body)

    check = await check_upload(
        storage, key, len(body), "application/pdf", allowed_content_types={"image/png"}
    )

    await assert_refused_and_deleted(storage, check, UploadProblem.TYPE_NOT_ALLOWED)


async def test_a_missing_object_is_reported_without_deleting(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    check = await check_upload(storage, seller_key(seller_id), len(PNG), "image/png")

    assert check.problems == (UploadProblem.MISSING,)
    assert (check.deleted, check.info) == (False, None)


async def test_repeating_a_failed_check_finds_nothing_left(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    key, presigned = await presign(storage, seller_id, "image/png", len(HTML))
    await put_through(presigned, HTML)
    first = await check_upload(storage, key, len(HTML), "image/png")

    again = await check_upload(storage, key, len(HTML), "image/png")

    assert first.deleted
    assert again.problems == (UploadProblem.MISSING,)


@pytest.mark.parametrize(
    ("size", "sha256"),
    [(0, None), (-1, None), (10, "abc"), (10, "g" * 64), (10, "0" * 63)],
)
async def test_bad_expectations_are_refused_before_anything_is_touched(
    size: int, sha256: str | None
) -> None:
    store = MemoryStorage({"k": ("image/png", PNG)})

    with pytest.raises(ValueError):
        await check_upload(store, "k", size, "image/png", sha256)

    assert store.calls == []


# -- against the protocol alone --------------------------------------------------------------


@dataclass
class MemoryStorage:
    """A Storage protocol implementation with no R2 or boto3 in it (and no ``read_chunks``)."""

    objects: dict[str, tuple[str, bytes]]
    calls: list[str] = field(default_factory=list)
    fail_deletes: bool = False

    identifier = "memory"
    display_name = "In memory"

    async def presign_upload(self, request: UploadRequest) -> PresignedUpload:
        raise NotImplementedError

    async def head(self, key: str) -> StoredObjectInfo | None:
        self.calls.append(f"head {key}")
        if key not in self.objects:
            return None
        content_type, body = self.objects[key]
        return StoredObjectInfo(key=key, size=len(body), content_type=content_type)

    async def delete(self, key: str) -> None:
        self.calls.append(f"delete {key}")
        if self.fail_deletes:
            raise ProviderTransientError("store unavailable", provider="memory")
        self.objects.pop(key, None)

    async def read_prefix(self, key: str, length: int) -> bytes:
        self.calls.append(f"read_prefix {key} {length}")
        if key not in self.objects:
            raise LookupError(key)
        return self.objects[key][1][:length]


async def test_the_check_needs_only_the_storage_protocol() -> None:
    store = MemoryStorage({"k": ("image/png", PNG)})
    assert isinstance(store, Storage)
    assert not isinstance(store, ChunkedReader)

    check = await check_upload(store, "k", len(PNG), "image/png", hashlib.sha256(PNG).hexdigest())

    assert check.accepted, check.reason
    # without read_chunks the hash comes from one read bounded by the agreed size
    assert store.calls == ["head k", "read_prefix k 64", f"read_prefix k {len(PNG) + 1}"]


async def test_an_oversized_object_is_deleted_without_reading_it() -> None:
    store = MemoryStorage({"k": ("image/png", PNG + bytes(10_000))})

    check = await check_upload(store, "k", len(PNG), "image/png", hashlib.sha256(PNG).hexdigest())

    assert check.problems == (UploadProblem.SIZE_MISMATCH,)
    assert store.calls == ["head k", "delete k"]


async def test_every_metadata_problem_is_reported_at_once() -> None:
    store = MemoryStorage({"k": ("text/html", HTML)})

    check = await check_upload(store, "k", len(PNG), "image/png")

    assert check.problems == (
        UploadProblem.SIZE_MISMATCH,
        UploadProblem.CONTENT_TYPE_MISMATCH,
    )
    assert check.reason is not None and ";" in check.reason


async def test_an_object_vanishing_mid_check_is_missing() -> None:
    class VanishingStorage(MemoryStorage):
        async def read_prefix(self, key: str, length: int) -> bytes:
            self.objects.clear()
            return await super().read_prefix(key, length)

    check = await check_upload(
        VanishingStorage({"k": ("image/png", PNG)}), "k", len(PNG), "image/png"
    )

    assert check.problems == (UploadProblem.MISSING,)
    assert not check.deleted


async def test_a_failing_delete_propagates_so_the_check_is_retried() -> None:
    store = MemoryStorage({"k": ("image/png", HTML)}, fail_deletes=True)

    with pytest.raises(ProviderTransientError):
        await check_upload(store, "k", len(HTML), "image/png")

    assert "k" in store.objects  # still there: the retried check will delete it


async def test_a_stream_longer_than_agreed_is_cut_and_refused() -> None:
    # a store whose HEAD and body disagree (the object was replaced mid-check)
    @dataclass
    class GrowingStorage(MemoryStorage):
        chunks_read: int = 0

        async def read_chunks(
            self,
            key: str,  # noqa: ARG002
            *,
            chunk_size: int,  # noqa: ARG002
        ) -> AsyncGenerator[bytes, None]:
            for _ in range(1000):
                self.chunks_read += 1
                yield PNG

    store = GrowingStorage({"k": ("image/png", PNG)})

    check = await check_upload(store, "k", len(PNG), "image/png", hashlib.sha256(PNG).hexdigest())

    assert check.problems == (UploadProblem.SIZE_MISMATCH,)
    assert check.deleted
    assert store.chunks_read == 2  # stopped one byte past the agreed size
