"""Domain models; importing this package registers every table.

``SELLER_OWNED_TABLES`` lists every table that carries ``seller_id`` and is guarded by
row-level security (the migration enables and forces it on each, and on each of their
partitions); ``sellers`` itself is the tenant root, with its own policy.
``SELLER_ATTRIBUTED_TABLES`` lists the system tables whose rows name a seller once one is
known (a webhook delivery, a dead letter, a sync run): forced row-level security too, with
the rows of no seller reached through owner functions only (migration 0010).
``PARTITIONED_TABLES`` maps each monthly range-partitioned table to its partition column.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pixecom_core.models.ads import (
    Ad,
    AdAccount,
    AdAccountStatus,
    AdConnection,
    AdConnectionStatus,
    AdEntityStatus,
    AdPost,
    Adset,
    Asset,
    AssetStatus,
    Campaign,
    Creative,
    CreativeAsset,
    CreativeAssetRole,
    CreativeStatus,
    Page,
)
from pixecom_core.models.base import SellerOwned, SellerOwnedNaturalKey, metadata
from pixecom_core.models.catalog import (
    PricingRule,
    Product,
    ProductStatus,
    PublicSellpageSlug,
    Sellpage,
    SellpageStatus,
)
from pixecom_core.models.conversions import ConversionDelivery, ConversionDestinationRow
from pixecom_core.models.fx import FxRate, SellerFxRate, SellerFxRateChange
from pixecom_core.models.jobs import DeadLetter, SyncRun
from pixecom_core.models.orders import (
    PAID_LIKE_STATUSES,
    Order,
    OrderEvent,
    OrderEventType,
    OrderPayment,
    OrderStatus,
)
from pixecom_core.models.payments import (
    PaymentAccountDirectoryEntry,
    PaymentConnection,
    PaymentConnectionStatus,
    PaymentDirectoryEntry,
    PaymentEvent,
    PaymentEventType,
    Refund,
    RefundStatus,
    WebhookInboxEntry,
    WebhookStatus,
)
from pixecom_core.models.sellers import (
    LoginIdentity,
    RefreshToken,
    Seller,
    SellerTier,
    User,
    UserRole,
)
from pixecom_core.models.stats import (
    AdStatsDaily,
    AdStatsRaw,
    EntityStatsDaily,
    SellerStatsDaily,
    SellpageStatsDaily,
)
from pixecom_core.models.tracking import TrackingRecord

#: Every seller-owned table, parents before children (the order rows can be inserted in).
SELLER_OWNED_TABLES: tuple[str, ...] = (
    "users",
    "refresh_tokens",
    "products",
    "sellpages",
    "pricing_rules",
    "orders",
    "order_payments",
    "order_events",
    "payment_events",
    "refunds",
    "payment_connections",
    "ad_connections",
    "ad_accounts",
    "pages",
    "ad_posts",
    "campaigns",
    "adsets",
    "creatives",
    "ads",
    "assets",
    "creative_assets",
    "ad_stats_raw",
    "ad_stats_daily",
    "sellpage_stats_daily",
    "seller_stats_daily",
    "entity_stats_daily",
    "seller_fx_rates",
    "seller_fx_rate_changes",
    "conversion_destinations",
    "conversion_deliveries",
    "tracking_records",
)

#: Monthly range-partitioned tables → partition column (STORE-1).
PARTITIONED_TABLES: Mapping[str, str] = MappingProxyType(
    {
        "orders": "created_at",
        "order_events": "created_at",
        "ad_stats_raw": "date_start",
        "ad_stats_daily": "stat_date",
        "sellpage_stats_daily": "stat_date",
        "entity_stats_daily": "stat_date",
        # Issue 18 item 5 (migration 0019): months past the inbox's retention are dropped.
        "webhook_inbox": "received_at",
    }
)

#: System tables whose rows name their seller once it is known (``seller_id`` may be NULL
#: in the inbox and dead letters): same ``seller_isolation`` policy, enabled and forced;
#: unattributed rows are invisible to the app role (issue 12 item 3, migration 0010).
SELLER_ATTRIBUTED_TABLES: tuple[str, ...] = ("webhook_inbox", "dead_letters", "sync_runs")

#: Tables whose rows are never updated or deleted (MONEY-1), enforced by trigger.
APPEND_ONLY_TABLES: tuple[str, ...] = ("order_events", "payment_events")

__all__ = [
    "ConversionDelivery",
    "ConversionDestinationRow",
    "EntityStatsDaily",
    "SellerFxRate",
    "SellerFxRateChange",
    "SellerStatsDaily",
    "APPEND_ONLY_TABLES",
    "PAID_LIKE_STATUSES",
    "PARTITIONED_TABLES",
    "SELLER_ATTRIBUTED_TABLES",
    "SELLER_OWNED_TABLES",
    "Ad",
    "AdAccount",
    "AdAccountStatus",
    "AdConnection",
    "AdConnectionStatus",
    "AdEntityStatus",
    "AdPost",
    "AdStatsDaily",
    "AdStatsRaw",
    "Adset",
    "Asset",
    "AssetStatus",
    "Campaign",
    "Creative",
    "CreativeAsset",
    "CreativeAssetRole",
    "CreativeStatus",
    "DeadLetter",
    "FxRate",
    "LoginIdentity",
    "Order",
    "OrderEvent",
    "OrderEventType",
    "OrderPayment",
    "OrderStatus",
    "Page",
    "PaymentEvent",
    "Refund",
    "RefundStatus",
    "PaymentEventType",
    "PricingRule",
    "Product",
    "ProductStatus",
    "PublicSellpageSlug",
    "RefreshToken",
    "Seller",
    "SellerOwned",
    "SellerOwnedNaturalKey",
    "SellerTier",
    "Sellpage",
    "SellpageStatsDaily",
    "SellpageStatus",
    "SyncRun",
    "TrackingRecord",
    "User",
    "UserRole",
    "PaymentAccountDirectoryEntry",
    "PaymentConnection",
    "PaymentConnectionStatus",
    "PaymentDirectoryEntry",
    "WebhookInboxEntry",
    "WebhookStatus",
    "metadata",
]
