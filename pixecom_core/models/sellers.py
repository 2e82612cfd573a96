"""Sellers (the tenant root), their users, refresh tokens and the login directory."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    currency_check,
    enum_check,
    now_default,
    timestamp_type,
    utcnow,
)


class SellerTier(StrEnum):
    """Spend tier: picks the worker queue and the sync interval (SCALE-5, queue shards)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class UserRole(StrEnum):
    """What a user may do within their seller."""

    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class Seller(SQLModel, table=True):
    """A tenant: one business selling through sellpages.

    Every seller-owned row references ``sellers.id``. Row-level security on this table is
    ``id = current seller``: within a scope the app role sees its own seller only, and
    without a scope it sees none. Signing a new seller up therefore opens a scope for the
    new id first, then inserts the row (the policy's WITH CHECK admits exactly that row).
    """

    __tablename__ = "sellers"
    __table_args__ = (
        currency_check("reporting_currency"),
        enum_check("tier", SellerTier),
    )

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        primary_key=True,
        sa_column_kwargs={"server_default": text("gen_random_uuid()")},
    )
    name: str = Field(sa_type=Text, nullable=False)
    #: Every sellpage figure is converted into this currency (STATS-3, multi-currency ROAS).
    reporting_currency: str = Field(sa_type=CHAR(3), nullable=False)
    #: IANA zone the seller's days are counted in.
    timezone: str = Field(
        default="UTC", sa_type=Text, nullable=False, sa_column_kwargs={"server_default": "UTC"}
    )
    tier: SellerTier = Field(
        default=SellerTier.LOW,
        sa_type=EnumText(SellerTier),
        nullable=False,
        sa_column_kwargs={"server_default": "low"},
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class User(SellerOwned, table=True):
    """A person who signs in to manage one seller.

    Emails are unique per seller here and globally in :class:`LoginIdentity` (a trigger
    keeps the directory in step), because login happens before the seller is known.
    """

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("seller_id", "email"),
        enum_check("role", UserRole),
    )

    email: str = Field(sa_type=Text, nullable=False)
    password_hash: str = Field(sa_type=Text, nullable=False)
    display_name: str | None = Field(default=None, sa_type=Text)
    role: UserRole = Field(
        default=UserRole.MEMBER,
        sa_type=EnumText(UserRole),
        nullable=False,
        sa_column_kwargs={"server_default": "MEMBER"},
    )
    is_active: bool = Field(
        default=True, nullable=False, sa_column_kwargs={"server_default": text("true")}
    )
    last_login_at: datetime | None = Field(default=None, sa_type=timestamp_type())


class LoginIdentity(SQLModel, table=True):
    """Global login directory: normalised email → (seller, user). Not seller-owned.

    Sign-in starts from an email alone, before any seller scope can be opened, so this is
    the one place that maps an email to its seller. The app role has **no** privilege on
    it: it calls the SECURITY DEFINER function ``pixecom_find_login(email)``, which answers
    for one exact email and cannot list the directory. A trigger on ``users`` maintains it.
    """

    __tablename__ = "login_identities"
    __table_args__ = (
        ForeignKeyConstraint(
            ["seller_id", "user_id"], ["users.seller_id", "users.id"], ondelete="CASCADE"
        ),
        CheckConstraint("email_normalized = lower(btrim(email_normalized))", name="normalized"),
    )

    email_normalized: str = Field(sa_type=Text, primary_key=True)
    seller_id: uuid.UUID = Field(nullable=False)
    user_id: uuid.UUID = Field(nullable=False)


class RefreshToken(SellerOwned, table=True):
    """A rotating refresh token, stored as a peppered hash only.

    Tokens descended from one login share ``family_id``; presenting a token that was
    already rotated (``rotated_at`` set) is reuse, and revokes the whole family.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        UniqueConstraint("seller_id", "token_hash"),
        ForeignKeyConstraint(
            ["seller_id", "user_id"], ["users.seller_id", "users.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["seller_id", "replaced_by"],
            ["refresh_tokens.seller_id", "refresh_tokens.id"],
            name="fk_refresh_tokens_replaced_by_refresh_tokens",
        ),
        Index(None, "seller_id", "family_id"),
        Index(None, "seller_id", "user_id"),
    )

    user_id: uuid.UUID = Field(nullable=False)
    family_id: uuid.UUID = Field(nullable=False)
    token_hash: str = Field(sa_type=Text, nullable=False)
    issued_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    expires_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    rotated_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    revoked_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    replaced_by: uuid.UUID | None = Field(default=None)
