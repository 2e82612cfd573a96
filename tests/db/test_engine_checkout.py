"""The engine's pool never hands out a connection its server has closed, and finds out
without a round trip (issue 18 item 3): a terminated backend's connection is replaced at
checkout, so the caller's first statement runs on a live one."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from pixecom_core.db.engine import connection_is_usable, create_engine, create_sessionmaker
from pixecom_core.settings import Settings
from pixecom_core.testing.databases import TestDatabase


def wait_until_gone(owner: psycopg.Connection[tuple[object, ...]], pid: int) -> None:
    deadline = time.monotonic() + 10
    while owner.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, f"backend {pid} still there after 10 s"
        time.sleep(0.05)


async def test_a_connection_whose_backend_was_terminated_is_replaced_at_checkout(
    settings: Settings, owner_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    engine = create_engine(
        settings.model_copy(update={"db_pool_size": 1, "db_pool_max_overflow": 0})
    )
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            first = await session.scalar(text("SELECT pg_backend_pid()"))
        assert isinstance(first, int)
        owner_conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        wait_until_gone(owner_conn, first)

        async with sessions() as session, session.begin():
            second = await session.scalar(text("SELECT pg_backend_pid()"))

        assert second != first
    finally:
        await engine.dispose()


async def test_an_idle_open_connection_is_usable_and_a_busy_or_closed_one_is_not(
    database: TestDatabase,
) -> None:
    async with await psycopg.AsyncConnection.connect(database.app_dsn) as connection:
        assert connection_is_usable(connection)
        await connection.execute("SELECT 1")  # opens a transaction (not autocommit)
        assert not connection_is_usable(connection)
        await connection.rollback()
        assert connection_is_usable(connection)
    assert not connection_is_usable(connection)


async def test_a_connection_with_its_servers_goodbye_waiting_is_not_usable(
    database: TestDatabase, owner_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    async with await psycopg.AsyncConnection.connect(
        database.app_dsn, autocommit=True
    ) as connection:
        pid = connection.info.backend_pid
        owner_conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        wait_until_gone(owner_conn, pid)

        assert not connection_is_usable(connection)
        with pytest.raises(psycopg.OperationalError):
            await connection.execute("SELECT 1")
