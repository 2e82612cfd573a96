"""The Stripe REST calls the gateway makes, over httpx, in Stripe's wire format.

Requests are form-encoded the way Stripe's own libraries encode them (``metadata[order_id]=…``,
``automatic_payment_methods[enabled]=true``) and authenticated with
``Authorization: Bearer <secret key>``; responses are JSON objects, and errors come in
Stripe's envelope ``{"error": {"type", "code", "message", "param"}}``. Each failure becomes
one class of :mod:`pixecom_core.providers.errors`:

- 401, 403 (bad key, missing permission) → ``ProviderAuthError``;
- 429 (rate limit, lock timeout) → ``StripeRateLimited``, both a ``ProviderThrottled`` and a
  ``ProviderTransientError``;
- 409 (another request with the same ``Idempotency-Key`` still running, a lock on the
  object) → ``ProviderTransientError``: Stripe's own libraries retry it
  (``stripe._http_client.HTTPClient._should_retry``), and the retry gets the first
  request's saved answer;
- 5xx, timeout, connection failure, a 2xx without a JSON object → ``ProviderTransientError``;
- Stripe declining the operation itself, which no retry will change → ``ProviderRefused``:
  a 402 (``card_error``, "the parameters were valid but the request failed"), an
  ``idempotency_error`` (the key was first used with other parameters or on another
  endpoint), and, on calls that ask for it (creating a refund), a 400
  ``invalid_request_error`` (more than is left to refund, a charge already refunded or never
  captured);
- any other 4xx (an invalid request elsewhere, a missing object) → ``ProviderError``.

Every message carries Stripe's type, code, message and request id.

Connect (https://docs.stripe.com/connect/authentication): a call on behalf of a connected
account carries ``Stripe-Account: acct_…`` and the platform's own key; every method below
that takes ``stripe_account`` sends it. Stripe answers an account the key cannot reach
(never connected, or deauthorized) with 403 ``account_invalid`` → ``ProviderAuthError``.

Connect OAuth (https://docs.stripe.com/connect/oauth-reference; stripe-python's
``OAuth.token``/``OAuth.deauthorize`` post to ``/oauth/token`` and ``/oauth/deauthorize`` on
``connect_api_base``) lives on ``connect_base`` and answers errors in OAuth's envelope
``{"error": "invalid_grant", "error_description": …}``: ``invalid_grant`` (a code used,
expired or unknown) and ``invalid_client`` (a wrong client id, an account not connected)
→ ``ProviderAuthError``; the code is cut out of Stripe's description before it is quoted.

The secret key never appears in a log line or an exception message.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx

from pixecom_core.providers import (
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    ProviderThrottled,
    ProviderTransientError,
)
from pixecom_core.providers.http import (
    LoopLocalClient,
    json_object,
    parse_retry_after,
    transport_errors_as_transient,
)

# re-exported: the sandbox and the tests take the process's TLS context from here
from pixecom_core.providers.http import shared_ssl_context as shared_ssl_context
from pixecom_stripe.settings import ENV_PREFIX, StripeSettings

PROVIDER: Final = "stripe"
#: Bound on refund pages fetched for one charge (100 refunds each); SCALE-4: every
#: list is bounded.
MAX_REFUND_PAGES: Final = 10

StripeObject = dict[str, Any]

_log = logging.getLogger(__name__)


class StripeRateLimited(ProviderThrottled, ProviderTransientError):
    """Stripe answered 429: too many requests, or a lock on the object timed out.

    Both a throttle (wait ``retry_after_seconds`` when Stripe names it) and a transient
    failure (retry with backoff), so a caller handling either class retries it.
    """


class StripeOAuthError(ProviderAuthError):
    """Connect OAuth refused the call: ``oauth_error`` is Stripe's code (``invalid_grant``,
    ``invalid_client``)."""

    def __init__(self, message: str, *, oauth_error: str, provider: str) -> None:
        super().__init__(message, provider=provider)
        self.oauth_error = oauth_error


class StripeClient:
    """A thin async client of the Stripe endpoints PixEcom uses.

    One ``httpx.AsyncClient`` is kept per event loop (the gateway object is shared by the
    whole process and may be used from several loops, e.g. one per test); :meth:`aclose`
    closes it.

    :param settings: where Stripe is and the key to use.
    :param transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self, settings: StripeSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._http = LoopLocalClient(
            settings.api_base,
            timeout_seconds=settings.timeout_seconds,
            user_agent="pixecom-stripe",
            transport=transport,
        )

    async def create_payment_intent(
        self,
        params: Iterable[tuple[str, str]],
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
    ) -> StripeObject:
        """``POST /v1/payment_intents``; Stripe replays the first result for a repeated key.

        :param params: form fields, already flattened (``("metadata[order_id]", "…")``).
        :param idempotency_key: sent as ``Idempotency-Key``.
        :param stripe_account: the connected account (``acct_…``) to create it on.
        """
        return await self._request(
            "POST",
            "/v1/payment_intents",
            form=list(params),
            headers={"Idempotency-Key": idempotency_key},
            stripe_account=stripe_account,
        )

    async def retrieve_payment_intent(
        self, payment_intent_id: str, *, stripe_account: str | None = None
    ) -> StripeObject:
        """``GET /v1/payment_intents/{id}``."""
        return await self._request(
            "GET",
            f"/v1/payment_intents/{_path_id(payment_intent_id)}",
            stripe_account=stripe_account,
        )

    async def create_checkout_session(
        self,
        params: Iterable[tuple[str, str]],
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
    ) -> StripeObject:
        """``POST /v1/checkout/sessions``: a hosted payment page (its ``url``); Stripe
        replays the first result for a repeated key."""
        return await self._request(
            "POST",
            "/v1/checkout/sessions",
            form=list(params),
            headers={"Idempotency-Key": idempotency_key},
            stripe_account=stripe_account,
        )

    async def retrieve_checkout_session(
        self, session_id: str, *, stripe_account: str | None = None
    ) -> StripeObject:
        """``GET /v1/checkout/sessions/{id}``."""
        return await self._request(
            "GET",
            f"/v1/checkout/sessions/{_path_id(session_id)}",
            stripe_account=stripe_account,
        )

    async def checkout_session_of(
        self, payment_intent_id: str, *, stripe_account: str | None = None
    ) -> StripeObject | None:
        """The Checkout Session that created a PaymentIntent
        (``GET /v1/checkout/sessions?payment_intent=…``), or ``None`` for one made without."""
        page = await self._request(
            "GET",
            "/v1/checkout/sessions",
            query={"payment_intent": payment_intent_id, "limit": "1"},
            stripe_account=stripe_account,
        )
        data = page.get("data")
        if not isinstance(data, list):
            raise ProviderError(
                "Stripe returned a Checkout Session list without a data array", provider=PROVIDER
            )
        return next((item for item in data if isinstance(item, dict)), None)

    async def retrieve_charge(
        self, charge_id: str, *, stripe_account: str | None = None
    ) -> StripeObject:
        """``GET /v1/charges/{id}``."""
        return await self._request(
            "GET", f"/v1/charges/{_path_id(charge_id)}", stripe_account=stripe_account
        )

    async def retrieve_account(self, account_id: str) -> StripeObject:
        """``GET /v1/accounts/{id}``: a connected account, read with the platform's key."""
        return await self._request("GET", f"/v1/accounts/{_path_id(account_id)}")

    async def oauth_token(self, code: str) -> StripeObject:
        """``POST {connect_base}/oauth/token`` with ``grant_type=authorization_code``: the
        consent redirect's code for the connected account (``stripe_user_id``)."""
        return await self._oauth(
            "/oauth/token", [("grant_type", "authorization_code"), ("code", code)], secret=code
        )

    async def oauth_deauthorize(self, *, client_id: str, account_id: str) -> StripeObject:
        """``POST {connect_base}/oauth/deauthorize``: the platform gives up the account."""
        return await self._oauth(
            "/oauth/deauthorize", [("client_id", client_id), ("stripe_user_id", account_id)]
        )

    async def create_refund(
        self,
        params: Iterable[tuple[str, str]],
        *,
        idempotency_key: str,
        stripe_account: str | None = None,
    ) -> StripeObject:
        """``POST /v1/refunds``; Stripe replays the first result for a repeated key.

        A 400 ``invalid_request_error`` here is Stripe declining the refund (more than is left
        on the charge, ``charge_already_refunded``, a charge never captured):
        ``ProviderRefused`` with Stripe's message.

        :param params: form fields, already flattened (``("metadata[order_id]", "…")``).
        :param idempotency_key: sent as ``Idempotency-Key``.
        """
        return await self._request(
            "POST",
            "/v1/refunds",
            form=list(params),
            headers={"Idempotency-Key": idempotency_key},
            invalid_request_is_refusal=True,
            stripe_account=stripe_account,
        )

    async def retrieve_refund(
        self, refund_id: str, *, stripe_account: str | None = None
    ) -> StripeObject:
        """``GET /v1/refunds/{id}``."""
        return await self._request(
            "GET", f"/v1/refunds/{_path_id(refund_id)}", stripe_account=stripe_account
        )

    async def list_refunds(
        self, *, charge_id: str, stripe_account: str | None = None
    ) -> list[StripeObject]:
        """Every refund of one charge (``GET /v1/refunds?charge=…``), following pages.

        Since API version 2022-11-15 a Charge no longer embeds its refunds, so this is how
        the refunds behind a ``charge.refunded`` event are found.
        """
        refunds: list[StripeObject] = []
        query: dict[str, str] = {"charge": charge_id, "limit": "100"}
        for _ in range(MAX_REFUND_PAGES):
            page = await self._request(
                "GET", "/v1/refunds", query=query, stripe_account=stripe_account
            )
            data = page.get("data")
            if not isinstance(data, list):
                raise ProviderError(
                    "Stripe returned a refund list without a data array", provider=PROVIDER
                )
            refunds.extend(item for item in data if isinstance(item, dict))
            if not page.get("has_more") or not data:
                return refunds
            query["starting_after"] = str(data[-1].get("id", ""))
        raise ProviderError(
            f"charge {charge_id} has more than {100 * MAX_REFUND_PAGES} refunds; stopped paging",
            provider=PROVIDER,
        )

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent)."""
        await self._http.aclose()

    def _auth_headers(self) -> dict[str, str]:
        key = self._settings.secret_key
        if key is None or not key.get_secret_value().strip():
            raise ProviderAuthError(
                f"no Stripe secret key configured: set {ENV_PREFIX}SECRET_KEY "
                "(sk_live_…/sk_test_…, or the sandbox's sk_test_… key in dev mode)",
                provider=PROVIDER,
            )
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
        if self._settings.api_version:
            headers["Stripe-Version"] = self._settings.api_version
        return headers

    async def _request(
        self,
        method: str,
        path: str,
        *,
        form: list[tuple[str, str]] | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        invalid_request_is_refusal: bool = False,
        stripe_account: str | None = None,
    ) -> StripeObject:
        request_headers = {**self._auth_headers(), **(headers or {})}
        if stripe_account is not None:
            request_headers["Stripe-Account"] = stripe_account
        content: bytes | None = None
        if form is not None:
            content = urlencode(form).encode("ascii")
            request_headers["Content-Type"] = "application/x-www-form-urlencoded"
        with transport_errors_as_transient(
            provider=PROVIDER,
            service="Stripe",
            call=f"{method} {path}",
            base_url=self._settings.api_base,
            timeout_seconds=self._settings.timeout_seconds,
            timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
        ):
            response = await self._http.get().request(
                method, path, content=content, params=query, headers=request_headers
            )
        _log.debug(
            "stripe %s %s -> %s (request %s)",
            method,
            path,
            response.status_code,
            response.headers.get("request-id", "-"),
        )
        if response.is_success:
            body = json_object(response)
            if body is None:
                raise ProviderTransientError(
                    f"Stripe answered {method} {path} with {response.status_code} but no JSON "
                    "object",
                    provider=PROVIDER,
                )
            return body
        raise _error_for(
            method, path, response, invalid_request_is_refusal=invalid_request_is_refusal
        )

    async def _oauth(
        self, path: str, form: list[tuple[str, str]], *, secret: str | None = None
    ) -> StripeObject:
        """A Connect OAuth call on ``connect_base``; ``secret`` (a code) is never quoted."""
        base = self._settings.connect_base
        with transport_errors_as_transient(
            provider=PROVIDER,
            service="Stripe Connect",
            call=f"POST {path}",
            base_url=base,
            timeout_seconds=self._settings.timeout_seconds,
            timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
        ):
            response = await self._http.get().post(
                f"{base}{path}",
                content=urlencode(form).encode("ascii"),
                headers={
                    **self._auth_headers(),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
        _log.debug("stripe connect POST %s -> %s", path, response.status_code)
        body = json_object(response)
        if response.is_success and body is not None:
            return body
        raise _oauth_error_for(path, response, body, secret=secret)


def _oauth_error_for(
    path: str, response: httpx.Response, body: StripeObject | None, *, secret: str | None
) -> ProviderError:
    """The exception for a failed Connect OAuth call (see the module's docstring)."""
    status = response.status_code
    raw = (body or {}).get("error")
    if isinstance(raw, dict):  # the API's envelope, e.g. a refused platform key
        return _error_for("POST", path, response, invalid_request_is_refusal=False)
    code = str(raw or "unknown_error")
    description = str((body or {}).get("error_description") or response.reason_phrase)
    if secret:
        description = description.replace(secret, "<code>")
    detail = f"Stripe Connect POST {path} failed with {status} {code}: {description}"
    if status == 429:
        return StripeRateLimited(
            detail,
            retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
            provider=PROVIDER,
        )
    if status >= 500 or body is None:
        return ProviderTransientError(detail, provider=PROVIDER)
    if code in ("invalid_grant", "invalid_client") or status in (401, 403):
        return StripeOAuthError(
            f"{detail}. The seller must connect their Stripe account again.",
            oauth_error=code,
            provider=PROVIDER,
        )
    return ProviderError(detail, provider=PROVIDER)


def _path_id(object_id: str) -> str:
    # ids come from webhook bodies: never let one change the path
    return quote(object_id, safe="")


def _error_for(
    method: str, path: str, response: httpx.Response, *, invalid_request_is_refusal: bool
) -> ProviderError:
    """The exception for a non-2xx Stripe answer, with Stripe's own message (see the module's
    list); ``invalid_request_is_refusal``: a 400 ``invalid_request_error`` is Stripe declining
    the operation, not a mistake in the call."""
    status = response.status_code
    raw_error = (json_object(response) or {}).get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    error_type = str(error.get("type") or "unknown_error")
    code = error.get("code")
    message = str(error.get("message") or response.reason_phrase or "no message")
    request_id = response.headers.get("request-id")
    detail = f"Stripe {method} {path} failed with {status} {error_type}"
    if code:
        detail += f" ({code})"
    detail += f": {message}"
    if request_id:
        detail += f" [request {request_id}]"
    if status == 403 and code == "account_invalid":
        return ProviderAuthError(
            f"{detail}. The connected account was deauthorized or never connected: the "
            "seller must connect their Stripe account again.",
            provider=PROVIDER,
        )
    if status in (401, 403):
        return ProviderAuthError(
            f"{detail}. Check {ENV_PREFIX}SECRET_KEY and the key's permissions.",
            provider=PROVIDER,
        )
    if status == 429:
        return StripeRateLimited(
            detail,
            retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
            provider=PROVIDER,
        )
    # before the type check: a 409 may be an idempotency_error (key still in use) that
    # passes once the first request finishes
    if status == 409 or status >= 500:
        return ProviderTransientError(detail, provider=PROVIDER)
    if (
        status == 402
        or error_type in ("card_error", "idempotency_error")
        or (invalid_request_is_refusal and status == 400 and error_type == "invalid_request_error")
    ):
        return ProviderRefused(detail, provider=PROVIDER)
    return ProviderError(detail, provider=PROVIDER)
