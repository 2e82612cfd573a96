"""SellerScope: one transaction bound to one seller.

Tenant safety has two layers (TENANT-1, TENANT-2): repositories cannot be built without a
:class:`SellerScope`, and PostgreSQL row-level security filters every seller-owned table
on ``current_setting('app.current_seller_id')``. The scope sets that setting with
``set_config(..., is_local => true)`` — the ``SET LOCAL`` form — so it ends with the
transaction and can never leak to the next user of a pooled connection, PgBouncer in
transaction mode included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.settings import Settings

# Only open_seller_scope and bind_seller_scope hold this; a SellerScope built any other
# way is refused.
_SCOPE_TOKEN = object()

_BIND_SCOPE = text(
    "SELECT set_config('app.current_seller_id', :seller_id, true),"
    " set_config('statement_timeout', :statement_timeout, true),"
    " set_config('lock_timeout', :lock_timeout, true)"
)
# Empty, not unset: the policies read NULLIF(setting, '') — no seller, so no row.
_UNBIND_SCOPE = text("SELECT set_config('app.current_seller_id', '', true)")


class ScopeError(RuntimeError):
    """A scope was built by hand, or used after its transaction ended."""


@dataclass(frozen=True, eq=False)
class SellerScope:
    """An open transaction in which the database sees exactly one seller's rows.

    Obtain one with :func:`open_seller_scope`; the caller owns the transaction, which
    commits when the ``async with`` block ends normally and rolls back on an exception.
    :func:`bind_seller_scope` binds one inside a transaction the caller already holds.
    Repositories never commit.
    """

    seller_id: uuid.UUID
    session: AsyncSession
    settings: Settings
    _token: object

    def __post_init__(self) -> None:
        if self._token is not _SCOPE_TOKEN:
            raise ScopeError(
                "a SellerScope can only be opened with open_seller_scope() or bind_seller_scope()"
            )

    async def psycopg_connection(self) -> psycopg.AsyncConnection[object]:
        """The driver connection of this scope's transaction, for bulk paths (COPY into
        a staging table, array upserts). Statements on it run inside the same
        transaction, so the row-level-security policy still checks every row."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if not isinstance(driver, psycopg.AsyncConnection):
            raise ScopeError("the scope's connection is not a psycopg AsyncConnection")
        return driver


@asynccontextmanager
async def open_seller_scope(
    sessions: async_sessionmaker[AsyncSession], seller_id: uuid.UUID, settings: Settings
) -> AsyncIterator[SellerScope]:
    """Open a transaction scoped to ``seller_id``; commit on success, roll back on error.

    :param sessions: the process's session factory (app role).
    :param seller_id: the authenticated seller; never a value taken from a request body.
    :param settings: supplies ``statement_timeout`` / ``lock_timeout`` for the transaction
        (SCALE-7).
    """
    _check_seller_id(seller_id)
    async with sessions() as session, session.begin():
        yield await _bind(session, seller_id, settings)


@asynccontextmanager
async def bind_seller_scope(
    session: AsyncSession, seller_id: uuid.UUID, settings: Settings
) -> AsyncIterator[SellerScope]:
    """Bind ``seller_id`` to the transaction ``session`` already has open, for one block.

    For a caller that must write several sellers' rows and its own bookkeeping in one
    transaction on one connection — the webhook inbox records a delivery's facts and marks
    it processed together (issue 13 item 5). Inside the block the database sees exactly
    this seller's rows; when the block ends the binding is cleared (no seller's rows are
    visible), so the next block may bind another seller and a scope kept past its block
    sees nothing. Nothing is committed here: the caller owns the transaction. After an
    exception the binding is left to the caller's rollback (of the transaction, or of a
    savepoint opened before this block, which undoes ``SET LOCAL`` too).

    :param session: a session inside a transaction (``session.begin()``).
    :param seller_id: a seller found by a directory or an authenticated token.
    :param settings: supplies ``statement_timeout`` / ``lock_timeout``; they stay set for
        the rest of the transaction.
    """
    _check_seller_id(seller_id)
    if not session.in_transaction():
        raise ScopeError("bind_seller_scope() needs a session inside a transaction")
    scope = await _bind(session, seller_id, settings)
    yield scope
    await session.execute(_UNBIND_SCOPE)


def _check_seller_id(seller_id: object) -> None:
    if not isinstance(seller_id, uuid.UUID):
        raise TypeError(f"seller_id must be a uuid.UUID, not {type(seller_id).__name__}")


async def _bind(session: AsyncSession, seller_id: uuid.UUID, settings: Settings) -> SellerScope:
    await session.execute(
        _BIND_SCOPE,
        {
            "seller_id": str(seller_id),
            "statement_timeout": f"{settings.statement_timeout_ms}ms",
            "lock_timeout": f"{settings.lock_timeout_ms}ms",
        },
    )
    return SellerScope(seller_id=seller_id, session=session, settings=settings, _token=_SCOPE_TOKEN)
