"""The payment ledger (append-only facts) and the webhook inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    currency_check,
    empty_jsonb_default,
    enum_check,
    enum_field,
    non_negative_check,
    now_default,
    plugin_identifier_check,
    timestamp_type,
    utcnow,
)


class PaymentEventType(StrEnum):
    """Kinds of money movement the ledger records (MONEY-1, event-sourced payments).

    ``amount_minor`` is always positive; the type gives the sign (captures add, refunds
    and chargebacks subtract, a reversed chargeback adds back).
    """

    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    REFUNDED = "REFUNDED"
    CHARGEBACK = "CHARGEBACK"
    CHARGEBACK_REVERSED = "CHARGEBACK_REVERSED"
    FAILED = "FAILED"


class WebhookStatus(StrEnum):
    """Processing state of a stored webhook delivery."""

    RECEIVED = "RECEIVED"
    PROCESSED = "PROCESSED"
    FAILED = "FAILED"
    DEFERRED = "DEFERRED"


class PaymentEvent(SellerOwned, table=True):
    """One money fact from a payment gateway: the ledger revenue is computed from.

    Append-only in the database (MONEY-1): a trigger refuses UPDATE, DELETE and TRUNCATE
    for everyone, owner included, and the app role holds only SELECT and INSERT. A
    correction is a new fact (a refund, a reversed chargeback), never an edit.

    ``(seller_id, gateway, gateway_reference, event_type)`` is the fact's identity:
    ``gateway_reference`` is the gateway's id of the money object (payment intent, refund,
    dispute), not of the webhook delivery, because one refund can be announced by several
    webhook types and deliveries are retried (MONEY-2: duplicate webhooks must not
    duplicate state). Recording a fact twice is therefore a no-op with
    ``ON CONFLICT DO NOTHING``.

    No foreign key to ``orders``, a partitioned table (see ``OrderPayment``).
    """

    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint(
            "seller_id", "gateway", "gateway_reference", "event_type", name="uq_payment_events_fact"
        ),
        Index(None, "seller_id", "order_id", "recorded_at"),
        enum_check("event_type", PaymentEventType),
        currency_check(),
        non_negative_check("amount_minor"),
        plugin_identifier_check("gateway"),
    )

    order_id: uuid.UUID = Field(nullable=False)
    gateway: str = Field(sa_type=Text, nullable=False)
    gateway_reference: str = Field(sa_type=Text, nullable=False)
    event_type: PaymentEventType = Field(sa_type=EnumText(PaymentEventType), nullable=False)
    amount_minor: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    #: When the gateway says the money moved.
    occurred_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    #: When PixEcom recorded the fact (what re-aggregation windows look at).
    recorded_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    #: The webhook delivery that announced the fact, for tracing (not part of its identity).
    gateway_event_id: str | None = Field(default=None, sa_type=Text)
    raw: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs=empty_jsonb_default(),
    )


class RefundStatus(StrEnum):
    """Where a refund a seller asked for stands (issue 15 item 3).

    ``REQUESTED``: written before the gateway is called and kept while its answer is
    unknown (timeout, outage); its amount stays reserved and the same gateway idempotency
    key is used again, so the retry can never refund twice. ``PENDING``: the gateway
    accepted it, the money is not back yet. ``SUCCEEDED``: the ledger holds its
    ``REFUNDED`` fact. ``FAILED``: refused or failed at the gateway; the amount is
    refundable again.
    """

    REQUESTED = "REQUESTED"
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Refund(SellerOwned, table=True):
    """A refund a seller asked for through the API, and what the gateway made of it.

    Not a ledger fact: the money moves in the ledger only when the gateway answers
    ``succeeded`` or its webhook says so (``payment_events``, once, whichever is first).
    This row reserves the amount while the refund is open, so concurrent requests cannot
    together refund more than was captured (the order row is locked while they are
    counted), and shows the seller refunds that are pending or failed.

    ``(seller_id, idempotency_key)`` is unique: the seller's ``Idempotency-Key`` names one
    refund for good. The gateway's key is derived from ``id``, never from the seller's
    key, which is only unique per seller. ``gateway_reference`` (``re_…``) is unique per
    gateway once known; it is the ``gateway_reference`` of the refund's ledger fact.
    """

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("seller_id", "idempotency_key"),
        UniqueConstraint("seller_id", "gateway", "gateway_reference"),
        Index(None, "seller_id", "order_id"),
        # The payments worker's sweep of open refunds (pixecom_open_refunds).
        Index(
            "ix_refunds_open",
            "updated_at",
            postgresql_where=text("status IN ('REQUESTED', 'PENDING')"),
        ),
        enum_check("status", RefundStatus),
        currency_check(),
        CheckConstraint("amount_minor > 0", name="amount_minor_positive"),
        plugin_identifier_check("gateway"),
    )

    order_id: uuid.UUID = Field(nullable=False)
    #: The order's partition key, so the order row is found (and locked) in one partition.
    order_created_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    gateway: str = Field(sa_type=Text, nullable=False)
    #: The seller's ``Idempotency-Key`` header.
    idempotency_key: str = Field(sa_type=Text, nullable=False)
    amount_minor: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    #: The seller's words, passed to the gateway.
    reason: str | None = Field(default=None, sa_type=Text)
    status: RefundStatus = enum_field(RefundStatus, RefundStatus.REQUESTED)
    #: The gateway's id of the refund, once it answered.
    gateway_reference: str | None = Field(default=None, sa_type=Text)
    #: Why the gateway refused or failed it, in its words.
    failure_reason: str | None = Field(default=None, sa_type=Text)
    #: The user who asked for it, when a person did.
    requested_by: uuid.UUID | None = Field(default=None)
    #: While a request to the gateway is under way, until when: a retry meanwhile does
    #: not ask again (a gateway refuses concurrent requests under one idempotency key).
    asking_until: datetime | None = Field(default=None, sa_type=timestamp_type())
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class WebhookInboxEntry(SQLModel, table=True):
    """A raw webhook delivery, stored before it is understood. Its seller is unknown until
    the body is parsed (``seller_id`` NULL until then); forced row-level security keeps
    every row away from the app role except its seller's attributed ones, in that
    seller's scope (issue 12 item 3, migration 0010).

    The endpoint verifies the signature, stores the delivery and answers 2xx at once; a
    worker processes ``RECEIVED`` and due ``DEFERRED`` rows into the ledger (MONEY-3,
    webhook bursts). The app role may only SELECT (within a scope); it stores and settles
    deliveries through the ``pixecom_inbox_*`` owner functions, each about one delivery.

    Partitioned by month of ``received_at`` (issue 18 item 5, migration 0019): months past
    ``webhook_inbox_retention_days`` are dropped by ``pixecom db maintain``. No unique key
    can span the months, so ``pixecom_inbox_receive`` makes a redelivery a no-op under an
    advisory lock on ``(gateway, event_id)``, found through
    ``ix_webhook_inbox_gateway_event_id`` in every partition; a replay older than the
    retention is stored again and recorded once by the ledger's own fact key.
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        PrimaryKeyConstraint("id", "received_at"),
        Index("ix_webhook_inbox_gateway_event_id", "gateway", "event_id"),
        Index(
            "ix_webhook_inbox_pending",
            "next_attempt_at",
            postgresql_where="status IN ('RECEIVED', 'DEFERRED')",
        ),
        # GET /problems: one seller's deferred and failed deliveries, newest first.
        Index(
            "ix_webhook_inbox_seller_problems",
            "seller_id",
            "received_at",
            postgresql_where="status IN ('DEFERRED', 'FAILED')",
        ),
        enum_check("status", WebhookStatus),
        non_negative_check("attempts"),
        plugin_identifier_check("gateway"),
        {"postgresql_partition_by": "RANGE (received_at)"},
    )

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=BigInteger,
        sa_column_args=[Identity(always=False)],
    )
    gateway: str = Field(sa_type=Text, nullable=False)
    event_id: str = Field(sa_type=Text, nullable=False)
    #: The gateway's notification type (``charge.refunded``), for operators.
    event_type: str = Field(
        default="", sa_type=Text, nullable=False, sa_column_kwargs={"server_default": ""}
    )
    received_at: datetime = Field(
        default_factory=utcnow,
        primary_key=True,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    headers: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs=empty_jsonb_default(),
    )
    body: bytes = Field(sa_type=BYTEA, nullable=False)
    status: WebhookStatus = Field(
        default=WebhookStatus.RECEIVED,
        sa_type=EnumText(WebhookStatus),
        nullable=False,
        sa_column_kwargs={"server_default": "RECEIVED"},
    )
    attempts: int = Field(
        default=0, sa_type=Integer, nullable=False, sa_column_kwargs={"server_default": text("0")}
    )
    last_error: str | None = Field(default=None, sa_type=Text)
    next_attempt_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    processed_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    seller_id: uuid.UUID | None = Field(default=None, foreign_key="sellers.id")


class PaymentDirectoryEntry(SQLModel, table=True):
    """Global payment directory: (gateway, payment) → (seller, order). Not seller-owned.

    A webhook names a gateway payment, not a seller; the worker looks the payment up here
    (through the SECURITY DEFINER function ``pixecom_find_payment``, the app role has no
    privilege on the table) before opening the seller's scope. A trigger on
    ``order_payments`` fills it, and its key makes a gateway payment id unique across all
    sellers (MONEY-2).
    """

    __tablename__ = "payment_directory"
    __table_args__ = (
        ForeignKeyConstraint(
            ["seller_id", "gateway", "payment_reference"],
            ["order_payments.seller_id", "order_payments.gateway", "order_payments.payment_id"],
            ondelete="CASCADE",
        ),
    )

    gateway: str = Field(sa_type=Text, primary_key=True)
    payment_reference: str = Field(sa_type=Text, primary_key=True)
    seller_id: uuid.UUID = Field(nullable=False)
    order_id: uuid.UUID = Field(nullable=False)
    order_created_at: datetime = Field(sa_type=timestamp_type(), nullable=False)


class PaymentConnectionStatus(StrEnum):
    """Where a seller's connection of their own gateway account stands (issue 15 item 1).

    ``PENDING``: a consent flow started, not finished. ``ACTIVE``: payments of this seller
    on this gateway go to its account (at most one per seller and gateway). ``REFUSED``:
    the flow failed (``refusal`` says why). ``REVOKED``: the seller took PixEcom's access
    away at the gateway (Stripe ``account.application.deauthorized``): checkout stops and
    the problems feed says so until they connect again. ``DISCONNECTED``: the seller
    disconnected it in PixEcom.
    """

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REFUSED = "REFUSED"
    REVOKED = "REVOKED"
    DISCONNECTED = "DISCONNECTED"


class PaymentConnection(SellerOwned, table=True):
    """A seller's own account at a payment gateway, or a flow to connect one.

    The account (:class:`~pixecom_core.providers.MerchantAccount`, credentials included)
    is stored encrypted with the key ``account_key_version`` names, like ad accounts'
    tokens, so ``pixecom keys rotate`` re-encrypts it. ``account_id`` is kept in clear:
    it routes webhooks (through ``payment_account_directory``) and is no secret.
    """

    __tablename__ = "payment_connections"
    __table_args__ = (
        UniqueConstraint("seller_id", "state_nonce"),
        Index(
            "uq_payment_connections_one_active",
            "seller_id",
            "gateway",
            unique=True,
            postgresql_where=text("status = 'ACTIVE'"),
        ),
        enum_check("status", PaymentConnectionStatus),
        plugin_identifier_check("gateway"),
    )

    gateway: str = Field(sa_type=Text, nullable=False)
    status: PaymentConnectionStatus = enum_field(
        PaymentConnectionStatus, PaymentConnectionStatus.PENDING
    )
    #: The consent flow's single-use nonce (a random one for a credentials connection).
    state_nonce: str = Field(sa_type=Text, nullable=False)
    state_expires_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    consumed_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    redirect_uri: str | None = Field(default=None, sa_type=Text)
    #: The gateway's id of the seller's account, once connected.
    account_id: str | None = Field(default=None, sa_type=Text)
    account_ciphertext: bytes | None = Field(default=None, sa_type=BYTEA)
    account_key_version: int | None = Field(default=None, sa_type=Integer)
    display_name: str | None = Field(default=None, sa_type=Text)
    connected_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: When the gateway told PixEcom the seller revoked its access, or the seller
    #: disconnected it here.
    ended_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: Why the flow was refused, in words for the seller; never holds a secret.
    refusal: str | None = Field(default=None, sa_type=Text)


class PaymentAccountDirectoryEntry(SQLModel, table=True):
    """Global directory: (gateway, account) → the seller whose connection is active on it.

    A Connect webhook names an account, not a seller. A SECURITY DEFINER trigger on
    ``payment_connections`` claims the account here when a connection becomes ``ACTIVE``
    (so one account can be connected by one seller only) and releases it when the
    connection ends; the app role reads it only through
    ``pixecom_find_payment_account(gateway, account_id)``.
    """

    __tablename__ = "payment_account_directory"

    gateway: str = Field(sa_type=Text, primary_key=True)
    account_id: str = Field(sa_type=Text, primary_key=True)
    seller_id: uuid.UUID = Field(nullable=False)
    connection_id: uuid.UUID = Field(nullable=False)
