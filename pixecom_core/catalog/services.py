"""The catalog service: one seller's products, sellpages and append-only pricing rules.

Rules it enforces (SCALE-4, SCALE-6):

- every read and write runs in the acting seller's scope; an id of another seller is
  indistinguishable from an unknown one (:class:`NotFoundError`), and so is a product of
  another seller referenced from a sellpage or a price;
- a SKU is unique within the seller, a slug across all sellers (the public slug
  directory); a taken one is a :class:`ConflictError` (``sku_taken``, ``slug_taken``);
- every list is one bounded, cursor-paginated page;
- prices are never edited: :meth:`CatalogService.set_price` closes the open rule and
  appends a new one, in one transaction;
- after each committed change the storefront cache is told, so shoppers see it at once.

Deleting: a product is *archived* (status ``ARCHIVED``), never removed, because pricing
rules — append-only, so never deleted — and orders keep referring to it. A sellpage is
really deleted, which frees its slug, unless something refers to it (pricing rules,
orders, stats): then :class:`ConflictError` ``sellpage_in_use`` says to archive it.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import psycopg.errors
from sqlalchemy.exc import IntegrityError

from pixecom_core.catalog.repositories import (
    PricingRuleRepository,
    ProductRepository,
    SellpageRepository,
)
from pixecom_core.catalog.storefront import MAX_SLUG_LENGTH, is_valid_slug
from pixecom_core.errors import ConflictError, InvalidRequestError, NotFoundError, PixecomError
from pixecom_core.models.base import utcnow
from pixecom_core.models.catalog import (
    PricingRule,
    Product,
    ProductStatus,
    Sellpage,
    SellpageStatus,
)
from pixecom_core.providers.values import MAX_AMOUNT_MINOR
from pixecom_core.tenancy import Page, PageRequest, SellerContext, SellerScope

_CURRENCY = re.compile(r"^[A-Z]{3}$")

#: How far apart the clocks of two API processes may be (see ``_now_after``).
CLOCK_SKEW = timedelta(seconds=5)

#: Unique constraints whose violation is the caller's conflict, with code and message.
_CONFLICTS: Final[dict[str, tuple[str, str]]] = {
    "uq_products_seller_id_sku": ("sku_taken", "a product with this SKU already exists"),
    "uq_sellpages_seller_id_slug": ("slug_taken", "this slug is already taken"),
    # The directory trigger claims the slug across all sellers.
    "pk_public_sellpage_slugs": ("slug_taken", "this slug is already taken"),
    "uq_pricing_rules_open_rule": (
        "price_changed_concurrently",
        "the price was changed at the same time by another request; read it and retry",
    ),
}


class StorefrontInvalidator(Protocol):
    """Told after a catalog change commits (implemented by
    :class:`pixecom_core.catalog.storefront.StorefrontCache`)."""

    async def catalog_changed(self, seller_id: uuid.UUID, slugs: Collection[str]) -> None:
        """Forget what shoppers were shown for ``seller_id``, and any answer for ``slugs``
        (slugs created, renamed from or to, or deleted). Must not raise."""


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is" in a change set."""

    UNSET = "UNSET"


#: A field of a change set that the caller did not give (``None`` may be a real value).
UNSET: Final = Unset.UNSET


@dataclass(frozen=True)
class ProductChanges:
    """Fields of a product to change; fields left :data:`UNSET` stay as they are."""

    sku: str | Unset = UNSET
    name: str | Unset = UNSET
    description: str | None | Unset = UNSET
    status: ProductStatus | Unset = UNSET


@dataclass(frozen=True)
class SellpageChanges:
    """Fields of a sellpage to change; fields left :data:`UNSET` stay as they are.

    Changing ``status`` to ``PUBLISHED`` sets ``published_at`` to now; leaving
    ``PUBLISHED`` clears it.
    """

    slug: str | Unset = UNSET
    title: str | Unset = UNSET
    status: SellpageStatus | Unset = UNSET
    product_id: uuid.UUID | None | Unset = UNSET
    content: dict[str, Any] | Unset = UNSET


class PaymentReadiness(Protocol):
    """Whether a seller can take payments (implemented by
    :class:`pixecom_core.payments.PaymentConnections`)."""

    async def has_active(self, scope: SellerScope) -> bool:
        """An active own account on an installed gateway, or a gateway needing none."""
        ...


class CatalogService:
    """Products, sellpages and pricing rules of the seller in ``context``.

    :param context: the acting seller; every transaction is opened in its scope.
    :param storefront: told after each committed change that shoppers could see (a
        product, a sellpage, a price); ``None`` when nothing caches the storefront.
    :param payments: the sellers' own gateway accounts: a sellpage is published only
        while its seller can take payments (issue 15 item 2); ``None`` checks nothing.
    """

    def __init__(
        self,
        context: SellerContext,
        *,
        storefront: StorefrontInvalidator | None = None,
        payments: PaymentReadiness | None = None,
    ) -> None:
        self._context = context
        self._storefront = storefront
        self._payments = payments

    # -- products -----------------------------------------------------------------------

    async def create_product(
        self,
        *,
        sku: str,
        name: str,
        description: str | None = None,
        status: ProductStatus = ProductStatus.ACTIVE,
    ) -> Product:
        """Add a product; :class:`ConflictError` ``sku_taken`` if the SKU is in use."""
        async with self._writing() as scope:
            products = ProductRepository(scope)
            product = products.add(
                Product(
                    seller_id=scope.seller_id,
                    sku=sku,
                    name=name,
                    description=description,
                    status=status,
                )
            )
            await products.flush()
        return product

    async def get_product(self, product_id: uuid.UUID) -> Product:
        """The product; :class:`NotFoundError` if the seller has none with this id."""
        async with self._context.scope() as scope:
            return await _product(scope, product_id)

    async def list_products(
        self, page: PageRequest, *, status: ProductStatus | None = None
    ) -> Page[Product]:
        """One bounded page of products, oldest first, optionally only with ``status``."""
        async with self._context.scope() as scope:
            return await ProductRepository(scope).list_products(page, status=status)

    async def update_product(self, product_id: uuid.UUID, changes: ProductChanges) -> Product:
        """Apply ``changes``; :class:`NotFoundError` or ``sku_taken`` as for create."""
        async with self._writing() as scope:
            product = await _product(scope, product_id)
            if not isinstance(changes.sku, Unset):
                product.sku = changes.sku
            if not isinstance(changes.name, Unset):
                product.name = changes.name
            if not isinstance(changes.description, Unset):
                product.description = changes.description
            if not isinstance(changes.status, Unset):
                product.status = changes.status
            product.updated_at = utcnow()
            await scope.session.flush()
        await self._changed()
        return product

    async def archive_product(self, product_id: uuid.UUID) -> Product:
        """Archive the product (what deleting one means; see the module docstring).

        Idempotent; sellpages showing it stop offering it to shoppers.
        """
        async with self._writing() as scope:
            product = await _product(scope, product_id)
            if product.status is not ProductStatus.ARCHIVED:
                product.status = ProductStatus.ARCHIVED
                product.updated_at = utcnow()
                await scope.session.flush()
        await self._changed()
        return product

    # -- sellpages ----------------------------------------------------------------------

    async def create_sellpage(
        self,
        *,
        slug: str,
        title: str,
        product_id: uuid.UUID | None = None,
        content: dict[str, Any] | None = None,
        status: SellpageStatus = SellpageStatus.DRAFT,
    ) -> Sellpage:
        """Add a sellpage and claim its slug across all sellers.

        :class:`ConflictError` ``slug_taken`` if any seller uses the slug;
        :class:`NotFoundError` if ``product_id`` is not one of the seller's products;
        :class:`InvalidRequestError` ``invalid_slug`` for a malformed slug.
        """
        _check_slug(slug)
        async with self._writing() as scope:
            if product_id is not None:
                await _product(scope, product_id)
            if status is SellpageStatus.PUBLISHED:
                await self._check_can_take_payments(scope)
            sellpages = SellpageRepository(scope)
            sellpage = sellpages.add(
                Sellpage(
                    seller_id=scope.seller_id,
                    slug=slug,
                    title=title,
                    product_id=product_id,
                    content=content or {},
                    status=status,
                    published_at=utcnow() if status is SellpageStatus.PUBLISHED else None,
                )
            )
            await sellpages.flush()
        await self._changed(slug)
        return sellpage

    async def get_sellpage(self, sellpage_id: uuid.UUID) -> Sellpage:
        """The sellpage; :class:`NotFoundError` if the seller has none with this id."""
        async with self._context.scope() as scope:
            return await _sellpage(scope, sellpage_id)

    async def list_sellpages(
        self, page: PageRequest, *, status: SellpageStatus | None = None
    ) -> Page[Sellpage]:
        """One bounded page of sellpages, oldest first, optionally only with ``status``."""
        async with self._context.scope() as scope:
            return await SellpageRepository(scope).list_sellpages(page, status=status)

    async def update_sellpage(self, sellpage_id: uuid.UUID, changes: SellpageChanges) -> Sellpage:
        """Apply ``changes`` (publishing and unpublishing included, see
        :class:`SellpageChanges`); errors as for :meth:`create_sellpage`."""
        if not isinstance(changes.slug, Unset):
            _check_slug(changes.slug)
        async with self._writing() as scope:
            sellpage = await _sellpage(scope, sellpage_id)
            slugs = {sellpage.slug}
            if not isinstance(changes.slug, Unset):
                sellpage.slug = changes.slug
                slugs.add(changes.slug)
            if not isinstance(changes.title, Unset):
                sellpage.title = changes.title
            if not isinstance(changes.product_id, Unset):
                if changes.product_id is not None:
                    await _product(scope, changes.product_id)
                sellpage.product_id = changes.product_id
            if not isinstance(changes.content, Unset):
                sellpage.content = changes.content
            if not isinstance(changes.status, Unset) and changes.status is not sellpage.status:
                if changes.status is SellpageStatus.PUBLISHED:
                    await self._check_can_take_payments(scope)
                    sellpage.published_at = utcnow()
                elif sellpage.status is SellpageStatus.PUBLISHED:
                    sellpage.published_at = None
                sellpage.status = changes.status
            sellpage.updated_at = utcnow()
            await scope.session.flush()
        await self._changed(*slugs)
        return sellpage

    async def _check_can_take_payments(self, scope: SellerScope) -> None:
        """Refuse to publish while the seller cannot take payments (no gateway account
        connected and no gateway that needs none): shoppers would meet a dead checkout."""
        if self._payments is not None and not await self._payments.has_active(scope):
            raise ConflictError(
                "connect a payment account (Payments in the dashboard, POST "
                "/payments/connections) before publishing: shoppers could not pay",
                code="payment_connection_required",
            )

    async def delete_sellpage(self, sellpage_id: uuid.UUID) -> None:
        """Delete the sellpage and free its slug.

        :class:`ConflictError` ``sellpage_in_use`` when pricing rules, orders or stats
        refer to it: archive it instead (status ``ARCHIVED``).
        """
        async with self._writing() as scope:
            sellpages = SellpageRepository(scope)
            sellpage = await _sellpage(scope, sellpage_id)
            slug = sellpage.slug
            await sellpages.delete(sellpage)
            try:
                await sellpages.flush()
            except IntegrityError as exc:
                if isinstance(exc.orig, psycopg.errors.ForeignKeyViolation):
                    raise ConflictError(
                        "the sellpage has pricing rules, orders or stats; archive it instead "
                        "(status ARCHIVED)",
                        code="sellpage_in_use",
                    ) from exc
                raise
        await self._changed(slug)

    # -- pricing rules ------------------------------------------------------------------

    async def set_price(
        self,
        product_id: uuid.UUID,
        sellpage_id: uuid.UUID | None,
        price_minor: int,
        currency: str,
        effective_from: datetime | None = None,
    ) -> PricingRule:
        """Price ``product_id`` (on ``sellpage_id``, or product-wide when ``None``) from
        ``effective_from`` (default: now, taken once the product is locked) on.

        In one transaction, closes the open rule of that (product, sellpage) at
        ``effective_from`` and appends the new rule; history is never rewritten.
        Concurrent changes of one product's prices run one after another.

        :class:`NotFoundError` for an unknown product or sellpage;
        :class:`InvalidRequestError` for a price outside 0 to ``MAX_AMOUNT_MINOR``, a
        malformed currency, a naive ``effective_from``, one before the open rule's start,
        or a sellpage that shows another product.
        """
        if not 0 <= price_minor <= MAX_AMOUNT_MINOR:
            # Issue 12 item 5: the API's bound holds for every caller of core.
            raise InvalidRequestError(
                f"price_minor must be from 0 to {MAX_AMOUNT_MINOR}",
                code="invalid_price",
            )
        if not _CURRENCY.fullmatch(currency):
            raise InvalidRequestError(
                "currency must be an ISO 4217 code such as USD", code="invalid_currency"
            )
        if effective_from is not None and effective_from.tzinfo is None:
            raise InvalidRequestError(
                "effective_from needs a time zone (e.g. 2026-01-01T00:00:00Z)",
                code="invalid_effective_from",
            )
        async with self._writing() as scope:
            product = await ProductRepository(scope).get_for_price_change(product_id)
            if product is None:
                raise NotFoundError(f"no product {product_id}")
            if sellpage_id is not None:
                sellpage = await _sellpage(scope, sellpage_id)
                if sellpage.product_id != product_id:
                    raise InvalidRequestError(
                        "this sellpage shows another product; attach the product first",
                        code="sellpage_shows_another_product",
                    )
            rules = PricingRuleRepository(scope)
            current = await rules.open_rule(product_id, sellpage_id)
            starts = effective_from or _now_after(current)
            if current is not None:
                if starts < current.effective_from:
                    raise InvalidRequestError(
                        "effective_from is before the start of the price in effect "
                        f"({current.effective_from.isoformat()}); history is append-only",
                        code="effective_from_too_early",
                    )
                current.effective_until = starts
                await rules.flush()  # close first: one open rule at a time
            rule = rules.add(
                PricingRule(
                    seller_id=scope.seller_id,
                    product_id=product_id,
                    sellpage_id=sellpage_id,
                    price_minor=price_minor,
                    currency=currency,
                    effective_from=starts,
                )
            )
            await rules.flush()
        await self._changed()
        return rule

    async def list_prices(self, product_id: uuid.UUID, page: PageRequest) -> Page[PricingRule]:
        """One bounded page of the product's pricing rules, newest first;
        :class:`NotFoundError` for an unknown product."""
        async with self._context.scope() as scope:
            await _product(scope, product_id)
            return await PricingRuleRepository(scope).list_for_product(page, product_id)

    async def get_pricing_rule(self, pricing_rule_id: uuid.UUID) -> PricingRule:
        """One pricing rule; :class:`NotFoundError` if the seller has none with this id."""
        async with self._context.scope() as scope:
            rule = await PricingRuleRepository(scope).get(pricing_rule_id)
        if rule is None:
            raise NotFoundError(f"no pricing rule {pricing_rule_id}")
        return rule

    # -- plumbing -----------------------------------------------------------------------

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[SellerScope]:
        """The seller's scope, with constraint violations turned into core errors."""
        try:
            async with self._context.scope() as scope:
                yield scope
        except IntegrityError as exc:
            problem = _integrity_problem(exc)
            if problem is None:
                raise
            raise problem from exc

    async def _changed(self, *slugs: str) -> None:
        if self._storefront is not None:
            await self._storefront.catalog_changed(self._context.seller_id, slugs)


def _now_after(current: PricingRule | None) -> datetime:
    """ "Now" for a price given no start, taken under the product's lock.

    Another API process may have set the open rule with a clock running slightly ahead
    of ours; within :data:`CLOCK_SKEW` the new rule starts where that one did instead of
    being refused as earlier.
    """
    now = utcnow()
    if current is not None and now < current.effective_from <= now + CLOCK_SKEW:
        return current.effective_from
    return now


async def _product(scope: SellerScope, product_id: uuid.UUID) -> Product:
    product = await ProductRepository(scope).get(product_id)
    if product is None:
        raise NotFoundError(f"no product {product_id}")
    return product


async def _sellpage(scope: SellerScope, sellpage_id: uuid.UUID) -> Sellpage:
    sellpage = await SellpageRepository(scope).get(sellpage_id)
    if sellpage is None:
        raise NotFoundError(f"no sellpage {sellpage_id}")
    return sellpage


def _check_slug(slug: str) -> None:
    if not is_valid_slug(slug):
        raise InvalidRequestError(
            "a slug is lower-case letters and digits in groups joined by single hyphens, "
            f"at most {MAX_SLUG_LENGTH} characters (e.g. summer-sale-2026)",
            code="invalid_slug",
        )


def _integrity_problem(exc: IntegrityError) -> PixecomError | None:
    """The core error a constraint violation means, or ``None`` if it is unexpected."""
    cause = exc.orig
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None) or ""
    if isinstance(cause, psycopg.errors.UniqueViolation) and constraint in _CONFLICTS:
        code, message = _CONFLICTS[constraint]
        return ConflictError(message, code=code)
    if isinstance(cause, psycopg.errors.ForeignKeyViolation):
        # Checked before writing; this is a sellpage deleted in the meantime.
        return NotFoundError("a referenced product or sellpage does not exist")
    if isinstance(cause, psycopg.errors.CheckViolation):
        return InvalidRequestError(f"the change breaks a catalog rule ({constraint})")
    return None
