"""Seller-scoped repositories for the catalog tables."""

from __future__ import annotations

from typing import ClassVar

from pixecom_core.models.catalog import PricingRule, Product, Sellpage
from pixecom_core.tenancy import SellerRepository


class ProductRepository(SellerRepository[Product]):
    """Products of the scope's seller, oldest first."""

    model: ClassVar[type[Product]] = Product


class SellpageRepository(SellerRepository[Sellpage]):
    """Sellpages of the scope's seller, oldest first."""

    model: ClassVar[type[Sellpage]] = Sellpage


class PricingRuleRepository(SellerRepository[PricingRule]):
    """Pricing rules of the scope's seller, newest first (price history reads backwards)."""

    model: ClassVar[type[PricingRule]] = PricingRule
    descending: ClassVar[bool] = True
