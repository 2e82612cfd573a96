"""Shared model plumbing: metadata naming convention and the seller-owned mixin."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlmodel import Field, SQLModel

# Stable constraint names, so Alembic migrations can refer to them and autogenerate
# never invents a different name on another machine.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)
metadata = SQLModel.metadata


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp column is ``timestamptz``."""
    return datetime.now(UTC)


class SellerOwned(SQLModel):
    """Columns every seller-owned table has.

    ``seller_id`` leads every primary and unique key (so the schema can be distributed by
    seller on Citus) and is what the row-level-security policy compares with
    ``current_setting('app.current_seller_id', true)``.
    """

    seller_id: uuid.UUID = Field(primary_key=True, foreign_key="sellers.id", nullable=False)
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, nullable=False)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )
