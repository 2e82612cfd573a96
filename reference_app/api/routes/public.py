"""The public storefront: published sellpages for shoppers, without authentication.

Requests are throttled per client IP (SEC-1). A page is rendered once and served
from Redis until the seller changes it (SCALE-6); each answer carries a strong ``ETag``
and ``Cache-Control``, so browsers and CDNs can hold it, and a client revalidating with
``If-None-Match`` gets a bodiless 304.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl

from pixecom_core.catalog import PublicSellpage, Storefront, StorefrontCache
from pixecom_core.orders.attribution import Attribution, LandingUrl, ShopperContext
from pixecom_core.orders.checkout import Checkout, CheckoutRequest
from pixecom_core.providers.values import Quantity
from reference_app.api.dependencies import PublicThrottle
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep

router = APIRouter(prefix="/public", tags=["storefront"])

#: How long past ``max-age`` a cache may serve a page while it fetches a fresh one.
STALE_WHILE_REVALIDATE_SECONDS = 30


async def storefront(resources: ResourcesDep) -> Storefront:
    """The storefront over the app's pool and Redis client."""
    return Storefront(
        resources.sessions,
        resources.settings,
        StorefrontCache(resources.redis, resources.settings),
    )


StorefrontDep = Annotated[Storefront, Depends(storefront)]


def cache_control(max_age: int) -> str:
    """The ``Cache-Control`` of a public sellpage kept ``max_age`` seconds."""
    return f"public, max-age={max_age}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECONDS}"


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
    # reference_app.api.storefront_hits answers cache hits with the same headers.
    headers = {"ETag": page.etag, "Cache-Control": cache_control(max_age)}
    if etag_matches(if_none_match, page.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=page.body, media_type="application/json", headers=headers)


class CheckoutIn(BaseModel):
    """A shopper's order from a sellpage; the price is the one in effect, never sent.

    Where the shopper came from is kept with the order: send the page's `landing_url` as
    the shopper arrived on it (the ad's URL with its parameters), `attribution` fields the
    storefront read itself, or both — a field given in `attribution` wins over the URL's.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    # An installed gateway's identifier; the app names no plugin.
                    "gateway": "examplepay",
                    "customer_email": "shopper@example.com",
                    "quantity": 1,
                    "return_url": "https://shop.example.com/thanks",
                    "cancel_url": "https://shop.example.com/cart",
                    "landing_url": "https://shop.example.com/p/spring-sale?utm_source=social"
                    "&utm_medium=paid_social&utm_campaign=Spring%20Sale"
                    "&campaign_id=120210000000000001&adset_id=120210000000000002"
                    "&ad_id=120210000000000003&fbclid=IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQ",
                }
            ]
        }
    )

    gateway: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    customer_email: EmailStr = Field(max_length=254)
    # Issue 12 item 5: a JSON integer within bounds, never coerced from "2" or 2.0.
    quantity: Quantity = 1
    return_url: HttpUrl
    cancel_url: HttpUrl
    # Issue 16 item 3: bounded and validated here, a field path in the 422.
    landing_url: LandingUrl | None = None
    attribution: Attribution | None = Field(
        default=None,
        description="Attribution the storefront read itself (e.g. kept from an earlier "
        "page); each field given wins over `landing_url`'s.",
    )
    # Issue 17 item 3: the ad network pixel's browser ids, for its conversions API. Read
    # from the `_fbp`/`_fbc` cookies when the storefront is on the API's origin; given
    # here when it is not. A malformed value is dropped, never refused.
    fbp: str | None = Field(
        default=None, max_length=600, description="The pixel's browser id (`_fbp` cookie)."
    )
    fbc: str | None = Field(
        default=None, max_length=600, description="The pixel's click id (`_fbc` cookie)."
    )


class CheckoutOut(BaseModel):
    """The pending order and what the storefront needs to let the shopper pay."""

    order_id: uuid.UUID
    amount_minor: int
    currency: str
    gateway: str
    gateway_reference: str = Field(description="The gateway's payment id.")
    client_secret: str | None = Field(
        default=None, description="For gateways confirmed client-side, by their browser SDK."
    )
    approval_url: str | None = Field(
        default=None, description="For gateways that redirect the shopper to approve the payment."
    )


@router.post(
    "/sellpages/{slug}/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutOut,
    summary="Order from a sellpage and start paying",
    dependencies=[PublicThrottle],
    responses=error_responses(404, 409, 422, 429, 502, 503),
)
async def place_order(
    slug: str, body: CheckoutIn, resources: ResourcesDep, request: Request
) -> CheckoutOut:
    """Creates a PENDING order at the current price and the chosen gateway's payment.

    The order becomes PAID when the gateway's webhook reports the capture. It keeps its
    attribution — UTM parameters, Meta's `fbclid`, the ad network's campaign, ad set and ad
    ids — from `landing_url` and `attribution` (whose fields win); `GET /orders/{id}` shows
    it. An unfilled macro such as `{{campaign.id}}` (a previewed ad) is stored as absent;
    a value out of bounds is a 422 whose `details` name the field (`landing_url`, or e.g.
    `attribution.utm_source`), and nothing is ordered. The pixel's browser ids (`fbp`,
    `fbc`, else the `_fbp`/`_fbc` cookies), the shopper's address and user agent are kept
    for the ad network's conversions API (issue 17); a malformed one is dropped.
    """
    shopper = ShopperContext.kept(
        fbp=body.fbp or request.cookies.get("_fbp"),
        fbc=body.fbc or request.cookies.get("_fbc"),
        client_ip=request.client.host if request.client is not None else None,
        user_agent=request.headers.get("user-agent"),
    )
    placed = await Checkout(
        resources.sessions, resources.settings, resources.providers, resources.payment_connections
    ).place_order(
        CheckoutRequest(
            slug=slug,
            gateway=body.gateway,
            customer_email=str(body.customer_email),
            quantity=body.quantity,
            return_url=str(body.return_url),
            cancel_url=str(body.cancel_url),
            landing_url=body.landing_url,
            attribution=body.attribution,
            shopper=shopper,
        )
    )
    secret = placed.session.client_secret
    return CheckoutOut(
        order_id=placed.order_id,
        amount_minor=placed.amount_minor,
        currency=placed.currency,
        gateway=placed.session.gateway,
        gateway_reference=placed.session.gateway_reference,
        client_secret=secret.get_secret_value() if secret is not None else None,
        approval_url=placed.session.approval_url,
    )
