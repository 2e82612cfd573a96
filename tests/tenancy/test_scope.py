"""SellerScope binds one transaction to one seller and time-boxes it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pixecom_core.db.engine import create_engine, create_sessionmaker
from pixecom_core.settings import Settings
from pixecom_core.tenancy import ScopeError, SellerRepository, SellerScope, open_seller_scope


async def current_setting(scope: SellerScope, name: str) -> str | None:
    result = await scope.session.execute(text("SELECT current_setting(:n, true)"), {"n": name})
    value: str | None = result.scalar_one()
    return value


async def test_scope_sets_seller_for_its_transaction_only(
    app_engine: AsyncEngine, settings: Settings
) -> None:
    sessions = create_sessionmaker(app_engine)
    seller = uuid.uuid4()
    async with open_seller_scope(sessions, seller, settings) as scope:
        assert await current_setting(scope, "app.current_seller_id") == str(seller)
        assert await current_setting(scope, "statement_timeout") == "30s"
        assert await current_setting(scope, "lock_timeout") == "5s"
    # A pooled connection handed to the next user carries no seller.
    async with sessions() as session:
        leftover = await session.execute(
            text("SELECT current_setting('app.current_seller_id', true)")
        )
        assert leftover.scalar_one() in (None, "")


async def test_scope_connects_as_the_app_role_without_privileges(
    app_engine: AsyncEngine, settings: Settings
) -> None:
    async with open_seller_scope(create_sessionmaker(app_engine), uuid.uuid4(), settings) as scope:
        row = (
            await scope.session.execute(
                text(
                    "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles"
                    " WHERE rolname = current_user"
                )
            )
        ).one()
    assert tuple(row) == (settings.app_role, False, False)


async def test_scope_rolls_back_on_error(app_engine: AsyncEngine, settings: Settings) -> None:
    sessions = create_sessionmaker(app_engine)
    with pytest.raises(RuntimeError, match="boom"):
        async with open_seller_scope(sessions, uuid.uuid4(), settings) as scope:
            await scope.session.execute(text("CREATE TEMP TABLE scratch (x int)"))
            raise RuntimeError("boom")
    async with sessions() as session:
        exists = await session.execute(text("SELECT to_regclass('pg_temp.scratch')"))
        assert exists.scalar_one() is None


async def test_runaway_statement_is_cancelled(settings: Settings) -> None:
    # SCALE-7: a query past statement_timeout is cancelled by the server.
    short = settings.model_copy(update={"statement_timeout_ms": 200})
    engine = create_engine(short, role="app")
    try:
        with pytest.raises(DBAPIError) as caught:
            async with open_seller_scope(create_sessionmaker(engine), uuid.uuid4(), short) as scope:
                await scope.session.execute(text("SELECT pg_sleep(5)"))
        assert "statement timeout" in str(caught.value)
    finally:
        await engine.dispose()


async def test_connection_options_carry_timeouts_outside_a_scope(settings: Settings) -> None:
    short = settings.model_copy(update={"statement_timeout_ms": 250, "lock_timeout_ms": 100})
    engine = create_engine(short, role="app")
    try:
        async with engine.connect() as connection:
            values = (
                await connection.execute(
                    text(
                        "SELECT current_setting('statement_timeout'),"
                        " current_setting('lock_timeout')"
                    )
                )
            ).one()
        assert tuple(values) == ("250ms", "100ms")
    finally:
        await engine.dispose()


async def test_scope_and_repository_cannot_be_built_by_hand(
    app_engine: AsyncEngine, settings: Settings
) -> None:
    async with create_sessionmaker(app_engine)() as session:
        with pytest.raises(ScopeError):
            SellerScope(seller_id=uuid.uuid4(), session=session, settings=settings, _token=object())
    with pytest.raises(TypeError, match="SellerScope"):
        SellerRepository(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uuid"):
        async with open_seller_scope(create_sessionmaker(app_engine), "abc", settings):  # type: ignore[arg-type]
            pass
