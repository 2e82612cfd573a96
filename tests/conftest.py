"""Fixtures shared by core and reference-app tests: real PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db import admin
from pixecom_core.db.engine import create_engine
from pixecom_core.db.urls import conninfo
from pixecom_core.plugins import LOAD_PLUGINS_ENV, PLUGIN_MODULES_ENV
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase, provision_test_database, test_servers

# The conformance kit's fixtures and `conformance` marker (pixecom-core[testing]).
pytest_plugins = ["pixecom_core.testing.conformance"]


@pytest.fixture(scope="session", autouse=True)
def only_the_test_gateway() -> Iterator[None]:
    """Core's tests never depend on which plugin distributions are installed: every plugin
    manager built from the environment loads no installed plugin, only ``fakepay``."""
    saved = {name: os.environ.get(name) for name in (LOAD_PLUGINS_ENV, PLUGIN_MODULES_ENV)}
    os.environ[LOAD_PLUGINS_ENV] = ""
    os.environ[PLUGIN_MODULES_ENV] = "tests.ledger.fakepay"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


@dataclass(frozen=True)
class RestrictedOwnerDatabase:
    owner_dsn: str
    app_dsn: str


@pytest.fixture
def restricted_owner_database(
    servers: tuple[str, str], database: TestDatabase
) -> Iterator[RestrictedOwnerDatabase]:
    """A database migrated by an owner that is not a superuser (as on managed PostgreSQL):
    FORCE ROW LEVEL SECURITY then applies to the owner too."""
    server_dsn = conninfo(servers[0], dbname="postgres")
    role = f"pixecom_owner_{secrets.token_hex(4)}"
    name = f"pixecom_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(role))
        )
    try:
        admin.create_database(server_dsn, name)
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(name), sql.Identifier(role)
                )
            )
        owner_dsn = conninfo(server_dsn, dbname=name, user=role, password=None)
        app_role = database.settings.app_role
        admin.upgrade(owner_dsn, app_role=app_role)
        yield RestrictedOwnerDatabase(
            owner_dsn=owner_dsn, app_dsn=conninfo(owner_dsn, user=app_role, password=None)
        )
    finally:
        admin.drop_database(server_dsn, name)
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
