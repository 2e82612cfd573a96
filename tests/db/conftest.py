"""Fixtures for the schema tests: app-role connections and seeded sellers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from pixecom_core.testing.databases import TestDatabase, provision_test_database
from tests.db.tenant_rows import Connection, TwoSellers, insert_seller_rows


@pytest.fixture
def app_conn(database: TestDatabase) -> Iterator[Connection]:
    """A connection as the application role (not autocommit; use ``seller_scope``)."""
    with psycopg.connect(database.app_dsn) as conn:
        yield conn


@pytest.fixture(scope="module")
def two_sellers(database: TestDatabase) -> TwoSellers:
    """Sellers A and B, each with rows in every seller-owned table."""
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        a, b = uuid.uuid4(), uuid.uuid4()
        rows_a = insert_seller_rows(conn, a)
        rows_b = insert_seller_rows(conn, b)
    return TwoSellers(a=a, b=b, rows_a=rows_a, rows_b=rows_b)


@pytest.fixture(scope="module")
def scratch_database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """A migrated database of its own, for tests that create and drop partitions."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as db:
        yield db


@pytest.fixture(scope="session")
def database_app_role(database: TestDatabase) -> str:
    """The application role's name."""
    return database.settings.app_role
