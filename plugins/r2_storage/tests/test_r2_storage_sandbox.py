"""The ``r2`` sandbox: moto's S3 as an ASGI app served by uvicorn, used end to end."""

import hashlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pixecom_r2_storage.errors import R2NotConfigured
from pixecom_r2_storage.plugin import DEV_BUCKET, pixecom_register_sandboxes
from pixecom_r2_storage.sandbox import create_sandbox_app
from pixecom_r2_storage.settings import R2Settings
from pixecom_r2_storage.storage import R2Storage
from pixecom_r2_storage.verification import UploadProblem, check_upload
from r2_support import HTML, PNG, put_through, seller_key, settings_for

from pixecom_core.providers import UploadRequest
from pixecom_core.testing.loopback import serve


@pytest.fixture(scope="module")
def sandbox_bucket() -> str:
    return f"r2-sandbox-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
async def sandbox_url(sandbox_bucket: str) -> AsyncIterator[str]:
    async with serve(create_sandbox_app(buckets=(sandbox_bucket,)), lifespan="on") as url:
        yield url


@pytest.fixture
async def sandbox_storage(sandbox_url: str, sandbox_bucket: str) -> AsyncIterator[R2Storage]:
    storage = R2Storage(settings_for(sandbox_url, sandbox_bucket))
    yield storage
    await storage.aclose()


async def test_the_bucket_exists_when_the_sandbox_starts(
    sandbox_url: str, sandbox_bucket: str
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        response = await client.get("/")

    assert response.status_code == 200
    assert f"<Name>{sandbox_bucket}</Name>" in response.text


async def test_a_seller_upload_round_trips_through_the_sandbox(
    sandbox_storage: R2Storage,
) -> None:
    seller_id = uuid.uuid4()
    key = seller_key(seller_id)
    presigned = await sandbox_storage.presign_upload(
        UploadRequest(
            seller_id=seller_id, key=key, content_type="image/png", content_length=len(PNG)
        )
    )

    uploaded = await put_through(presigned, PNG)
    check = await check_upload(
        sandbox_storage, key, len(PNG), "image/png", hashlib.sha256(PNG).hexdigest()
    )

    assert uploaded.status_code == 200, uploaded.text
    assert check.accepted, check.reason
    assert await sandbox_storage.read_prefix(key, 4) == PNG[:4]
    await sandbox_storage.delete(key)
    assert await sandbox_storage.head(key) is None


async def test_the_sandbox_like_moto_lets_a_disguised_upload_through(
    sandbox_storage: R2Storage,
) -> None:
    seller_id = uuid.uuid4()
    key = seller_key(seller_id)
    presigned = await sandbox_storage.presign_upload(
        UploadRequest(
            seller_id=seller_id, key=key, content_type="image/png", content_length=len(PNG)
        )
    )

    # R2 would refuse both the size and the type; the sandbox stores it, the check deletes it
    uploaded = await put_through(
        presigned, HTML * 3, headers={"Content-Type": "text/html", "If-None-Match": "*"}
    )
    check = await check_upload(sandbox_storage, key, len(PNG), "image/png")

    assert uploaded.status_code == 200
    assert set(check.problems) == {
        UploadProblem.SIZE_MISMATCH,
        UploadProblem.CONTENT_TYPE_MISMATCH,
    }
    assert check.deleted
    assert await sandbox_storage.head(key) is None


async def test_the_sandbox_refuses_an_overwrite_through_the_same_url(
    sandbox_storage: R2Storage,
) -> None:
    seller_id = uuid.uuid4()
    presigned = await sandbox_storage.presign_upload(
        UploadRequest(
            seller_id=seller_id,
            key=seller_key(seller_id),
            content_type="image/png",
            content_length=len(PNG),
        )
    )
    assert (await put_through(presigned, PNG)).status_code == 200

    second = await put_through(presigned, PNG)

    assert second.status_code == 412
    assert "PreconditionFailed" in second.text


async def test_a_missing_bucket_answers_in_s3s_error_format(sandbox_url: str) -> None:
    storage = R2Storage(settings_for(sandbox_url, "no-such-bucket-here"))

    with pytest.raises(R2NotConfigured, match="NoSuchBucket.*PIXECOM_R2_BUCKET"):
        await storage.read_prefix(seller_key(uuid.uuid4()), 4)
    await storage.aclose()


@pytest.mark.usefixtures("clean_environment")
async def test_the_hooks_sandbox_creates_the_dev_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    [sandbox] = pixecom_register_sandboxes()
    assert sandbox.environment is not None
    for name, value in sandbox.environment("http://127.0.0.1:1", "http://api").items():
        monkeypatch.setenv(name, value)

    app = sandbox.create_app()

    async with serve(app, lifespan="on") as url:
        monkeypatch.setenv("PIXECOM_R2_ENDPOINT_URL", url)
        storage = R2Storage(R2Settings())
        seller_id = uuid.uuid4()
        key = seller_key(seller_id)
        presigned = await storage.presign_upload(
            UploadRequest(
                seller_id=seller_id, key=key, content_type="image/png", content_length=len(PNG)
            )
        )
        assert (await put_through(presigned, PNG)).status_code == 200
        assert (await storage.head(key)) is not None
        assert storage.settings.bucket == DEV_BUCKET
        await storage.delete(key)
        await storage.aclose()


async def test_building_the_app_twice_keeps_the_bucket(sandbox_bucket: str) -> None:
    create_sandbox_app(buckets=(sandbox_bucket,))
    create_sandbox_app(buckets=(sandbox_bucket,))  # no "bucket already exists"
