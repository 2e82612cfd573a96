"""The async SQLAlchemy engine on psycopg 3, sized and time-boxed from settings.

SCALE-3: the pool is explicit and bounded per process. SCALE-7:
every connection of the application role carries ``statement_timeout`` and
``lock_timeout``; :class:`pixecom_core.tenancy.SellerScope` sets them again per
transaction with ``SET LOCAL`` semantics, which also holds behind PgBouncer in
transaction mode, where startup options are not passed through.
"""

from __future__ import annotations

from typing import Literal

import psycopg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pixecom_core.db.urls import app_conninfo, conninfo, owner_conninfo
from pixecom_core.settings import Settings

#: "replica" is the application role on a streaming read replica
#: (``read_database_url``; SCALE-6): roles and RLS policies replicate
#: physically, so reads there are as tenant-safe as on the primary.
Role = Literal["app", "owner", "replica"]


def timeout_options(settings: Settings) -> str:
    """libpq ``options`` that bound every statement and lock wait of a session."""
    return (
        f"-c statement_timeout={settings.statement_timeout_ms} "
        f"-c lock_timeout={settings.lock_timeout_ms} "
        f"-c idle_in_transaction_session_timeout={settings.idle_in_transaction_timeout_ms}"
    )


def connection_conninfo(
    settings: Settings, role: Role = "app", *, application_name: str | None = None
) -> str:
    """The conninfo a process of ``role`` connects with, timeouts included.

    :param application_name: what ``pg_stat_activity`` shows for these connections
        (``pixecom-api``, ``pixecom-worker-payments`` …), so a slow statement names the
        process that runs it; ``pixecom-<role>`` when not given.
    """
    if role == "replica":
        if not settings.read_database_url:
            raise ValueError("read_database_url is not set: there is no replica to connect to")
        base = conninfo(settings.read_database_url)
    else:
        base = app_conninfo(settings) if role == "app" else owner_conninfo(settings)
    name = application_name or f"pixecom-{role}"
    if settings.db_behind_pgbouncer:
        # PgBouncer rejects unknown startup parameters; the role-level defaults set by
        # `pixecom db upgrade` and the per-transaction settings still apply.
        return conninfo(base, application_name=name)
    return conninfo(base, application_name=name, options=timeout_options(settings))


def create_engine(
    settings: Settings, *, role: Role = "app", application_name: str | None = None
) -> AsyncEngine:
    """Build the process's engine for ``role`` ("app" for API/worker, "owner" for admin).

    Server-side prepared statements are disabled behind PgBouncer (transaction mode
    cannot keep them across transactions). ``application_name`` labels the connections
    in ``pg_stat_activity`` (see :func:`connection_conninfo`).
    """
    dsn = connection_conninfo(settings, role, application_name=application_name)
    prepare_threshold = None if settings.db_behind_pgbouncer else 5

    async def connect() -> psycopg.AsyncConnection[object]:
        conn: psycopg.AsyncConnection[object] = await psycopg.AsyncConnection.connect(
            dsn, prepare_threshold=prepare_threshold
        )
        return conn

    return create_async_engine(
        "postgresql+psycopg://",
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that never expire loaded objects on commit (they outlive the scope)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
