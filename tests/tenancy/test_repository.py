"""Repositories: bounded keyset pages (SCALE-4) and the seller filter on every query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.catalog.repositories import ProductRepository
from pixecom_core.db.engine import create_sessionmaker
from pixecom_core.models.catalog import Product
from pixecom_core.settings import Settings
from pixecom_core.tenancy import InvalidCursorError, PageRequest, open_seller_scope
from pixecom_core.tenancy.pagination import encode_cursor
from pixecom_core.testing.databases import TestDatabase
from tests.db.tenant_rows import insert_seller, seller_scope

ROWS_A = 10_000


@pytest.fixture(scope="module")
def sellers_with_products(database: TestDatabase) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    """Seller A with 10,000 products (many sharing one created_at), seller B with 3."""
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        for seller, count in ((a, ROWS_A), (b, 3)):
            insert_seller(conn, seller)
            with seller_scope(conn, seller):
                # Ties on created_at (batches of 100 share a timestamp) prove the cursor
                # breaks ties on id and never skips or repeats a row.
                conn.execute(
                    "INSERT INTO products (seller_id, sku, name, created_at)"
                    " SELECT %s, 'SKU-' || n, 'Product ' || n,"
                    "        timestamptz '2026-01-01' + (n / 100) * interval '1 second'"
                    " FROM generate_series(1, %s) AS n",
                    (seller, count),
                )
    yield a, b


async def test_asking_for_ten_thousand_rows_returns_one_bounded_page(
    app_engine: AsyncEngine, settings: Settings, sellers_with_products: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = sellers_with_products
    async with open_seller_scope(create_sessionmaker(app_engine), a, settings) as scope:
        page = await ProductRepository(scope).list(PageRequest(limit=10_000))
    assert len(page.items) == settings.max_page_size
    assert page.limit == settings.max_page_size
    assert page.next_cursor is not None


async def test_walking_every_page_yields_each_row_once_and_only_the_sellers(
    app_engine: AsyncEngine, settings: Settings, sellers_with_products: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = sellers_with_products
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    pages = 0
    sessions = create_sessionmaker(app_engine)
    while True:
        async with open_seller_scope(sessions, a, settings) as scope:
            page = await ProductRepository(scope).list(PageRequest(limit=10_000, cursor=cursor))
        assert all(item.seller_id == a for item in page.items)
        seen.extend(item.id for item in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == ROWS_A and len(set(seen)) == ROWS_A
    assert pages == -(-ROWS_A // settings.max_page_size)


async def test_other_sellers_rows_are_invisible_and_unwritable(
    app_engine: AsyncEngine, settings: Settings, sellers_with_products: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, b = sellers_with_products
    sessions = create_sessionmaker(app_engine)
    async with open_seller_scope(sessions, b, settings) as scope:
        b_page = await ProductRepository(scope).list(PageRequest())
    assert len(b_page.items) == 3 and b_page.next_cursor is None
    async with open_seller_scope(sessions, a, settings) as scope:
        repository = ProductRepository(scope)
        assert await repository.get(b_page.items[0].id) is None
        with pytest.raises(PermissionError):
            repository.add(Product(seller_id=b, sku="X", name="smuggled"))
        with pytest.raises(PermissionError):
            await repository.delete(b_page.items[0])
        added = repository.add(Product(seller_id=a, sku="NEW-1", name="fresh"))
        await repository.flush()
        assert added.seller_id == a
        assert (await repository.get(added.id)) is not None
        await scope.session.rollback()


async def test_tampered_cursor_is_refused(
    app_engine: AsyncEngine, settings: Settings, sellers_with_products: tuple[uuid.UUID, uuid.UUID]
) -> None:
    a, _ = sellers_with_products
    async with open_seller_scope(create_sessionmaker(app_engine), a, settings) as scope:
        with pytest.raises(InvalidCursorError):
            await ProductRepository(scope).list(PageRequest(cursor="bm90LWEtY3Vyc29y"))


@pytest.mark.parametrize(
    "values",
    [["not a time", str(uuid.uuid4())], [datetime.now(UTC), "not-a-uuid-but-a-string"], [1, 2]],
    ids=["text-for-timestamp", "text-for-uuid", "integers"],
)
async def test_cursor_with_wrong_types_is_refused_before_sql(
    app_engine: AsyncEngine,
    settings: Settings,
    sellers_with_products: tuple[uuid.UUID, uuid.UUID],
    values: list[object],
) -> None:
    # Well-formed cursor encoding, wrong types for (created_at, id): a forged cursor must
    # be a 400-class error, not a type error from PostgreSQL.
    a, _ = sellers_with_products
    async with open_seller_scope(create_sessionmaker(app_engine), a, settings) as scope:
        with pytest.raises(InvalidCursorError):
            await ProductRepository(scope).list(PageRequest(cursor=encode_cursor(values)))
