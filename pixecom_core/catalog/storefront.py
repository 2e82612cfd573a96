"""The public storefront: a published sellpage by slug, rendered once and cached (SCALE-6).

A shopper's request carries only a slug. :class:`Storefront` resolves it through the
public slug directory, reads the sellpage, its product and the price in effect inside
that seller's scope, renders the JSON document once and keeps it in Redis, so a repeated
read costs one Redis round trip (two the first time a process sees the slug) and no SQL.

Invalidation is exact without tracking which page shows which product or price, and it
cannot be undone by a slow reader:

- every cache entry records the *generation tokens* it was rendered under: its slug's
  and, once the slug resolved to a sellpage, that seller's;
- after a catalog change commits, :meth:`StorefrontCache.catalog_changed` gives the
  seller, and every slug that was created, renamed or deleted, a fresh random token; an
  entry whose recorded tokens differ from the current ones is a miss;
- a reader takes the tokens *before* it reads the database, so a page rendered from data
  older than a change is stored under the old token and never served.

Negative answers (an unknown or unpublished slug) are cached briefly in the same way, so
creating or publishing the slug makes them stale at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.catalog.repositories import (
    PricingRuleRepository,
    ProductRepository,
    PublicSlugDirectory,
    SellpageRepository,
)
from pixecom_core.errors import NotFoundError
from pixecom_core.models.base import utcnow
from pixecom_core.models.catalog import ProductStatus, SellpageStatus
from pixecom_core.settings import Settings
from pixecom_core.tenancy import SellerScope, open_seller_scope

_log = logging.getLogger(__name__)

#: What a slug looks like (the ``ck_sellpages_slug_format`` constraint says the same).
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
#: Longest slug a sellpage may have, and so the longest a public lookup will try.
MAX_SLUG_LENGTH = 200
_SLUG = re.compile(SLUG_PATTERN)

#: How long a rendered page stays in Redis. Changes invalidate it at once, so this only
#: bounds memory (and staleness should an invalidation ever be lost with Redis down).
PAGE_TTL_SECONDS = 600
#: How long "no such published page" is remembered; creating or publishing the slug
#: invalidates it earlier.
MISSING_TTL_SECONDS = 10
#: How long a generation token lives; an expired token only costs one miss.
GENERATION_TTL_SECONDS = 86_400


def is_valid_slug(slug: str) -> bool:
    """Whether ``slug`` could name a sellpage (format and length)."""
    return len(slug) <= MAX_SLUG_LENGTH and _SLUG.fullmatch(slug) is not None


class PublicPrice(BaseModel):
    """The price a shopper pays: integer minor units of an ISO-4217 currency."""

    price_minor: int = Field(description="Amount in minor units, e.g. cents.")
    currency: str = Field(description="ISO 4217 code, e.g. USD.")


class PublicProduct(BaseModel):
    """The product a sellpage sells, as shoppers see it."""

    id: uuid.UUID
    name: str
    description: str | None
    price: PublicPrice | None = Field(
        description="The price in effect now: the sellpage's own, else the product-wide one."
    )


class PublicSellpage(BaseModel):
    """A published sellpage, as served to shoppers."""

    slug: str
    title: str
    content: dict[str, Any]
    published_at: datetime | None
    product: PublicProduct | None = Field(
        description="Null when the sellpage has no product or the product is not on sale."
    )
    conversion_destinations: dict[str, str] = Field(
        default_factory=dict,
        description="Ad network → the seller's pixel (destination) id, for the network's "
        "browser tag on the page; public, as any pixel id in a page's source is.",
    )


@dataclass(frozen=True)
class RenderedSellpage:
    """The JSON body served for a slug and its strong entity tag (a hash of the body)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, document: PublicSellpage) -> RenderedSellpage:
        """Render ``document`` once; the same document always gives the same tag."""
        body = document.model_dump_json().encode()
        return cls(body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


@dataclass(frozen=True)
class CacheLookup:
    """What the cache knows about a slug.

    ``page`` is set on a hit; ``missing`` is true when a recent read found no published
    page; otherwise it is a miss and ``slug_generation`` is the slug's current token (if
    it has one), to be recorded with whatever the reader then stores.
    """

    page: RenderedSellpage | None = None
    missing: bool = False
    slug_generation: str | None = None


@dataclass(frozen=True)
class _Entry:
    kind: str
    slug_generation: str
    seller_id: str | None
    seller_generation: str | None
    etag: str | None
    body: bytes

    def encode(self) -> bytes:
        header = {
            "kind": self.kind,
            "slug_generation": self.slug_generation,
            "seller_id": self.seller_id,
            "seller_generation": self.seller_generation,
            "etag": self.etag,
        }
        # Compact JSON never contains a raw newline, so the first one ends the header.
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> _Entry | None:
        header_bytes, _, body = raw.partition(b"\n")
        try:
            header = json.loads(header_bytes)
            return cls(
                kind=str(header["kind"]),
                slug_generation=str(header["slug_generation"]),
                seller_id=header["seller_id"],
                seller_generation=header["seller_generation"],
                etag=header["etag"],
                body=body,
            )
        except (ValueError, KeyError, TypeError):
            return None  # written by another version: a miss


#: Reads Redis keys in one round trip: their values (bytes, or None for a missing key)
#: in the order of the keys.
KeyReader = Callable[[list[str]], Awaitable[Sequence[object]]]

#: Issue 18 item 1: the seller each slug's cached page belonged to, as last seen by this
#: process, so a lookup reads the seller's token with the page. Only a hint: the entry's
#: own seller id decides, and a wrong or missing hint costs the second round trip.
_seller_of_slug: dict[str, str] = {}
#: Slugs remembered at most; past it the hints start over (a hint is cheap to relearn).
_MAX_SELLER_HINTS = 10_000


def _remember_seller(slug: str, seller_id: str) -> None:
    if len(_seller_of_slug) >= _MAX_SELLER_HINTS:
        _seller_of_slug.clear()
    _seller_of_slug[slug] = seller_id


class StorefrontCache:
    """Rendered public sellpages in Redis, keyed by slug, with generation-token
    invalidation (see the module docstring).

    Every key starts with ``settings.redis_key_prefix``. :meth:`catalog_changed` is what
    :class:`pixecom_core.catalog.services.CatalogService` calls after each committed
    change.
    """

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        page_ttl_seconds: int = PAGE_TTL_SECONDS,
        missing_ttl_seconds: int = MISSING_TTL_SECONDS,
    ) -> None:
        self._redis = client
        self._prefix = f"{settings.redis_key_prefix}storefront:"
        self.page_ttl_seconds = page_ttl_seconds
        self.missing_ttl_seconds = missing_ttl_seconds

    def page_key(self, slug: str) -> str:
        """The key holding the rendered page (or the negative answer) for ``slug``."""
        return f"{self._prefix}page:{slug}"

    def _slug_generation_key(self, slug: str) -> str:
        return f"{self._prefix}generation:slug:{slug}"

    def _seller_generation_key(self, seller_id: uuid.UUID | str) -> str:
        return f"{self._prefix}generation:seller:{seller_id}"

    # -- reading ------------------------------------------------------------------------

    async def lookup(self, slug: str, *, read: KeyReader | None = None) -> CacheLookup:
        """A hit, a remembered miss, or a plain miss for ``slug``.

        One round trip when the slug's seller is known to this process (it is after
        the slug's first hit here), two otherwise. ``read`` reads the keys it is given
        (by default one ``MGET``); the API passes one that also counts the request
        against the client's rate limit in the same round trip (issue 18 item 1).
        """
        hinted_seller = _seller_of_slug.get(slug)
        keys = [self.page_key(slug), self._slug_generation_key(slug)]
        if hinted_seller is not None:
            keys.append(self._seller_generation_key(hinted_seller))
        values = await (read or self._redis.mget)(keys)
        raw, slug_generation = values[0], values[1]
        current = _text(slug_generation)
        entry = _Entry.decode(raw) if isinstance(raw, bytes) else None
        if entry is None or entry.slug_generation != current:
            return CacheLookup(slug_generation=current)
        if entry.seller_id is not None:
            if entry.seller_id == hinted_seller:
                seller_generation = _text(values[2])
            else:
                seller_generation = _text(
                    await self._redis.get(self._seller_generation_key(entry.seller_id))
                )
                _remember_seller(slug, entry.seller_id)
            if entry.seller_generation != seller_generation:
                return CacheLookup(slug_generation=current)
        if entry.kind == "page" and entry.etag is not None:
            return CacheLookup(page=RenderedSellpage(body=entry.body, etag=entry.etag))
        return CacheLookup(missing=True)

    async def slug_generation(self, slug: str) -> str:
        """The slug's current token, created if it has none (so what a reader records is
        never "no token", which an expired token would match again)."""
        return await self._generation(self._slug_generation_key(slug))

    async def seller_generation(self, seller_id: uuid.UUID) -> str:
        """The seller's current token, created if it has none."""
        return await self._generation(self._seller_generation_key(seller_id))

    async def _generation(self, key: str) -> str:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, uuid.uuid4().hex, nx=True, ex=GENERATION_TTL_SECONDS)
            pipe.get(key)
            _, token = await pipe.execute()
        current = _text(token)
        if current is None:  # expired between the two commands: it cannot match again
            return uuid.uuid4().hex
        return current

    async def store_page(
        self,
        slug: str,
        page: RenderedSellpage,
        *,
        slug_generation: str,
        seller_id: uuid.UUID,
        seller_generation: str,
        ttl_seconds: int,
    ) -> None:
        """Remember the rendered page under the tokens read before it was rendered."""
        entry = _Entry(
            kind="page",
            slug_generation=slug_generation,
            seller_id=str(seller_id),
            seller_generation=seller_generation,
            etag=page.etag,
            body=page.body,
        )
        ttl = max(1, min(ttl_seconds, self.page_ttl_seconds))
        await self._redis.set(self.page_key(slug), entry.encode(), ex=ttl)

    async def store_missing(
        self,
        slug: str,
        *,
        slug_generation: str,
        seller_id: uuid.UUID | None = None,
        seller_generation: str | None = None,
    ) -> None:
        """Remember briefly that ``slug`` has no published page."""
        entry = _Entry(
            kind="missing",
            slug_generation=slug_generation,
            seller_id=None if seller_id is None else str(seller_id),
            seller_generation=seller_generation,
            etag=None,
            body=b"",
        )
        await self._redis.set(self.page_key(slug), entry.encode(), ex=self.missing_ttl_seconds)

    # -- invalidation -------------------------------------------------------------------

    async def catalog_changed(self, seller_id: uuid.UUID, slugs: Collection[str]) -> None:
        """Make every cached page of ``seller_id`` stale, and every answer for ``slugs``
        (slugs created, renamed from or to, or deleted) — negative answers included.

        Called after the change committed. A Redis failure is logged, not raised: the
        change is saved, and entries expire within :data:`PAGE_TTL_SECONDS` anyway.
        """
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(
                    self._seller_generation_key(seller_id),
                    uuid.uuid4().hex,
                    ex=GENERATION_TTL_SECONDS,
                )
                for slug in slugs:
                    pipe.set(
                        self._slug_generation_key(slug), uuid.uuid4().hex, ex=GENERATION_TTL_SECONDS
                    )
                    pipe.delete(self.page_key(slug))
                await pipe.execute()
        except redis.RedisError:
            _log.exception("storefront cache not invalidated for seller %s", seller_id)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


class Storefront:
    """What shoppers read: published sellpages by slug, served from the cache.

    :param sessions: the process's app-role session factory; the slug directory is read
        without a scope, everything else inside the owning seller's scope.
    :param settings: the deployment's settings (statement timeouts of the scope).
    :param cache: where rendered pages are kept.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        cache: StorefrontCache,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._cache = cache

    async def sellpage(self, slug: str) -> RenderedSellpage:
        """The rendered published sellpage at ``slug``.

        Raises :class:`NotFoundError` for a malformed or unknown slug and for a sellpage
        that is not published; the same message for each, so a shopper cannot tell a
        draft from nothing.
        """
        if not is_valid_slug(slug):
            raise _not_found()
        cached = await self._cache.lookup(slug)
        if cached.page is not None:
            return cached.page
        if cached.missing:
            raise _not_found()

        # Tokens first, database second: see the module docstring.
        slug_generation = cached.slug_generation or await self._cache.slug_generation(slug)
        async with self._sessions() as session:
            claim = await PublicSlugDirectory(session).resolve(slug)
        if claim is None:
            await self._cache.store_missing(slug, slug_generation=slug_generation)
            raise _not_found()
        seller_generation = await self._cache.seller_generation(claim.seller_id)
        now = utcnow()
        async with open_seller_scope(self._sessions, claim.seller_id, self._settings) as scope:
            document, next_change = await _published_document(scope, claim.sellpage_id, slug, now)
        if document is None:
            await self._cache.store_missing(
                slug,
                slug_generation=slug_generation,
                seller_id=claim.seller_id,
                seller_generation=seller_generation,
            )
            raise _not_found()
        page = RenderedSellpage.of(document)
        ttl = self._cache.page_ttl_seconds
        if next_change is not None:
            # A scheduled price takes effect then: the page must not outlive it.
            ttl = math.ceil((next_change - now).total_seconds())
        await self._cache.store_page(
            slug,
            page,
            slug_generation=slug_generation,
            seller_id=claim.seller_id,
            seller_generation=seller_generation,
            ttl_seconds=ttl,
        )
        return page


async def _published_document(
    scope: SellerScope, sellpage_id: uuid.UUID, slug: str, now: datetime
) -> tuple[PublicSellpage | None, datetime | None]:
    """The public document of a published sellpage and when its price next changes."""
    sellpage = await SellpageRepository(scope).get(sellpage_id)
    # The slug is checked again: it may have been renamed since the directory was read.
    if sellpage is None or sellpage.status is not SellpageStatus.PUBLISHED or sellpage.slug != slug:
        return None, None
    product = None
    if sellpage.product_id is not None:
        product = await ProductRepository(scope).get(sellpage.product_id)
    public_product = None
    next_change = None
    if product is not None and product.status is ProductStatus.ACTIVE:
        rules = PricingRuleRepository(scope)
        rule = await rules.rule_in_effect(product.id, sellpage.id, now)
        next_change = await rules.next_change_after(product.id, sellpage.id, now)
        public_product = PublicProduct(
            id=product.id,
            name=product.name,
            description=product.description,
            price=None
            if rule is None
            else PublicPrice(price_minor=rule.price_minor, currency=rule.currency),
        )
    destinations = {
        row.network: row.destination_id
        for row in await scope.session.execute(_DESTINATIONS, {"seller_id": scope.seller_id})
    }
    document = PublicSellpage(
        slug=sellpage.slug,
        title=sellpage.title,
        content=sellpage.content,
        published_at=sellpage.published_at,
        product=public_product,
        conversion_destinations=destinations,
    )
    return document, next_change


_DESTINATIONS = text(
    "SELECT network, destination_id FROM conversion_destinations WHERE seller_id = :seller_id"
)


def _not_found() -> NotFoundError:
    return NotFoundError("no published sellpage at this address")
