"""Failures map to core's error classes: a stopped server and timeouts are transient, refused
credentials are auth errors, throttling says how long to wait."""

import uuid
from collections.abc import AsyncIterator

import pytest
from pixecom_r2_storage.errors import R2NotConfigured, R2Throttled
from pixecom_r2_storage.settings import R2Settings
from pixecom_r2_storage.storage import R2Storage
from r2_support import PNG, SECRET_ACCESS_KEY, FakeS3, moto_server, seller_key, settings_for

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    UploadRequest,
)
from pixecom_core.testing.loopback import serve


@pytest.fixture
def fake() -> FakeS3:
    return FakeS3()


@pytest.fixture
async def fake_storage(fake: FakeS3) -> AsyncIterator[R2Storage]:
    """A storage whose endpoint answers every request with ``fake``'s error."""
    async with serve(fake) as url:
        storage = R2Storage(settings_for(url, "fake-bucket", timeout_seconds=0.3))
        yield storage
        await storage.aclose()


KEY = "sellers/00000000-0000-0000-0000-000000000001/product.png"


async def test_a_stopped_server_is_a_transient_failure(seller_id: uuid.UUID) -> None:
    with moto_server() as url:
        storage = R2Storage(settings_for(url, "stopped-bucket"))
        key = seller_key(seller_id)
        assert await storage.head(key) is None  # it answered while running
    # the server is stopped now: connections are refused

    for call in (storage.head(key), storage.delete(key), storage.read_prefix(key, 8)):
        with pytest.raises(ProviderTransientError):
            await call
    await storage.aclose()


async def test_signing_needs_no_server(seller_id: uuid.UUID) -> None:
    with moto_server() as url:
        storage = R2Storage(settings_for(url, "stopped-bucket"))
    request = UploadRequest(
        seller_id=seller_id,
        key=seller_key(seller_id),
        content_type="image/png",
        content_length=len(PNG),
    )

    presigned = await storage.presign_upload(request)

    assert presigned.url.startswith(url)
    await storage.aclose()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "InvalidAccessKeyId"),
        (403, "SignatureDoesNotMatch"),
        (403, "AccessDenied"),
        (401, "Unauthorized"),
        (400, "ExpiredToken"),
    ],
)
async def test_refused_credentials_are_auth_errors(
    fake: FakeS3, fake_storage: R2Storage, status: int, code: str
) -> None:
    fake.status, fake.code = status, code

    with pytest.raises(ProviderAuthError) as caught:
        await fake_storage.read_prefix(KEY, 8)

    assert code in str(caught.value)
    assert "PIXECOM_R2_ACCESS_KEY_ID" in str(caught.value)
    assert SECRET_ACCESS_KEY not in str(caught.value)
    assert not isinstance(caught.value, ProviderTransientError)


async def test_a_refused_head_is_an_auth_error(fake: FakeS3, fake_storage: R2Storage) -> None:
    # a HEAD answer has no body: only its status says what happened
    fake.status, fake.code = 403, "AccessDenied"

    with pytest.raises(ProviderAuthError):
        await fake_storage.head(KEY)


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (502, "BadGateway")])
async def test_server_errors_are_transient(
    fake: FakeS3, fake_storage: R2Storage, status: int, code: str
) -> None:
    fake.status, fake.code = status, code

    with pytest.raises(ProviderTransientError) as caught:
        await fake_storage.delete(KEY)

    assert not isinstance(caught.value, ProviderThrottled)


async def test_slow_down_is_throttled_and_transient(fake: FakeS3, fake_storage: R2Storage) -> None:
    fake.status, fake.code, fake.headers = 503, "SlowDown", {"Retry-After": "7"}

    with pytest.raises(R2Throttled) as caught:
        await fake_storage.read_prefix(KEY, 8)

    assert isinstance(caught.value, ProviderThrottled)
    assert isinstance(caught.value, ProviderTransientError)
    assert caught.value.retry_after_seconds == 7.0


async def test_too_many_requests_without_a_delay_leaves_backoff_to_core(
    fake: FakeS3, fake_storage: R2Storage
) -> None:
    fake.status, fake.code = 429, "TooManyRequests"

    with pytest.raises(R2Throttled) as caught:
        await fake_storage.delete(KEY)

    assert caught.value.retry_after_seconds is None


async def test_a_timeout_is_transient(fake: FakeS3, fake_storage: R2Storage) -> None:
    fake.status, fake.delay_seconds = 200, 0.6

    with pytest.raises(ProviderTransientError, match="Timeout"):
        await fake_storage.read_prefix(KEY, 8)


async def test_a_missing_bucket_is_a_configuration_error(
    fake: FakeS3, fake_storage: R2Storage
) -> None:
    fake.status, fake.code = 404, "NoSuchBucket"

    with pytest.raises(R2NotConfigured, match="PIXECOM_R2_BUCKET"):
        await fake_storage.read_prefix(KEY, 8)


async def test_other_client_errors_are_plain_provider_errors(
    fake: FakeS3, fake_storage: R2Storage
) -> None:
    fake.status, fake.code = 400, "InvalidArgument"

    with pytest.raises(ProviderError) as caught:
        await fake_storage.delete(KEY)

    assert type(caught.value) is ProviderError
    assert "InvalidArgument" in str(caught.value)


async def test_botocore_retries_transient_failures_before_giving_up(fake: FakeS3) -> None:
    fake.status, fake.code = 500, "InternalError"
    async with serve(fake) as url:
        storage = R2Storage(settings_for(url, "fake-bucket", max_attempts=3))

        with pytest.raises(ProviderTransientError):
            await storage.delete(KEY)
        await storage.aclose()

    assert len(fake.requests) == 3


@pytest.mark.usefixtures("clean_environment")
async def test_unconfigured_reads_fail_before_any_request() -> None:
    storage = R2Storage(R2Settings(endpoint_url="http://127.0.0.1:9"))

    for call in (storage.head(KEY), storage.delete(KEY), storage.read_prefix(KEY, 8)):
        with pytest.raises(R2NotConfigured, match="PIXECOM_R2_BUCKET"):
            await call
