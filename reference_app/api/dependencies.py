"""Annotated dependencies every router uses: the acting seller, paging, client IP.

``CurrentSeller`` is the only way a route learns which seller it serves: the seller id
comes from a verified access token, never from a path, query or body (TENANT-1). Each
authenticated request also counts against the seller's request quota, and each public
request against its client IP's, on Redis (SEC-1).

Every dependency here is ``async def`` even when it awaits nothing: FastAPI runs a plain
``def`` dependency in a worker thread, a hand-off that cost a measurable share of a
request's CPU under load; these never block. ``tests/app/test_async_handlers.py`` keeps
every route's dependencies and handler on the event loop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Scope

from pixecom_core.accounts.service import session_revoked
from pixecom_core.errors import AuthenticationError
from pixecom_core.observability import bind_log_context
from pixecom_core.security.access_tokens import AccessClaims
from pixecom_core.security.rate_limits import Limit, RateLimited, Vetoed
from pixecom_core.settings import Settings
from pixecom_core.tenancy import PageRequest, SellerContext
from reference_app.api.dashboard_prefetch import keep_prefetched, prefetch_keys
from reference_app.api.resources import AppResources, ResourcesDep

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/login.")

#: Longest cursor accepted; ours are far shorter, anything longer is not one of ours.
MAX_CURSOR_LENGTH = 512
#: The request state entry naming the seller a request acts as: after a successful write,
#: :class:`reference_app.api.dashboard_reads.DashboardWriteMiddleware` makes that seller's
#: cached dashboard reads stale.
ACTING_SELLER_STATE = "acting_seller_id"


#: The request state entry where :mod:`reference_app.api.storefront_hits` leaves the
#: outcome of the public rate limit it already counted for the request: ``True``
#: (counted, admitted) or the :class:`RateLimited` refusal. :func:`public_throttle` then
#: answers with it instead of counting the request a second time.
PUBLIC_THROTTLE_STATE = "public_throttle_outcome"


def client_address(scope: Scope, trusted_proxies: Collection[str]) -> str:
    """The client's address: the peer, or — only when the peer is a trusted proxy — the
    nearest untrusted address in ``X-Forwarded-For``."""
    client = scope.get("client")
    peer: str = client[0] if client else "unknown"
    if peer not in trusted_proxies:
        return peer
    forwarded = ""
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
            break
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # a forged or broken header: stop at what we can trust
        if address not in trusted_proxies:
            return address
    return peer


async def client_ip(request: Request, resources: ResourcesDep) -> str:
    """The client's address (:func:`client_address` with the settings' trusted proxies)."""
    return client_address(request.scope, resources.settings.trusted_proxies)


ClientIP = Annotated[str, Depends(client_ip)]


#: The request state entry where :mod:`reference_app.api.dashboard_hits` leaves the
#: admission it already made for the request's access token: ``(token, claims)`` when
#: admitted and counted, ``(token, refusal)`` when the seller's quota refused it.
#: :func:`access_claims` then answers with it instead of counting the request again.
SELLER_ADMISSION_STATE = "seller_admission"


async def admit_seller_request(
    scope: Scope, resources: AppResources, access_token: str
) -> AccessClaims:
    """Admit an authenticated request: verify ``access_token``, refuse a revoked login,
    count the seller's quota — and read the request's guessed dashboard cache entry with
    them (:mod:`reference_app.api.dashboard_prefetch`) — in one Redis round trip.

    Raises :class:`AuthenticationError` (invalid, expired or revoked: nothing counted),
    :class:`RateLimited` (counted, refused) or a Redis error.
    """
    accounts = resources.accounts
    claims = accounts.verify_signature(access_token)
    # Issue 18 item 1: the login's revocation and the seller's quota in one round trip;
    # a revoked login's request is refused before it is counted, as it always was.
    # A dashboard read's cache entry comes with them when this process can guess its key
    # (reference_app.api.dashboard_prefetch).
    revoked = accounts.revocations.key_for(claims)
    keys = prefetch_keys(scope, resources.dashboards, claims.seller_id)
    try:
        values = await resources.limiter.hit_and_read(
            resources.redis,
            Limit("seller", resources.settings.seller_request_rate),
            [str(claims.seller_id)],
            keys,
            unless_exists=() if revoked is None else (revoked,),
        )
    except Vetoed:
        raise session_revoked() from None
    keep_prefetched(scope, keys, values)
    scope.setdefault("state", {})[ACTING_SELLER_STATE] = claims.seller_id
    # Issue 7: every log line of this request from here on names the seller.
    bind_log_context(seller_id=str(claims.seller_id))
    return claims


async def access_claims(
    request: Request,
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessClaims:
    """The verified claims of the request's bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("missing bearer access token", code="unauthenticated")
    admitted = request.scope.get("state", {}).get(SELLER_ADMISSION_STATE)
    if isinstance(admitted, tuple) and admitted[0] == credentials.credentials:
        # Admitted before routing (reference_app.api.dashboard_hits): counted once.
        outcome = admitted[1]
        if isinstance(outcome, RateLimited):
            raise outcome
        if isinstance(outcome, AccessClaims):
            bind_log_context(seller_id=str(outcome.seller_id))
            return outcome
    return await admit_seller_request(request.scope, resources, credentials.credentials)


Claims = Annotated[AccessClaims, Depends(access_claims)]


async def current_seller(resources: ResourcesDep, claims: Claims) -> SellerContext:
    """The authenticated seller as a :class:`SellerContext` for core services."""
    return SellerContext(
        seller_id=claims.seller_id,
        user_id=claims.user_id,
        sessions=resources.sessions,
        settings=resources.settings,
    )


CurrentSeller = Annotated[SellerContext, Depends(current_seller)]


async def reporting_seller(resources: ResourcesDep, claims: Claims) -> SellerContext:
    """The authenticated seller, reading from the read replica when one is configured:
    for dashboard reports only, which tolerate a little replica lag and never write."""
    return SellerContext(
        seller_id=claims.seller_id,
        user_id=claims.user_id,
        sessions=resources.report_sessions,
        settings=resources.settings,
    )


ReportingSeller = Annotated[SellerContext, Depends(reporting_seller)]


async def public_throttle(request: Request, resources: ResourcesDep, ip: ClientIP) -> None:
    """Count a public (storefront) request against its client IP's limit — once: a
    request the storefront's cache path already counted is not counted again."""
    counted = request.scope.get("state", {}).get(PUBLIC_THROTTLE_STATE)
    if isinstance(counted, RateLimited):
        raise counted
    if counted is True:
        return
    await resources.limiter.hit(public_ip_limit(resources.settings), ip)


def public_ip_limit(settings: Settings) -> Limit:
    """The per-client-IP limit of public requests."""
    return Limit("public-ip", settings.public_ip_rate)


PublicThrottle = Depends(public_throttle)


async def page_request(
    limit: Annotated[
        int | None,
        Query(ge=1, description="Items per page; values above the maximum are clamped."),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageRequest:
    """Paging parameters of a list route (SCALE-4: the page size is always bounded)."""
    return PageRequest(limit=limit, cursor=cursor)


Paging = Annotated[PageRequest, Depends(page_request)]
