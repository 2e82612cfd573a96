"""Shipment tracking of orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    empty_jsonb_default,
    enum_check,
    timestamp_type,
)
from pixecom_core.providers.tracking import TrackingStatus


class TrackingRecord(SellerOwned, table=True):
    """A tracking number registered with a carrier tracker, and its last known status.

    ``(seller_id, carrier, tracking_number)`` is unique, so a push and a poll for the same
    parcel update one row. ``status`` uses the tracker contract's normalised statuses.
    No foreign key to ``orders``, a partitioned table (see ``OrderPayment``).
    """

    __tablename__ = "tracking_records"
    __table_args__ = (
        UniqueConstraint("seller_id", "carrier", "tracking_number"),
        Index(None, "seller_id", "order_id"),
        # The poller picks parcels not yet delivered, least recently checked first.
        Index(
            "ix_tracking_records_due",
            "last_checked_at",
            postgresql_where="status NOT IN ('delivered', 'expired')",
        ),
        enum_check("status", TrackingStatus),
        CheckConstraint("carrier ~ '^[a-z0-9][a-z0-9_-]*$'", name="carrier_format"),
    )

    order_id: uuid.UUID = Field(nullable=False)
    carrier: str = Field(sa_type=Text, nullable=False)
    tracking_number: str = Field(sa_type=Text, nullable=False)
    status: TrackingStatus = Field(
        default=TrackingStatus.NOT_FOUND,
        sa_type=EnumText(TrackingStatus),
        nullable=False,
        sa_column_kwargs={"server_default": TrackingStatus.NOT_FOUND.value},
    )
    last_event_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    last_checked_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    raw: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs=empty_jsonb_default(),
    )
