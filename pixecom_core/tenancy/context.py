"""SellerContext: who a request (or job) acts for, and how to open that seller's scope.

Services take a context, not a seller id from anywhere else: the id inside comes from an
authenticated token (API) or from the seller directory (jobs), and every transaction a
service opens with :meth:`SellerContext.scope` is bound to that seller.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pixecom_core.settings import Settings
from pixecom_core.tenancy.scope import SellerScope, open_seller_scope


@dataclass(frozen=True)
class SellerContext:
    """The acting seller (and user, when a person acts) plus the means to reach its data."""

    seller_id: uuid.UUID
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    user_id: uuid.UUID | None = None

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[SellerScope]:
        """One transaction bound to this seller; commits on success, rolls back on error."""
        async with open_seller_scope(self.sessions, self.seller_id, self.settings) as scope:
            yield scope
