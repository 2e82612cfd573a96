"""The S3 calls the R2 storage makes, through boto3, without blocking the event loop.

boto3 is synchronous, so every call (and every read of a response body) runs in a worker
thread with :func:`asyncio.to_thread`; one boto3 client, built on first use, is shared by
all of them (boto3 clients are thread-safe, sessions are not). boto3 is imported by that
first use, not by the plugin: registering plugins happens in every process (API, workers,
CLI), and importing boto3 costs about half a second.

The client signs with SigV4 for region ``auto`` (botocore would otherwise fall back to
SigV2 for some configurations, and SigV2 URLs sign no headers), addresses objects
path-style (``<endpoint>/<bucket>/<key>``, served by R2 and by moto on loopback), and only
adds checksums when an operation requires one: botocore's default "when supported" checksums
bake an empty body's CRC32 into presigned URLs of some SDK versions, which R2 then refuses.

Each failure becomes one class of :mod:`pixecom_core.providers.errors`:

- 401, 403, ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``AccessDenied`` …
  → ``ProviderAuthError``;
- 429, ``SlowDown`` → :class:`~pixecom_r2_storage.errors.R2Throttled` (throttled and transient);
- other 5xx, timeouts, refused or dropped connections, a body cut short →
  ``ProviderTransientError``;
- ``NoSuchBucket`` → :class:`~pixecom_r2_storage.errors.R2NotConfigured`;
- ``NoSuchKey`` on a read → :class:`~pixecom_r2_storage.errors.R2ObjectMissing`;
- anything else → ``ProviderError`` with the S3 error code and message.

botocore retries 5xx, throttling and connection failures itself (``max_attempts``) before
an error reaches this mapping. The secret key never appears in an exception message.
"""

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import SecretStr

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderTransientError,
)
from pixecom_r2_storage.errors import R2NotConfigured, R2ObjectMissing, R2Throttled
from pixecom_r2_storage.settings import ENV_PREFIX, R2Settings

if TYPE_CHECKING:
    import boto3.session
    from botocore.exceptions import ClientError
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

PROVIDER: Final = "r2"
#: S3 error codes that mean the credentials (or their permissions) were refused.
AUTH_ERROR_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "Unauthorized",
    }
)
THROTTLE_ERROR_CODES: Final = frozenset({"SlowDown", "TooManyRequests", "Throttling"})
#: Read size of one chunk of a streamed object.
DEFAULT_CHUNK_BYTES: Final = 1024 * 1024

_Result = TypeVar("_Result")

# One boto3 session per process: it caches the S3 service model, so a second client costs
# ~15 ms instead of ~150 ms. Sessions are not thread-safe, so clients are built under a lock.
_session_lock = threading.Lock()
_session: "boto3.session.Session | None" = None


@dataclass(frozen=True)
class _Configured:
    """The settings an S3 client needs, each known to be set."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: SecretStr


class R2Client:
    """A thin async client of the S3 operations the storage uses, on one bucket.

    :param settings: where the bucket is and how to sign for it.
    """

    def __init__(self, settings: R2Settings) -> None:
        self._settings = settings
        self._client: S3Client | None = None

    @property
    def bucket(self) -> str:
        """The configured bucket; raises :class:`R2NotConfigured` when unset."""
        return self._require_configuration().bucket

    async def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        content_length: int,
        expires_in_seconds: int,
        create_only: bool = True,
    ) -> str:
        """A SigV4 query-signed ``PUT`` URL whose signature covers ``Content-Type``,
        ``Content-Length`` (and ``If-None-Match: *`` when ``create_only``).

        Signing is local (no request to R2), but building the boto3 client the first time
        reads botocore's data files, so it runs in a thread too.
        """
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": content_length,
        }
        if create_only:
            params["IfNoneMatch"] = "*"

        def sign() -> str:
            return self._s3().generate_presigned_url(
                "put_object", Params=params, ExpiresIn=expires_in_seconds, HttpMethod="PUT"
            )

        return await self._call(sign, action="presign PUT", key=key)

    async def head_object(self, key: str) -> "HeadObjectOutputTypeDef | None":
        """``HEAD /<bucket>/<key>`` with stored checksums; ``None`` on 404."""
        bucket = self.bucket

        def head() -> "HeadObjectOutputTypeDef | None":
            from botocore.exceptions import ClientError

            try:
                return self._s3().head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            except ClientError as exc:
                # HEAD answers carry no body, so a missing key is only its status
                if _status(exc) == 404 or _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                    return None
                raise

        return await self._call(head, action="HEAD", key=key)

    async def delete_object(self, key: str) -> None:
        """``DELETE /<bucket>/<key>``; S3 answers 204 for a missing key too."""
        bucket = self.bucket

        def delete() -> None:
            self._s3().delete_object(Bucket=bucket, Key=key)

        await self._call(delete, action="DELETE", key=key)

    async def get_range(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes with ``Range: bytes=0-<length-1>`` (fewer if shorter).

        At most ``length`` bytes are read even if the server ignores the range.
        """
        if length <= 0:
            return b""
        bucket = self.bucket

        def read() -> bytes:
            from botocore.exceptions import ClientError

            try:
                response = self._s3().get_object(
                    Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}"
                )
            except ClientError as exc:
                if _code(exc) == "InvalidRange":
                    # 416: the object is empty, so no byte range exists
                    return b""
                raise
            body = response["Body"]
            try:
                return body.read(length)
            finally:
                body.close()

        return await self._call(read, action="GET range", key=key)

    async def iter_object(
        self, key: str, *, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> AsyncGenerator[bytes, None]:
        """Stream the object's body in chunks of at most ``chunk_size`` bytes.

        Each chunk is read in a thread; the connection is released when the iteration ends
        or is closed early (use :func:`contextlib.aclosing` when stopping early).
        """
        bucket = self.bucket

        def open_body() -> Any:
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"]

        body = await self._call(open_body, action="GET", key=key)
        try:
            while True:
                chunk: bytes = await self._call(
                    lambda: body.read(chunk_size), action="GET body", key=key
                )
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def aclose(self) -> None:
        """Close the pooled connections; the next call opens new ones."""
        with _session_lock:
            client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    # -- internals -----------------------------------------------------------------------

    def _require_configuration(self) -> _Configured:
        # Issue 13 #8: an explicit check (raises under ``python -O`` too) whose result
        # carries the values it checked, so no ``assert`` narrows them afterwards.
        settings = self._settings
        endpoint_url, bucket = settings.endpoint_url, settings.bucket
        access_key_id, secret_access_key = settings.access_key_id, settings.secret_access_key
        if (
            endpoint_url is None
            or bucket is None
            or access_key_id is None
            or secret_access_key is None
        ):
            missing = [
                f"{ENV_PREFIX}{name.upper()}"
                for name, value in (
                    ("endpoint_url", endpoint_url),
                    ("bucket", bucket),
                    ("access_key_id", access_key_id),
                    ("secret_access_key", secret_access_key),
                )
                if value is None
            ]
            raise R2NotConfigured(
                f"Cloudflare R2 is not configured: set {', '.join(missing)}", provider=PROVIDER
            )
        return _Configured(
            endpoint_url=endpoint_url,
            bucket=bucket,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )

    def _s3(self) -> "S3Client":
        # called in worker threads only: building a client reads botocore's data files
        global _session
        with _session_lock:
            if self._client is not None:
                return self._client
            configured = self._require_configuration()
            settings = self._settings
            import boto3.session
            from botocore.config import Config

            if _session is None:
                _session = boto3.session.Session()
            self._client = _session.client(
                "s3",
                endpoint_url=configured.endpoint_url,
                region_name=settings.region,
                aws_access_key_id=configured.access_key_id,
                aws_secret_access_key=configured.secret_access_key.get_secret_value(),
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
                    connect_timeout=settings.timeout_seconds,
                    read_timeout=settings.timeout_seconds,
                    max_pool_connections=settings.max_connections,
                ),
            )
            return self._client

    async def _call(self, function: Callable[[], _Result], *, action: str, key: str) -> _Result:
        self._require_configuration()
        try:
            return await asyncio.to_thread(function)
        except ProviderError:
            raise
        except Exception as exc:
            mapped = map_boto_error(exc, action=action, key=key)
            if mapped is None:
                raise
            raise mapped from exc


def map_boto_error(exc: Exception, *, action: str, key: str) -> ProviderError | None:
    """The :mod:`pixecom_core.providers.errors` class for a boto3 failure, or ``None`` for
    an exception that is not botocore's (a bug, to propagate as it is)."""
    # botocore is loaded by now: the call that failed went through it
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        return map_client_error(exc, action=action, key=key)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        # refused, reset or timed-out connections, a body cut short
        return ProviderTransientError(
            f"R2 {action} {key!r}: {type(exc).__name__}: {exc}", provider=PROVIDER
        )
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"R2 {action} {key!r}: {type(exc).__name__}: {exc}", provider=PROVIDER)
    return None


def _status(exc: "ClientError") -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _code(exc: "ClientError") -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _retry_after_seconds(exc: "ClientError") -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    raw = headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date; let core back off


def map_client_error(exc: "ClientError", *, action: str, key: str) -> ProviderError:
    """The :mod:`pixecom_core.providers.errors` class for an S3 error answer."""
    status = _status(exc)
    code = _code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or "no message"
    where = f"R2 {action} {key!r} failed with {status} {code}: {message}"
    if code in AUTH_ERROR_CODES or status in {401, 403}:
        return ProviderAuthError(
            f"{where}; check {ENV_PREFIX}ACCESS_KEY_ID / {ENV_PREFIX}SECRET_ACCESS_KEY and the "
            "token's permissions on the bucket",
            provider=PROVIDER,
        )
    if code in THROTTLE_ERROR_CODES or status == 429:
        return R2Throttled(where, retry_after_seconds=_retry_after_seconds(exc), provider=PROVIDER)
    if status is not None and status >= 500:
        return ProviderTransientError(where, provider=PROVIDER)
    if code == "NoSuchBucket":
        return R2NotConfigured(f"{where}; check {ENV_PREFIX}BUCKET", provider=PROVIDER)
    if code == "NoSuchKey":
        return R2ObjectMissing(where, provider=PROVIDER)
    return ProviderError(where, provider=PROVIDER)
