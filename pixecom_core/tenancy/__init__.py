"""Tenant safety: seller scopes, seller-bound repositories and bounded pagination."""

from pixecom_core.tenancy.context import SellerContext
from pixecom_core.tenancy.pagination import InvalidCursorError, Page, PageRequest
from pixecom_core.tenancy.repository import SellerRepository
from pixecom_core.tenancy.scope import ScopeError, SellerScope, open_seller_scope

__all__ = [
    "InvalidCursorError",
    "Page",
    "PageRequest",
    "ScopeError",
    "SellerContext",
    "SellerRepository",
    "SellerScope",
    "open_seller_scope",
]
