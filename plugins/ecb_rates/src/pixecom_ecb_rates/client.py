"""Reading the ECB's ``eurofxref`` files over httpx, with failures as core's error classes.

Each read is one ``GET <base_url>/<file>`` (no credentials, no query). Failures become one
class of :mod:`pixecom_core.providers.errors`, as the ``CurrencyRateSource`` contract says:

- no answer within ``timeout_seconds`` (the whole download), a connection that fails
  before the status line, HTTP 5xx → ``ProviderUnavailable`` (the ECB's site cannot be
  reached or is failing: try again later);
- HTTP 429 → ``ProviderThrottled`` with ``Retry-After``, else ``throttle_backoff_seconds``;
- a 200 whose body is cut off (the connection dropped while reading, or XML that ends too
  early), not an ``eurofxref`` file, declares a DOCTYPE, or is larger than
  ``max_body_bytes`` → ``ProviderTransientError`` (try again);
- anything else (403, 404, a redirect: redirects are not followed) →
  ``ProviderError`` naming ``PIXECOM_ECB_BASE_URL``: retrying will not help while the
  address is wrong.
"""

import asyncio
import logging
import time
from typing import Final

import httpx

from pixecom_core.providers import (
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    ProviderUnavailable,
    Publication,
)
from pixecom_core.providers.http import LoopLocalClient, parse_retry_after, transient_error_for
from pixecom_ecb_rates.eurofxref import (
    MalformedReferenceRates,
    ReferenceRatesFile,
    parse_reference_rates,
)
from pixecom_ecb_rates.settings import ENV_PREFIX, EcbSettings

PROVIDER: Final = "ecb"
SERVICE: Final = "the ECB"

_log = logging.getLogger(__name__)


class EcbClient:
    """Reads one ``eurofxref`` file at a time.

    One ``httpx.AsyncClient`` is kept per event loop (:class:`LoopLocalClient`);
    :meth:`aclose` closes it.

    :param settings: where the files are, the timeout, the size limit.
    :param transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self, settings: EcbSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._http = LoopLocalClient(
            settings.base_url,
            timeout_seconds=settings.timeout_seconds,
            user_agent="pixecom-ecb-rates",
            headers={"Accept": "application/xml, text/xml"},
            transport=transport,
        )

    async def publications(self, file: ReferenceRatesFile) -> list[Publication]:
        """The publications ``file`` lists, oldest first.

        :raises ProviderUnavailable: no answer in time, no connection, HTTP 5xx.
        :raises ProviderThrottled: HTTP 429.
        :raises ProviderTransientError: a cut-off, malformed or oversized body.
        :raises ProviderError: any other status.
        """
        body = await self._download(file)
        try:
            return parse_reference_rates(body)
        except MalformedReferenceRates as exc:
            raise ProviderTransientError(
                f"{SERVICE}'s {file.value} is not a readable reference-rates file ({exc}); "
                "the load is retried later",
                provider=PROVIDER,
            ) from exc

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent)."""
        await self._http.aclose()

    async def _download(self, file: ReferenceRatesFile) -> bytes:
        timeout = self._settings.timeout_seconds
        started = time.monotonic()
        try:
            # httpx limits each phase (connect, every read); this limits the download as a
            # whole, so a server that trickles bytes cannot hold the worker either
            async with asyncio.timeout(timeout):
                body, status, retry_after = await self._get(file)
        except (TimeoutError, httpx.TimeoutException, httpx.ConnectError) as exc:
            raise self._unreachable(file, exc) from exc
        _log.debug(
            "ecb %s -> %s, %d bytes in %.3f s",
            file.value,
            status,
            len(body),
            time.monotonic() - started,
        )
        if status == 200:
            return body
        detail = f"{SERVICE} answered HTTP {status} for {file.value}"
        if status == 429:
            wait = parse_retry_after(retry_after)
            if wait is None:
                wait = self._settings.throttle_backoff_seconds
            raise ProviderThrottled(detail, retry_after_seconds=wait, provider=PROVIDER)
        if status >= 500:
            raise ProviderUnavailable(f"{detail}; the load is retried later", provider=PROVIDER)
        raise ProviderError(
            f"{detail} at {self._settings.base_url}; check {ENV_PREFIX}BASE_URL "
            "(the folder holding the eurofxref files)",
            provider=PROVIDER,
        )

    async def _get(self, file: ReferenceRatesFile) -> tuple[bytes, int, str | None]:
        """The body (only a 200's is read), status and ``Retry-After`` of one GET."""
        try:
            async with self._http.get().stream("GET", file.value) as response:
                if response.status_code != 200:
                    return b"", response.status_code, response.headers.get("retry-after")
                return await self._read(file, response), 200, None
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException | httpx.ConnectError):
                raise
            # the connection failed after the request went out: before the status line
            # the site is unreachable, while reading a 200's body the answer is cut off
            raise self._unreachable(file, exc) from exc

    async def _read(self, file: ReferenceRatesFile, response: httpx.Response) -> bytes:
        limit = self._settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ProviderTransientError(
                        f"{SERVICE}'s {file.value} is larger than {limit} bytes; raise "
                        f"{ENV_PREFIX}MAX_BODY_BYTES if the file has really grown that much",
                        provider=PROVIDER,
                    )
                chunks.append(chunk)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException):
                raise
            raise ProviderTransientError(
                f"{SERVICE}'s {file.value} was cut off after {size} bytes "
                f"({type(exc).__name__}); the load is retried later",
                provider=PROVIDER,
            ) from exc
        return b"".join(chunks)

    def _unreachable(self, file: ReferenceRatesFile, exc: BaseException) -> ProviderUnavailable:
        described = transient_error_for(
            exc,
            provider=PROVIDER,
            service=SERVICE,
            call=f"GET {file.value}",
            base_url=self._settings.base_url,
            timeout_seconds=self._settings.timeout_seconds,
            timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
        )
        return ProviderUnavailable(str(described), provider=PROVIDER)
