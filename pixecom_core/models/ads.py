"""The ad side: connected ad accounts, pages and posts, the campaign hierarchy,
creatives and the uploaded assets they use."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA
from sqlmodel import Field

from pixecom_core.models.base import (
    SellerOwned,
    SellerOwnedNaturalKey,
    currency_check,
    enum_check,
    enum_field,
    non_negative_check,
    now_default,
    plugin_identifier_check,
    timestamp_type,
    utcnow,
)


class AdAccountStatus(StrEnum):
    """Whether PixEcom syncs an ad account."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    DISCONNECTED = "DISCONNECTED"


class AdConnectionStatus(StrEnum):
    """Where one authorization flow of a seller with a network stands."""

    #: Created; waiting for the network's consent redirect (OAuth).
    PENDING = "PENDING"
    #: The network gave a grant with every required scope; it is stored encrypted.
    AUTHORIZED = "AUTHORIZED"
    #: Consent denied, a scope missing or the code refused: no grant is stored.
    REFUSED = "REFUSED"


class AdEntityStatus(StrEnum):
    """Delivery status of a campaign, ad set, ad or post, as the network reports it."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ARCHIVED = "ARCHIVED"
    DELETED = "DELETED"


class CreativeStatus(StrEnum):
    """Lifecycle of a creative in the campaign builder."""

    DRAFT = "DRAFT"
    READY = "READY"
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class AssetStatus(StrEnum):
    """Upload state of an asset; only ``READY`` assets passed the post-upload checks."""

    PENDING = "PENDING"
    READY = "READY"
    REJECTED = "REJECTED"


class CreativeAssetRole(StrEnum):
    """How a creative uses an asset."""

    PRIMARY = "PRIMARY"
    THUMBNAIL = "THUMBNAIL"
    VARIANT = "VARIANT"


class AdConnection(SellerOwned, table=True):
    """One authorization flow of a seller with an ad network, and the grant it produced.

    Created by ``POST /ad-accounts/connections`` with a single-use ``state_nonce`` (the
    signed ``state`` names it) that the callback consumes (``consumed_at``) before it
    exchanges the code. Once ``AUTHORIZED`` it holds the grant: the token encrypted with
    the key ``token_key_version`` names (like :class:`AdAccount`), the scopes the seller
    granted, its expiry and the network's subject. Ad accounts chosen from it copy its
    token.
    """

    __tablename__ = "ad_connections"
    __table_args__ = (
        UniqueConstraint("seller_id", "state_nonce"),
        enum_check("status", AdConnectionStatus),
        plugin_identifier_check("network"),
    )

    network: str = Field(sa_type=Text, nullable=False)
    status: AdConnectionStatus = enum_field(AdConnectionStatus, AdConnectionStatus.PENDING)
    state_nonce: str = Field(sa_type=Text, nullable=False)
    #: The state is refused after this (10 minutes after the flow started).
    state_expires_at: datetime = Field(sa_type=timestamp_type(), nullable=False)
    #: When the callback used the state; a second use is refused.
    consumed_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: The callback URI the consent URL named; the code exchange names it again.
    redirect_uri: str | None = Field(default=None, sa_type=Text)
    token_ciphertext: bytes | None = Field(default=None, sa_type=BYTEA)
    token_key_version: int | None = Field(default=None, sa_type=Integer)
    scopes: list[str] = Field(
        default_factory=list,
        sa_type=ARRAY(Text),
        nullable=False,
        sa_column_kwargs={"server_default": text("'{}'::text[]")},
    )
    #: When the grant's token stops working; ``None`` when the network says never.
    expires_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: The network's id of who granted it (never a secret).
    subject: str | None = Field(default=None, sa_type=Text)
    authorized_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: Why the flow was refused, in words for the seller; never contains a token.
    refusal: str | None = Field(default=None, sa_type=Text)


class AdAccount(SellerOwned, table=True):
    """A seller's account on an ad network, and the (encrypted) token to read it.

    ``token_ciphertext`` is encrypted with the key ``token_key_version`` names, so keys
    rotate without re-connecting every account. ``needs_reconnect`` is set when the
    network rejects the token; syncs skip such accounts until the seller reconnects.
    A ``DISCONNECTED`` account keeps its history (campaigns, stats) but no token.
    ``backfill_*`` describe the history backfill: the window it covers and the last day
    it finished; the API shows ``backfilling`` with its progress until it is done.
    """

    __tablename__ = "ad_accounts"
    __table_args__ = (
        UniqueConstraint("seller_id", "network", "external_id"),
        ForeignKeyConstraint(
            ["seller_id", "connection_id"], ["ad_connections.seller_id", "ad_connections.id"]
        ),
        enum_check("status", AdAccountStatus),
        currency_check(),
        plugin_identifier_check("network"),
    )

    network: str = Field(sa_type=Text, nullable=False)
    external_id: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)
    #: The network reports days in this zone.
    timezone: str = Field(sa_type=Text, nullable=False)
    currency: str = Field(sa_type=CHAR(3), nullable=False)
    token_ciphertext: bytes | None = Field(default=None, sa_type=BYTEA)
    token_key_version: int | None = Field(default=None, sa_type=Integer)
    status: AdAccountStatus = enum_field(AdAccountStatus, AdAccountStatus.ACTIVE)
    needs_reconnect: bool = Field(
        default=False, nullable=False, sa_column_kwargs={"server_default": text("false")}
    )
    last_synced_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: When a sync of this account last started; with ``last_synced_at`` it gives the lag.
    last_sync_attempt_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: Why the last sync failed (cleared by a success); never contains the token.
    last_sync_error: str | None = Field(default=None, sa_type=Text)
    #: Failed syncs in a row.
    sync_failures: int = Field(
        default=0, sa_type=Integer, nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    #: The network asked to wait until then (rate limit); syncs are delayed, not failed.
    throttled_until: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: The connection whose grant gave the current token (``None`` for older rows).
    connection_id: uuid.UUID | None = Field(default=None)
    #: When the token stops working, as the network said; ``None``: never or unknown.
    token_expires_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    disconnected_at: datetime | None = Field(default=None, sa_type=timestamp_type())
    #: First and last day of the history backfill (both inclusive), set when it starts.
    backfill_since: date | None = Field(default=None, sa_type=Date)
    backfill_until: date | None = Field(default=None, sa_type=Date)
    #: The last day the backfill finished (it works from ``backfill_since`` forward);
    #: ``backfill_until`` or later means done.
    backfill_done_through: date | None = Field(default=None, sa_type=Date)


class Page(SellerOwned, table=True):
    """A social page (e.g. a Facebook page) that ads are published as."""

    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("seller_id", "network", "external_id"),
        plugin_identifier_check("network"),
    )

    network: str = Field(sa_type=Text, nullable=False)
    external_id: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)


class AdPost(SellerOwned, table=True):
    """A post on a page, used as the body of one or more ads."""

    __tablename__ = "ad_posts"
    __table_args__ = (
        UniqueConstraint("seller_id", "page_id", "external_id"),
        ForeignKeyConstraint(["seller_id", "page_id"], ["pages.seller_id", "pages.id"]),
        # STORE-4: page-level post listing.
        Index(None, "page_id", "seller_id"),
        enum_check("status", AdEntityStatus),
    )

    page_id: uuid.UUID = Field(nullable=False)
    external_id: str = Field(sa_type=Text, nullable=False)
    message: str | None = Field(default=None, sa_type=Text)
    permalink: str | None = Field(default=None, sa_type=Text)
    status: AdEntityStatus = enum_field(AdEntityStatus, AdEntityStatus.ACTIVE)


class Campaign(SellerOwned, table=True):
    """A campaign on an ad account; ``sellpage_id`` ties its spend to a sellpage."""

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("seller_id", "ad_account_id", "external_id"),
        ForeignKeyConstraint(
            ["seller_id", "ad_account_id"], ["ad_accounts.seller_id", "ad_accounts.id"]
        ),
        # The composite key makes it impossible to point at another seller's sellpage.
        ForeignKeyConstraint(["seller_id", "sellpage_id"], ["sellpages.seller_id", "sellpages.id"]),
        # STORE-4: campaigns of a sellpage, for the revenue attribution join.
        Index(None, "sellpage_id", "seller_id"),
        Index(None, "sellpage_id"),
        enum_check("status", AdEntityStatus),
    )

    ad_account_id: uuid.UUID = Field(nullable=False)
    external_id: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)
    status: AdEntityStatus = enum_field(AdEntityStatus, AdEntityStatus.ACTIVE)
    sellpage_id: uuid.UUID | None = Field(default=None)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class Adset(SellerOwned, table=True):
    """An ad set within a campaign."""

    __tablename__ = "adsets"
    __table_args__ = (
        UniqueConstraint("seller_id", "campaign_id", "external_id"),
        ForeignKeyConstraint(["seller_id", "campaign_id"], ["campaigns.seller_id", "campaigns.id"]),
        enum_check("status", AdEntityStatus),
    )

    campaign_id: uuid.UUID = Field(nullable=False)
    external_id: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)
    status: AdEntityStatus = enum_field(AdEntityStatus, AdEntityStatus.ACTIVE)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class Creative(SellerOwned, table=True):
    """Copy and assets an ad shows; built in the campaign builder."""

    __tablename__ = "creatives"
    __table_args__ = (
        # STORE-4: the seller's live creatives for the campaign builder.
        Index(
            "ix_creatives_seller_id_status_live",
            "seller_id",
            "status",
            postgresql_where="status <> 'ARCHIVED'",
        ),
        enum_check("status", CreativeStatus),
    )

    name: str = Field(sa_type=Text, nullable=False)
    status: CreativeStatus = enum_field(CreativeStatus, CreativeStatus.DRAFT)
    headline: str | None = Field(default=None, sa_type=Text)
    primary_text: str | None = Field(default=None, sa_type=Text)
    call_to_action: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class Ad(SellerOwned, table=True):
    """An ad within an ad set, optionally built from a creative and/or a page post."""

    __tablename__ = "ads"
    __table_args__ = (
        UniqueConstraint("seller_id", "adset_id", "external_id"),
        ForeignKeyConstraint(["seller_id", "adset_id"], ["adsets.seller_id", "adsets.id"]),
        ForeignKeyConstraint(["seller_id", "creative_id"], ["creatives.seller_id", "creatives.id"]),
        ForeignKeyConstraint(["seller_id", "ad_post_id"], ["ad_posts.seller_id", "ad_posts.id"]),
        # Which ads use a creative: checked before a creative is deleted, and by the
        # creative foreign key itself (migration 0003).
        Index(None, "seller_id", "creative_id", postgresql_where="creative_id IS NOT NULL"),
        enum_check("status", AdEntityStatus),
    )

    adset_id: uuid.UUID = Field(nullable=False)
    creative_id: uuid.UUID | None = Field(default=None)
    ad_post_id: uuid.UUID | None = Field(default=None)
    external_id: str = Field(sa_type=Text, nullable=False)
    name: str = Field(sa_type=Text, nullable=False)
    status: AdEntityStatus = enum_field(AdEntityStatus, AdEntityStatus.ACTIVE)
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=timestamp_type(),
        nullable=False,
        sa_column_kwargs=now_default(),
    )


class Asset(SellerOwned, table=True):
    """An uploaded file (image, video) in object storage, deduplicated by content hash.

    ``status`` becomes ``READY`` only after the post-upload check (size, type sniffed
    from magic bytes, SHA-256) passed; the hash is unique per seller, so re-uploading the
    same bytes reuses the asset.
    """

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("seller_id", "sha256"),
        UniqueConstraint("seller_id", "storage_key"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
        non_negative_check("size_bytes"),
        enum_check("status", AssetStatus),
    )

    sha256: str = Field(sa_type=CHAR(64), nullable=False)
    storage_key: str = Field(sa_type=Text, nullable=False)
    content_type: str = Field(sa_type=Text, nullable=False)
    size_bytes: int = Field(sa_type=BigInteger, nullable=False)
    status: AssetStatus = enum_field(AssetStatus, AssetStatus.PENDING)


class CreativeAsset(SellerOwnedNaturalKey, table=True):
    """Which assets a creative uses, and in what role."""

    __tablename__ = "creative_assets"
    __table_args__ = (
        PrimaryKeyConstraint("seller_id", "creative_id", "asset_id"),
        ForeignKeyConstraint(
            ["seller_id", "creative_id"],
            ["creatives.seller_id", "creatives.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["seller_id", "asset_id"], ["assets.seller_id", "assets.id"]),
        # STORE-4: where is this asset used?
        Index(None, "asset_id"),
        enum_check("role", CreativeAssetRole),
    )

    creative_id: uuid.UUID = Field(primary_key=True, nullable=False)
    asset_id: uuid.UUID = Field(primary_key=True, nullable=False)
    role: CreativeAssetRole = enum_field(CreativeAssetRole, CreativeAssetRole.PRIMARY)
    position: int = Field(
        default=0, sa_type=Integer, nullable=False, sa_column_kwargs={"server_default": text("0")}
    )
