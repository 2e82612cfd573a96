"""Helpers of the R2 plugin's tests: moto's S3 server on loopback, sample
files of every allowed type, and a fake S3 that answers with chosen errors."""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from moto.server import ThreadedMotoServer
from pixecom_r2_storage.settings import R2Settings
from pixecom_r2_storage.storage import R2Storage

from pixecom_core.providers import PresignedUpload
from pixecom_core.providers.sandboxes import Receive, Scope, Send

#: Builds an R2 storage on the test's bucket, with settings overrides.
MakeStorage = Callable[..., Awaitable[R2Storage]]

ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-key-never-printed"
#: The upload cap of the test storage: small, so "too large" needs no large body.
TEST_MAX_UPLOAD_BYTES = 64 * 1024

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))
#: The first bytes of one real-looking file per allowed type.
SAMPLES: Mapping[str, bytes] = {
    "image/png": PNG,
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(48)),
    "image/gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + bytes(48),
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + bytes(40),
    "video/mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(40),
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< >>\nendobj\n",
}
#: What a hostile seller uploads instead of an image.
HTML = b"<!DOCTYPE html><html><script>fetch('/api/me').then(r=>r.text())</script></html>"


def quiet_werkzeug() -> None:
    """moto's server logs every request at INFO through werkzeug; keep test output short."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server (``ThreadedMotoServer``) on a free 127.0.0.1 port; yield its URL."""
    quiet_werkzeug()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def settings_for(endpoint_url: str, bucket: str, **overrides: Any) -> R2Settings:
    values: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "bucket": bucket,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "max_upload_bytes": TEST_MAX_UPLOAD_BYTES,
        # one attempt, short timeouts: a failure shows at once instead of after retries
        "max_attempts": 1,
        "timeout_seconds": 5.0,
    }
    values.update(overrides)
    return R2Settings(**values)


def seller_key(seller_id: uuid.UUID, name: str = "product.png") -> str:
    return f"sellers/{seller_id}/uploads/{uuid.uuid4().hex}/{name}"


def signed_query(presigned: PresignedUpload) -> dict[str, str]:
    """The presigned URL's query parameters (each appears once)."""
    return {name: values[0] for name, values in parse_qs(urlsplit(presigned.url).query).items()}


async def put_through(
    presigned: PresignedUpload, body: bytes, *, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """Upload ``body`` to the presigned URL as a browser would, with ``headers`` (default:
    the headers the storage said to send; ``Content-Length`` always follows the body)."""
    sent = dict(presigned.headers if headers is None else headers)
    sent.pop("Content-Length", None)
    async with httpx.AsyncClient(timeout=10) as browser:
        return await browser.request(presigned.method, presigned.url, content=body, headers=sent)


@dataclass
class FakeS3:
    """An S3 endpoint that answers every request with one chosen error.

    :param status: the HTTP status.
    :param code: the S3 error code in the XML body (HEAD answers carry no body).
    :param headers: extra response headers (``Retry-After`` …).
    :param delay_seconds: wait before answering (timeouts).
    """

    status: int = 500
    code: str = "InternalError"
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    requests: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        if scope["type"] != "http":
            return
        self.requests.append(f"{scope['method']} {scope['path']}")
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        body = b""
        if scope["method"] != "HEAD":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{self.code}</Code><Message>fake {self.code}</Message>"
                "<RequestId>fake</RequestId></Error>"
            ).encode()
        headers = [
            (b"content-type", b"application/xml"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
