"""Facebook Login for Business, the plugin's side: the consent URL, the code exchange, the
~60-day token, token inspection and the ad accounts a grant reaches.

:class:`MetaLogin` implements the calls behind
:class:`~pixecom_core.providers.AdNetworkAuthorization`; :class:`MetaAdNetwork
<pixecom_meta_ads.ad_network.MetaAdNetwork>` exposes them. Where each behaviour comes from
(Meta's developer documentation, developers.facebook.com):

- consent URL ``https://www.facebook.com/{version}/dialog/oauth?client_id&redirect_uri
  &state&response_type=code&scope=a,b`` (scopes comma-separated) — Facebook Login, "Manually
  Build a Login Flow" (``/documentation/facebook-login/guides/advanced/manual-flow``). With
  Facebook Login for Business a ``config_id`` takes the place of ``scope``: the
  configuration fixes the token type, assets and permissions — "Facebook Login for
  Business" (``/docs/facebook-login/facebook-login-for-business/``);
- code exchange ``GET /{version}/oauth/access_token?client_id&redirect_uri&client_secret
  &code`` → ``{"access_token", "token_type", "expires_in"}``, ``redirect_uri`` identical to
  the dialog's — manual flow, "Exchanging Code for an Access Token";
- long-lived token ``GET /{version}/oauth/access_token?grant_type=fb_exchange_token
  &client_id&client_secret&fb_exchange_token`` → the same shape, "generally lasts about 60
  days" (``expires_in`` ≈ 5183944); an expired token cannot be exchanged — "Long-Lived
  Access Tokens" (``/docs/facebook-login/guides/access-tokens/get-long-lived``);
- ``GET /{version}/debug_token?input_token&access_token={app-id}|{app-secret}`` →
  ``{"data": {app_id, type, application, data_access_expires_at, expires_at (0: never),
  is_valid, issued_at, scopes, user_id, error?}}`` — Graph API reference "debug_token" and
  "Debugging access tokens" (``/docs/facebook-login/guides/access-tokens/debugging``);
- ``GET /{version}/me/adaccounts?fields=account_id,name,currency,timezone_name,
  account_status`` with cursor paging (``paging.cursors.after``; ``paging.next`` absent on
  the last page) — Marketing API "Ad Account" reference and Graph API "Paginated Results";
- ``account_status`` 1 ACTIVE, 2 DISABLED, 3 UNSETTLED, 7 PENDING_RISK_REVIEW,
  8 PENDING_SETTLEMENT, 9 IN_GRACE_PERIOD, 100 PENDING_CLOSURE, 101 CLOSED, 201 ANY_ACTIVE,
  202 ANY_CLOSED — "Ad Account" reference, field ``account_status``;
- code 190 with subcodes 458 (app not installed), 460 (password changed), 463 (expired),
  464 (unconfirmed user), 467 (invalid token): get a new token — Graph API "Handling
  Errors" (``/docs/graph-api/guides/error-handling``). Meta does not document the code
  exchange's errors; its answers, as SDK issue trackers quote them: code 100 "This
  authorization code has been used." / "This authorization code has expired."
  (laravel/socialite#385, SammyK/LaravelFacebookSdk#141), code 100 "Error validating
  verification code. Please make sure your redirect_uri is identical to the one you used in
  the OAuth dialog request" (scribejava/scribejava#605), "Error validating client secret."
  for a wrong app secret (nov/fb_graph2#44).

Meta's answers become core's errors:

==============================================================  =========================
Meta answer                                                     raised
==============================================================  =========================
code 100 on ``oauth/access_token`` (code used, expired,         ``ProviderAuthError``:
redirect_uri differs, bad ``fb_exchange_token``)                connect again
code 190 (any subcode), 102, 10, 200–299; ``is_valid: false``;  ``ProviderAuthError``
a token of another Meta app
"Error validating client secret.", code 101 (unknown app)       ``ProviderError`` naming
                                                                ``PIXECOM_META_APP_*``
codes 4, 17, 32, 613, 80000–80014                               ``ProviderThrottled``
codes 1, 2, ``is_transient``, 5xx, timeouts                     ``ProviderTransientError``
anything else                                                   ``ProviderError``
==============================================================  =========================

The app secret, the code and every token travel in query strings (Meta's documented form);
the ``httpx`` log filter of :mod:`pixecom_meta_ads.client` masks them, and every error text
goes through :func:`~pixecom_meta_ads.client.redact_secrets` with the call's secrets.
"""

import logging
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import SecretStr, ValidationError

from pixecom_core.providers import (
    AdAccountStatus,
    AdNetworkGrant,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    ReachableAdAccount,
)
from pixecom_core.providers.http import (
    LoopLocalClient,
    json_object,
    transport_errors_as_transient,
)
from pixecom_meta_ads.client import (
    AUTH_CODES,
    PROVIDER,
    THROTTLING_CODES,
    THROTTLING_SUBCODES,
    TRANSIENT_CODES,
    account_number,
    follow_next_link,
    graph_error_parts,
    install_log_redaction,
    redact_secrets,
    token_params,
)
from pixecom_meta_ads.settings import ENV_PREFIX, MetaAdsSettings

#: What syncing needs: reading insights and ad accounts.
REQUIRED_SCOPES: Final = ("ads_read",)
AD_ACCOUNT_FIELDS: Final = "account_id,name,currency,timezone_name,account_status"

#: ``account_status`` codes of the "Ad Account" reference, as core's statuses.
ACCOUNT_STATUSES: Final = {
    1: AdAccountStatus.ACTIVE,
    2: AdAccountStatus.DISABLED,
    3: AdAccountStatus.NEEDS_ATTENTION,  # UNSETTLED: an unpaid balance
    7: AdAccountStatus.NEEDS_ATTENTION,  # PENDING_RISK_REVIEW
    8: AdAccountStatus.NEEDS_ATTENTION,  # PENDING_SETTLEMENT
    9: AdAccountStatus.NEEDS_ATTENTION,  # IN_GRACE_PERIOD
    100: AdAccountStatus.CLOSED,  # PENDING_CLOSURE: the owner asked to close it
    101: AdAccountStatus.CLOSED,
    201: AdAccountStatus.ACTIVE,  # ANY_ACTIVE (a filter value, answered by some versions)
    202: AdAccountStatus.CLOSED,  # ANY_CLOSED
}

_CLIENT_SECRET_REFUSED = re.compile(r"client secret|invalid application id", re.IGNORECASE)
#: Meta's code for an unknown ``client_id`` ("Error validating application").
_UNKNOWN_APP_CODE: Final = 101
_CODE_OR_TOKEN_REFUSED_CODE: Final = 100

_log = logging.getLogger(__name__)


class MetaLogin:
    """Facebook Login's endpoints, for the ``meta`` ad network's connect flow.

    Holds settings and one HTTP client per event loop; the grant or code comes with each
    call. Needs ``PIXECOM_META_APP_ID`` and ``PIXECOM_META_APP_SECRET`` when called (not when
    built, so the plugin registers on a machine where nothing is configured).

    :param settings: Graph and dialog locations, version, app credentials, paging bounds.
    :param transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self, settings: MetaAdsSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._http = LoopLocalClient(
            settings.graph_base,
            timeout_seconds=settings.timeout_seconds,
            user_agent="pixecom-meta-ads",
            transport=transport,
        )
        install_log_redaction()

    # -- the consent page and the code ---------------------------------------------------

    def authorization_url(self, *, state: str, redirect_uri: str) -> str:
        """Facebook Login's dialog for the seller, asking for :data:`REQUIRED_SCOPES` (or the
        Login for Business configuration ``login_config_id``), with ``response_type=code``.

        :raises ProviderError: ``PIXECOM_META_APP_ID`` is not set.
        """
        query = {
            "client_id": self._app_id(),
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
        }
        if self.settings.login_config_id is not None:
            query["config_id"] = self.settings.login_config_id
        else:
            query["scope"] = ",".join(REQUIRED_SCOPES)
        return (
            f"{self.settings.dialog_base}/{self.settings.api_version}/dialog/oauth?"
            f"{urlencode(query)}"
        )

    async def exchange_code(self, *, code: str, redirect_uri: str) -> AdNetworkGrant:
        """The code → a short-lived token → a long-lived one at once, described by
        ``debug_token`` (expiry, scopes, the person who consented).

        :raises ProviderAuthError: the code was used, expired, belongs to another
            ``redirect_uri`` or app; the seller must start again.
        :raises ProviderError: Meta refused the app's own id or secret.
        """
        app_id, app_secret = self._app_id(), self._app_secret()
        short = await self._exchange(
            "GET /oauth/access_token (code)",
            {
                "client_id": app_id,
                "redirect_uri": redirect_uri,
                "client_secret": app_secret,
                "code": code,
            },
            secrets=(app_secret, code),
        )
        return await self._long_lived(short)

    # -- grants ---------------------------------------------------------------------------

    async def grant_from_token(self, access_token: SecretStr) -> AdNetworkGrant:
        """A pasted token as a grant, as ``debug_token`` describes it.

        :raises ProviderAuthError: the token is invalid, expired, revoked or another app's.
        """
        return await self.inspect_token(access_token.get_secret_value())

    async def extend_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """A fresh ~60-day token for the grant (``fb_exchange_token``); a grant that never
        expires (a system user's) is returned as it is.

        :raises ProviderAuthError: the grant expired or was revoked; the seller must connect
            again.
        """
        if grant.expires_at is None:
            return grant
        return await self._long_lived(grant.access_token.get_secret_value())

    async def inspect_grant(self, grant: AdNetworkGrant) -> AdNetworkGrant:
        """The grant as Meta sees it now (``debug_token``).

        :raises ProviderAuthError: it is no longer valid.
        """
        return await self.inspect_token(grant.access_token.get_secret_value())

    async def inspect_token(self, token: str) -> AdNetworkGrant:
        """``debug_token`` for ``token``, checked to be valid and this app's, as a grant.

        The grant expires at the earlier of ``expires_at`` and ``data_access_expires_at``:
        past the second, Meta refuses to return the seller's data although the token lives.
        """
        app_id, app_secret = self._app_id(), self._app_secret()
        body = await self._get(
            "GET /debug_token",
            self._url("debug_token"),
            {"input_token": token, "access_token": f"{app_id}|{app_secret}"},
            secrets=(token, app_secret),
        )
        data = body.get("data")
        if not isinstance(data, dict):
            raise ProviderError(
                "Meta answered debug_token without a data object", provider=PROVIDER
            )
        if data.get("is_valid") is not True:
            raise ProviderAuthError(
                redact_secrets(f"Meta says the token is not valid: {_debug_error(data)}", token)
                + "; the seller must connect the Meta account again",
                provider=PROVIDER,
            )
        if str(data.get("app_id", "")) != app_id:
            raise ProviderAuthError(
                f"the token was issued to Meta app {data.get('app_id')!r}, not to this app "
                f"({app_id}, PIXECOM_META_APP_ID); connect the account through this app",
                provider=PROVIDER,
            )
        scopes = data.get("scopes")
        return AdNetworkGrant(
            access_token=SecretStr(token),
            expires_at=_expiry(data),
            scopes=tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else (),
            subject=str(data["user_id"]) if data.get("user_id") else None,
        )

    # -- ad accounts ----------------------------------------------------------------------

    async def list_ad_accounts(
        self, grant: AdNetworkGrant
    ) -> AsyncGenerator[ReachableAdAccount, None]:
        """Every ad account of ``GET /me/adaccounts``, page after page (``paging.next``),
        bounded by ``max_pages``. Account ids come without ``act_``, as Meta's
        ``account_id`` field spells them and as the insight calls accept them."""
        token = grant.access_token.get_secret_value()
        url = self._url("me/adaccounts")
        params = {"fields": AD_ACCOUNT_FIELDS, "limit": str(self.settings.page_limit)}
        seen: set[str] = set()
        for _ in range(self.settings.max_pages):
            body = await self._get(
                "GET /me/adaccounts",
                url,
                {**params, **token_params(token, self.settings.app_secret)},
                secrets=(token,),
            )
            data = body.get("data")
            if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
                raise ProviderError(
                    "Meta answered /me/adaccounts without a data array of objects",
                    provider=PROVIDER,
                )
            for item in data:
                yield reachable_account(item)
            paging = body.get("paging")
            next_link = paging.get("next") if isinstance(paging, dict) else None
            if not next_link:
                return
            url, params = follow_next_link(str(next_link), graph_base=self.settings.graph_base)
            request_key = f"{url}?{httpx.QueryParams(params)}"
            if request_key in seen:
                raise ProviderError(
                    "Meta's paging.next for /me/adaccounts points back to a page already "
                    "read; stopped paging",
                    provider=PROVIDER,
                )
            seen.add(request_key)
        raise ProviderError(
            f"more than {self.settings.max_pages} pages of ad accounts; stopped paging "
            "(raise PIXECOM_META_MAX_PAGES or PIXECOM_META_PAGE_LIMIT)",
            provider=PROVIDER,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections (at shutdown)."""
        await self._http.aclose()

    # -- calls ----------------------------------------------------------------------------

    async def _long_lived(self, token: str) -> AdNetworkGrant:
        app_id, app_secret = self._app_id(), self._app_secret()
        long_lived = await self._exchange(
            "GET /oauth/access_token (fb_exchange_token)",
            {
                "grant_type": "fb_exchange_token",
                "client_id": app_id,
                "client_secret": app_secret,
                "fb_exchange_token": token,
            },
            secrets=(app_secret, token),
        )
        return await self.inspect_token(long_lived)

    async def _exchange(
        self, where: str, params: Mapping[str, str], *, secrets: Iterable[str]
    ) -> str:
        """One ``oauth/access_token`` call; the ``access_token`` it answers."""
        secret_values = tuple(secrets)
        body = await self._get(
            where, self._url("oauth/access_token"), params, secrets=secret_values, exchange=True
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError(f"Meta answered {where} without an access_token", provider=PROVIDER)
        return token

    async def _get(
        self,
        where: str,
        url: str,
        params: Mapping[str, str],
        *,
        secrets: Iterable[str],
        exchange: bool = False,
    ) -> dict[str, Any]:
        secret_values = tuple(secrets)
        with transport_errors_as_transient(
            provider=PROVIDER,
            service="Meta",
            call=where,
            base_url=self.settings.graph_base,
            timeout_seconds=self.settings.timeout_seconds,
            timeout_setting=f"{ENV_PREFIX}TIMEOUT_SECONDS",
            scrub=lambda text: redact_secrets(text, *secret_values),
        ):
            response = await self._http.get().get(url, params=params)
        body = json_object(response)
        if response.is_success and body is not None and "error" not in body:
            return body
        raise self._error_for(where, response, body, secrets=secret_values, exchange=exchange)

    def _error_for(
        self,
        where: str,
        response: httpx.Response,
        body: dict[str, Any] | None,
        *,
        secrets: Iterable[str],
        exchange: bool,
    ) -> ProviderError:
        status = response.status_code
        raw = (body or {}).get("error")
        if not isinstance(raw, dict):
            detail = f"Meta {where} answered HTTP {status} without a Graph error object"
            if status >= 500 or response.is_success:
                return ProviderTransientError(detail, provider=PROVIDER)
            if status == 429:
                return ProviderThrottled(
                    detail,
                    retry_after_seconds=self.settings.throttle_backoff_seconds,
                    provider=PROVIDER,
                )
            return ProviderError(detail, provider=PROVIDER)
        code, subcode, message, detail = graph_error_parts(where, status, raw, secrets=secrets)

        if code in THROTTLING_CODES or subcode in THROTTLING_SUBCODES:
            wait = self.settings.throttle_backoff_seconds
            return ProviderThrottled(
                f"{detail} (retry in {wait:.0f} s)", retry_after_seconds=wait, provider=PROVIDER
            )
        if code == _UNKNOWN_APP_CODE or _CLIENT_SECRET_REFUSED.search(message):
            # reconnecting cannot help: the operator's configuration is wrong
            return ProviderError(
                f"{detail}. Meta refused the app's own credentials: check "
                f"{ENV_PREFIX}APP_ID and {ENV_PREFIX}APP_SECRET",
                provider=PROVIDER,
            )
        if exchange and code == _CODE_OR_TOKEN_REFUSED_CODE:
            return ProviderAuthError(
                f"{detail}. The code or token was refused: the seller must connect the Meta "
                "account again",
                provider=PROVIDER,
            )
        if code in AUTH_CODES:
            return ProviderAuthError(
                f"{detail}. The token was refused: the seller must connect the Meta account "
                "again (if every connection fails, check the app's "
                f"{ENV_PREFIX}APP_ID and {ENV_PREFIX}APP_SECRET)",
                provider=PROVIDER,
            )
        if code in TRANSIENT_CODES or raw.get("is_transient") is True or status >= 500:
            return ProviderTransientError(detail, provider=PROVIDER)
        return ProviderError(detail, provider=PROVIDER)

    def _url(self, path: str) -> str:
        return f"{self.settings.graph_base}/{self.settings.api_version}/{path}"

    def _app_id(self) -> str:
        if self.settings.app_id is None:
            raise ProviderError(
                f"connecting Meta accounts needs the Meta app's id: set {ENV_PREFIX}APP_ID",
                provider=PROVIDER,
            )
        return self.settings.app_id

    def _app_secret(self) -> str:
        if self.settings.app_secret is None or not self.settings.app_secret.get_secret_value():
            raise ProviderError(
                "connecting Meta accounts needs the Meta app's secret: set "
                f"{ENV_PREFIX}APP_SECRET or {ENV_PREFIX}APP_SECRET_FILE",
                provider=PROVIDER,
            )
        return self.settings.app_secret.get_secret_value()


def reachable_account(item: Mapping[str, Any]) -> ReachableAdAccount:
    """One entry of ``/me/adaccounts`` as core's :class:`ReachableAdAccount`.

    :raises ProviderError: the entry has no usable id, currency or time zone.
    """
    raw_id = str(item.get("account_id") or item.get("id") or "")
    try:
        number = account_number(raw_id)
    except ValueError as exc:
        raise ProviderError(f"Meta listed an ad account with {exc}", provider=PROVIDER) from None
    raw_status = _int_or_none(item.get("account_status"))
    status = ACCOUNT_STATUSES.get(raw_status) if raw_status is not None else None
    if status is None:
        # a code newer than this plugin: show it, and let the seller look
        _log.warning("meta ad account act_%s has unknown account_status %r", number, raw_status)
        status = AdAccountStatus.NEEDS_ATTENTION
    timezone = str(item.get("timezone_name") or "")
    if not _is_time_zone(timezone):
        raise ProviderError(
            f"Meta ad account act_{number} has no usable timezone_name ({timezone!r})",
            provider=PROVIDER,
        )
    try:
        return ReachableAdAccount(
            account_id=number,
            name=str(item.get("name") or f"act_{number}"),
            currency=str(item.get("currency", "")).upper(),
            timezone=timezone,
            status=status,
        )
    except ValidationError as exc:
        raise ProviderError(
            f"Meta ad account act_{number} reported an unusable currency "
            f"({item.get('currency')!r})",
            provider=PROVIDER,
        ) from exc


def _expiry(data: Mapping[str, Any]) -> datetime | None:
    """The earlier of ``expires_at`` and ``data_access_expires_at``; 0 or absent is "never"."""
    moments = [
        datetime.fromtimestamp(seconds, UTC)
        for seconds in (
            _int_or_none(data.get(key)) for key in ("expires_at", "data_access_expires_at")
        )
        if seconds
    ]
    return min(moments) if moments else None


def _debug_error(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    if not isinstance(error, dict):
        return "is_valid is false"
    code, subcode = error.get("code"), error.get("subcode")
    return (
        f"code {code}"
        + (f"/{subcode}" if subcode is not None else "")
        + (f": {error.get('message') or 'no message'}")
    )


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _is_time_zone(name: str) -> bool:
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
