"""Catalog: sellpages, products and their append-only pricing rules, and the public
storefront that serves published sellpages to shoppers."""

from pixecom_core.catalog.services import (
    UNSET,
    CatalogService,
    ProductChanges,
    SellpageChanges,
    StorefrontInvalidator,
    Unset,
)
from pixecom_core.catalog.storefront import (
    PublicPrice,
    PublicProduct,
    PublicSellpage,
    RenderedSellpage,
    Storefront,
    StorefrontCache,
)

__all__ = [
    "UNSET",
    "CatalogService",
    "ProductChanges",
    "PublicPrice",
    "PublicProduct",
    "PublicSellpage",
    "RenderedSellpage",
    "SellpageChanges",
    "Storefront",
    "StorefrontCache",
    "StorefrontInvalidator",
    "Unset",
]
