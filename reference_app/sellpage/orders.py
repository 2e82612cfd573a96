"""What the sellpage's thanks page may read about an order: its status and total, and
nothing about the shopper.

The shopper's browser holds the order id (checkout answered it; ids are random UUIDs), so
the id is the capability. The answer is still bound to the page: the slug is resolved
through the storefront's public slug directory, the seller's scope is opened as checkout
opens it, and an order that is not this sellpage's is not found, exactly like an id that
does not exist. Publication is not checked: a shopper coming back from the payment page
still sees the status if the seller unpublished the page meanwhile.

Composed from core's services (:class:`PublicSlugDirectory`, :class:`OrderService`); it
belongs in ``pixecom_core.orders`` next to checkout once another storefront needs it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.catalog.repositories import PublicSlugDirectory
from pixecom_core.catalog.storefront import is_valid_slug
from pixecom_core.errors import NotFoundError
from pixecom_core.models.orders import OrderStatus
from pixecom_core.orders.services import OrderService
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerContext


def parse_order_id(text: str) -> uuid.UUID:
    """``text`` as an order id; :class:`NotFoundError` for anything else (a malformed id
    names no order, so it gets the same answer as an unknown one)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFoundError("no such order on this page") from None


@dataclass(frozen=True)
class SellpageOrder:
    """What the thanks page may know of an order: its status and what it costs (for the
    seller's pixel to report the purchase); nothing about the shopper."""

    status: OrderStatus
    total_minor: int
    currency: str


async def sellpage_order_status(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, slug: str, order_id: uuid.UUID
) -> SellpageOrder:
    """The status and total of order ``order_id`` placed on the sellpage at ``slug``.

    :raises NotFoundError: the slug names no sellpage, or the order does not exist or was
        not placed on that sellpage (the three are not told apart).
    """
    if not is_valid_slug(slug):
        raise NotFoundError("no such order on this page")
    async with sessions() as session:
        claim = await PublicSlugDirectory(session).resolve(slug)
    if claim is None:
        raise NotFoundError("no such order on this page")
    context = SellerContext(seller_id=claim.seller_id, sessions=sessions, settings=settings)
    try:
        order = await OrderService(context).get_order(order_id)
    except NotFoundError:
        raise NotFoundError("no such order on this page") from None
    if order.sellpage_id != claim.sellpage_id:
        raise NotFoundError("no such order on this page")
    return SellpageOrder(order.status, order.total_minor, order.currency.strip())
