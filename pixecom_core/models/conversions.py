"""Server-side conversion events (issue 17 item 4): where each seller's go, and the outbox.

``conversion_destinations`` holds a seller's receiving object at a network (a pixel or
dataset id) and the access token for it, encrypted like ad-account tokens (``pixecom keys
rotate`` re-encrypts it). ``conversion_deliveries`` is the outbox: one row per order,
network and event, written in the transaction that made the order PAID — its key is the
idempotency (a replayed webhook, a refund, a second PAID transition write nothing) — and
worked off after commit by the payments worker, retried with backoff, ``FAILED`` (and a
dead letter) when it keeps failing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import BYTEA
from sqlmodel import Field

from pixecom_core.models.base import (
    SellerOwned,
    enum_check,
    enum_field,
    now_default,
    plugin_identifier_check,
    timestamp_type,
    utcnow,
)


class DeliveryStatus(StrEnum):
    """Where one conversion event stands."""

    PENDING = "PENDING"
    SENT = "SENT"
    #: Retries exhausted, or the network refused the event itself: a dead letter says why.
    FAILED = "FAILED"


class ConversionDestinationRow(SellerOwned, table=True):
    """A seller's destination for conversion events at one network."""

    __tablename__ = "conversion_destinations"
    __table_args__ = (
        UniqueConstraint("seller_id", "network"),
        plugin_identifier_check("network"),
    )

    network: str = Field(sa_type=Text, nullable=False)
    #: The network's id of the receiving object (Meta: pixel or dataset id); public.
    destination_id: str = Field(sa_type=Text, nullable=False)
    token_ciphertext: bytes = Field(sa_type=BYTEA, nullable=False)
    token_key_version: int = Field(sa_type=Integer, nullable=False)
    test_event_code: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class ConversionDelivery(SellerOwned, table=True):
    """One conversion event of one order for one network: the outbox row."""

    __tablename__ = "conversion_deliveries"
    __table_args__ = (
        UniqueConstraint("seller_id", "order_id", "network", "event_name"),
        Index(
            "ix_conversion_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
        enum_check("status", DeliveryStatus),
        plugin_identifier_check("network"),
    )

    order_id: uuid.UUID = Field(nullable=False)
    order_created_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    network: str = Field(sa_type=Text, nullable=False)
    event_name: str = Field(sa_type=Text, nullable=False)
    status: DeliveryStatus = enum_field(DeliveryStatus, DeliveryStatus.PENDING)
    attempts: int = Field(default=0, sa_type=Integer, nullable=False)
    next_attempt_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: The network's id of the request that took it (support).
    trace_id: str | None = Field(default=None, sa_type=Text)
