"""Stripe Connect on loopback: the OAuth consent page for Standard accounts, the code
exchange, deauthorization, connected accounts, and the seller removing the platform.

Each behaviour follows Stripe's documentation (and stripe-python where it is more exact):

- ``GET /oauth/authorize`` (https://docs.stripe.com/connect/oauth-reference#get-authorize):
  ``response_type=code``, ``client_id=ca_…``, ``scope`` (``read_write`` or ``read_only``,
  the default), ``state``, ``redirect_uri``. A client id or redirect URI the platform did
  not register is an error page, never a redirect (Stripe redirects only to a registered
  URI); a wrong ``response_type`` or ``scope`` is redirected as ``error=…``. The page is an
  HTML form (the seller picks one of their accounts or a new one, and a business name);
  approving redirects to ``redirect_uri?code=ac_…&scope=…&state=…``, denying to
  ``redirect_uri?error=access_denied&error_description=The+user+denied+your+request&state=…``
  (the oauth-reference's error for a seller who declines).
- ``POST /oauth/token`` (also ``/v1/oauth/token``; stripe-python's ``OAuth.token`` posts to
  ``/oauth/token`` on ``connect_api_base``), with the platform's secret key as Bearer or
  ``client_secret``: ``grant_type=authorization_code&code=…`` answers ``access_token``,
  ``refresh_token``, ``scope``, ``livemode``, ``token_type: bearer``,
  ``stripe_publishable_key`` and ``stripe_user_id`` (stripe-python's ``OAuthToken``). A code
  is single use and expires after ``CODE_LIFETIME_SECONDS`` (on the kit's movable clock);
  a code used, expired, unknown or of another platform is 400 ``invalid_grant``
  (stripe-python's ``InvalidGrantError``: "a specified code doesn't exist, is expired, has
  been used, or doesn't belong to you"), in OAuth's envelope
  ``{"error", "error_description"}``. Another ``grant_type`` is ``unsupported_grant_type``.
- ``POST /oauth/deauthorize`` (``client_id``, ``stripe_user_id``) answers
  ``{"stripe_user_id"}`` (stripe-python's ``OAuthDeauthorization``); an account not
  connected to that client is 401 ``invalid_client`` (``InvalidClientError``: "the
  stripe_user_id doesn't exist or isn't connected to your application"). Stripe then sends
  ``account.application.deauthorized`` (https://docs.stripe.com/connect/webhooks).
- ``GET /v1/accounts/{id}`` with the platform's key: the connected Account (``type:
  standard``, ``business_profile.name``, ``default_currency``, ``settings.dashboard``).
- Connected accounts' objects: a ``Stripe-Account: acct_…`` header
  (https://docs.stripe.com/connect/authentication) scopes PaymentIntents, charges,
  refunds, disputes and events to that account, and another account's object is 404
  ``resource_missing``; an account the platform cannot reach (unknown, never connected,
  deauthorized) is 403 ``account_invalid``, "The provided key '…' does not have access to
  account 'acct_…' (or that account does not exist). Application access may have been
  revoked." Their events carry a top-level ``account`` and are signed with the Connect
  endpoint's secrets. ``application_fee_amount`` is kept on the PaymentIntent and its
  charge, and a captured charge gets an ``application_fee`` (``fee_…``,
  ``GET /v1/application_fees/{id}`` with the platform's key).

Control endpoints (kit style):

- ``GET /_sandbox/accounts``: every seller account, whether it is connected (and to which
  client id), and the ids of the objects that live on it.
- ``POST /_sandbox/accounts/{id}/deauthorize``: the seller removes the platform from their
  Dashboard: the account is no longer reachable and ``account.application.deauthorized``
  (``data.object`` the application, ``account`` the account) goes to the Connect endpoint.

:func:`approve_consent` plays the seller's browser on the consent page (``Sandbox``'s
``approve_consent`` hook). Redirects, the error page and the browser are the sandbox kit's
(:func:`~pixecom_core.testing.sandbox_kit.redirect_with`,
:func:`~pixecom_core.testing.sandbox_kit.consent_error_page`,
:func:`~pixecom_core.testing.sandbox_kit.submit_consent`), shared with Facebook Login's.
"""

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.responses import Response

from pixecom_core.testing.sandbox_kit import (
    Answered,
    consent_error_page,
    consent_page,
    labelled_input,
    redirect_with,
    submit_consent,
)

if TYPE_CHECKING:
    from pixecom_stripe.sandbox import SandboxAccount

#: How long a consent code can be exchanged. Stripe documents codes as single use; the
#: five minutes are the sandbox's choice, short as OAuth 2.0 (RFC 6749 §4.1.2) advises.
CODE_LIFETIME_SECONDS: Final = 300.0
SCOPES: Final = ("read_write", "read_only")
DEAUTHORIZED_EVENT: Final = "account.application.deauthorized"
DENIED_DESCRIPTION: Final = "The user denied your request"
APPLICATION_NAME: Final = "PixEcom (sandbox platform)"


@dataclass
class IssuedCode:
    """A consent code: single use, ``CODE_LIFETIME_SECONDS`` long, for one platform."""

    client_id: str
    account_id: str
    scope: str
    issued_at: float
    used: bool = False


class OAuthError(Answered):
    """An answer in OAuth's envelope ``{"error": code, "error_description": …}`` (the kit's
    app answers it when raised)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(JSONResponse({"error": error, "error_description": description}, status))


def connect_routes(app: FastAPI, account: "SandboxAccount", api_key: Any) -> None:
    """Add Connect's routes to the sandbox ``app`` (``api_key``: its API-call dependency,
    which logs the call, answers queued faults and checks the key)."""
    from pixecom_stripe.sandbox import _form_pairs, _no_such

    def client_problem(params: dict[str, str]) -> str | None:
        client_id = params.get("client_id", "")
        allowed = account.config.connect_client_ids
        if not client_id or not (client_id in allowed if allowed else client_id.startswith("ca_")):
            return f"No such application: '{client_id}'"
        redirect_uri = params.get("redirect_uri", "")
        registered = account.config.connect_redirect_uris
        if redirect_uri and (
            redirect_uri not in registered
            if registered
            else urlsplit(redirect_uri).scheme not in ("http", "https")
        ):
            return f"Invalid redirect URI '{redirect_uri}': it is not registered for this platform."
        if not redirect_uri:
            return "redirect_uri is required by this sandbox (Stripe falls back to the default)."
        return None

    def redirect(params: dict[str, str], answer: dict[str, str]) -> Response:
        if "state" in params:
            answer["state"] = params["state"]
        return redirect_with(params["redirect_uri"], answer)

    @app.get("/oauth/authorize")
    async def consent_page(request: Request) -> Response:
        params = dict(request.query_params)
        problem = client_problem(params)
        if problem is not None:
            return _error_page(problem)
        if params.get("response_type", "code") != "code":
            return redirect(
                params,
                {"error": "unsupported_response_type", "error_description": "Use code."},
            )
        if params.get("scope", "read_only") not in SCOPES:
            return redirect(
                params,
                {
                    "error": "invalid_scope",
                    "error_description": f"Invalid scope: {params['scope']}",
                },
            )
        return _consent_page(params, account.accounts)

    @app.post("/oauth/authorize")
    async def consent_answer(request: Request) -> Response:
        params = dict(await _form_pairs(request))
        problem = client_problem(params)
        if problem is not None:
            return _error_page(problem)
        if params.get("decision") != "approve":
            return redirect(
                params, {"error": "access_denied", "error_description": DENIED_DESCRIPTION}
            )
        chosen = params.get("account", "new")
        if chosen == "new":
            seller = new_seller(
                params.get("business_name") or f"Sandbox seller {len(account.accounts) + 1}",
                params.get("default_currency") or "eur",
            )
        elif chosen in account.accounts:
            seller = account.accounts[chosen]
        else:
            return _error_page(f"No such account: '{chosen}'")
        code = "ac_" + secrets.token_urlsafe(24)
        scope = params.get("scope", "read_only")
        account.codes[code] = IssuedCode(params["client_id"], seller["id"], scope, account.clock())
        return redirect(params, {"code": code, "scope": scope})

    def new_seller(name: str, currency: str) -> dict[str, Any]:
        account_id = account.kit.new_id("acct_", 16)
        seller: dict[str, Any] = {
            "id": account_id,
            "object": "account",
            "business_profile": {"name": name},
            "charges_enabled": True,
            "country": "DE",
            "default_currency": currency.lower(),
            "details_submitted": True,
            "email": f"{account_id.lower()}@sandbox.example",
            "payouts_enabled": True,
            "settings": {"dashboard": {"display_name": name}},
            "type": "standard",
        }
        account.accounts[account_id] = seller
        return seller

    async def token(request: Request, key: str) -> dict[str, Any]:
        form = dict(await _form_pairs(request))
        if form.get("client_secret") and form["client_secret"] != key:
            raise OAuthError(401, "invalid_client", "The client_secret does not match the key.")
        grant_type = form.get("grant_type")
        if grant_type != "authorization_code":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                f"Unsupported grant type: {grant_type}. Use authorization_code.",
            )
        code = form.get("code", "")
        issued = account.codes.get(code)
        if issued is None:
            raise OAuthError(400, "invalid_grant", f"Authorization code does not exist: {code}")
        if issued.used:
            raise OAuthError(
                400,
                "invalid_grant",
                "This authorization code has already been used. All tokens issued with this "
                "code have been revoked.",
            )
        if account.clock() - issued.issued_at > CODE_LIFETIME_SECONDS:
            raise OAuthError(400, "invalid_grant", f"Authorization code expired: {code}")
        issued.used = True
        account.connected[issued.account_id] = issued.client_id
        return {
            "access_token": "sk_test_" + secrets.token_urlsafe(24),
            "livemode": False,
            "refresh_token": "rt_" + secrets.token_urlsafe(24),
            "scope": issued.scope,
            "stripe_publishable_key": "pk_test_" + secrets.token_urlsafe(24),
            "stripe_user_id": issued.account_id,
            "token_type": "bearer",
        }

    @app.post("/oauth/token")
    async def oauth_token(request: Request, key: api_key) -> dict[str, Any]:
        return await token(request, key)

    @app.post("/v1/oauth/token")
    async def oauth_token_v1(request: Request, key: api_key) -> dict[str, Any]:
        return await token(request, key)

    @app.post("/oauth/deauthorize")
    async def oauth_deauthorize(request: Request, _key: api_key) -> dict[str, str]:
        form = dict(await _form_pairs(request))
        account_id = form.get("stripe_user_id", "")
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError(400, "invalid_request", "No client_id provided.")
        if account.connected.get(account_id) != client_id:
            raise OAuthError(
                401,
                "invalid_client",
                f"This application is not connected to stripe account {account_id}, or that "
                "account does not exist.",
            )
        deauthorize(account_id)
        return {"stripe_user_id": account_id}

    def deauthorize(account_id: str) -> dict[str, Any]:
        client_id = account.connected.pop(account_id)
        application = {"id": client_id, "object": "application", "name": APPLICATION_NAME}
        return account.emit(DEAUTHORIZED_EVENT, application, account=account_id)

    @app.get("/v1/accounts/{account_id}")
    async def retrieve_account(account_id: str, key: api_key) -> dict[str, Any]:
        if account_id not in account.accounts:
            raise _no_such("account", account_id, "account")
        return account.accounts[account.reachable(account_id, key)]

    @app.get("/_sandbox/accounts")
    async def list_accounts() -> list[dict[str, Any]]:
        def ids(objects: dict[str, Any], account_id: str) -> list[str]:
            return [obj_id for obj_id in objects if account.owner.visible(obj_id, account_id)]

        return [
            {
                "id": account_id,
                "business_name": seller["business_profile"]["name"],
                "connected_to": account.connected.get(account_id),
                "payment_intents": ids(account.payment_intents, account_id),
                "checkout_sessions": ids(account.checkout_sessions, account_id),
                "charges": ids(account.charges, account_id),
                "refunds": ids(account.refunds, account_id),
            }
            for account_id, seller in account.accounts.items()
        ]

    @app.post("/_sandbox/accounts/{account_id}/deauthorize")
    async def seller_deauthorizes(account_id: str) -> Response:
        if account_id not in account.connected:
            return JSONResponse(
                {"detail": f"{account_id} is not connected to the platform"}, status_code=404
            )
        event = deauthorize(account_id)
        return JSONResponse({"account": account_id, "event": event["id"]})


def _error_page(problem: str) -> HTMLResponse:
    return consent_error_page("Stripe Connect (sandbox): error", problem)


def _consent_page(params: dict[str, str], sellers: dict[str, Any]) -> HTMLResponse:
    """Stripe's consent page: a new account (preselected) or an existing one."""
    hidden = ("client_id", "redirect_uri", "state", "scope", "response_type")
    accounts = [
        labelled_input("radio", "account", "new", "A new account", checked=True),
        *(
            labelled_input(
                "radio",
                "account",
                account_id,
                f"{seller['business_profile']['name']} ({account_id})",
            )
            for account_id, seller in sellers.items()
        ),
        labelled_input("text", "business_name", "", "Business name"),
        labelled_input("text", "default_currency", "eur", "Currency"),
    ]
    return consent_page(
        title="Connect with Stripe (sandbox)",
        heading="Connect your Stripe account",
        action="/oauth/authorize",
        hidden={name: params[name] for name in hidden if name in params},
        fieldsets=[("Account", accounts)],
        approve="Connect",
    )


async def approve_consent(authorization_url: str, *, decision: str = "approve") -> str:
    """Open the sandbox's consent page at ``authorization_url`` and press Connect with what
    it preselects (a new account), as the seller's browser would; return where it
    redirects (the caller's ``redirect_uri`` with ``code``, ``scope`` and ``state``).
    ``decision="deny"`` presses Cancel instead.

    :raises RuntimeError: the page refused the request (its error text).
    """
    return await submit_consent(authorization_url, decision=decision)


def code_of(location: str) -> str:
    """The ``code`` of a consent redirect."""
    return dict(parse_qsl(urlsplit(location).query))["code"]
