"""Fixtures: moto's S3 server on a loopback port (one per run), a fresh bucket per test, and
R2 storages pointed at it over real HTTP."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from pixecom_r2_storage.storage import R2Storage
from r2_support import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MakeStorage, moto_server, settings_for

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto S3 server for the run; tests keep apart through their own buckets."""
    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def admin(moto_url: str) -> "S3Client":
    """A plain boto3 client on the moto server, to arrange and inspect objects directly."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(admin: "S3Client") -> str:
    """A new, empty bucket for this test."""
    name = f"r2-test-{uuid.uuid4().hex[:16]}"
    admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def seller_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
async def make_storage(moto_url: str, bucket: str) -> AsyncIterator[MakeStorage]:
    """Build storages on this test's bucket, with settings overrides; closed afterwards."""
    made: list[R2Storage] = []

    async def make(**overrides: Any) -> R2Storage:
        storage = R2Storage(settings_for(moto_url, bucket, **overrides))
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.aclose()


@pytest.fixture
async def storage(make_storage: MakeStorage) -> R2Storage:
    return await make_storage()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``PIXECOM_R2_*`` variable from the machine leaks into the test."""
    for name in list(os.environ):
        if name.startswith("PIXECOM_R2_"):
            monkeypatch.delenv(name)
