"""The sellpage page shoppers land on from an ad: ``GET /s/{slug}`` (issue 17 item 1).

HTML rendered by :mod:`reference_app.sellpage` from the storefront document the JSON
route ``GET /public/sellpages/{slug}`` serves — the same :class:`Storefront` call, so a
warm page is answered from Redis without SQL. The HTML does not depend on the query
string (the checkout script reads the landing URL in the browser), so nginx or a CDN may
cache one copy per slug for ``max-age`` and serve it stale while revalidating; the strong
``ETag`` is a hash of the bytes and ``If-None-Match`` gets a bodiless 304.

Outside the OpenAPI document: it is a page for browsers, not an API operation (its 404
is a page too, not the API's error shape).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from pixecom_core.catalog.storefront import MISSING_TTL_SECONDS
from pixecom_core.errors import NotFoundError
from reference_app.api.dependencies import PublicThrottle
from reference_app.api.resources import ResourcesDep
from reference_app.api.routes.public import StorefrontDep, etag_matches
from reference_app.sellpage import (
    NOT_FOUND_CONTENT_SECURITY_POLICY,
    gateway_choices,
    not_found_page,
    render_sellpage,
    security_headers,
)

router = APIRouter(tags=["storefront"])

#: Where the page is served; ``/s/`` is what issue 17 item 5's micro-cache keys on.
SELLPAGE_PAGE_PATH = "/s/{slug}"
#: How long past ``max-age`` a cache may serve the page while it fetches a fresh one:
#: longer than the JSON route's, as a burst of ad clicks should never wait on the API.
STALE_WHILE_REVALIDATE_SECONDS = 300
HTML = "text/html; charset=utf-8"


def _answer(request: Request, body: bytes, status_code: int, headers: dict[str, str]) -> Response:
    """``body`` with ``headers``; for HEAD, the same headers (length included), no body."""
    if request.method == "HEAD":
        headers = {**headers, "Content-Length": str(len(body))}
        return Response(status_code=status_code, media_type=HTML, headers=headers)
    return Response(content=body, status_code=status_code, media_type=HTML, headers=headers)


@router.api_route(
    SELLPAGE_PAGE_PATH,
    methods=["GET", "HEAD"],
    include_in_schema=False,
    dependencies=[PublicThrottle],
    response_class=Response,
)
async def sellpage_page(
    slug: str,
    request: Request,
    shop: StorefrontDep,
    resources: ResourcesDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The published sellpage as HTML; a small 404 page for an unknown or unpublished slug."""
    try:
        page = await shop.sellpage(slug)
    except NotFoundError:
        # As long as the storefront remembers the miss; publishing the slug ends both.
        headers = {
            **security_headers(NOT_FOUND_CONTENT_SECURITY_POLICY),
            "Cache-Control": f"public, max-age={MISSING_TTL_SECONDS}",
        }
        return _answer(request, not_found_page(), status.HTTP_404_NOT_FOUND, headers)
    html = render_sellpage(page, gateway_choices(resources.providers))
    max_age = resources.settings.public_cache_seconds
    headers = {
        **security_headers(html.content_security_policy),
        "ETag": html.etag,
        "Cache-Control": (
            f"public, max-age={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECONDS}"
        ),
    }
    if etag_matches(if_none_match, html.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return _answer(request, html.body, status.HTTP_200_OK, headers)
