"""Runaway queries and lock waits are cut short (SCALE-7, "Could a bad
query lock full table?"): the API answers 503 with Retry-After instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
from sqlalchemy import text

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.settings import Settings
from pixecom_core.tenancy.scope import open_seller_scope
from tests.app.conftest import ClientFactory, NewSeller

ME = "/auth/me"
#: Seconds after which a request counts as hung.
HANG = 10


@contextmanager
def users_locked(owner_dsn: str) -> Iterator[None]:
    """Hold ``ACCESS EXCLUSIVE`` on ``users`` — what a careless migration does — until
    the block ends; then roll back."""
    with psycopg.connect(owner_dsn) as owner:
        owner.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            owner.rollback()


def assert_unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"]
    assert int(response.headers["Retry-After"]) > 0


async def test_a_statement_over_statement_timeout_is_cancelled_with_503(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    # lock_timeout 0 disables it, so only statement_timeout can end the wait.
    settings = app_settings.model_copy(update={"statement_timeout_ms": 300, "lock_timeout_ms": 0})
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        with users_locked(database_owner_dsn):
            started = time.monotonic()
            async with asyncio.timeout(HANG):  # a regression fails here, never hangs
                response = await client.get(ME, headers=seller.headers)
            elapsed = time.monotonic() - started

        assert_unavailable(response, "database_timeout")
        assert 0.25 <= elapsed < 5, elapsed
        # The cancelled connection went back to the pool in working order.
        again = await client.get(ME, headers=seller.headers)
        assert again.status_code == 200, again.text


async def test_a_lock_wait_over_lock_timeout_is_cancelled_with_503(
    app_settings: Settings,
    api_client_for: ClientFactory,
    new_seller: NewSeller,
    database_owner_dsn: str,
) -> None:
    settings = app_settings.model_copy(
        update={"statement_timeout_ms": 30_000, "lock_timeout_ms": 200}
    )
    async with api_client_for(settings) as client:
        seller = await new_seller(client=client)
        with users_locked(database_owner_dsn):
            started = time.monotonic()
            async with asyncio.timeout(HANG):  # a regression fails here, never hangs
                response = await client.get(ME, headers=seller.headers)
            elapsed = time.monotonic() - started

        assert_unavailable(response, "database_busy")
        assert 0.15 <= elapsed < 5, elapsed
        assert (await client.get(ME, headers=seller.headers)).status_code == 200


async def test_app_connections_carry_the_timeouts(
    app_settings: Settings, new_seller: NewSeller
) -> None:
    seller = await new_seller()
    settings = app_settings.model_copy(
        update={"statement_timeout_ms": 1234, "lock_timeout_ms": 567}
    )
    engine = create_engine(settings, role="app")
    try:
        # Every connection, from its start (libpq options) ...
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT current_setting('statement_timeout'),"
                        " current_setting('lock_timeout'), current_user"
                    )
                )
            ).one()
        assert tuple(row) == ("1234ms", "567ms", settings.app_role)

        # ... and every seller scope, per transaction (what holds behind PgBouncer).
        async with open_seller_scope(
            create_sessionmaker(engine), seller.seller_id, settings
        ) as scope:
            statement = (await scope.session.execute(text("SHOW statement_timeout"))).scalar()
            lock = (await scope.session.execute(text("SHOW lock_timeout"))).scalar()
        assert (statement, lock) == ("1234ms", "567ms")
    finally:
        await engine.dispose()


async def test_a_seller_scope_sets_the_timeouts_even_without_connection_options(
    app_settings: Settings, new_seller: NewSeller
) -> None:
    # Behind PgBouncer the startup options are not sent; the scope's SET LOCAL still is.
    seller = await new_seller()
    settings = app_settings.model_copy(
        update={"db_behind_pgbouncer": True, "statement_timeout_ms": 2345, "lock_timeout_ms": 678}
    )
    engine = create_engine(settings, role="app")
    try:
        async with open_seller_scope(
            create_sessionmaker(engine), seller.seller_id, settings
        ) as scope:
            statement = (await scope.session.execute(text("SHOW statement_timeout"))).scalar()
            lock = (await scope.session.execute(text("SHOW lock_timeout"))).scalar()
        assert (statement, lock) == ("2345ms", "678ms")
    finally:
        await engine.dispose()
