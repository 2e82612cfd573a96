"""Fixtures shared by core and reference-app tests: real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_engine
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase, provision_test_database, test_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL server DSN, Redis URL) for the whole run."""
    with test_servers() as pair:
        yield pair


@pytest.fixture(scope="session")
def database(servers: tuple[str, str]) -> Iterator[TestDatabase]:
    """This run's own migrated database."""
    server_dsn, redis_url = servers
    with provision_test_database(server_dsn, redis_url) as db:
        yield db


@pytest.fixture(scope="session")
def settings(database: TestDatabase) -> Settings:
    return database.settings


@pytest.fixture
def owner_conn(database: TestDatabase) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection as the schema owner, for arranging and inspecting."""
    with psycopg.connect(database.owner_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
async def app_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The engine the API and worker use: the app role, subject to RLS."""
    engine = create_engine(settings, role="app")
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def database_owner_dsn(database: TestDatabase) -> str:
    """The owner's DSN, for tests that inspect rows behind the API's back."""
    return database.owner_dsn
