"""A seller's own ad accounts: connect them through the network's consent page (or a
pasted token), choose which accounts to sync, see how each stands, disconnect.

Thin over :class:`pixecom_core.ad_accounts.connections.AdConnections`. The callback is
reached by the seller's browser coming back from the network, which carries no bearer
token (the dashboard keeps its login in the page, not in a cookie): the signed, single-use
``state`` names the seller. When the request does carry the seller's credentials, they
must be the state's seller's. Tokens are never part of a response.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request

from pixecom_core.ad_accounts.connections import (
    AccountState,
    AccountView,
    ConnectionRefused,
    ReachableAccountView,
    StartedConnection,
)
from pixecom_core.errors import AuthenticationError, PermissionDeniedError
from pixecom_core.models.ads import AdConnectionStatus
from reference_app.api.consent import binding_cookies, browser_refusal, set_binding_cookie
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.schemas import PageOut

_log = logging.getLogger(__name__)

router = APIRouter(tags=["ad accounts"])

#: Where the callback sends the seller's browser: the dashboard's account chooser.
CHOOSER_PATH = "/dashboard/ad-accounts"
#: The callback's path: the browser-binding cookie is sent there only.
CALLBACK_PATH = "/ad-accounts/connections/callback"

_NETWORK = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[a-z][a-z0-9_]*$",
    description="The network's identifier, as its plugin registers it.",
)


class ConnectionIn(BaseModel):
    """Start connecting a network. With ``access_token`` (a network without a consent page,
    or a token its UI issued), the connection is authorized at once."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"network": "example_ads"}]}
    )

    network: str = _NETWORK
    access_token: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A token the network issued; checked with the network, stored encrypted.",
    )


class ConnectionOut(BaseModel):
    """A connection: open ``authorization_url`` in the seller's browser, or — when already
    ``AUTHORIZED`` (pasted token) — go straight to the chooser."""

    id: uuid.UUID
    network: str
    status: AdConnectionStatus
    authorization_url: str | None = Field(
        description="The network's consent page; valid for 10 minutes, usable once."
    )

    @classmethod
    def of(cls, started: StartedConnection) -> ConnectionOut:
        return cls.model_validate(started, from_attributes=True)


class ReachableAccountOut(BaseModel):
    """An account the connection reaches."""

    external_id: str
    name: str
    currency: str
    timezone: str
    network_status: str = Field(
        description="active, disabled, needs_attention or closed, as the network says."
    )
    connected: bool = Field(description="The seller already syncs this account.")
    ad_account_id: uuid.UUID | None = Field(
        description="The seller's ad account for it, disconnected ones included."
    )

    @classmethod
    def of(cls, account: ReachableAccountView) -> ReachableAccountOut:
        return cls.model_validate(account, from_attributes=True)


class ReachableAccountsOut(BaseModel):
    """The account chooser's list."""

    connection_id: uuid.UUID
    accounts: list[ReachableAccountOut]


class ConnectAccountsIn(BaseModel):
    """The accounts to connect (or reconnect) through an authorized connection."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"connection_id": "00000000-0000-4000-8000-000000000000", "external_ids": ["1"]}
            ]
        },
    )

    connection_id: uuid.UUID
    external_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=200
    )


class AdAccountOut(BaseModel):
    """An ad account of the seller (never its token)."""

    id: uuid.UUID
    network: str
    external_id: str
    name: str
    currency: str
    timezone: str
    state: AccountState = Field(
        description="disconnected; needs_reconnect (the network refused its token); "
        "token_expiring (within 7 days, see token_expires_at); backfilling (history is "
        "being fetched, see backfill_progress); active."
    )
    backfill_progress: float | None = Field(
        description="Share of the history backfill done, 0 to 1, while backfilling."
    )
    token_expires_at: datetime | None
    last_synced_at: datetime | None
    connection_id: uuid.UUID | None

    @classmethod
    def of(cls, account: AccountView) -> AdAccountOut:
        return cls.model_validate(account, from_attributes=True)


class ConnectedAccountsOut(BaseModel):
    """The accounts just connected."""

    accounts: list[AdAccountOut]


async def acting_seller_id(resources: ResourcesDep, request: Request) -> uuid.UUID | None:
    """The seller whose bearer token the request carries, if it carries one (a browser
    coming back from the network does not); a token that is not valid is refused.

    Read from the header, not through a security scheme: the callback requires no token,
    and the OpenAPI document must not say it does."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing bearer access token", code="unauthenticated")
    claims = await resources.accounts.authenticate(token.strip())
    return claims.seller_id


@router.get(
    "/ad-accounts",
    response_model=PageOut[AdAccountOut],
    summary="The seller's ad accounts and how each stands",
    responses=error_responses(400, 401, 422, 429),
)
async def list_ad_accounts(
    seller: CurrentSeller, paging: Paging, resources: ResourcesDep
) -> PageOut[AdAccountOut]:
    """Every ad account of the seller, oldest first, disconnected ones included."""
    page = await resources.ad_connections.list_accounts(seller, paging)
    return PageOut[AdAccountOut].of(page, AdAccountOut.of)


@router.post(
    "/ad-accounts/connections",
    response_model=ConnectionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Start connecting an ad network",
    responses=error_responses(400, 401, 422, 429, 502, 503),
)
async def start_connection(
    body: ConnectionIn,
    seller: CurrentSeller,
    resources: ResourcesDep,
    request: Request,
    response: Response,
) -> ConnectionOut:
    """Answers the network's consent URL (its ``state`` is signed, bound to this seller,
    single-use, valid 10 minutes). With ``access_token``, the network checks the token
    and the connection is ``AUTHORIZED`` at once. 400 ``unknown_network`` for a network no
    plugin provides, ``token_required`` for a network without a consent page."""
    service = resources.ad_connections
    if body.access_token is not None:
        started = await service.connect_with_token(seller, body.network, body.access_token)
    else:
        redirect_uri = str(request.url_for("complete_connection"))
        started = await service.start(seller, body.network, redirect_uri=redirect_uri)
        # The browser that comes back to the callback must be this one (or carry the
        # seller's token).
        set_binding_cookie(
            response, request, started.id, service.browser_binding(started.id), path=CALLBACK_PATH
        )
    return ConnectionOut.of(started)


@router.get(
    "/ad-accounts/connections/callback",
    name="complete_connection",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Where the network sends the seller back after consent",
    responses={
        303: {"description": "Authorized: on to the dashboard's account chooser."},
        **error_responses(400, 401, 403, 422, 429, 502, 503),
    },
)
async def complete_connection(
    resources: ResourcesDep,
    request: Request,
    acting_seller: Annotated[uuid.UUID | None, Depends(acting_seller_id)],
    state: Annotated[str, Query(min_length=1, max_length=2048)],
    code: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    """Verifies the state (signature, expiry, single use, same seller), exchanges the
    code and checks the granted scopes; only then stores the grant, encrypted, and
    redirects (303) to the account chooser. The network's own refusal
    (``error=access_denied``), a bad, reused or expired state and a refused code or
    missing scope answer 400 (``code`` says which) and store nothing; a state of another
    seller answers 403. A browser (``Accept: text/html``) is sent to the Ad accounts
    page with ``?error=<code>`` instead, so the seller reads what happened there."""
    try:
        completed = await resources.ad_connections.complete(
            state=state,
            code=code,
            error=error,
            acting_seller_id=acting_seller,
            browser_bindings=binding_cookies(request),
        )
    except (ConnectionRefused, PermissionDeniedError) as refused:
        # A seller's browser lands on the Ad accounts page, which says what happened; an
        # API client reads the error (400/403) as documented.
        redirect = browser_refusal(request, CHOOSER_PATH, refused.code)
        if redirect is None:
            raise
        return redirect
    # The binding cookie expires with the state; the state itself is used up.
    return RedirectResponse(
        f"{CHOOSER_PATH}?connection={completed.connection_id}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


@router.get(
    "/ad-accounts/connections/{connection_id:uuid}",
    response_model=ReachableAccountsOut,
    summary="The accounts a connection reaches",
    responses=error_responses(401, 404, 422, 429, 502, 503),
)
async def reachable_accounts(
    connection_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> ReachableAccountsOut:
    """Every account the connection's grant reaches, each flagged if already connected;
    404 for a connection of another seller, 422 ``connection_not_authorized``."""
    accounts = await resources.ad_connections.reachable_accounts(seller, connection_id)
    return ReachableAccountsOut(
        connection_id=connection_id, accounts=[ReachableAccountOut.of(a) for a in accounts]
    )


@router.post(
    "/ad-accounts",
    response_model=ConnectedAccountsOut,
    status_code=status.HTTP_201_CREATED,
    summary="Connect (or reconnect) the chosen accounts",
    responses=error_responses(401, 404, 422, 429, 502, 503),
)
async def connect_accounts(
    body: ConnectAccountsIn, seller: CurrentSeller, resources: ResourcesDep
) -> ConnectedAccountsOut:
    """Connects each chosen account with the connection's token; an account the seller
    already has (needing reconnection, or disconnected) gets the new token and is active
    again. 422 ``unreachable_accounts`` (nothing connected) for ids the grant does not
    reach."""
    accounts = await resources.ad_connections.connect_accounts(
        seller, body.connection_id, body.external_ids
    )
    # Queue each planned backfill (a complete one is left alone by its job).
    for account in accounts:
        try:
            await resources.tasks.backfill_account(resources.settings, seller.seller_id, account.id)
        except Exception:  # Redis down: the scheduler's sweep queues it within a minute
            _log.warning("could not queue the backfill of ad account %s", account.id, exc_info=True)
    return ConnectedAccountsOut(accounts=[AdAccountOut.of(a) for a in accounts])


@router.delete(
    "/ad-accounts/{ad_account_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Disconnect an ad account",
    responses=error_responses(401, 404, 422, 429),
)
async def disconnect_ad_account(
    ad_account_id: uuid.UUID, seller: CurrentSeller, resources: ResourcesDep
) -> Response:
    """Stops syncing the account and deletes its stored token; its campaigns and stats
    stay. 404 for an account of another seller."""
    await resources.ad_connections.disconnect(seller, ad_account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
