"""Facebook Login for Business on loopback: the consent dialog, codes, short- and long-lived
tokens, revocation, ``debug_token`` and ``/me/adaccounts``, for the Meta sandbox.

:class:`OAuthSandbox` holds the state (apps, users and the ad accounts they reach, codes,
tokens, a clock that tests move) and builds a FastAPI ``APIRouter``. The Meta sandbox mounts
it beside the sandbox kit, **before** its catch-all Graph route ``GET /{version}/{node}``
(which would otherwise answer ``/{version}/debug_token``)::

    oauth = OAuthSandbox(account_profile=state.profile)
    kit = SandboxKit(config=settings, fault_model=MetaFault, clock=oauth.clock, on_reset=...)
    app.include_router(kit.router())
    app.include_router(oauth.router())

and its Graph routes ask :meth:`OAuthSandbox.token_problem` about every token, answering the
:class:`GraphError` in Meta's error envelope when there is one. Tokens this sandbox never
issued pass (the Graph routes keep serving the fixed test tokens) unless
:attr:`OAuthSandbox.refuse_unknown_tokens` is on (the Meta sandbox's setting of that name).
Graph's wire format, which both speak, is written here once: :class:`GraphError` and its
envelope, :func:`graph_params`, :func:`graph_token`, :func:`asked_fields` and cursor paging
(:func:`page_of`).

What it emulates, and where each behaviour is documented (developers.facebook.com):

- ``GET /{version}/dialog/oauth?client_id&redirect_uri&state&scope&response_type=code``
  (``config_id`` instead of ``scope`` for Login for Business: the app's ``default_scopes``
  are asked) — "Manually Build a Login Flow" (``/documentation/facebook-login/guides/
  advanced/manual-flow``), "Facebook Login for Business" (``/docs/facebook-login/
  facebook-login-for-business/``). It answers an HTML page a headless browser can click
  (radio ``user_id``, one checkbox ``scope`` per permission, buttons ``#approve`` and
  ``#deny``) and an HTTP client can POST (form fields of the same names, plus the hidden
  ``client_id``, ``redirect_uri``, ``state``, ``response_type``, ``config_id``,
  ``requested_scopes``, and ``decision=approve|deny``). An unknown ``client_id``, a
  missing ``redirect_uri`` or one not among the app's ``redirect_uris`` gets an HTML error
  page, never a redirect (RFC 6749 §4.1.2.1). Approving redirects (302) to
  ``redirect_uri?code=…&state=…``; denying to
  ``redirect_uri?error_reason=user_denied&error=access_denied&error_description=Permissions+
  error.&state=…`` — manual flow, "Handling Login Dialog Response" / "Canceled login".
  ``public_profile`` is always granted, as Login for Business documents; the other
  permissions are those left ticked.
- ``GET|POST /{version}/oauth/access_token?client_id&redirect_uri&client_secret&code`` →
  ``{"access_token", "token_type": "bearer", "expires_in"}`` — manual flow, "Exchanging Code
  for an Access Token". A code lives 10 minutes and works once (RFC 6749 §4.1.2, §10.5; Meta
  does not publish its lifetime); ``redirect_uri`` must be the dialog's, character for
  character. Errors, with the texts Meta answers (as quoted in SDK issue trackers:
  laravel/socialite#385, SammyK/LaravelFacebookSdk#141, scribejava/scribejava#605,
  nov/fb_graph2#44): unknown app code 101 "Error validating application. Invalid
  application ID."; wrong secret code 1 "Error validating client secret."; code 100 "This
  authorization code has been used.", "This authorization code has expired.", "Error
  validating verification code. Please make sure your redirect_uri is identical to the one
  you used in the OAuth dialog request", "Invalid verification code format.".
- ``GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret
  &fb_exchange_token`` → a token of ~60 days (``expires_in`` 5184000); an expired or revoked
  token cannot be exchanged (code 190) — "Long-Lived Access Tokens" (``/docs/facebook-login/
  guides/access-tokens/get-long-lived``). Short-lived tokens live 2 hours ("short-lived
  tokens usually have a lifetime of about an hour or two", "Access Tokens" guide); data
  access expires 90 days after consent ("Data Access Expiration").
- ``GET /{version}/debug_token?input_token&access_token={app-id}|{app-secret}`` →
  ``{"data": {app_id, type, application, data_access_expires_at, expires_at, is_valid,
  issued_at, scopes, user_id, error?}}`` — "debug_token" reference and "Debugging access
  tokens" (``/docs/facebook-login/guides/access-tokens/debugging``). A wrong app token is
  refused with code 190.
- ``GET /{version}/me/adaccounts?fields&limit&after`` with cursor paging
  (``paging.cursors.before/after`` always, ``paging.next`` only when more follow; ``limit``
  25 by default, at most 500) and ``account_status`` codes (1 ACTIVE, 2 DISABLED, 3
  UNSETTLED, 7 PENDING_RISK_REVIEW, 8 PENDING_SETTLEMENT, 9 IN_GRACE_PERIOD, 100
  PENDING_CLOSURE, 101 CLOSED) — Marketing API "Ad Account" reference, Graph API
  "Paginated Results". Needs ``ads_read`` or ``ads_management``, else code 200. ``GET
  /{version}/me`` answers ``id`` and ``name``.
- ``DELETE /{version}/me/permissions`` revokes the app for the user (every token of the
  pair, later answered 190/458); ``DELETE /{version}/me/permissions/{permission}`` removes
  one permission → ``{"success": true}`` — Graph API "User permissions" reference
  (``/docs/graph-api/reference/user/permissions/``), "Permissions" guide.
- Refused tokens: code 190 with subcode 458 (app removed), 460 (password changed), 463
  (expired), 464 (unconfirmed user), 467 (invalid or logged out) — Graph API "Handling
  Errors" (``/docs/graph-api/guides/error-handling``).

Control endpoints (JSON, no token; loopback only — they reveal secrets):

- the sandbox kit's (:mod:`pixecom_core.testing.sandbox_kit`), mounted beside this router
  with ``clock=oauth.clock`` and ``on_reset=oauth.reset``: ``POST /_sandbox/reset`` (the
  starting apps and users, no codes or tokens) and ``POST /_sandbox/clock`` (codes and
  tokens expire on :attr:`OAuthSandbox.clock`);
- ``GET /_sandbox/oauth/state``: apps (secrets included), users, the clock;
- ``PUT /_sandbox/oauth/apps/{app_id}``: add or change an app (:class:`AppChange`);
- ``PUT /_sandbox/oauth/users/{user_id}``: a user's name, whether they are confirmed, and the
  ad accounts they reach with each one's ``account_status`` (:class:`UserChange`);
- ``GET /_sandbox/oauth/tokens``: issued tokens with a ``token_id`` (a hash), app, user, kind,
  scopes, times and status, never the token itself — unless ``?reveal=true``, a test
  convenience (a test that drives the consent page already holds its tokens);
- ``POST /_sandbox/oauth/tokens/revoke``: by ``token``, ``token_id``, or ``user_id`` (and
  optionally ``app_id``), with a ``reason`` that picks the subcode (:class:`Revocation`);
  a ``token`` it never issued (the Graph routes' fixed test tokens) is refused from then on;
"""

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from pixecom_core.testing.sandbox_kit import (
    SandboxClock,
    consent_error_page,
    consent_page,
    labelled_input,
    redirect_with,
)
from pixecom_core.testing.sandbox_requests import bearer_token, forget_oldest

#: Looks up an ad account's ``name``, ``currency`` and ``timezone_name`` by its number
#: (the Meta sandbox's ``MetaSandbox.profile``).
AccountProfile = Callable[[str], Mapping[str, Any]]

DEFAULT_APP_ID: Final = "4242424242"
#: Not a secret: the sandbox's app, for dev mode and tests.
DEFAULT_APP_SECRET: Final = "sandbox-app-secret-0000"
DEFAULT_APP_NAME: Final = "PixEcom (sandbox)"
DEFAULT_SCOPES: Final = ("ads_read", "business_management")
ALWAYS_GRANTED: Final = ("public_profile",)
AD_SCOPES: Final = ("ads_read", "ads_management")

CODE_LIFETIME_SECONDS: Final = 600
SHORT_LIVED_SECONDS: Final = 2 * 3600
LONG_LIVED_SECONDS: Final = 60 * 86400
DATA_ACCESS_SECONDS: Final = 90 * 86400
DEFAULT_PAGE_SIZE: Final = 25
MAX_PAGE_SIZE: Final = 500
#: Bounds on what the sandbox remembers (a control API must not exhaust memory).
MAX_CODES: Final = 10_000
MAX_TOKENS: Final = 10_000

#: What an ad account node has (Marketing API "Ad Account" reference).
ACCOUNT_FIELDS: Final = frozenset(
    {"id", "account_id", "name", "currency", "timezone_name", "account_status"}
)
DENIED_DESCRIPTION: Final = "Permissions error."
ERROR_TITLE: Final = "Facebook Login (sandbox): error"

GRAPH_VERSION: Final = re.compile(r"^v\d+\.\d+$")
_NUMBER = re.compile(r"^\d{1,32}$")
#: An app or user id in a control route's path (422 otherwise).
Digits = Annotated[str, Path(pattern=_NUMBER.pattern)]

RevocationReason = Literal["app_removed", "password_changed", "logged_out"]
#: The subcode and message a revoked token is refused with (Graph API "Handling Errors").
REVOCATION_ERRORS: Final[dict[str, tuple[int, str]]] = {
    "app_removed": (
        458,
        "Error validating access token: The user has not authorized application {app_id}.",
    ),
    "password_changed": (
        460,
        "Error validating access token: The session has been invalidated because the user "
        "changed their password or Facebook has changed the session for security reasons.",
    ),
    "logged_out": (
        467,
        "Error validating access token: The session is invalid because the user logged out.",
    ),
}


# -- state ------------------------------------------------------------------------------------


@dataclass
class SandboxApp:
    """A Meta app: what ``client_id``/``client_secret`` name."""

    app_id: str
    secret: str
    name: str
    #: Valid OAuth redirect URIs; ``None`` accepts any http(s) URI.
    redirect_uris: tuple[str, ...] | None = None
    #: The permissions a ``config_id`` (Login for Business configuration) stands for.
    default_scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass
class SandboxUser:
    """A person who can log in, and the ad accounts (number → ``account_status``) they reach."""

    user_id: str
    name: str
    accounts: dict[str, int] = field(default_factory=dict)
    confirmed: bool = True


@dataclass
class IssuedCode:
    """A consent code: single use, ``CODE_LIFETIME_SECONDS`` long, tied to its redirect_uri."""

    app_id: str
    user_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    issued_at: float
    consented_at: float
    used: bool = False


@dataclass
class IssuedToken:
    """A user access token the sandbox issued."""

    token: str
    app_id: str
    user_id: str
    kind: Literal["short_lived", "long_lived"]
    scopes: list[str]
    issued_at: float
    expires_at: float
    data_access_expires_at: float
    revoked: RevocationReason | None = None

    @property
    def token_id(self) -> str:
        """A stable name for the token that does not reveal it."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


# -- Graph's wire format (the Meta sandbox's Graph routes speak it too) ----------------------


@dataclass(eq=False)
class GraphError(Exception):
    """An answer in Graph's error envelope ``{"error": {message, type, code, error_subcode?,
    is_transient?, fbtrace_id}}`` (Graph API "Handling Errors"); raised inside a route.

    :param status: the HTTP status (400 for token and parameter errors, as Meta answers).
    :param code: Graph's ``code``: 190 (token), 200 (a permission missing), 100 (parameter) …
    :param subcode: ``error_subcode``: 458, 460, 463, 464 or 467 for code 190.
    :param headers: sent with the answer (the usage headers of an ad account's calls).
    :param user_title: ``error_user_title``, the short reason Meta adds for people (the
        Conversions API's refusals carry one: "Event Timestamp Too Old").
    :param user_message: ``error_user_msg``, what to do about it.
    """

    status: int
    code: int
    message: str
    _: KW_ONLY
    subcode: int | None = None
    error_type: str = "OAuthException"
    is_transient: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    user_title: str | None = None
    user_message: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_message is not None:
            error["error_user_msg"] = self.user_message
        error["fbtrace_id"] = secrets.token_urlsafe(12)
        return {"error": error}

    def response(self) -> JSONResponse:
        """The JSON answer."""
        return JSONResponse(self.envelope(), status_code=self.status, headers=self.headers)


def invalid_parameter(message: str) -> GraphError:
    """Code 100, Graph's "invalid parameter"."""
    return GraphError(400, 100, f"(#100) {message}")


def invalid_token(subcode: int | None, message: str) -> GraphError:
    """Code 190, Graph's "invalid OAuth access token"; ``subcode`` says why."""
    return GraphError(400, 190, message, subcode=subcode)


def unparsable_token() -> GraphError:
    """Code 190/467: a token Graph cannot read (never issued, or another app's)."""
    return invalid_token(467, "Invalid OAuth access token - Cannot parse access token")


def check_version(version: str) -> None:
    """Refuse a path whose first segment is no API version (``v25.0``)."""
    if not GRAPH_VERSION.match(version):
        raise invalid_parameter(f"Unknown path components: /{version}")


async def graph_params(request: Request) -> dict[str, str]:
    """The query and, for a POST, the url-encoded or JSON body, as one flat mapping."""
    params = dict(request.query_params)
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if content_type.startswith("application/x-www-form-urlencoded"):
            params |= dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        elif content_type.startswith("application/json") and raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise invalid_parameter("the JSON body is malformed") from exc
            if isinstance(body, dict):
                params |= {
                    key: value if isinstance(value, str) else json.dumps(value)
                    for key, value in body.items()
                }
    return params


def graph_token(request: Request, params: dict[str, str]) -> str:
    """The call's user token, taken out of ``params`` (``access_token``, with
    ``appsecret_proof``) or read from ``Authorization: Bearer|OAuth``."""
    token = params.pop("access_token", "")
    params.pop("appsecret_proof", None)
    return token or bearer_token(request.headers.get("authorization"), ("bearer", "oauth"))


def list_param(raw: str | None) -> list[str]:
    """A list parameter (``fields``, ``effective_status``): comma-separated or a JSON list."""
    if raw is None or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise invalid_parameter("fields must be a JSON list or comma-separated") from exc
        if not isinstance(value, list):
            raise invalid_parameter("fields must be a list")
        return [str(item).strip() for item in value if str(item).strip()]
    return [item.strip() for item in text.split(",") if item.strip()]


def asked_fields(params: Mapping[str, str], known: Collection[str], default: str) -> list[str]:
    """The ``fields`` asked for (``default`` when none), ``id`` first; code 100 for a field
    the object does not have."""
    asked = list_param(params.get("fields")) or [default]
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise invalid_parameter(f"Tried accessing nonexisting field ({unknown[0]})")
    return list(dict.fromkeys(["id", *asked]))


def ad_account_object(
    number: str, profile: Mapping[str, Any], account_status: int, fields: list[str]
) -> dict[str, Any]:
    """An ad account node (``GET /act_{id}``, ``/me/adaccounts``) with ``fields``."""
    available = {
        "id": f"act_{number}",
        "account_id": number,
        "name": profile["name"],
        "currency": profile["currency"],
        "timezone_name": profile["timezone_name"],
        "account_status": account_status,
    }
    return {name: available[name] for name in fields}


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_parameter("Invalid cursor") from exc
    kind, _, value = text.partition(":")
    if kind != "offset" or not value.isdigit():
        raise invalid_parameter("Invalid cursor")
    return int(value)


def page_of(
    request: Request, params: Mapping[str, str], rows: list[dict[str, Any]], max_page_size: int
) -> dict[str, Any]:
    """The page of ``rows`` that ``limit`` (25 by default) and ``after`` select, with
    Graph's ``paging``: ``cursors.before/after`` always, ``next`` only when more rows
    follow (Graph API "Paginated Results")."""
    raw_limit = params.get("limit", str(DEFAULT_PAGE_SIZE))
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        raise invalid_parameter("limit must be a positive integer")
    limit = min(int(raw_limit), max_page_size)
    offset = _offset(params["after"]) if params.get("after") else 0
    chunk = rows[offset : offset + limit]
    body: dict[str, Any] = {"data": chunk}
    if not chunk:
        return body
    after = offset + len(chunk)
    paging: dict[str, Any] = {"cursors": {"before": _cursor(offset), "after": _cursor(after)}}
    if after < len(rows):
        paging["next"] = str(request.url.include_query_params(after=_cursor(after)))
    if offset > 0:
        paging["previous"] = str(
            request.url.include_query_params(after=_cursor(max(0, offset - limit)))
        )
    body["paging"] = paging
    return body


# -- control bodies ---------------------------------------------------------------------------


class AppChange(BaseModel):
    """``PUT /_sandbox/oauth/apps/{app_id}``."""

    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=1)
    name: str = DEFAULT_APP_NAME
    redirect_uris: list[str] | None = None
    default_scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))


class UserChange(BaseModel):
    """``PUT /_sandbox/oauth/users/{user_id}``: ``accounts`` maps an account number (no
    ``act_``) to its ``account_status`` code."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    accounts: dict[str, int] = Field(default_factory=dict)
    confirmed: bool = True

    @model_validator(mode="after")
    def _numbers(self) -> "UserChange":
        bad = [number for number in self.accounts if not _NUMBER.match(number)]
        if bad:
            raise ValueError(f"account numbers are digits without act_: {bad[:3]}")
        return self


class Revocation(BaseModel):
    """``POST /_sandbox/oauth/tokens/revoke``: one token (by value or ``token_id``), or every
    token of a user (of one app, or of all)."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    token_id: str | None = None
    user_id: str | None = None
    app_id: str | None = None
    reason: RevocationReason = "app_removed"

    @model_validator(mode="after")
    def _one(self) -> "Revocation":
        if sum(value is not None for value in (self.token, self.token_id, self.user_id)) != 1:
            raise ValueError("give exactly one of token, token_id and user_id")
        return self


def default_users() -> dict[str, SandboxUser]:
    """Two sellers: one with the demo accounts 1000 and 1001, one with an account in every
    state the chooser shows."""
    return {
        "100001": SandboxUser("100001", "Sandbox Seller", {"1000": 1, "1001": 1}),
        "100002": SandboxUser(
            "100002",
            "Second Seller",
            {"1002": 1, "1003": 3, "1004": 2, "1005": 9, "1006": 101},
        ),
    }


def default_apps() -> dict[str, SandboxApp]:
    """The sandbox's app (``DEFAULT_APP_ID`` / ``DEFAULT_APP_SECRET``)."""
    return {DEFAULT_APP_ID: SandboxApp(DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_APP_NAME)}


# -- the sandbox ------------------------------------------------------------------------------


class OAuthSandbox:
    """Facebook Login's state and routes for the Meta sandbox (see the module docstring).

    :param account_profile: an account number → its ``name``, ``currency`` and
        ``timezone_name`` (the Meta sandbox's ``MetaSandbox.profile``), so ``/me/adaccounts``
        agrees with ``GET /act_{id}``.
    :param clock: the sandbox's clock (the kit's ``POST /_sandbox/clock`` moves it).
    """

    def __init__(
        self, account_profile: AccountProfile, *, clock: SandboxClock | None = None
    ) -> None:
        self._profile = account_profile
        self.clock = clock if clock is not None else SandboxClock()
        #: Refuse tokens it never issued (code 190/467) instead of letting them pass.
        self.refuse_unknown_tokens = False
        self.apps = default_apps()
        self.users = default_users()
        self.codes: dict[str, IssuedCode] = {}
        self.tokens: dict[str, IssuedToken] = {}
        #: Tokens it never issued (fixed test tokens) revoked through the control API.
        self.revoked_unissued: dict[str, RevocationReason] = {}

    def now(self) -> float:
        """The sandbox's time, in epoch seconds."""
        return self.clock()

    def reset(self) -> None:
        """The starting apps and users; no codes or tokens (the kit resets the clock)."""
        self.apps, self.users = default_apps(), default_users()
        self.codes.clear()
        self.tokens.clear()
        self.revoked_unissued.clear()

    # -- the hook the Graph routes call --------------------------------------------------

    def token_problem(
        self, token: str, *, any_of_scopes: Collection[str] = ()
    ) -> GraphError | None:
        """Why a Graph call with ``token`` must be refused, or ``None`` to serve it.

        :param token: the call's ``access_token``.
        :param any_of_scopes: permissions of which the token needs one (``AD_SCOPES`` for an
            ad account's insights); none asked by default.
        """
        issued = self.tokens.get(token)
        revoked = issued.revoked if issued is not None else self.revoked_unissued.get(token)
        if revoked is not None:
            subcode, message = REVOCATION_ERRORS[revoked]
            app_id = issued.app_id if issued is not None else DEFAULT_APP_ID
            return invalid_token(subcode, message.format(app_id=app_id))
        if issued is None:
            return unparsable_token() if self.refuse_unknown_tokens else None
        now = self.now()
        if now >= issued.expires_at:
            return invalid_token(
                463,
                f"Error validating access token: Session has expired on "
                f"{_meta_time(issued.expires_at)}. The current time is {_meta_time(now)}.",
            )
        user = self.users.get(issued.user_id)
        if user is None or not user.confirmed:
            return invalid_token(
                464,
                f"Error validating access token: Sessions for the user {issued.user_id} are "
                "not allowed because the user is not a confirmed user.",
            )
        if now >= issued.data_access_expires_at:
            return invalid_token(
                463,
                "Error validating access token: Data access for the app has expired; the "
                "user must log in again.",
            )
        if any_of_scopes and not set(any_of_scopes) & set(issued.scopes):
            wanted = " or ".join(sorted(any_of_scopes))
            return GraphError(400, 200, f"(#200) Requires {wanted} permission")
        return None

    # -- the router ----------------------------------------------------------------------

    def router(self) -> APIRouter:
        """The dialog, token, ``debug_token``, ``/me`` and control routes."""
        router = APIRouter()
        self._control_routes(router)
        self._dialog_routes(router)
        self._graph_routes(router)
        return router

    def _control_routes(self, router: APIRouter) -> None:
        @router.get("/_sandbox/oauth/state")
        async def read_state() -> dict[str, Any]:
            return {
                "now": self.now(),
                "apps": [vars(app) for app in self.apps.values()],
                "users": [vars(user) for user in self.users.values()],
            }

        @router.put("/_sandbox/oauth/apps/{app_id}")
        async def change_app(app_id: Digits, change: AppChange) -> dict[str, str]:
            self.apps[app_id] = SandboxApp(
                app_id,
                change.secret,
                change.name,
                tuple(change.redirect_uris) if change.redirect_uris is not None else None,
                tuple(change.default_scopes),
            )
            return {"app_id": app_id}

        @router.put("/_sandbox/oauth/users/{user_id}")
        async def change_user(user_id: Digits, change: UserChange) -> dict[str, Any]:
            self.users[user_id] = SandboxUser(
                user_id, change.name, dict(change.accounts), change.confirmed
            )
            return vars(self.users[user_id])

        @router.get("/_sandbox/oauth/tokens")
        async def list_tokens(reveal: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
            return [self._describe(issued, reveal=reveal) for issued in self.tokens.values()]

        @router.post("/_sandbox/oauth/tokens/revoke")
        async def revoke(revocation: Revocation) -> dict[str, int]:
            chosen = [
                issued
                for issued in self.tokens.values()
                if issued.token == revocation.token
                or (revocation.token_id is not None and issued.token_id == revocation.token_id)
                or (
                    revocation.user_id is not None
                    and issued.user_id == revocation.user_id
                    and revocation.app_id in (None, issued.app_id)
                )
            ]
            for issued in chosen:
                issued.revoked = revocation.reason
            if revocation.token is not None and not chosen:
                forget_oldest(self.revoked_unissued, MAX_TOKENS)
                self.revoked_unissued[revocation.token] = revocation.reason
                return {"revoked": 1}
            return {"revoked": len(chosen)}

    def _dialog_routes(self, router: APIRouter) -> None:
        @router.get("/{version}/dialog/oauth")
        async def consent_page(request: Request, version: str) -> Response:
            params = dict(request.query_params)
            app, problem = self._dialog_app(version, params)
            if app is None:
                return consent_error_page(ERROR_TITLE, problem)
            asked = self._asked_scopes(app, params)
            return self._consent_page(version, app, params, asked)

        @router.post("/{version}/dialog/oauth")
        async def consent_answer(request: Request, version: str) -> Response:
            pairs = parse_qsl((await request.body()).decode("utf-8", "replace"))
            params = {key: value for key, value in pairs if key != "scope"}
            app, problem = self._dialog_app(version, params)
            if app is None:
                return consent_error_page(ERROR_TITLE, problem)
            answer: dict[str, str] = {}
            if params.get("decision") != "approve":
                answer = {
                    "error_reason": "user_denied",
                    "error": "access_denied",
                    "error_description": DENIED_DESCRIPTION,
                }
            else:
                user = self.users.get(params.get("user_id", ""))
                if user is None:
                    return consent_error_page(
                        ERROR_TITLE, "Choose who logs in: user_id names no sandbox user."
                    )
                # what the dialog asked travels in a hidden field; a ticked box adds nothing else
                asked = tuple(filter(None, params.get("requested_scopes", "").split(",")))
                ticked = {value for key, value in pairs if key == "scope"}
                scopes = (*ALWAYS_GRANTED, *(scope for scope in asked if scope in ticked))
                answer = {"code": self._issue_code(app, user, params["redirect_uri"], scopes)}
            if "state" in params:
                answer["state"] = params["state"]
            return redirect_with(params["redirect_uri"], answer)

    def _graph_routes(self, router: APIRouter) -> None:
        async def graph(
            request: Request, version: str, handle: Callable[[dict[str, str]], Any]
        ) -> Response:
            try:
                check_version(version)
                return JSONResponse(handle(await graph_params(request)))
            except GraphError as error:
                return error.response()

        @router.api_route("/{version}/oauth/access_token", methods=["GET", "POST"])
        async def access_token(request: Request, version: str) -> Response:
            return await graph(request, version, self._access_token)

        @router.get("/{version}/debug_token")
        async def debug_token(request: Request, version: str) -> Response:
            return await graph(request, version, self._debug_token)

        @router.get("/{version}/me")
        async def me(request: Request, version: str) -> Response:
            def describe(params: dict[str, str]) -> dict[str, str]:
                issued = self._user_token(request, params)
                return {"id": issued.user_id, "name": self.users[issued.user_id].name}

            return await graph(request, version, describe)

        @router.get("/{version}/me/adaccounts")
        async def ad_accounts(request: Request, version: str) -> Response:
            return await graph(request, version, lambda params: self._ad_accounts(request, params))

        @router.delete("/{version}/me/permissions")
        async def remove_app(request: Request, version: str) -> Response:
            def handle(params: dict[str, str]) -> dict[str, bool]:
                issued = self._user_token(request, params)
                for other in self._tokens_of(issued.app_id, issued.user_id):
                    other.revoked = "app_removed"
                return {"success": True}

            return await graph(request, version, handle)

        @router.delete("/{version}/me/permissions/{permission}")
        async def remove_permission(request: Request, version: str, permission: str) -> Response:
            def handle(params: dict[str, str]) -> dict[str, bool]:
                issued = self._user_token(request, params)
                for other in self._tokens_of(issued.app_id, issued.user_id):
                    other.scopes = [scope for scope in other.scopes if scope != permission]
                return {"success": True}

            return await graph(request, version, handle)

    # -- dialog ---------------------------------------------------------------------------

    def _dialog_app(self, version: str, params: Mapping[str, str]) -> tuple[SandboxApp | None, str]:
        """The app the dialog is for, or ``None`` and why the dialog cannot redirect."""
        if not GRAPH_VERSION.match(version):
            return None, f"Unknown API version {version!r}."
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            return None, "Invalid App ID: the client_id names no app of this sandbox."
        redirect_uri = params.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return None, "URL Blocked: redirect_uri must be an absolute http(s) URL."
        if app.redirect_uris is not None and redirect_uri not in app.redirect_uris:
            return None, (
                "URL Blocked: This redirect failed because the redirect URI is not whitelisted "
                "in the app's Client OAuth Settings."
            )
        if params.get("response_type", "code") != "code":
            return None, "Only response_type=code is emulated."
        return app, ""

    def _asked_scopes(self, app: SandboxApp, params: Mapping[str, str]) -> tuple[str, ...]:
        raw = params.get("scope", "")
        if not raw and params.get("config_id"):
            return app.default_scopes
        asked = [scope.strip() for scope in re.split(r"[,\s]+", raw) if scope.strip()]
        return tuple(dict.fromkeys(scope for scope in asked if scope not in ALWAYS_GRANTED))

    def _consent_page(
        self, version: str, app: SandboxApp, params: Mapping[str, str], asked: tuple[str, ...]
    ) -> HTMLResponse:
        """Facebook Login's dialog: who continues (the first person preselected) and the
        permissions asked (all checked; unchecking one declines it)."""
        hidden = {
            name: params[name]
            for name in ("client_id", "redirect_uri", "state", "response_type", "config_id")
            if name in params
        }
        people = [
            labelled_input(
                "radio", "user_id", user.user_id, f"{user.name} ({user.user_id})", checked=not index
            )
            for index, user in enumerate(self.users.values())
        ]
        permissions = [
            labelled_input(
                "checkbox", "scope", scope, scope, checked=True, element_id=f"scope-{scope}"
            )
            for scope in asked
        ]
        return consent_page(
            title="Log in with Facebook (sandbox)",
            heading=f"{app.name} is requesting access",
            action=f"/{version}/dialog/oauth",
            hidden={**hidden, "requested_scopes": ",".join(asked)},
            fieldsets=[("Continue as", people), ("Permissions", permissions)],
            approve="Continue",
        )

    def _issue_code(
        self, app: SandboxApp, user: SandboxUser, redirect_uri: str, scopes: tuple[str, ...]
    ) -> str:
        forget_oldest(self.codes, MAX_CODES)
        code = "AQ" + secrets.token_urlsafe(48)
        now = self.now()
        self.codes[code] = IssuedCode(app.app_id, user.user_id, redirect_uri, scopes, now, now)
        return code

    # -- oauth/access_token and debug_token -----------------------------------------------

    def _access_token(self, params: dict[str, str]) -> dict[str, Any]:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise GraphError(400, 101, "Error validating application. Invalid application ID.")
        if params.get("client_secret") != app.secret:
            raise GraphError(400, 1, "Error validating client secret.")
        if params.get("grant_type") == "fb_exchange_token":
            return self._exchange_token(app, params.get("fb_exchange_token", ""))
        if "redirect_uri" not in params:
            raise GraphError(400, 100, "Missing redirect_uri parameter.")
        if not params.get("code"):
            raise GraphError(400, 100, "Missing authorization code")
        issued = self.codes.get(params["code"])
        if issued is None or issued.app_id != app.app_id:
            raise GraphError(400, 100, "Invalid verification code format.")
        if issued.redirect_uri != params["redirect_uri"]:
            raise GraphError(
                400,
                100,
                "Error validating verification code. Please make sure your redirect_uri is "
                "identical to the one you used in the OAuth dialog request",
            )
        if issued.used:
            raise GraphError(400, 100, "This authorization code has been used.")
        if self.now() >= issued.issued_at + CODE_LIFETIME_SECONDS:
            raise GraphError(400, 100, "This authorization code has expired.")
        issued.used = True
        token = self._issue_token(
            app.app_id,
            issued.user_id,
            list(issued.scopes),
            "short_lived",
            consented_at=issued.consented_at,
        )
        return _token_answer(token, self.now())

    def _exchange_token(self, app: SandboxApp, token: str) -> dict[str, Any]:
        if not token:
            raise GraphError(400, 100, "Missing fb_exchange_token parameter.")
        issued = self.tokens.get(token)
        if issued is None or issued.app_id != app.app_id:
            raise unparsable_token()
        problem = self.token_problem(token)
        if problem is not None:
            raise problem
        longer = self._issue_token(
            app.app_id,
            issued.user_id,
            list(issued.scopes),
            "long_lived",
            consented_at=issued.data_access_expires_at - DATA_ACCESS_SECONDS,
        )
        return _token_answer(longer, self.now())

    def _issue_token(
        self,
        app_id: str,
        user_id: str,
        scopes: list[str],
        kind: Literal["short_lived", "long_lived"],
        *,
        consented_at: float,
    ) -> IssuedToken:
        forget_oldest(self.tokens, MAX_TOKENS)
        now = self.now()
        lifetime = SHORT_LIVED_SECONDS if kind == "short_lived" else LONG_LIVED_SECONDS
        issued = IssuedToken(
            token="EAA" + secrets.token_urlsafe(96),
            app_id=app_id,
            user_id=user_id,
            kind=kind,
            scopes=scopes,
            issued_at=now,
            expires_at=now + lifetime,
            data_access_expires_at=consented_at + DATA_ACCESS_SECONDS,
        )
        self.tokens[issued.token] = issued
        return issued

    def _debug_token(self, params: dict[str, str]) -> dict[str, Any]:
        app_id, _, secret = params.get("access_token", "").partition("|")
        app = self.apps.get(app_id)
        if app is None or secret != app.secret:
            viewer = self.tokens.get(params.get("access_token", ""))
            if viewer is None or self.token_problem(viewer.token) is not None:
                raise invalid_token(None, "Invalid OAuth access token signature.")
        input_token = params.get("input_token", "")
        if not input_token:
            raise GraphError(400, 100, "(#100) The parameter input_token is required")
        issued = self.tokens.get(input_token)
        if issued is None:
            return {
                "data": {
                    "error": {
                        "code": 190,
                        "message": "Invalid OAuth access token - Cannot parse access token",
                    },
                    "is_valid": False,
                    "scopes": [],
                }
            }
        data: dict[str, Any] = {
            "app_id": issued.app_id,
            "type": "USER",
            "application": self.apps[issued.app_id].name
            if issued.app_id in self.apps
            else "unknown",
            "data_access_expires_at": int(issued.data_access_expires_at),
            "expires_at": int(issued.expires_at),
            "is_valid": True,
            "scopes": list(issued.scopes),
            "user_id": issued.user_id,
        }
        if issued.kind == "long_lived":
            data["issued_at"] = int(issued.issued_at)  # documented for long-lived tokens only
        problem = self.token_problem(input_token)
        if problem is not None:
            data["is_valid"] = False
            data["error"] = {
                "code": problem.code,
                "message": problem.message,
                "subcode": problem.subcode,
            }
        return {"data": data}

    # -- /me ------------------------------------------------------------------------------

    def _user_token(
        self, request: Request, params: dict[str, str], *, any_of_scopes: Collection[str] = ()
    ) -> IssuedToken:
        token = graph_token(request, params)
        if not token:
            raise GraphError(
                400,
                2500,
                "An active access token must be used to query information about the current user.",
            )
        issued = self.tokens.get(token)
        if issued is None:
            raise unparsable_token()
        problem = self.token_problem(token, any_of_scopes=any_of_scopes)
        if problem is not None:
            raise problem
        return issued

    def _ad_accounts(self, request: Request, params: dict[str, str]) -> dict[str, Any]:
        issued = self._user_token(request, params, any_of_scopes=AD_SCOPES)
        fields = asked_fields(params, ACCOUNT_FIELDS, default="id")
        user = self.users[issued.user_id]
        rows = [
            ad_account_object(number, self._profile(number), user.accounts[number], fields)
            for number in sorted(user.accounts, key=int)
        ]
        return page_of(request, params, rows, MAX_PAGE_SIZE)

    # -- helpers --------------------------------------------------------------------------

    def _tokens_of(self, app_id: str, user_id: str) -> list[IssuedToken]:
        return [
            issued
            for issued in self.tokens.values()
            if issued.app_id == app_id and issued.user_id == user_id
        ]

    def _describe(self, issued: IssuedToken, *, reveal: bool) -> dict[str, Any]:
        problem = self.token_problem(issued.token)
        status = "valid" if problem is None else "revoked" if issued.revoked else "refused"
        if problem is not None and problem.subcode == 463:
            status = "expired"
        described: dict[str, Any] = {
            "token_id": issued.token_id,
            "app_id": issued.app_id,
            "user_id": issued.user_id,
            "kind": issued.kind,
            "scopes": list(issued.scopes),
            "issued_at": issued.issued_at,
            "expires_at": issued.expires_at,
            "status": status,
        }
        if reveal:
            described["token"] = issued.token
        return described


def _token_answer(issued: IssuedToken, now: float) -> dict[str, Any]:
    return {
        "access_token": issued.token,
        "token_type": "bearer",
        "expires_in": round(issued.expires_at - now),
    }


def _meta_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")
