"""Shared model plumbing: metadata naming convention and the seller-owned mixins.

Column conventions every model follows (STORE-6, docs/architecture.md):

- timestamps are ``timestamptz`` (:func:`timestamp_type`), never naive;
- money is ``BIGINT`` minor units plus an ISO-4217 ``currency CHAR(3)`` checked by
  :func:`currency_check`; ad-network money stays ``*_micros`` until converted;
- enumerations are ``TEXT`` plus a CHECK constraint built from a Python ``StrEnum``
  (:class:`EnumText` and :func:`enum_check`), so adding a value is a one-line migration
  and never an ``ALTER TYPE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import CheckConstraint, DateTime, Dialect, MetaData, Text, text
from sqlalchemy.types import TypeDecorator
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

EnumT = TypeVar("EnumT", bound=StrEnum)


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp column is ``timestamptz``."""
    return datetime.now(UTC)


def timestamp_type() -> DateTime:
    """The one timestamp type: ``timestamptz``."""
    return DateTime(timezone=True)


class EnumText(TypeDecorator[EnumT], Generic[EnumT]):
    """A ``StrEnum`` stored as ``TEXT`` (the allowed values live in a CHECK constraint).

    Values read back are converted to the enum, so Python code compares members, not
    strings; the database keeps plain text that any SQL tool can read.
    """

    impl = Text
    cache_ok = True

    def __init__(self, enum_class: type[EnumT]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(
        self,
        value: EnumT | str | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(
        self,
        value: Any,
        dialect: Dialect,  # noqa: ARG002
    ) -> EnumT | None:
        if value is None:
            return None
        return self.enum_class(value)

    @property
    def python_type(self) -> type[EnumT]:
        return self.enum_class


def sql_in_list(values: Iterable[str]) -> str:
    """``'A', 'B'`` — a literal list for CHECK constraints and partial-index predicates."""
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def enum_check(
    column: str, enum_class: type[StrEnum], *, nullable: bool = False
) -> CheckConstraint:
    """CHECK constraint ``ck_<table>_<column>_allowed``: ``column`` holds a member's value."""
    condition = f"{column} IN ({sql_in_list(member.value for member in enum_class)})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=f"{column}_allowed")


def currency_check(column: str = "currency") -> CheckConstraint:
    """CHECK constraint ``ck_<table>_<column>_iso4217``: three upper-case letters."""
    return CheckConstraint(f"{column} ~ '^[A-Z]{{3}}$'", name=f"{column}_iso4217")


def plugin_identifier_check(column: str) -> CheckConstraint:
    """CHECK constraint ``ck_<table>_<column>_format``: a plugin identifier (``meta``,
    ``stripe``, ``tiktok_ads``). Networks, gateways and carriers come from plugins, so they
    are not a closed enum."""
    return CheckConstraint(f"{column} ~ '^[a-z][a-z0-9_]*$'", name=f"{column}_format")


def non_negative_check(*columns: str) -> CheckConstraint:
    """CHECK constraint ``ck_<table>_<first column>_non_negative`` over ``columns``."""
    condition = " AND ".join(f"{column} >= 0" for column in columns)
    return CheckConstraint(condition, name=f"{columns[0]}_non_negative")


def enum_field(enum_class: type[StrEnum], default: StrEnum) -> Any:
    """A NOT NULL enum column defaulting to ``default`` in Python and in the database."""
    return Field(
        default=default,
        sa_type=EnumText(enum_class),
        nullable=False,
        sa_column_kwargs={"server_default": default.value},
    )


def empty_jsonb_default() -> dict[str, Any]:
    """``sa_column_kwargs`` giving a JSONB column ``DEFAULT '{}'::jsonb``."""
    return {"server_default": text("'{}'::jsonb")}


def now_default() -> dict[str, Any]:
    """``sa_column_kwargs`` giving a timestamp column ``DEFAULT now()`` in the database too
    (bulk SQL paths insert without the ORM)."""
    return {"server_default": text("now()")}


class SellerOwned(SQLModel):
    """Columns every seller-owned table has.

    ``seller_id`` leads every primary and unique key (so the schema can be distributed by
    seller on Citus) and is what the row-level-security policy compares with
    ``current_setting('app.current_seller_id', true)``. ``id`` and ``created_at`` default
    in the database as well, for the bulk paths that bypass the ORM.
    """

    seller_id: uuid.UUID = Field(primary_key=True, foreign_key="sellers.id", nullable=False)
    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        primary_key=True,
        nullable=False,
        sa_column_kwargs={"server_default": text("gen_random_uuid()")},
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"server_default": text("now()")},
    )


class SellerOwnedNaturalKey(SellerOwned):
    """A seller-owned table whose primary key is a natural key led by ``seller_id``.

    ``id`` stays as a row identifier (cursor pagination sorts on ``created_at, id``) but is
    not part of the key: the daily stats tables are keyed by what they count, and a join
    table by what it joins.
    """

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        nullable=False,
        sa_column_kwargs={"server_default": text("gen_random_uuid()")},
    )
