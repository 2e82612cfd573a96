"""The sellpage page shoppers land on from an ad: ``GET /s/{slug}`` (issue 17 item 1).

HTML rendered by :mod:`reference_app.sellpage` from the storefront document the JSON
route ``GET /public/sellpages/{slug}`` serves — the same :class:`Storefront` call, so a
warm page is answered from Redis without SQL. The HTML does not depend on the query
string (the checkout script reads the landing URL in the browser), so nginx or a CDN may
cache one copy per slug for ``max-age`` and serve it stale while revalidating; the strong
``ETag`` is a hash of the bytes and ``If-None-Match`` gets a bodiless 304.

The shopper comes back from the gateway's payment page to ``/s/{slug}/thanks`` or
``/s/{slug}/cancelled`` (issue 17 item 2): pages of the same renderer and headers, but
``Cache-Control: no-store``, as their address names an order (the deploy kit's nginx
caches only ``/s/{slug}`` itself, one path segment). The thanks page's script reads
``GET /s/{slug}/orders/{order_id}/status`` until the payment is confirmed: the order's
status and nothing else, only for an order placed on that sellpage.

Outside the OpenAPI document: these are pages for browsers and the pages' own read, not
API operations (a page's 404 is a page too, not the API's error shape).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pixecom_core.catalog.storefront import MISSING_TTL_SECONDS
from pixecom_core.errors import NotFoundError
from pixecom_core.models.orders import OrderStatus
from pixecom_core.stats.currency import exponent
from reference_app.api.dependencies import PublicThrottle
from reference_app.api.resources import ResourcesDep
from reference_app.api.routes.public import StorefrontDep, etag_matches
from reference_app.sellpage import (
    CANCELLED_PATH,
    NOT_FOUND_CONTENT_SECURITY_POLICY,
    ORDER_STATUS_PATH,
    THANKS_PATH,
    OrderResult,
    gateway_choices,
    not_found_page,
    render_order_result,
    render_sellpage,
    security_headers,
)
from reference_app.sellpage.orders import parse_order_id, sellpage_order_status

router = APIRouter(tags=["storefront"])

#: Where the page is served; ``/s/`` is what issue 17 item 5's micro-cache keys on.
SELLPAGE_PAGE_PATH = "/s/{slug}"
#: How long past ``max-age`` a cache may serve the page while it fetches a fresh one:
#: longer than the JSON route's, as a burst of ad clicks should never wait on the API.
STALE_WHILE_REVALIDATE_SECONDS = 300
HTML = "text/html; charset=utf-8"
#: The result pages and the status read name an order: no cache may keep them.
NO_STORE = "no-store"


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
    html = render_sellpage(page, gateway_choices(resources.providers), resources.providers)
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


async def _order_result(
    request: Request, slug: str, shop: StorefrontDep, resources: ResourcesDep, result: OrderResult
) -> Response:
    try:
        page = await shop.sellpage(slug)
    except NotFoundError:
        headers = {**security_headers(NOT_FOUND_CONTENT_SECURITY_POLICY), "Cache-Control": NO_STORE}
        return _answer(request, not_found_page(), status.HTTP_404_NOT_FOUND, headers)
    html = render_order_result(page, result, resources.providers)
    headers = {**security_headers(html.content_security_policy), "Cache-Control": NO_STORE}
    return _answer(request, html.body, status.HTTP_200_OK, headers)


@router.api_route(
    THANKS_PATH,
    methods=["GET", "HEAD"],
    include_in_schema=False,
    dependencies=[PublicThrottle],
    response_class=Response,
)
async def thanks_page(
    slug: str, request: Request, shop: StorefrontDep, resources: ResourcesDep
) -> Response:
    """Where the gateway sends a shopper who paid: the order number and its status, read
    again until the payment is confirmed; the 404 page for an unknown or unpublished slug."""
    return await _order_result(request, slug, shop, resources, "thanks")


@router.api_route(
    CANCELLED_PATH,
    methods=["GET", "HEAD"],
    include_in_schema=False,
    dependencies=[PublicThrottle],
    response_class=Response,
)
async def cancelled_page(
    slug: str, request: Request, shop: StorefrontDep, resources: ResourcesDep
) -> Response:
    """Where the gateway sends a shopper who left its payment page: nothing was charged,
    and a link to order again."""
    return await _order_result(request, slug, shop, resources, "cancelled")


class SellpageOrderStatus(BaseModel):
    """What the thanks page may know about an order: its status and total (the seller's
    pixel reports the purchase's value), no personal data."""

    status: OrderStatus
    value: float = Field(description="The order's total in major units (19.99).")
    currency: str


@router.get(
    ORDER_STATUS_PATH,
    include_in_schema=False,
    dependencies=[PublicThrottle],
    response_model=SellpageOrderStatus,
)
async def sellpage_order_status_read(
    slug: str, order_id: str, resources: ResourcesDep
) -> JSONResponse:
    """The status of an order placed on the sellpage at ``slug``; the API's 404 for any
    other id, malformed ones included (an order id is a random UUID: it is the key)."""
    found = await sellpage_order_status(
        resources.sessions, resources.settings, slug, parse_order_id(order_id)
    )
    value = float(Decimal(found.total_minor).scaleb(-exponent(found.currency)))
    return JSONResponse(
        SellpageOrderStatus(status=found.status, value=value, currency=found.currency).model_dump(
            mode="json"
        ),
        headers={"Cache-Control": NO_STORE},
    )
