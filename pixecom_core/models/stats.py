"""Ad statistics (raw fetches and the daily latest snapshot) and the daily roll-ups:
per sellpage, per ad entity and per seller.

All but the per-seller table are partitioned by month (STORE-1, "Should partitioning be
used?"); that one has a row per seller and day.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field

from pixecom_core.models.base import (
    EnumText,
    SellerOwned,
    SellerOwnedNaturalKey,
    currency_check,
    enum_check,
    non_negative_check,
    now_default,
    plugin_identifier_check,
    timestamp_type,
    utcnow,
)
from pixecom_core.providers.ad_networks import EntityLevel

#: ``ad_stats_raw``'s key: one fetch of one entity's range (STORE-2).
_RAW_KEY = (
    "seller_id",
    "network",
    "entity_type",
    "entity_id",
    "date_start",
    "date_stop",
    "fetched_at",
)


class AdStatsRaw(SellerOwned, table=True):
    """Every insight row every fetch returned, partitioned by month of ``date_start``.

    STORE-2 ("Will ad_stats_raw explode?"): monthly partitions, a dedup key, a
    retention policy (partitions past ``raw_stats_retention_days`` are dropped by
    :func:`pixecom_core.db.partitions.maintain_partitions`) and ``updated_at``. The dedup
    key includes ``fetched_at``: a retried fetch is the same row (``ON CONFLICT DO
    NOTHING``) while a later fetch of the same day is a new snapshot, which the daily table
    may then adopt. One row covers one day (``date_start = date_stop``) when the provider
    asks for ``time_increment=1``; the columns keep both so a wider row can never be
    mistaken for one day (STATS-1, overlapping ranges).

    The dedup key is the table's key (revision 0020): no surrogate ``id`` and no foreign key
    to ``sellers``, two costs per inserted row no reader used (issue 18 item 7, SCALE-10).
    It stays a UNIQUE constraint, not the primary key: PostgreSQL cannot promote an index
    to a primary key on a partitioned table, and a second index of the same columns would
    cost every insert. The seller's existence is checked once per batch by the ingest, and
    deleting a seller with raw rows is refused by a trigger (0020's docstring). The ORM
    identifies a row by that key too (``__mapper_args__``).
    """

    __tablename__ = "ad_stats_raw"
    __table_args__ = (
        # STORE-2: dedup key (network added: entity ids are only unique per network), and
        # the row's identity.
        UniqueConstraint(*_RAW_KEY, name="uq_ad_stats_raw_fetch"),
        # ix_ad_stats_raw_entity_day, _grouping and _fetched_at were dropped by 0019: no query
        # used them (the dedup key serves the aggregation; retention drops partitions).
        # STORE-4: aggregation query pattern.
        Index("ix_ad_stats_raw_aggregation", "seller_id", "entity_type", "date_start", "date_stop"),
        plugin_identifier_check("network"),
        enum_check("entity_type", EntityLevel),
        CheckConstraint("date_stop >= date_start", name="date_range"),
        non_negative_check(
            "spend_micros", "impressions", "clicks", "purchases", "purchase_value_micros"
        ),
        currency_check(),
        {"postgresql_partition_by": "RANGE (date_start)"},
    )

    __mapper_args__ = {"primary_key": _RAW_KEY}

    # The mixin's ``id`` is no column here: the dedup key identifies a row (revision 0020).
    id: ClassVar[None] = None  # type: ignore[assignment,misc]
    # The mixin's seller_id without the primary key and the foreign key (see above);
    # row-level security still pins it to the scope's seller.
    seller_id: uuid.UUID = Field(nullable=False)
    # The account whose fetch reported the row (NULL before revision 0009): a complete
    # re-fetch of one account zeroes only that account's entities it no longer reports.
    ad_account_id: uuid.UUID | None = Field(default=None, nullable=True)
    network: str = Field(sa_type=Text, nullable=False)
    entity_type: EntityLevel = Field(sa_type=EnumText(EntityLevel), nullable=False)
    entity_id: str = Field(sa_type=Text, nullable=False)
    date_start: date = Field(sa_type=Date, nullable=False)
    date_stop: date = Field(sa_type=Date, nullable=False)
    fetched_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    spend_micros: int = Field(sa_type=BigInteger, nullable=False)
    impressions: int = Field(sa_type=BigInteger, nullable=False)
    clicks: int = Field(sa_type=BigInteger, nullable=False)
    purchases: int = Field(sa_type=BigInteger, nullable=False)
    purchase_value_micros: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    ingested_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class AdStatsDaily(SellerOwnedNaturalKey, table=True):
    """Per entity and day, the **latest snapshot** of its numbers — never a sum of fetches.

    STATS-1 (double counting, stale retries): the upsert sets the row to the snapshot with
    the newest ``snapshot_fetched_at`` and never replaces a newer snapshot with an older
    one (``... ON CONFLICT DO UPDATE ... WHERE ad_stats_daily.snapshot_fetched_at <=
    EXCLUDED.snapshot_fetched_at``). Partitioned by month of ``stat_date``.
    """

    __tablename__ = "ad_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "network", "entity_type", "entity_id", "stat_date"),
        # STORE-4 (existing good index): dashboard queries.
        Index(None, "seller_id", "stat_date"),
        plugin_identifier_check("network"),
        enum_check("entity_type", EntityLevel),
        non_negative_check(
            "spend_micros", "impressions", "clicks", "purchases", "purchase_value_micros"
        ),
        currency_check(),
        {"postgresql_partition_by": "RANGE (stat_date)"},
    )

    network: str = Field(sa_type=Text, primary_key=True, nullable=False)
    entity_type: EntityLevel = Field(
        sa_type=EnumText(EntityLevel), primary_key=True, nullable=False
    )
    entity_id: str = Field(sa_type=Text, primary_key=True, nullable=False)
    stat_date: date = Field(sa_type=Date, primary_key=True, nullable=False)
    snapshot_fetched_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    # The account of the adopted snapshot (NULL for snapshots older than revision 0009).
    ad_account_id: uuid.UUID | None = Field(default=None, nullable=True)
    spend_micros: int = Field(sa_type=BigInteger, nullable=False)
    impressions: int = Field(sa_type=BigInteger, nullable=False)
    clicks: int = Field(sa_type=BigInteger, nullable=False)
    purchases: int = Field(sa_type=BigInteger, nullable=False)
    purchase_value_micros: int = Field(sa_type=BigInteger, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class SellpageStatsDaily(SellerOwnedNaturalKey, table=True):
    """What one sellpage earned and cost on one day, in the seller's reporting currency.

    Revenue comes from the payment ledger, net of refunds and chargebacks (STATS-3,
    "order refunded after stats computed"); spend from ``ad_stats_daily`` of the
    sellpage's campaigns, converted with ``fx_rates`` (STATS-3, multi-currency ROAS).
    ``roas`` is NULL when there was no spend — never infinity (STATS-4, division by zero);
    a CHECK enforces it. ``needs_reaggregation`` marks days touched by late attribution or
    refunds (STATS-2, scenario 3). Partitioned by month of ``stat_date``.
    """

    __tablename__ = "sellpage_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "sellpage_id", "stat_date"),
        ForeignKeyConstraint(["seller_id", "sellpage_id"], ["sellpages.seller_id", "sellpages.id"]),
        Index(
            "ix_sellpage_stats_daily_pending",
            "seller_id",
            "stat_date",
            postgresql_where="needs_reaggregation",
        ),
        currency_check("reporting_currency"),
        non_negative_check(
            "spend_minor",
            "gross_revenue_minor",
            "refunds_minor",
            "chargebacks_minor",
            "orders_count",
        ),
        CheckConstraint("spend_minor > 0 OR roas IS NULL", name="roas_needs_spend"),
        {"postgresql_partition_by": "RANGE (stat_date)"},
    )

    sellpage_id: uuid.UUID = Field(primary_key=True, nullable=False)
    stat_date: date = Field(sa_type=Date, primary_key=True, nullable=False)
    reporting_currency: str = Field(sa_type=CHAR(3), nullable=False)
    spend_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    gross_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    refunds_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    chargebacks_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    #: gross − refunds − chargebacks; may be negative on a day with more refunds than sales.
    net_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    orders_count: int = Field(default=0, sa_type=Integer, nullable=False)
    roas: Decimal | None = Field(default=None, sa_type=Numeric(20, 6))
    needs_reaggregation: bool = Field(
        default=False, nullable=False, sa_column_kwargs={"server_default": text("false")}
    )
    computed_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class SellerStatsDaily(SellerOwnedNaturalKey, table=True):
    """Everything a seller spent and earned on one day, in the reporting currency.

    Issue 16 item 2: the overview reads its totals here, so they include the spend of
    every connected account, whether or not a campaign is linked to a sellpage
    (``unlinked_spend_minor`` is the part that is not), and the revenue of every order,
    whether or not it names a sellpage (``no_sellpage_*``) or a campaign
    (``no_campaign_*``). Spend is the sum of each campaign-day's converted and rounded
    amount, the same amounts :class:`EntityStatsDaily` and ``sellpage_stats_daily`` hold,
    so the totals of every view agree to the cent.

    A row is also the day's bookkeeping: ``needs_reaggregation`` marks a day whose money
    moved (a late refund, a link, a rate, a reporting currency), and
    ``fx_pending_currencies`` names the currencies whose rate for the day was not published
    yet — such a day is converted provisionally at the latest earlier rate and re-aggregated
    when the rate arrives.
    """

    __tablename__ = "seller_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "stat_date"),
        Index(
            "ix_seller_stats_daily_dirty",
            "seller_id",
            "stat_date",
            postgresql_where="needs_reaggregation",
        ),
        Index(
            "ix_seller_stats_daily_fx_pending",
            "stat_date",
            postgresql_where="cardinality(fx_pending_currencies) > 0",
        ),
        currency_check("reporting_currency"),
        non_negative_check(
            "spend_minor",
            "unlinked_spend_minor",
            "gross_revenue_minor",
            "refunds_minor",
            "chargebacks_minor",
            "orders_count",
            "no_sellpage_orders_count",
            "no_campaign_orders_count",
        ),
    )

    stat_date: date = Field(sa_type=Date, primary_key=True, nullable=False)
    reporting_currency: str = Field(sa_type=CHAR(3), nullable=False)
    spend_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    unlinked_spend_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    gross_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    refunds_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    chargebacks_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    net_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    orders_count: int = Field(default=0, sa_type=Integer, nullable=False)
    no_sellpage_net_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    no_sellpage_orders_count: int = Field(default=0, sa_type=Integer, nullable=False)
    no_campaign_net_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    no_campaign_orders_count: int = Field(default=0, sa_type=Integer, nullable=False)
    needs_reaggregation: bool = Field(
        default=False, nullable=False, sa_column_kwargs={"server_default": text("false")}
    )
    fx_pending_currencies: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(Text),
        nullable=False,
        sa_column_kwargs={"server_default": text("'{}'::text[]")},
    )
    computed_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class EntityStatsDaily(SellerOwnedNaturalKey, table=True):
    """One campaign, ad set or ad on one day: its spend and the revenue of the orders
    whose landing URL named it, in the seller's reporting currency (issue 16 item 3).

    Spend is the network's snapshot (``ad_stats_daily``) converted at the day's rate and
    rounded once, here; revenue is the ledger's, net of refunds and chargebacks, of
    orders attributed to the entity (by the ad network's id, or ``utm_campaign`` naming
    the campaign's id or name). An entity-day with revenue but no synced spend has a row
    too. Partitioned by month of ``stat_date`` like ``ad_stats_daily``.
    """

    __tablename__ = "entity_stats_daily"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "entity_type", "network", "entity_id", "stat_date"),
        Index(None, "seller_id", "stat_date"),
        currency_check("reporting_currency"),
        enum_check("entity_type", EntityLevel),
        plugin_identifier_check("network"),
        non_negative_check(
            "spend_minor",
            "gross_revenue_minor",
            "refunds_minor",
            "chargebacks_minor",
            "orders_count",
        ),
        {"postgresql_partition_by": "RANGE (stat_date)"},
    )

    entity_type: EntityLevel = Field(sa_type=EnumText(EntityLevel), primary_key=True)
    network: str = Field(sa_type=Text, primary_key=True, nullable=False)
    entity_id: str = Field(sa_type=Text, primary_key=True, nullable=False)
    stat_date: date = Field(sa_type=Date, primary_key=True, nullable=False)
    reporting_currency: str = Field(sa_type=CHAR(3), nullable=False)
    spend_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    gross_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    refunds_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    chargebacks_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    net_revenue_minor: int = Field(default=0, sa_type=BigInteger, nullable=False)
    orders_count: int = Field(default=0, sa_type=Integer, nullable=False)
    computed_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )
