"""Tenant safety: seller scopes, seller-bound repositories and bounded pagination."""

from pixecom_core.tenancy.context import SellerContext
from pixecom_core.tenancy.pagination import InvalidCursorError, Page, PageRequest
from pixecom_core.tenancy.repository import SellerRepository
from pixecom_core.tenancy.scope import (
    ScopeError,
    SellerScope,
    bind_seller_scope,
    open_seller_scope,
)

__all__ = [
    "InvalidCursorError",
    "Page",
    "PageRequest",
    "ScopeError",
    "SellerContext",
    "SellerRepository",
    "SellerScope",
    "bind_seller_scope",
    "open_seller_scope",
]
