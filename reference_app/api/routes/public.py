"""The public storefront: published sellpages for shoppers, without authentication.

Requests are throttled per client IP (audit §9, B7). A page is rendered once and served
from Redis until the seller changes it (audit B8); each answer carries a strong ``ETag``
and ``Cache-Control``, so browsers and CDNs can hold it, and a client revalidating with
``If-None-Match`` gets a bodiless 304.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status

from pixecom_core.catalog import PublicSellpage, Storefront, StorefrontCache
from reference_app.api.dependencies import PublicThrottle
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(prefix="/public", tags=["storefront"])

#: How long past ``max-age`` a cache may serve a page while it fetches a fresh one.
STALE_WHILE_REVALIDATE_SECONDS = 30


def storefront(resources: ResourcesDep) -> Storefront:
    """The storefront over the app's pool and Redis client."""
    return Storefront(
        resources.sessions,
        resources.settings,
        StorefrontCache(resources.redis, resources.settings),
    )


StorefrontDep = Annotated[Storefront, Depends(storefront)]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110
    §13.1.2: ``W/"x"`` matches ``"x"``; ``*`` matches any current representation)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


@router.get(
    "/sellpages/{slug}",
    response_model=PublicSellpage,
    summary="A published sellpage",
    dependencies=[PublicThrottle],
    responses={
        status.HTTP_304_NOT_MODIFIED: {
            "description": "The client's copy (If-None-Match) is current."
        },
        **error_responses(404, 422, 429),
    },
)
async def public_sellpage(
    slug: str,
    shop: StorefrontDep,
    resources: ResourcesDep,
    if_none_match: Annotated[str | None, Header(description="ETag of a cached copy.")] = None,
) -> Response:
    """The sellpage's title, content and product with its current price; 404 for an
    unknown or unpublished slug, 429 with ``Retry-After`` when the IP is throttled."""
    page = await shop.sellpage(slug)
    max_age = resources.settings.public_cache_seconds
    headers = {
        "ETag": page.etag,
        "Cache-Control": (
            f"public, max-age={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECONDS}"
        ),
    }
    if etag_matches(if_none_match, page.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=page.body, media_type="application/json", headers=headers)
