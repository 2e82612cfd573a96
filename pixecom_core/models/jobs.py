"""Dead letters: background jobs that failed for good, kept for an operator."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pixecom_core.models.base import empty_jsonb_default, now_default, timestamp_type, utcnow


class DeadLetter(SQLModel, table=True):
    """A job that exhausted its retries (OPS-2: "no DLQ").

    A job may concern no seller (``seller_id`` NULL); forced row-level security shows a
    seller its own rows only, in its scope, and the rows of no seller to nobody but the
    owner's functions (migration 0010). One row per task id, so a redelivered failure is
    recorded once. ``pixecom jobs dead-letters`` lists the open ones; resolving
    one sets ``resolved_at``.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("task_name", "task_id"),
        Index("ix_dead_letters_open", "failed_at", postgresql_where="resolved_at IS NULL"),
        # GET /problems: one seller's open dead letters, newest first.
        Index(
            "ix_dead_letters_seller_open",
            "seller_id",
            "failed_at",
            postgresql_where="resolved_at IS NULL",
        ),
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger, sa_column_args=[Identity(always=False)]
    )
    task_name: str = Field(sa_type=Text, nullable=False)
    task_id: str = Field(sa_type=Text, nullable=False)
    seller_id: uuid.UUID | None = Field(default=None, foreign_key="sellers.id")
    arguments: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs=empty_jsonb_default()
    )
    error: str = Field(sa_type=Text, nullable=False)
    attempts: int = Field(sa_type=Integer, nullable=False)
    failed_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    resolved_at: datetime | None = Field(default=None, sa_type=timestamp_type())


class SyncRun(SQLModel, table=True):
    """One run of a seller's stats sync job, started when the job took the seller's lock
    and finished with its outcome.

    The durable record that each seller is synced once per cycle however many workers
    share the queues (SCALE-2, scale-out). A run whose ``finished_at`` stays NULL
    was cut short (its worker died); its redelivered task then records a second run. Like
    ``dead_letters`` it is job bookkeeping, written in the seller's scope under forced
    row-level security (migration 0010); its key leads with ``seller_id`` so it
    distributes with the seller's rows.
    Old runs are pruned per seller (``sync_run_retention_days``).
    """

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_seller_id_started_at", "seller_id", "started_at"),)

    seller_id: uuid.UUID = Field(primary_key=True, foreign_key="sellers.id")
    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger, sa_column_args=[Identity(always=False)]
    )
    task_id: str = Field(sa_type=Text, nullable=False)
    days_back: int = Field(sa_type=Integer, nullable=False)
    #: ``host:pid`` of the worker process that ran it.
    worker: str = Field(sa_type=Text, nullable=False)
    started_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    finished_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: A :class:`pixecom_core.stats.jobs.JobOutcome` value once finished.
    outcome: str | None = Field(default=None, sa_type=Text)
