"""Settings come from ``PIXECOM_R2_*`` with safe defaults and clear refusals."""

from pathlib import Path

import pytest
from pixecom_r2_storage.content_types import ALLOWED_CONTENT_TYPES
from pixecom_r2_storage.settings import DEFAULT_MAX_UPLOAD_BYTES, R2Settings
from pydantic import ValidationError

from pixecom_core.testing.secrets import check_secrets_read_from_files

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_defaults_need_no_environment() -> None:
    settings = R2Settings()

    assert settings.endpoint_url is None
    assert settings.bucket is None
    assert settings.access_key_id is None
    assert settings.secret_access_key is None
    assert settings.region == "auto"
    assert settings.presign_expiry_seconds == 300  # the audit's five minutes
    assert settings.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES
    assert settings.allowed_content_types == ALLOWED_CONTENT_TYPES


def test_the_environment_configures_the_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_R2_ENDPOINT_URL", "https://0123abcd.r2.cloudflarestorage.com/")
    monkeypatch.setenv("PIXECOM_R2_BUCKET", "pixecom-uploads")
    monkeypatch.setenv("PIXECOM_R2_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("PIXECOM_R2_SECRET_ACCESS_KEY", "s3cret-value")
    monkeypatch.setenv("PIXECOM_R2_MAX_UPLOAD_BYTES", "1048576")
    monkeypatch.setenv("PIXECOM_R2_PRESIGN_EXPIRY_SECONDS", "120")
    monkeypatch.setenv("PIXECOM_R2_ALLOWED_CONTENT_TYPES", "image/PNG, image/jpeg")

    settings = R2Settings()

    assert settings.endpoint_url == "https://0123abcd.r2.cloudflarestorage.com"
    assert settings.bucket == "pixecom-uploads"
    assert settings.max_upload_bytes == 1_048_576
    assert settings.presign_expiry_seconds == 120
    assert settings.allowed_content_types == ("image/png", "image/jpeg")
    assert settings.secret_access_key is not None
    assert settings.secret_access_key.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_content_types_may_be_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXECOM_R2_ALLOWED_CONTENT_TYPES", '["application/pdf"]')

    assert R2Settings().allowed_content_types == ("application/pdf",)


def test_blank_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENDPOINT_URL", "BUCKET", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
        monkeypatch.setenv(f"PIXECOM_R2_{name}", " ")

    settings = R2Settings()

    assert (settings.endpoint_url, settings.bucket) == (None, None)
    assert (settings.access_key_id, settings.secret_access_key) == (None, None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PIXECOM_R2_ENDPOINT_URL", "0123abcd.r2.cloudflarestorage.com"),
        ("PIXECOM_R2_ENDPOINT_URL", "ftp://0123abcd.r2.cloudflarestorage.com"),
        ("PIXECOM_R2_ENDPOINT_URL", "https://0123abcd.r2.cloudflarestorage.com/bucket"),
        ("PIXECOM_R2_ENDPOINT_URL", "https://0123abcd.r2.cloudflarestorage.com/?x=1"),
        ("PIXECOM_R2_BUCKET", "Upper_Case"),
        ("PIXECOM_R2_BUCKET", "ab"),
        ("PIXECOM_R2_BUCKET", "a..b"),
        ("PIXECOM_R2_MAX_UPLOAD_BYTES", "0"),
        ("PIXECOM_R2_MAX_UPLOAD_BYTES", str(10 * 1024**3)),  # the audit's 10 GB
        ("PIXECOM_R2_PRESIGN_EXPIRY_SECONDS", "0"),
        ("PIXECOM_R2_PRESIGN_EXPIRY_SECONDS", str(8 * 24 * 3600)),
        ("PIXECOM_R2_ALLOWED_CONTENT_TYPES", "text/html"),
        ("PIXECOM_R2_ALLOWED_CONTENT_TYPES", "image/png,image/svg+xml"),
        ("PIXECOM_R2_ALLOWED_CONTENT_TYPES", "[]"),
        ("PIXECOM_R2_MAX_ATTEMPTS", "0"),
        ("PIXECOM_R2_REGION", ""),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        R2Settings()


def test_every_secret_can_be_read_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Production keeps secrets out of the environment (issue 12 item 8).
    assert check_secrets_read_from_files(R2Settings, monkeypatch, tmp_path)
