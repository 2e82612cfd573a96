"""Presigned uploads: what the URL signs, what it accepts, and what is refused unsigned."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pixecom_r2_storage.errors import R2NotConfigured, R2RequestRefused
from pixecom_r2_storage.settings import R2Settings
from pixecom_r2_storage.storage import R2Storage
from r2_support import (
    PNG,
    TEST_MAX_UPLOAD_BYTES,
    MakeStorage,
    put_through,
    seller_key,
    settings_for,
    signed_query,
)

from pixecom_core.providers import ProviderError, UploadRequest


def png_request(seller_id: uuid.UUID, **changes: object) -> UploadRequest:
    values: dict[str, object] = {
        "seller_id": seller_id,
        "key": seller_key(seller_id),
        "content_type": "image/png",
        "content_length": len(PNG),
    }
    values.update(changes)
    return UploadRequest.model_validate(values)


# -- what the URL signs ------------------------------------------------------------------


async def test_the_url_signs_size_and_type_with_sigv4(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    presigned = await storage.presign_upload(png_request(seller_id))

    query = signed_query(presigned)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    signed_headers = query["X-Amz-SignedHeaders"].split(";")
    assert {"content-length", "content-type", "host", "if-none-match"} <= set(signed_headers)
    assert int(query["X-Amz-Expires"]) <= 300
    # SigV4 scope: <key id>/<date>/auto/s3/aws4_request
    assert query["X-Amz-Credential"].split("/")[2:] == ["auto", "s3", "aws4_request"]
    # no checksum of an empty body baked into the URL (R2 would refuse every upload)
    assert not any(name.lower().startswith("x-amz-checksum") for name in query)
    assert "x-amz-sdk-checksum-algorithm" not in {name.lower() for name in query}
    assert presigned.method == "PUT"
    assert dict(presigned.headers) == {
        "Content-Type": "image/png",
        "Content-Length": str(len(PNG)),
        "If-None-Match": "*",
    }


async def test_the_url_addresses_the_key_in_the_bucket(
    storage: R2Storage, seller_id: uuid.UUID, bucket: str, moto_url: str
) -> None:
    request = png_request(seller_id)

    presigned = await storage.presign_upload(request)

    assert presigned.url.startswith(f"{moto_url}/{bucket}/{request.key}?")


async def test_the_default_lifetime_is_five_minutes(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    before = datetime.now(UTC)

    # core's UploadRequest defaults to 15 minutes; the plugin's cap wins
    presigned = await storage.presign_upload(png_request(seller_id))

    assert signed_query(presigned)["X-Amz-Expires"] == "300"
    assert before + timedelta(seconds=298) <= presigned.expires_at
    assert presigned.expires_at <= datetime.now(UTC) + timedelta(seconds=300)


async def test_a_shorter_lifetime_is_honoured(storage: R2Storage, seller_id: uuid.UUID) -> None:
    presigned = await storage.presign_upload(
        png_request(seller_id, expires_in=timedelta(seconds=45))
    )

    assert signed_query(presigned)["X-Amz-Expires"] == "45"


async def test_the_configured_cap_bounds_every_lifetime(
    make_storage: MakeStorage, seller_id: uuid.UUID
) -> None:
    storage = await make_storage(presign_expiry_seconds=60)

    presigned = await storage.presign_upload(png_request(seller_id, expires_in=timedelta(hours=2)))

    assert signed_query(presigned)["X-Amz-Expires"] == "60"


async def test_the_declared_type_is_signed_in_lower_case(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    presigned = await storage.presign_upload(png_request(seller_id, content_type="Image/PNG"))

    assert presigned.headers["Content-Type"] == "image/png"


# -- uploading through it (moto) ----------------------------------------------------------


async def test_an_upload_with_the_signed_headers_is_stored(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    request = png_request(seller_id)
    presigned = await storage.presign_upload(request)

    response = await put_through(presigned, PNG)

    assert response.status_code == 200, response.text
    info = await storage.head(request.key)
    assert info is not None
    assert (info.size, info.content_type) == (len(PNG), "image/png")


async def test_the_url_cannot_overwrite_the_object_it_created(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    request = png_request(seller_id)
    presigned = await storage.presign_upload(request)
    assert (await put_through(presigned, PNG)).status_code == 200

    # once core has checked the upload, the same URL must not swap its bytes
    replay = await put_through(presigned, b"\x89PNG\r\n\x1a\n" + b"X" * (len(PNG) - 8))

    assert replay.status_code == 412
    assert await storage.read_prefix(request.key, len(PNG)) == PNG


# -- refused before anything is signed ------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "sellers/{other}/product.png",  # another seller's prefix
        "product.png",  # no prefix
        "sellers/{seller}",  # the prefix without its slash
        "sellers/{seller}/",  # the prefix alone
        "uploads/sellers/{seller}/product.png",  # the prefix not at the start
        "sellers/{seller}x/product.png",  # a longer id that starts the same
        "sellers/{seller_upper}/product.png",  # the id spelt otherwise
        "sellers/{seller}//product.png",  # empty segment
        "sellers/{seller}/./product.png",  # dot segment
        "sellers/{seller}/a\\..\\..\\product.png",  # backslashes
        "sellers/{seller}/product\r\n.png",  # control characters
        "sellers/{seller}/" + "a" * 1100,  # longer than S3 allows
    ],
)
async def test_keys_outside_the_sellers_prefix_are_refused(
    storage: R2Storage, seller_id: uuid.UUID, key: str
) -> None:
    key = key.format(seller=seller_id, other=uuid.uuid4(), seller_upper=str(seller_id).upper())

    with pytest.raises(R2RequestRefused):
        await storage.presign_upload(png_request(seller_id, key=key))


@pytest.mark.parametrize(
    "key",
    [
        "sellers/{seller}/../{other}/product.png",
        "sellers/{seller}/images/../../{other}/product.png",
        "/sellers/{seller}/product.png",
    ],
)
async def test_escaping_keys_are_refused_even_past_cores_validation(
    storage: R2Storage, seller_id: uuid.UUID, key: str
) -> None:
    key = key.format(seller=seller_id, other=uuid.uuid4())
    # core's UploadRequest refuses these itself; the storage must not rely on it
    with pytest.raises(ValueError, match="relative"):
        png_request(seller_id, key=key)
    unchecked = UploadRequest.model_construct(
        seller_id=seller_id,
        key=key,
        content_type="image/png",
        content_length=len(PNG),
        expires_in=timedelta(minutes=5),
    )

    with pytest.raises(R2RequestRefused):
        await storage.presign_upload(unchecked)


async def test_a_size_above_the_cap_is_refused(storage: R2Storage, seller_id: uuid.UUID) -> None:
    with pytest.raises(R2RequestRefused, match="exceeds"):
        await storage.presign_upload(
            png_request(seller_id, content_length=TEST_MAX_UPLOAD_BYTES + 1)
        )


async def test_the_audits_ten_gigabytes_are_refused_by_default(
    make_storage: MakeStorage, seller_id: uuid.UUID
) -> None:
    storage = await make_storage(max_upload_bytes=R2Settings().max_upload_bytes)

    with pytest.raises(R2RequestRefused):
        await storage.presign_upload(png_request(seller_id, content_length=10 * 1024**3))


async def test_a_size_at_the_cap_is_signed(storage: R2Storage, seller_id: uuid.UUID) -> None:
    presigned = await storage.presign_upload(
        png_request(seller_id, content_length=TEST_MAX_UPLOAD_BYTES)
    )

    assert presigned.headers["Content-Length"] == str(TEST_MAX_UPLOAD_BYTES)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "image/svg+xml",  # an image that can carry script
        "application/octet-stream",
        "image/png; charset=utf-8",
        "image/png\r\nX-Injected: 1",
    ],
)
async def test_types_without_a_signature_are_refused(
    storage: R2Storage, seller_id: uuid.UUID, content_type: str
) -> None:
    with pytest.raises(R2RequestRefused, match="not allowed"):
        await storage.presign_upload(png_request(seller_id, content_type=content_type))


async def test_types_the_operator_left_out_are_refused(
    make_storage: MakeStorage, seller_id: uuid.UUID
) -> None:
    storage = await make_storage(allowed_content_types=("image/jpeg",))

    with pytest.raises(R2RequestRefused):
        await storage.presign_upload(png_request(seller_id))


@pytest.mark.parametrize("expires_in", [timedelta(0), timedelta(seconds=-5)])
async def test_a_lifetime_under_a_second_is_refused(
    storage: R2Storage, seller_id: uuid.UUID, expires_in: timedelta
) -> None:
    with pytest.raises(R2RequestRefused, match="expires_in"):
        await storage.presign_upload(png_request(seller_id, expires_in=expires_in))


async def test_refusals_are_provider_errors_and_value_errors(
    storage: R2Storage, seller_id: uuid.UUID
) -> None:
    with pytest.raises(ProviderError) as caught:
        await storage.presign_upload(png_request(uuid.uuid4(), key=seller_key(seller_id)))

    assert isinstance(caught.value, ValueError)
    assert caught.value.provider == "r2"


@pytest.mark.usefixtures("clean_environment")
async def test_an_unconfigured_storage_names_what_to_set(seller_id: uuid.UUID) -> None:
    storage = R2Storage(R2Settings())

    with pytest.raises(R2NotConfigured) as caught:
        await storage.presign_upload(png_request(seller_id))

    message = str(caught.value)
    for name in ("ENDPOINT_URL", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
        assert f"PIXECOM_R2_{name}" in message


# -- tenancy as a property -----------------------------------------------------------------


@cache
def _offline_storage() -> R2Storage:
    # signing is local: no server needed
    return R2Storage(settings_for("http://127.0.0.1:9", "tenancy-bucket"))


_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"), min_size=0, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    owner=st.uuids(),
    other=st.uuids(),
    own_key=st.booleans(),
    segments=st.lists(st.one_of(_segment, st.sampled_from(["..", ".", ""])), min_size=1),
)
def test_no_request_signs_a_key_outside_the_requesters_prefix(
    owner: uuid.UUID, other: uuid.UUID, own_key: bool, segments: list[str]
) -> None:
    requester = owner if own_key else other
    key = f"sellers/{owner}/" + "/".join(segments)
    try:
        request = UploadRequest(
            seller_id=requester, key=key, content_type="image/png", content_length=10
        )
    except ValueError:
        return  # core refused it already
    try:
        presigned = asyncio.run(_offline_storage().presign_upload(request))
    except R2RequestRefused:
        return
    # signed: it must be the requester's own key, made of plain segments
    assert owner == requester
    assert not {".", "..", ""} & set(segments)
    assert f"/sellers/{requester}/" in presigned.url
