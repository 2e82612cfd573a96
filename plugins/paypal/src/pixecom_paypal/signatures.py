"""PayPal's offline webhook signature: the signed message, the certificate and its host.

PayPal signs ``<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body>``
(the CRC as an unsigned decimal) with SHA256withRSA and sends the base64 signature in
``PAYPAL-TRANSMISSION-SIG``; the signing certificate is downloaded from
``PAYPAL-CERT-URL``. Anyone can point that header at their own certificate, so the URL is
checked before anything is fetched: https only, and a host PayPal serves certificates from.
"""

import asyncio
import base64
import binascii
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pixecom_core.providers import ProviderTransientError, WebhookVerificationError

PROVIDER = "paypal"

#: The only algorithm PayPal signs webhooks with (``PAYPAL-AUTH-ALGO``).
AUTH_ALGORITHM = "SHA256withRSA"

#: A PEM certificate (chain) is a few KiB; anything bigger is not PayPal's.
MAX_CERTIFICATE_BYTES = 64 * 1024


def signed_message(
    *, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    """Return the bytes PayPal signs for one transmission of ``body``."""
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def check_certificate_url(url: str, allowed_host_suffixes: Iterable[str]) -> None:
    """Refuse a certificate URL that is not https on an allowed host, before any request.

    The host is the parsed hostname, so ``https://evil.test/x.paypal.com``,
    ``https://paypal.com.evil.test/`` and ``https://api.paypal.com@evil.test/`` are refused.
    A suffix with a leading dot matches hosts under that domain; one without matches exactly.

    :raises WebhookVerificationError: the URL may not be fetched.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise WebhookVerificationError(
            f"PAYPAL-CERT-URL {url!r} is not a URL", provider=PROVIDER
        ) from exc
    if parts.scheme != "https":
        raise WebhookVerificationError(
            f"PAYPAL-CERT-URL {url!r} is not https; refusing to fetch it", provider=PROVIDER
        )
    if parts.username is not None or parts.password is not None:
        raise WebhookVerificationError(
            f"PAYPAL-CERT-URL {url!r} carries credentials; refusing to fetch it",
            provider=PROVIDER,
        )
    for suffix in allowed_host_suffixes:
        if (suffix.startswith(".") and host.endswith(suffix)) or host == suffix:
            return
    raise WebhookVerificationError(
        f"PAYPAL-CERT-URL host {host!r} is not one PayPal serves certificates from",
        provider=PROVIDER,
    )


def verify_signature(*, public_key: rsa.RSAPublicKey, signature_b64: str, message: bytes) -> None:
    """Check a base64 SHA256withRSA (PKCS #1 v1.5) signature of ``message``.

    :raises WebhookVerificationError: the signature is malformed or does not match.
    """
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError(
            "PAYPAL-TRANSMISSION-SIG is not base64", provider=PROVIDER
        ) from exc
    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise WebhookVerificationError(
            "the PayPal webhook signature does not match its body, transmission and webhook id",
            provider=PROVIDER,
        ) from exc


class CertificateStore:
    """Downloads PayPal's signing certificates from allowed hosts and caches them by URL.

    PayPal publishes a new certificate under a new URL, so a cached entry is kept until the
    certificate itself expires (or the cache is full). Trust comes from the https download
    from an allowed host; the certificate's validity period is checked at every use.

    :param allowed_host_suffixes: see :func:`check_certificate_url`.
    :param http_factory: builds the httpx client used for downloads.
    :param now: the current time, aware.
    :param max_entries: how many certificates to keep.
    """

    def __init__(
        self,
        *,
        allowed_host_suffixes: Iterable[str],
        http_factory: Callable[[], httpx.AsyncClient],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_entries: int = 32,
    ) -> None:
        self._suffixes = tuple(allowed_host_suffixes)
        self._http_factory = http_factory
        self._http: httpx.AsyncClient | None = None
        self._now = now
        self._max_entries = max_entries
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = asyncio.Lock()
        #: How many downloads were made (operators and tests watch the cache work).
        self.downloads = 0

    async def aclose(self) -> None:
        """Close the download client."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        """Return the RSA public key of the certificate at ``url``.

        :raises WebhookVerificationError: the URL is not allowed, the certificate is missing,
            malformed, expired or not RSA.
        :raises ProviderTransientError: PayPal's certificate host could not be reached.
        """
        check_certificate_url(url, self._suffixes)
        async with self._lock:
            certificate = self._certificates.get(url)
            if certificate is None:
                certificate = await self._download(url)
                self._certificates[url] = certificate
                while len(self._certificates) > self._max_entries:
                    self._certificates.popitem(last=False)
            else:
                self._certificates.move_to_end(url)
        now = self._now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            self._certificates.pop(url, None)
            raise WebhookVerificationError(
                f"the PayPal signing certificate at {url} is not valid now", provider=PROVIDER
            )
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookVerificationError(
                f"the certificate at {url} does not hold an RSA key", provider=PROVIDER
            )
        return key

    async def _download(self, url: str) -> x509.Certificate:
        if self._http is None:
            self._http = self._http_factory()
        self.downloads += 1
        try:
            # No redirects: a redirect could leave the allowed hosts.
            async with self._http.stream("GET", url, follow_redirects=False) as response:
                if response.status_code >= 500:
                    raise ProviderTransientError(
                        f"PayPal's certificate host answered {response.status_code} for {url}",
                        provider=PROVIDER,
                    )
                if response.status_code != 200:
                    raise WebhookVerificationError(
                        f"no certificate at {url} (HTTP {response.status_code})",
                        provider=PROVIDER,
                    )
                pem = bytearray()
                async for chunk in response.aiter_bytes():
                    pem += chunk
                    if len(pem) > MAX_CERTIFICATE_BYTES:
                        raise WebhookVerificationError(
                            f"the document at {url} is too large to be a certificate",
                            provider=PROVIDER,
                        )
        except httpx.HTTPError as exc:
            raise ProviderTransientError(
                f"could not download the PayPal certificate {url}: {exc!r}", provider=PROVIDER
            ) from exc
        try:
            # PayPal serves the signing certificate first, then its chain.
            return x509.load_pem_x509_certificates(bytes(pem))[0]
        except (ValueError, IndexError) as exc:
            raise WebhookVerificationError(
                f"the document at {url} is not a PEM certificate", provider=PROVIDER
            ) from exc
