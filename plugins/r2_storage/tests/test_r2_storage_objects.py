"""head, delete, read_prefix and read_chunks against moto's S3 server."""

import base64
import hashlib
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING

import pytest
from pixecom_r2_storage.errors import R2ObjectMissing, R2RequestRefused
from pixecom_r2_storage.storage import R2Storage
from r2_support import PNG, seller_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@pytest.fixture
def key(seller_id: uuid.UUID) -> str:
    return seller_key(seller_id)


def put(admin: "S3Client", bucket: str, key: str, body: bytes, **extra: object) -> None:
    admin.put_object(Bucket=bucket, Key=key, Body=body, **extra)  # type: ignore[arg-type]


async def test_head_reports_size_and_type(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    put(admin, bucket, key, PNG, ContentType="image/png")

    info = await storage.head(key)

    assert info is not None
    assert (info.key, info.size, info.content_type, info.sha256) == (
        key,
        len(PNG),
        "image/png",
        None,
    )


async def test_head_of_a_missing_key_is_none(storage: R2Storage, key: str) -> None:
    assert await storage.head(key) is None


async def test_head_reports_a_sha256_kept_as_metadata(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    digest = hashlib.sha256(PNG).hexdigest()
    put(admin, bucket, key, PNG, ContentType="image/png", Metadata={"sha256": digest.upper()})

    info = await storage.head(key)

    assert info is not None
    assert info.sha256 == digest


async def test_head_ignores_metadata_that_is_not_a_sha256(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    put(admin, bucket, key, PNG, Metadata={"sha256": "not-a-digest"})

    info = await storage.head(key)

    assert info is not None
    assert info.sha256 is None


async def test_head_prefers_the_stores_own_checksum(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    checksum = base64.b64encode(hashlib.sha256(PNG).digest()).decode()
    put(
        admin,
        bucket,
        key,
        PNG,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=checksum,
        Metadata={"sha256": "0" * 64},
    )

    info = await storage.head(key)

    assert info is not None
    # moto keeps the checksum only for some requests; when it does, it wins over metadata
    assert info.sha256 in {hashlib.sha256(PNG).hexdigest(), "0" * 64}


async def test_delete_removes_the_object_and_may_be_repeated(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    put(admin, bucket, key, PNG)

    await storage.delete(key)
    await storage.delete(key)

    assert await storage.head(key) is None


async def test_delete_of_a_key_never_stored_is_fine(storage: R2Storage, key: str) -> None:
    await storage.delete(key)


async def test_read_prefix_returns_the_first_bytes(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    put(admin, bucket, key, PNG)

    assert await storage.read_prefix(key, 8) == PNG[:8]


async def test_read_prefix_of_a_short_object_returns_all_of_it(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    put(admin, bucket, key, b"abc")

    assert await storage.read_prefix(key, 64) == b"abc"


async def test_read_prefix_of_an_empty_object_is_empty(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    # S3 answers 416 InvalidRange for any range of an empty object
    put(admin, bucket, key, b"")

    assert await storage.read_prefix(key, 16) == b""


async def test_read_prefix_of_nothing_sends_no_request(storage: R2Storage, key: str) -> None:
    # no object exists: a request would fail, so none was sent
    assert await storage.read_prefix(key, 0) == b""


async def test_read_prefix_of_a_missing_object_is_a_lookup_error(
    storage: R2Storage, key: str
) -> None:
    with pytest.raises(R2ObjectMissing) as caught:
        await storage.read_prefix(key, 8)

    assert isinstance(caught.value, LookupError)


async def test_read_prefix_refuses_a_negative_length(storage: R2Storage, key: str) -> None:
    with pytest.raises(R2RequestRefused):
        await storage.read_prefix(key, -1)


async def test_read_chunks_streams_the_whole_object(
    storage: R2Storage, admin: "S3Client", bucket: str, key: str
) -> None:
    body = bytes(range(256)) * 40
    put(admin, bucket, key, body)

    async with aclosing(storage.read_chunks(key, chunk_size=1000)) as chunks:
        received = [chunk async for chunk in chunks]

    assert b"".join(received) == body
    assert max(len(chunk) for chunk in received) <= 1000


async def test_read_chunks_of_a_missing_object_is_a_lookup_error(
    storage: R2Storage, key: str
) -> None:
    with pytest.raises(LookupError):
        async with aclosing(storage.read_chunks(key)) as chunks:
            async for _ in chunks:
                pass


async def test_read_chunks_refuses_an_empty_chunk_size(storage: R2Storage, key: str) -> None:
    with pytest.raises(R2RequestRefused):
        storage.read_chunks(key, chunk_size=0)


@pytest.mark.parametrize("key", ["", "/abs/key", "a/../b", "a//b", "a/./b", "a\\b", "a\x00b"])
async def test_malformed_keys_are_refused_by_every_operation(storage: R2Storage, key: str) -> None:
    for operation in (storage.head, storage.delete):
        with pytest.raises(R2RequestRefused):
            await operation(key)
    with pytest.raises(R2RequestRefused):
        await storage.read_prefix(key, 8)
    with pytest.raises(R2RequestRefused):
        storage.read_chunks(key)
