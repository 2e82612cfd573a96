"""Catalog: products, sellpages and their append-only pricing rules (SCALE-4, SCALE-6).

Every route acts for the authenticated seller only: an id of another seller answers 404,
exactly like an unknown one. Lists are cursor-paginated and never longer than the
deployment's maximum page size. Deleting a product archives it; deleting a sellpage
frees its slug unless prices, orders or stats refer to it (409 ``sellpage_in_use``).
Prices are never edited: setting one closes the price in effect and appends a new rule.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixecom_core.catalog import CatalogService, ProductChanges, SellpageChanges, StorefrontCache
from pixecom_core.catalog.storefront import MAX_SLUG_LENGTH, SLUG_PATTERN
from pixecom_core.models.catalog import (
    PricingRule,
    Product,
    ProductStatus,
    Sellpage,
    SellpageStatus,
)
from pixecom_core.providers.values import CurrencyCode, MinorUnits
from reference_app.api.dependencies import CurrentSeller, Paging
from reference_app.api.errors import error_responses
from reference_app.api.resources import ResourcesDep
from reference_app.api.schemas import IsoDateTime, NotNull, PageOut, omittable

router = APIRouter(tags=["catalog"])

SkuText = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
NameText = Annotated[str, Field(min_length=1, max_length=200)]
DescriptionText = Annotated[str, Field(max_length=10_000)]
SlugText = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_SLUG_LENGTH,
        pattern=SLUG_PATTERN,
        description="Lower-case letters and digits joined by single hyphens; unique "
        "across all sellers, since it is the public address.",
    ),
]


async def catalog_service(seller: CurrentSeller, resources: ResourcesDep) -> CatalogService:
    """The catalog of the authenticated seller, telling the storefront cache of changes."""
    return CatalogService(
        seller,
        storefront=StorefrontCache(resources.redis, resources.settings),
        payments=resources.payment_connections,
    )


Catalog = Annotated[CatalogService, Depends(catalog_service)]


class _Patch(BaseModel):
    """A partial update: only the fields sent change; ``null`` only where allowed."""

    model_config = ConfigDict(extra="forbid")

    #: Fields that may be sent as ``null``.
    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _refuse_null_for_required(self) -> Self:
        for name in self.model_fields_set - self.nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def given(self) -> dict[str, Any]:
        """The fields the client sent, by name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


# -- products ---------------------------------------------------------------------------


class ProductIn(BaseModel):
    """A new product."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"sku": "SHIRT-LINEN-M", "name": "Linen shirt", "description": "Blue"}]
        },
    )

    sku: SkuText = Field(description="Stock-keeping unit, unique within the seller.")
    name: NameText
    description: DescriptionText | None = None
    status: ProductStatus = ProductStatus.ACTIVE


class ProductPatch(_Patch):
    """Fields of a product to change."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Linen shirt, slim fit"}]}
    )

    nullable: ClassVar[frozenset[str]] = frozenset({"description"})

    sku: SkuText | NotNull = omittable()
    name: NameText | NotNull = omittable()
    description: DescriptionText | None = None
    status: ProductStatus | NotNull = omittable()


class ProductOut(BaseModel):
    """A product. Its prices are pricing rules: `GET /products/{product_id}/prices`."""

    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    status: ProductStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls.model_validate(product, from_attributes=True)


@router.post(
    "/products",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductOut,
    summary="Create a product",
    responses=error_responses(401, 409, 422, 429),
)
async def create_product(body: ProductIn, catalog: Catalog) -> ProductOut:
    """409 ``sku_taken`` if another product of the seller has the SKU."""
    product = await catalog.create_product(
        sku=body.sku, name=body.name, description=body.description, status=body.status
    )
    return ProductOut.of(product)


@router.get(
    "/products",
    response_model=PageOut[ProductOut],
    summary="List products",
    responses=error_responses(400, 401, 422, 429),
)
async def list_products(
    catalog: Catalog,
    paging: Paging,
    product_status: Annotated[
        ProductStatus | None, Query(alias="status", description="Only products with it.")
    ] = None,
) -> PageOut[ProductOut]:
    """Oldest first, one bounded page at a time (400 ``invalid_cursor`` for a bad cursor)."""
    page = await catalog.list_products(paging, status=product_status)
    return PageOut[ProductOut].of(page, ProductOut.of)


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="Get a product",
    responses=error_responses(401, 404, 422, 429),
)
async def get_product(product_id: uuid.UUID, catalog: Catalog) -> ProductOut:
    """404 for an unknown id, another seller's included."""
    return ProductOut.of(await catalog.get_product(product_id))


@router.patch(
    "/products/{product_id}",
    response_model=ProductOut,
    summary="Change a product",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def update_product(product_id: uuid.UUID, body: ProductPatch, catalog: Catalog) -> ProductOut:
    """Only the fields sent change; 409 ``sku_taken`` for a SKU in use."""
    product = await catalog.update_product(product_id, ProductChanges(**body.given()))
    return ProductOut.of(product)


@router.delete(
    "/products/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Archive a product",
    responses=error_responses(401, 404, 422, 429),
)
async def delete_product(product_id: uuid.UUID, catalog: Catalog) -> Response:
    """Sets the status to ``ARCHIVED``: prices and orders keep referring to the product,
    so it is never removed. Sellpages showing it stop offering it."""
    await catalog.archive_product(product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- sellpages --------------------------------------------------------------------------


class SellpageIn(BaseModel):
    """A new sellpage."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"slug": "summer-linen", "title": "Summer linen", "content": {"hero": "Cool"}}
            ]
        },
    )

    slug: SlugText
    title: NameText
    product_id: uuid.UUID | None = Field(default=None, description="The product it sells.")
    content: dict[str, Any] = Field(default_factory=dict, description="Page content (JSON).")
    status: SellpageStatus = Field(
        default=SellpageStatus.DRAFT, description="`PUBLISHED` serves it to shoppers."
    )


class SellpagePatch(_Patch):
    """Fields of a sellpage to change; `status` publishes or unpublishes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Summer linen sale", "status": "PUBLISHED"}]},
    )

    nullable: ClassVar[frozenset[str]] = frozenset({"product_id"})

    slug: SlugText | NotNull = omittable()
    title: NameText | NotNull = omittable()
    product_id: uuid.UUID | None = None
    content: dict[str, Any] | NotNull = omittable()
    status: SellpageStatus | NotNull = omittable()


class SellpageOut(BaseModel):
    """A sellpage; shoppers read the published ones at `GET /public/sellpages/{slug}`."""

    id: uuid.UUID
    slug: str
    title: str
    status: SellpageStatus
    product_id: uuid.UUID | None
    content: dict[str, Any]
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sellpage: Sellpage) -> SellpageOut:
        return cls.model_validate(sellpage, from_attributes=True)


@router.post(
    "/sellpages",
    status_code=status.HTTP_201_CREATED,
    response_model=SellpageOut,
    summary="Create a sellpage",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def create_sellpage(body: SellpageIn, catalog: Catalog) -> SellpageOut:
    """409 ``slug_taken`` if any seller uses the slug, ``payment_connection_required`` to
    publish while the seller cannot take payments; 404 for an unknown ``product_id``."""
    sellpage = await catalog.create_sellpage(
        slug=body.slug,
        title=body.title,
        product_id=body.product_id,
        content=body.content,
        status=body.status,
    )
    return SellpageOut.of(sellpage)


@router.get(
    "/sellpages",
    response_model=PageOut[SellpageOut],
    summary="List sellpages",
    responses=error_responses(400, 401, 422, 429),
)
async def list_sellpages(
    catalog: Catalog,
    paging: Paging,
    sellpage_status: Annotated[
        SellpageStatus | None, Query(alias="status", description="Only sellpages with it.")
    ] = None,
) -> PageOut[SellpageOut]:
    """Oldest first, one bounded page at a time (400 ``invalid_cursor`` for a bad cursor)."""
    page = await catalog.list_sellpages(paging, status=sellpage_status)
    return PageOut[SellpageOut].of(page, SellpageOut.of)


@router.get(
    "/sellpages/{sellpage_id}",
    response_model=SellpageOut,
    summary="Get a sellpage",
    responses=error_responses(401, 404, 422, 429),
)
async def get_sellpage(sellpage_id: uuid.UUID, catalog: Catalog) -> SellpageOut:
    """404 for an unknown id, another seller's included."""
    return SellpageOut.of(await catalog.get_sellpage(sellpage_id))


@router.patch(
    "/sellpages/{sellpage_id}",
    response_model=SellpageOut,
    summary="Change, publish or unpublish a sellpage",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def update_sellpage(
    sellpage_id: uuid.UUID, body: SellpagePatch, catalog: Catalog
) -> SellpageOut:
    """Publishing sets ``published_at``; unpublishing clears it. The public page changes
    at once. 409 ``payment_connection_required`` to publish while the seller cannot take
    payments (no own account connected at a gateway that needs one)."""
    sellpage = await catalog.update_sellpage(sellpage_id, SellpageChanges(**body.given()))
    return SellpageOut.of(sellpage)


@router.delete(
    "/sellpages/{sellpage_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a sellpage",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def delete_sellpage(sellpage_id: uuid.UUID, catalog: Catalog) -> Response:
    """Frees the slug; 409 ``sellpage_in_use`` when prices, orders or stats refer to the
    sellpage — archive it then (``PATCH`` with status ``ARCHIVED``)."""
    await catalog.delete_sellpage(sellpage_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- pricing rules ----------------------------------------------------------------------


class PriceIn(BaseModel):
    """A new price for a product, product-wide or on one of its sellpages."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"price_minor": 2499, "currency": "USD"}]}
    )

    # Issue 12 item 5: a JSON integer within the bounds every amount has, never coerced.
    price_minor: MinorUnits
    currency: CurrencyCode = Field(description="ISO 4217, e.g. USD.")
    sellpage_id: uuid.UUID | None = Field(
        default=None, description="Price on this sellpage only; omitted: product-wide."
    )
    effective_from: IsoDateTime | None = Field(
        default=None, description="When the price takes effect; default now."
    )


class PricingRuleOut(BaseModel):
    """A price from ``effective_from`` until ``effective_until`` (null: still in effect)."""

    id: uuid.UUID
    product_id: uuid.UUID
    sellpage_id: uuid.UUID | None
    price_minor: int
    currency: str
    effective_from: datetime
    effective_until: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, rule: PricingRule) -> PricingRuleOut:
        return cls.model_validate(rule, from_attributes=True)


@router.post(
    "/products/{product_id}/prices",
    status_code=status.HTTP_201_CREATED,
    response_model=PricingRuleOut,
    summary="Set a product's price",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def set_price(product_id: uuid.UUID, body: PriceIn, catalog: Catalog) -> PricingRuleOut:
    """Closes the price in effect for (product, sellpage) and appends this one; 404 for
    an unknown product or sellpage, 422 for a sellpage showing another product."""
    rule = await catalog.set_price(
        product_id, body.sellpage_id, body.price_minor, body.currency, body.effective_from
    )
    return PricingRuleOut.of(rule)


@router.get(
    "/products/{product_id}/prices",
    response_model=PageOut[PricingRuleOut],
    summary="List a product's pricing rules",
    responses=error_responses(400, 401, 404, 422, 429),
)
async def list_prices(
    product_id: uuid.UUID, catalog: Catalog, paging: Paging
) -> PageOut[PricingRuleOut]:
    """The price history, newest first, one bounded page at a time."""
    page = await catalog.list_prices(product_id, paging)
    return PageOut[PricingRuleOut].of(page, PricingRuleOut.of)


@router.get(
    "/pricing-rules/{pricing_rule_id}",
    response_model=PricingRuleOut,
    summary="Get a pricing rule",
    responses=error_responses(401, 404, 422, 429),
)
async def get_pricing_rule(pricing_rule_id: uuid.UUID, catalog: Catalog) -> PricingRuleOut:
    """404 for an unknown id, another seller's included. Rules are never changed."""
    return PricingRuleOut.of(await catalog.get_pricing_rule(pricing_rule_id))
