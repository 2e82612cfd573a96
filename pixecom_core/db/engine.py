"""The async SQLAlchemy engine on psycopg 3, sized and time-boxed from settings.

SCALE-3: the pool is explicit and bounded per process. SCALE-7:
every connection of the application role carries ``statement_timeout`` and
``lock_timeout``; :class:`pixecom_core.tenancy.SellerScope` sets them again per
transaction with ``SET LOCAL`` semantics, which also holds behind PgBouncer in
transaction mode, where startup options are not passed through.

A pooled connection the server has closed (a restart, a failover, ``idle_session_timeout``,
``pg_terminate_backend``) is never handed out: at checkout the pool looks at the idle
connection's socket, without a round trip. An idle PostgreSQL connection receives nothing
unless its server is ending it (the FATAL message, then end of file), so a socket with input
waiting, or a connection libpq already knows to be bad, is closed and replaced by a new one
before anyone uses it. This replaces SQLAlchemy's ``pool_pre_ping``, a round trip at every
checkout — two per ad-account sync, about a fifth of a trivial transaction's CPU in the
worker and the server (issue 18 item 3: a sync costs a fifth). A server that vanished
without closing its sockets (a network partition) is found by the first statement, as it
would have been by the ping.
"""

from __future__ import annotations

import select
from typing import Any, Literal

import psycopg
from psycopg.pq import ConnStatus, TransactionStatus
from sqlalchemy import event, exc
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

    engine = create_async_engine(
        "postgresql+psycopg://",
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    return engine


def connection_is_usable(connection: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection may be handed out, judged without a round trip:
    open, libpq's status OK, idle, and no input waiting on its socket (an idle connection
    receives only its server's goodbye)."""
    pgconn = connection.pgconn
    if connection.closed or pgconn.status != ConnStatus.OK:
        return False
    if pgconn.transaction_status != TransactionStatus.IDLE:
        return False
    try:
        # poll, not select: a busy worker's descriptors pass select's limit of 1024
        waiting = select.poll()
        waiting.register(pgconn.socket, select.POLLIN | select.POLLPRI)
        return not waiting.poll(0)
    except (OSError, ValueError, psycopg.OperationalError):
        return False


def _refuse_closed_connection(
    _dbapi_connection: Any, connection_record: Any, _connection_proxy: Any
) -> None:
    """The pool's checkout hook: a connection its server closed is replaced (SQLAlchemy
    closes it and connects anew when a checkout listener raises ``DisconnectionError``)."""
    driver = connection_record.driver_connection
    if isinstance(driver, psycopg.AsyncConnection) and not connection_is_usable(driver):
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that never expire loaded objects on commit (they outlive the scope)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
