"""Settings of the Cloudflare R2 plugin, read from ``PIXECOM_R2_*`` environment variables.

Every field has a default or may be unset, so building the settings (and registering the
plugin) never fails on a machine where R2 is not configured; the first call that needs the
endpoint, the bucket or the keys fails instead, with a ``R2NotConfigured`` naming the
variables to set.

Lists are accepted as JSON (``'["image/png","image/jpeg"]'``) or comma-separated
(``image/png,image/jpeg``).
"""

import re
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pixecom_core.providers.settings_fields import split_list
from pixecom_core.secret_files import SettingsWithSecretFiles
from pixecom_r2_storage.content_types import ALLOWED_CONTENT_TYPES, normalise_content_type

ENV_PREFIX: Final = "PIXECOM_R2_"
#: The default cap on one upload: product images and short product videos fit.
DEFAULT_MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
#: A single S3 ``PUT`` carries at most 5 GiB (R2 says "5 GiB minus 5 MiB"); larger needs a
#: multipart upload, which a presigned ``PUT`` URL cannot do.
SINGLE_PUT_LIMIT_BYTES: Final = 5 * 1024 * 1024 * 1024 - 5 * 1024 * 1024
#: SigV4 query signatures are valid for at most 7 days.
SIGV4_MAX_EXPIRY_SECONDS: Final = 7 * 24 * 3600
# S3 bucket naming (R2 follows it): 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class R2Settings(SettingsWithSecretFiles):
    """Where the bucket is, how to sign for it and what uploads may be.

    :param endpoint_url: the S3 API endpoint, ``https://<account id>.r2.cloudflarestorage.com``
        for R2 (the sandbox's ``http://127.0.0.1:<port>`` in dev mode and tests). Objects are
        addressed path-style (``<endpoint>/<bucket>/<key>``), which R2 and moto both serve.
    :param bucket: the bucket seller uploads go to.
    :param access_key_id: the R2 API token's access key id.
    :param secret_access_key: the R2 API token's secret; never logged.
    :param region: the SigV4 signing region; R2 wants ``auto``.
    :param max_upload_bytes: the largest upload a URL is presigned for (SEC-6; the audit
        found no size limit). The signed ``Content-Length`` makes R2 refuse another size.
    :param presign_expiry_seconds: the longest an upload URL stays valid (SEC-6; the audit's
        5 minutes); a shorter ``UploadRequest.expires_in`` is honoured, a longer one is cut to
        this.
    :param allowed_content_types: the types a URL is presigned for; each must have a
        magic-byte signature in :mod:`pixecom_r2_storage.content_types`, so that the
        post-upload check can confirm the bytes.
    :param timeout_seconds: connect and read timeout of each call to R2.
    :param max_attempts: attempts per call, the first included; botocore retries 5xx,
        throttling and connection failures in between, with backoff.
    :param max_connections: pooled connections to R2 shared by all calls of the process.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    endpoint_url: str | None = None
    bucket: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    region: str = Field(default="auto", min_length=1)
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0, le=SINGLE_PUT_LIMIT_BYTES)
    presign_expiry_seconds: int = Field(default=300, ge=1, le=SIGV4_MAX_EXPIRY_SECONDS)
    allowed_content_types: Annotated[tuple[str, ...], NoDecode] = ALLOWED_CONTENT_TYPES
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    max_connections: int = Field(default=20, ge=1)

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                "must be an http(s) URL such as https://<account id>.r2.cloudflarestorage.com, "
                f"not {value!r}"
            )
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError(f"must be scheme and host only, without path or query: {value!r}")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _BUCKET_NAME.fullmatch(value) or ".." in value:
            raise ValueError(
                "must be a bucket name: 3-63 lower-case letters, digits, dots and hyphens, "
                f"not {value!r}"
            )
        return value

    @field_validator("access_key_id")
    @classmethod
    def _blank_access_key_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("secret_access_key")
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("allowed_content_types", mode="before")
    @classmethod
    def _split_content_types(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("allowed_content_types")
    @classmethod
    def _check_content_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        normalised = tuple(dict.fromkeys(normalise_content_type(item) for item in value))
        unknown = [item for item in normalised if item not in ALLOWED_CONTENT_TYPES]
        if unknown:
            # a type without a signature could never pass the post-upload check
            raise ValueError(
                f"no magic-byte signature for {', '.join(unknown)}; "
                f"choose among {', '.join(ALLOWED_CONTENT_TYPES)}"
            )
        if not normalised:
            raise ValueError("must name at least one content type")
        return normalised
