"""Orders, their append-only event log, and the payment-id uniqueness table."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    currency_check,
    empty_jsonb_default,
    enum_check,
    non_negative_check,
    now_default,
    plugin_identifier_check,
    sql_in_list,
    timestamp_type,
    utcnow,
)


class OrderStatus(StrEnum):
    """Where an order stands. Money movements are facts in ``payment_events``; the status
    is a summary of them for lists and fulfilment."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    #: Less was captured than the order's total: not paid, and the seller is told.
    UNDERPAID = "UNDERPAID"
    #: Money was captured in another currency than the order's, or more than its total
    #: was kept: the seller must look (refund the excess, or accept it).
    NEEDS_REVIEW = "NEEDS_REVIEW"


#: Statuses of orders whose money was captured at some point. Revenue rollups filter on
#: exactly this set so the planner can use the partial index ``ix_orders_revenue``;
#: refunded orders stay in it because refunds are subtracted, not forgotten (STATS-2).
PAID_LIKE_STATUSES: tuple[OrderStatus, ...] = (
    OrderStatus.PAID,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
)


class OrderEventType(StrEnum):
    """Kinds of entries in an order's history."""

    CREATED = "CREATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    ATTRIBUTED = "ATTRIBUTED"
    PAYMENT_RECORDED = "PAYMENT_RECORDED"
    TRACKING_UPDATED = "TRACKING_UPDATED"
    NOTE = "NOTE"


class Order(SellerOwned, table=True):
    """A customer's order, partitioned by month of ``created_at`` (STORE-1).

    The primary key is ``(seller_id, id, created_at)`` because every unique index of a
    partitioned table must contain the partition key. For the same reason the gateway's
    ``payment_id`` cannot be made unique here without also keying on ``created_at``
    (which would let the same payment land on two orders of different months): its
    uniqueness lives in the non-partitioned :class:`OrderPayment`, which is written in the
    same transaction as the order (MONEY-2). ``payment_gateway``/``payment_id``
    are kept here only as a denormalised copy for display.

    ``sellpage_id`` may be filled in later (delayed attribution); ``attributed_at`` records
    when, so the stats pipeline re-aggregates the order's day (STATS-2, scenario 3).
    """

    __tablename__ = "orders"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "id", "created_at"),
        ForeignKeyConstraint(["seller_id", "sellpage_id"], ["sellpages.seller_id", "sellpages.id"]),
        Index(None, "seller_id", "status"),
        Index(None, "seller_id", "created_at"),
        # STORE-4: revenue attribution by sellpage, only over paid-like orders.
        Index(
            "ix_orders_revenue",
            "seller_id",
            "sellpage_id",
            "created_at",
            postgresql_where=f"status IN ({sql_in_list(PAID_LIKE_STATUSES)})",
        ),
        enum_check("status", OrderStatus),
        currency_check(),
        non_negative_check("subtotal_minor", "total_minor"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        primary_key=True,
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    status: OrderStatus = Field(
        default=OrderStatus.PENDING,
        sa_type=EnumText(OrderStatus),
        nullable=False,
        sa_column_kwargs={"server_default": "PENDING"},
    )
    sellpage_id: uuid.UUID | None = Field(default=None)
    attributed_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    subtotal_minor: int = Field(sa_type=BigInteger, nullable=False)
    total_minor: int = Field(sa_type=BigInteger, nullable=False)
    customer_email: str = Field(sa_type=Text, nullable=False)
    payment_gateway: str | None = Field(default=None, sa_type=Text)
    payment_id: str | None = Field(default=None, sa_type=Text)
    # Issue 16 item 3: where the shopper came from, as the landing URL said (bounded and
    # validated at checkout). The ``*_ref`` columns are the ad network's own ids, which
    # Meta's URL parameters ``{{campaign.id}}``, ``{{adset.id}}`` and ``{{ad.id}}`` fill in;
    # the roll-up matches them (or ``utm_campaign``) against the synced campaigns.
    utm_source: str | None = Field(default=None, sa_type=Text)
    utm_medium: str | None = Field(default=None, sa_type=Text)
    utm_campaign: str | None = Field(default=None, sa_type=Text)
    utm_content: str | None = Field(default=None, sa_type=Text)
    utm_term: str | None = Field(default=None, sa_type=Text)
    fbclid: str | None = Field(default=None, sa_type=Text)
    campaign_ref: str | None = Field(default=None, sa_type=Text)
    adset_ref: str | None = Field(default=None, sa_type=Text)
    ad_ref: str | None = Field(default=None, sa_type=Text)
    # Issue 17 item 3: what the ad network's conversions API matches a purchase to the
    # click with — the pixel's browser ids (Meta's ``_fbp``/``_fbc`` cookies) and the
    # shopper's address and browser at checkout. Sent with the order's conversion event.
    landing_url: str | None = Field(default=None, sa_type=Text)
    fbp: str | None = Field(default=None, sa_type=Text)
    fbc: str | None = Field(default=None, sa_type=Text)
    client_ip: str | None = Field(default=None, sa_type=Text)
    user_agent: str | None = Field(default=None, sa_type=Text)


class OrderPayment(SellerOwned, table=True):
    """Which order a gateway payment belongs to; the home of payment-id uniqueness.

    MONEY-2 asked for ``UNIQUE (payment_id)`` on orders. ``orders`` is
    partitioned by ``created_at`` and PostgreSQL requires every unique index of a
    partitioned table to include the partition key, so that constraint cannot live
    there. This non-partitioned table holds it instead: ``(seller_id, gateway,
    payment_id)`` is unique (one payment, one order) and ``(seller_id, order_id, gateway)``
    is unique (one payment per gateway per order). ``order_created_at`` completes the
    order's key for joins that prune partitions.

    No foreign key to ``orders``: FKs into partitioned tables make detaching and dropping
    partitions depend on this table, and every check locks the whole partition tree.
    """

    __tablename__ = "order_payments"
    __table_args__ = (
        UniqueConstraint("seller_id", "gateway", "payment_id"),
        UniqueConstraint("seller_id", "order_id", "gateway"),
        plugin_identifier_check("gateway"),
    )

    gateway: str = Field(sa_type=Text, nullable=False)
    payment_id: str = Field(sa_type=Text, nullable=False)
    order_id: uuid.UUID = Field(nullable=False)
    order_created_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    #: The seller's own gateway account the payment was made on (issue 15), for a gateway
    #: with connections: refunds go to that account, even after the seller connected
    #: another one.
    account_id: str | None = Field(default=None, sa_type=Text)


class OrderEvent(SellerOwned, table=True):
    """One entry in an order's history, partitioned by month of ``created_at``.

    Append-only in the database (MONEY-1): a trigger refuses UPDATE, DELETE and TRUNCATE
    for everyone, owner included, and the app role holds only SELECT and INSERT.
    No foreign key to ``orders`` (a partitioned table; see :class:`OrderPayment`).
    """

    __tablename__ = "order_events"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "id", "created_at"),
        Index(None, "seller_id", "order_id", "created_at"),
        enum_check("event_type", OrderEventType),
        enum_check("from_status", OrderStatus, nullable=True),
        enum_check("to_status", OrderStatus, nullable=True),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        primary_key=True,
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    order_id: uuid.UUID = Field(nullable=False)
    event_type: OrderEventType = Field(sa_type=EnumText(OrderEventType), nullable=False)
    from_status: OrderStatus | None = Field(default=None, sa_type=EnumText(OrderStatus))
    to_status: OrderStatus | None = Field(default=None, sa_type=EnumText(OrderStatus))
    payload: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs=empty_jsonb_default(),
    )
