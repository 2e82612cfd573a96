"""Seller-scoped repositories for the catalog tables, and the public slug directory."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from pixecom_core.models.catalog import (
    PricingRule,
    Product,
    ProductStatus,
    PublicSellpageSlug,
    Sellpage,
    SellpageStatus,
)
from pixecom_core.tenancy import Page, PageRequest, SellerRepository


class ProductRepository(SellerRepository[Product]):
    """Products of the scope's seller, oldest first."""

    model: ClassVar[type[Product]] = Product

    async def list_products(
        self, page: PageRequest, *, status: ProductStatus | None = None
    ) -> Page[Product]:
        """One bounded page of products, optionally only those with ``status``."""
        filters = [] if status is None else [col(Product.status) == status]
        return await self.list(page, *filters)

    async def get_for_price_change(self, id: uuid.UUID) -> Product | None:
        """The product, row-locked so concurrent price changes of it run one after another.

        ``FOR NO KEY UPDATE`` does not block the key-share locks that foreign-key checks
        of new pricing rules and sellpages take.
        """
        statement = (
            select(Product)
            .where(self._seller_filter, col(Product.id) == id)
            .with_for_update(key_share=True)
        )
        return (await self.scope.session.scalars(statement)).first()


class SellpageRepository(SellerRepository[Sellpage]):
    """Sellpages of the scope's seller, oldest first."""

    model: ClassVar[type[Sellpage]] = Sellpage

    async def list_sellpages(
        self, page: PageRequest, *, status: SellpageStatus | None = None
    ) -> Page[Sellpage]:
        """One bounded page of sellpages, optionally only those with ``status``."""
        filters = [] if status is None else [col(Sellpage.status) == status]
        return await self.list(page, *filters)


class PricingRuleRepository(SellerRepository[PricingRule]):
    """Pricing rules of the scope's seller, newest first (price history reads backwards)."""

    model: ClassVar[type[PricingRule]] = PricingRule
    descending: ClassVar[bool] = True

    async def list_for_product(self, page: PageRequest, product_id: uuid.UUID) -> Page[PricingRule]:
        """One bounded page of the rules of ``product_id``, newest first."""
        return await self.list(page, col(PricingRule.product_id) == product_id)

    async def open_rule(
        self, product_id: uuid.UUID, sellpage_id: uuid.UUID | None
    ) -> PricingRule | None:
        """The rule of (product, sellpage) that has no end yet; at most one exists."""
        statement = select(PricingRule).where(
            self._seller_filter,
            col(PricingRule.product_id) == product_id,
            _same_sellpage(sellpage_id),
            col(PricingRule.effective_until).is_(None),
        )
        return (await self.scope.session.scalars(statement)).first()

    async def rule_in_effect(
        self, product_id: uuid.UUID, sellpage_id: uuid.UUID, at: datetime
    ) -> PricingRule | None:
        """The rule pricing ``product_id`` on ``sellpage_id`` at ``at``: the sellpage's own
        rule when one is in effect, else the product-wide one (``sellpage_id`` NULL)."""
        statement = (
            select(PricingRule)
            .where(
                self._seller_filter,
                col(PricingRule.product_id) == product_id,
                _this_sellpage_or_product_wide(sellpage_id),
                col(PricingRule.effective_from) <= at,
                or_(
                    col(PricingRule.effective_until).is_(None),
                    col(PricingRule.effective_until) > at,
                ),
            )
            # false sorts before true: the sellpage's own rule wins over the product-wide one.
            .order_by(
                col(PricingRule.sellpage_id).is_(None), col(PricingRule.effective_from).desc()
            )
            .limit(1)
        )
        return (await self.scope.session.scalars(statement)).first()

    async def next_change_after(
        self, product_id: uuid.UUID, sellpage_id: uuid.UUID, at: datetime
    ) -> datetime | None:
        """When the price of ``product_id`` on ``sellpage_id`` next changes after ``at``
        (a scheduled rule starts or a rule ends), or ``None`` if nothing is scheduled."""
        starts = func.min(col(PricingRule.effective_from)).filter(
            col(PricingRule.effective_from) > at
        )
        ends = func.min(col(PricingRule.effective_until)).filter(
            col(PricingRule.effective_until) > at
        )
        statement = select(starts, ends).where(
            self._seller_filter,
            col(PricingRule.product_id) == product_id,
            _this_sellpage_or_product_wide(sellpage_id),
        )
        row = (await self.scope.session.execute(statement)).one()
        moments: list[datetime] = [moment for moment in row if moment is not None]
        return min(moments, default=None)


def _same_sellpage(sellpage_id: uuid.UUID | None) -> ColumnElement[bool]:
    column = col(PricingRule.sellpage_id)
    return column.is_(None) if sellpage_id is None else column == sellpage_id


def _this_sellpage_or_product_wide(sellpage_id: uuid.UUID) -> ColumnElement[bool]:
    column = col(PricingRule.sellpage_id)
    return or_(column == sellpage_id, column.is_(None))


class PublicSlugDirectory:
    """The public slug → (seller, sellpage) directory, read before any scope exists.

    Not seller-owned: it holds only what is in public URLs, and the app role may only
    SELECT it (a trigger on ``sellpages`` maintains it).
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def resolve(self, slug: str) -> PublicSellpageSlug | None:
        """The directory entry for ``slug``, or ``None`` if no sellpage claims it."""
        statement = select(PublicSellpageSlug).where(col(PublicSellpageSlug.slug) == slug)
        return (await self.session.scalars(statement)).first()
