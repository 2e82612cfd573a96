"""PayPal's REST wire protocol over httpx: OAuth2 token, Orders v2, captures, refunds,
disputes, webhooks.

The client speaks JSON dictionaries shaped exactly like PayPal's documents; the gateway turns
them into core's values. Every failure leaves as a class of
:mod:`pixecom_core.providers.errors`:

==========================================  ============================================
PayPal answers                              raised
==========================================  ============================================
401 (after one token refresh), bad secret   ``ProviderAuthError``
429                                         ``PayPalRateLimited`` (throttled *and* transient)
5xx, timeout, connection failure            ``ProviderTransientError``
any other 4xx                               ``PayPalAPIError`` with ``name``, ``debug_id``
==========================================  ============================================
"""

import asyncio
import copy
import hashlib
import json
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import certifi
import httpx
from pydantic import SecretStr

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
)
from pixecom_core.providers.http import (
    LoopLocalClient,
    parse_retry_after,
    shared_ssl_context,
    transport_errors_as_transient,
)
from pixecom_paypal.settings import PayPalSettings

PROVIDER = "paypal"

JSONObject = dict[str, Any]

#: Seller apps whose tokens are kept at once; the least recently fetched is dropped.
_TOKEN_CACHE_SIZE = 4096


class PayPalAPIError(ProviderError):
    """PayPal refused a request (a 4xx other than 401 and 429); retrying the same call fails again.

    :param status_code: the HTTP status.
    :param name: PayPal's error name (``UNPROCESSABLE_ENTITY``, ``RESOURCE_NOT_FOUND``, ...).
    :param debug_id: PayPal's id of the failed call; quote it to PayPal support.
    :param issues: the ``details[].issue`` codes (``ORDER_NOT_APPROVED``, ...).
    :param descriptions: the ``details[].description`` texts, in PayPal's words.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        name: str | None,
        debug_id: str | None,
        issues: tuple[str, ...] = (),
        descriptions: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, provider=PROVIDER)
        self.status_code = status_code
        self.name = name
        self.debug_id = debug_id
        self.issues = issues
        self.descriptions = descriptions


class PayPalRateLimited(ProviderThrottled, ProviderTransientError):
    """PayPal answered 429: wait ``retry_after_seconds`` (when it said) and retry the call.

    Both a ``ProviderThrottled`` (it carries the pause) and a ``ProviderTransientError`` (a
    worker that only knows transient errors retries it with backoff).
    """


def tls_verification(settings: PayPalSettings) -> ssl.SSLContext:
    """Return httpx's ``verify`` for ``settings``: certifi's roots (the process's shared context),
    plus ``tls_ca_file`` if set."""
    if settings.tls_ca_file is None:
        return shared_ssl_context()
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=str(settings.tls_ca_file))
    return context


@dataclass
class _CachedToken:
    """One app's access token: whose secret fetched it, when to renew it, the app's id."""

    secret_digest: str
    token: str
    refresh_at: float
    app_id: str | None


@dataclass(frozen=True)
class AppCredentials:
    """A REST app's OAuth2 client credentials: the platform's, or a seller's own app.

    :param client_id: the app's client id.
    :param client_secret: its secret; never quoted in an error.
    :param seller: the app is a seller's (errors then ask the seller to reconnect, not the
        operator to fix ``PIXECOM_PAYPAL_*``).
    """

    client_id: str
    client_secret: SecretStr
    seller: bool = True


class PayPalClient:
    """An async client of PayPal's REST API, holding cached OAuth2 access tokens: the
    platform app's, and one per seller's app (issue 15: a seller's payments, refunds and
    webhooks are made with their own app's token), keyed by client id.

    :param settings: where PayPal is and the platform app's credentials.
    :param http: an httpx client to use instead of building one (the caller closes it).
    :param clock: monotonic seconds, for the token's expiry; tests pass a fake.
    """

    def __init__(
        self,
        settings: PayPalSettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = LoopLocalClient(
            settings.api_base,
            timeout_seconds=settings.timeout_seconds,
            verify=tls_verification(settings) if http is None else None,
            client=http,
        )
        self._clock = clock
        self._app: AppCredentials | None = None
        self._tokens: OrderedDict[str, _CachedToken] = OrderedDict()
        self._token_locks: dict[str, asyncio.Lock] = {}

    def for_app(self, app: AppCredentials) -> "PayPalClient":
        """A client acting as ``app`` (a seller's REST app), sharing this one's connections
        and token cache."""
        sibling = copy.copy(self)
        sibling._app = app
        return sibling

    async def aclose(self) -> None:
        """Close the HTTP connections this client opened."""
        await self._http.aclose()

    # -- OAuth2 client credentials ------------------------------------------------------

    def _credentials(self) -> AppCredentials:
        if self._app is not None:
            return self._app
        settings = self._settings
        missing = [
            name
            for name, value in (
                ("PIXECOM_PAYPAL_CLIENT_ID", settings.client_id),
                ("PIXECOM_PAYPAL_CLIENT_SECRET", settings.client_secret),
            )
            if not value
        ]
        if missing or settings.client_id is None or settings.client_secret is None:
            raise ProviderAuthError(
                f"PayPal credentials are not configured: set {' and '.join(missing)}",
                provider=PROVIDER,
            )
        return AppCredentials(settings.client_id, settings.client_secret, seller=False)

    def forget_token(self) -> None:
        """Drop the cached token of this client's app (a seller disconnected it)."""
        self._tokens.pop(self._credentials().client_id, None)

    async def app_id(self) -> str | None:
        """The ``app_id`` PayPal's token answer named for this client's app (fetching a
        token if none is cached); ``None`` if PayPal named none."""
        await self.access_token()
        cached = self._tokens.get(self._credentials().client_id)
        return cached.app_id if cached is not None else None

    async def access_token(self, *, refused: str | None = None) -> str:
        """Return a valid access token of this client's app, fetching one only when none
        is cached or it is due.

        :param refused: a token PayPal just answered 401 to; it is dropped unless another call
            already replaced it, so concurrent 401s refresh the token once.
        """
        app = self._credentials()
        secret = app.client_secret.get_secret_value()
        digest = hashlib.sha256(f"{app.client_id}:{secret}".encode()).hexdigest()
        lock = self._token_locks.setdefault(app.client_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(app.client_id)
            if cached is not None and (cached.token == refused or cached.secret_digest != digest):
                cached = None
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.token
            response = await self._send(
                "POST",
                "/v1/oauth2/token",
                auth=(app.client_id, secret),
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
            )
            if response.status_code in (400, 401):
                body = _json_or_empty(response)
                hint = (
                    "the seller must connect their PayPal app again with its current client "
                    "id and secret"
                    if app.seller
                    else "check PIXECOM_PAYPAL_CLIENT_ID, PIXECOM_PAYPAL_CLIENT_SECRET and api_base"
                )
                raise ProviderAuthError(
                    f"PayPal refused the client credentials of app {app.client_id} "
                    f"({_string(body.get('error')) or response.status_code}: "
                    f"{_string(body.get('error_description')) or 'no description'}); {hint}",
                    provider=PROVIDER,
                )
            payload = self._checked(response, "POST /v1/oauth2/token")
            token = payload.get("access_token")
            expires_in = payload.get("expires_in")
            if not isinstance(token, str) or not isinstance(expires_in, int | float):
                raise ProviderTransientError(
                    "PayPal's token response lacks access_token or expires_in", provider=PROVIDER
                )
            # Renew a little before PayPal's expiry (a minute, or a tenth of a short lifetime),
            # so a token never expires between the check and the call.
            self._tokens[app.client_id] = _CachedToken(
                secret_digest=digest,
                token=token,
                refresh_at=self._clock() + expires_in - min(60.0, expires_in / 10),
                app_id=_string(payload.get("app_id")),
            )
            self._tokens.move_to_end(app.client_id)
            while len(self._tokens) > _TOKEN_CACHE_SIZE:  # SCALE-4: nothing unbounded
                forgotten, _ = self._tokens.popitem(last=False)
                self._token_locks.pop(forgotten, None)
            return token

    # -- transport ----------------------------------------------------------------------

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with transport_errors_as_transient(
            provider=PROVIDER,
            service="PayPal",
            call=f"{method} {path}",
            base_url=self._settings.api_base,
            timeout_seconds=self._settings.timeout_seconds,
            timeout_setting="PIXECOM_PAYPAL_TIMEOUT_SECONDS",
        ):
            return await self._http.get().request(method, path, **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: JSONObject | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        request_id: str | None = None,
        prefer: str | None = None,
    ) -> JSONObject:
        """Call the API with the bearer token and return the JSON answer.

        A 401 drops the token and retries once with a fresh one; a second 401 is a
        ``ProviderAuthError``.

        :param json_body: the request body as a dictionary.
        :param content: the request body as ready JSON bytes (instead of ``json_body``).
        :param params: query parameters.
        :param request_id: PayPal's idempotency key (``PayPal-Request-Id``).
        :param prefer: the ``Prefer`` header (``return=representation`` for the whole object).
        """
        headers = {"Accept": "application/json"}
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        if prefer is not None:
            headers["Prefer"] = prefer
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        label = f"{method} {path}"
        refused: str | None = None
        for _attempt in (1, 2):
            token = await self.access_token(refused=refused)
            response = await self._send(
                method,
                path,
                content=content,
                params=params,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
            if response.status_code != 401:
                return self._checked(response, label)
            refused = token
        body = _json_or_empty(response)
        raise ProviderAuthError(
            f"PayPal refused a fresh access token for {label} "
            f"({body.get('name') or body.get('error')}: "
            f"{body.get('message') or body.get('error_description')})",
            provider=PROVIDER,
        )

    def _checked(self, response: httpx.Response, label: str) -> JSONObject:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content:
                return {}
            payload = _json_or_empty(response)
            if not payload and response.content.strip() != b"{}":
                raise ProviderTransientError(
                    f"PayPal answered {label} with a body that is not a JSON object",
                    provider=PROVIDER,
                )
            return payload
        body = _json_or_empty(response)
        name = _string(body.get("name")) or _string(body.get("error"))
        message = _string(body.get("message")) or _string(body.get("error_description")) or ""
        debug_id = _string(body.get("debug_id")) or response.headers.get("paypal-debug-id")
        summary = f"PayPal answered {label} with {status} {name or ''}: {message}".rstrip(": ")
        if debug_id:
            summary += f" (debug_id {debug_id})"
        if status == 429:
            raise PayPalRateLimited(
                summary,
                retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
                provider=PROVIDER,
            )
        if status >= 500:
            raise ProviderTransientError(summary, provider=PROVIDER)
        details = body.get("details")
        described = [
            (issue, _string(detail.get("description")) or "")
            for detail in (details if isinstance(details, list) else [])
            if isinstance(detail, dict) and isinstance(issue := detail.get("issue"), str)
        ]
        issues = tuple(issue for issue, _ in described)
        if issues:
            summary += f"; issues: {', '.join(issues)}"
        raise PayPalAPIError(
            summary,
            status_code=status,
            name=name,
            debug_id=debug_id,
            issues=issues,
            descriptions=tuple(description for _, description in described),
        )

    # -- Orders v2 ----------------------------------------------------------------------

    async def create_order(self, order: JSONObject, *, request_id: str) -> JSONObject:
        """``POST /v2/checkout/orders``; the same ``request_id`` returns the same order."""
        return await self.request(
            "POST", "/v2/checkout/orders", json_body=order, request_id=request_id
        )

    async def capture_order(self, order_id: str, *, request_id: str) -> JSONObject:
        """``POST /v2/checkout/orders/{id}/capture``; idempotent on ``request_id``."""
        return await self.request(
            "POST",
            f"/v2/checkout/orders/{quote(order_id, safe='')}/capture",
            json_body={},
            request_id=request_id,
        )

    async def get_order(self, order_id: str) -> JSONObject:
        """``GET /v2/checkout/orders/{id}``."""
        return await self.request("GET", f"/v2/checkout/orders/{quote(order_id, safe='')}")

    async def get_capture(self, capture_id: str) -> JSONObject:
        """``GET /v2/payments/captures/{id}``: the capture, with its order in supplementary data."""
        return await self.request("GET", f"/v2/payments/captures/{quote(capture_id, safe='')}")

    async def refund_capture(
        self, capture_id: str, refund: JSONObject, *, request_id: str
    ) -> JSONObject:
        """``POST /v2/payments/captures/{id}/refund``; the same ``request_id`` answers the same
        refund (PayPal keeps the key 45 days). Asks for the whole refund
        (``Prefer: return=representation``): PayPal's default answer has no amount."""
        return await self.request(
            "POST",
            f"/v2/payments/captures/{quote(capture_id, safe='')}/refund",
            json_body=refund,
            request_id=request_id,
            prefer="return=representation",
        )

    async def get_refund(self, refund_id: str) -> JSONObject:
        """``GET /v2/payments/refunds/{id}``."""
        return await self.request("GET", f"/v2/payments/refunds/{quote(refund_id, safe='')}")

    async def list_disputes(self, *, disputed_transaction_id: str) -> list[JSONObject]:
        """``GET /v1/customer/disputes?disputed_transaction_id=…``: disputes about one capture."""
        payload = await self.request(
            "GET",
            "/v1/customer/disputes",
            params={"disputed_transaction_id": disputed_transaction_id},
        )
        items = payload.get("items", [])
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    # -- webhooks -----------------------------------------------------------------------

    async def verify_webhook_signature(
        self, *, transmission: Mapping[str, str], webhook_event: bytes
    ) -> str:
        """``POST /v1/notifications/verify-webhook-signature``; return ``verification_status``.

        :param transmission: ``auth_algo``, ``cert_url``, ``transmission_id``,
            ``transmission_sig``, ``transmission_time`` and ``webhook_id``.
        :param webhook_event: the raw webhook body, a JSON object. It is embedded byte for
            byte, not re-serialised: PayPal checks the signature against what it sent.
        """
        fields = json.dumps(dict(transmission), separators=(",", ":"))
        content = fields[:-1].encode() + b',"webhook_event":' + webhook_event + b"}"
        payload = await self.request(
            "POST", "/v1/notifications/verify-webhook-signature", content=content
        )
        return _string(payload.get("verification_status")) or ""

    async def create_webhook(self, *, url: str, event_types: list[str]) -> JSONObject:
        """``POST /v1/notifications/webhooks``: subscribe this client's app to ``url``."""
        return await self.request(
            "POST",
            "/v1/notifications/webhooks",
            json_body={"url": url, "event_types": [{"name": name} for name in event_types]},
        )

    async def list_webhooks(self) -> list[JSONObject]:
        """``GET /v1/notifications/webhooks``: this client's app's subscriptions."""
        payload = await self.request("GET", "/v1/notifications/webhooks")
        items = payload.get("webhooks", [])
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /v1/notifications/webhooks/{id}`` (PayPal answers 204)."""
        await self.request("DELETE", f"/v1/notifications/webhooks/{quote(webhook_id, safe='')}")


def _json_or_empty(response: httpx.Response) -> JSONObject:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
