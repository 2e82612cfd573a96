"""Catalog: sellpages (landing pages), products and their append-only pricing rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    currency_check,
    empty_jsonb_default,
    enum_check,
    non_negative_check,
    now_default,
    timestamp_type,
    utcnow,
)


class SellpageStatus(StrEnum):
    """Lifecycle of a sellpage; only ``PUBLISHED`` pages are served to shoppers."""

    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    ARCHIVED = "ARCHIVED"


class ProductStatus(StrEnum):
    """Whether a product can be sold."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    ARCHIVED = "ARCHIVED"


class Product(SellerOwned, table=True):
    """Something a seller sells, identified by a SKU unique within the seller.

    Prices are not stored here: they are :class:`PricingRule` rows, which keep history.
    """

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("seller_id", "sku"),
        enum_check("status", ProductStatus),
    )

    sku: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)
    description: str | None = Field(default=None, sa_type=Text)
    status: ProductStatus = Field(
        default=ProductStatus.ACTIVE,
        sa_type=EnumText(ProductStatus),
        nullable=False,
        sa_column_kwargs={"server_default": "ACTIVE"},
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class Sellpage(SellerOwned, table=True):
    """A landing page that paid-ad traffic is sent to; revenue and ROAS are reported per
    sellpage.

    ``slug`` is unique within the seller here, and globally in
    :class:`PublicSellpageSlug` (maintained by a trigger), which is what a public URL
    resolves through.
    """

    __tablename__ = "sellpages"
    __table_args__ = (
        UniqueConstraint("seller_id", "slug"),
        ForeignKeyConstraint(["seller_id", "product_id"], ["products.seller_id", "products.id"]),
        CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="slug_format"),
        enum_check("status", SellpageStatus),
    )

    slug: str = Field(sa_type=Text, nullable=False)
    title: str = Field(sa_type=Text, nullable=False)
    status: SellpageStatus = Field(
        default=SellpageStatus.DRAFT,
        sa_type=EnumText(SellpageStatus),
        nullable=False,
        sa_column_kwargs={"server_default": "DRAFT"},
    )
    product_id: uuid.UUID | None = Field(default=None)
    content: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs=empty_jsonb_default(),
    )
    published_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class PublicSellpageSlug(SQLModel, table=True):
    """Public directory: slug → (seller, sellpage). Not seller-owned.

    A shopper's request carries only a slug, so the storefront needs one lookup before it
    can open the seller's scope. The app role may SELECT this table (nothing else): it
    holds what is in public URLs and nothing private. A SECURITY DEFINER trigger on
    ``sellpages`` keeps it in step, so a slug is claimed once across all sellers.
    """

    __tablename__ = "public_sellpage_slugs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["seller_id", "sellpage_id"],
            ["sellpages.seller_id", "sellpages.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("seller_id", "sellpage_id"),
    )

    slug: str = Field(sa_type=Text, primary_key=True)
    seller_id: uuid.UUID = Field(nullable=False)
    sellpage_id: uuid.UUID = Field(nullable=False)


class PricingRule(SellerOwned, table=True):
    """The price of a product (optionally on one sellpage) from ``effective_from`` on.

    Append-only, enforced by a trigger (MONEY-1: "PricingRule: already append-only by
    design"): rows are never deleted, and the only update allowed closes an open rule by
    setting ``effective_until`` (from NULL to a time not before ``effective_from``). A
    price change closes the open rule and inserts a new one; history is never rewritten.
    At most one rule per (seller, product, sellpage) is open at a time.
    """

    __tablename__ = "pricing_rules"
    __table_args__ = (
        ForeignKeyConstraint(["seller_id", "product_id"], ["products.seller_id", "products.id"]),
        ForeignKeyConstraint(["seller_id", "sellpage_id"], ["sellpages.seller_id", "sellpages.id"]),
        # NULLS NOT DISTINCT: a product-wide rule (sellpage_id NULL) is unique too.
        Index(
            "uq_pricing_rules_open_rule",
            "seller_id",
            "product_id",
            "sellpage_id",
            unique=True,
            postgresql_where="effective_until IS NULL",
            postgresql_nulls_not_distinct=True,
        ),
        Index(None, "seller_id", "product_id", "effective_from"),
        currency_check(),
        non_negative_check("price_minor"),
        CheckConstraint(
            "effective_until IS NULL OR effective_until >= effective_from", name="window"
        ),
    )

    product_id: uuid.UUID = Field(nullable=False)
    sellpage_id: uuid.UUID | None = Field(default=None)
    price_minor: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    effective_from: datetime = Field(sa_type=timestamp_type(), nullable=False)
    effective_until: datetime | None = Field(default=None, sa_type=timestamp_type())
