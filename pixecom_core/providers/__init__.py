"""Provider interfaces (``typing.Protocol``) and the frozen values they exchange with core.

A plugin implements one of the protocols below and returns an instance from the matching
``pixecom_register_*`` hook; core only ever talks to it through the protocol. Everything is
re-exported here, so plugin code imports from ``pixecom_core.providers``.
"""

from pixecom_core.providers.ad_networks import (
    AdAccountCredentials,
    AdAccountInfo,
    AdAccountStatus,
    AdEntity,
    AdEntityStatus,
    AdNetwork,
    AdNetworkAuthorization,
    AdNetworkEntities,
    AdNetworkGrant,
    AuthorizationKind,
    EntityLevel,
    InsightRow,
    ReachableAdAccount,
)
from pixecom_core.providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderTransientError,
    ProviderUnavailable,
    WebhookVerificationError,
)
from pixecom_core.providers.events import (
    OrderStatusChange,
    PaymentEventRecord,
    StatsAggregationSummary,
)
from pixecom_core.providers.payments import (
    GatewayPaymentEvent,
    PaymentEventKind,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    VerifiedWebhook,
)
from pixecom_core.providers.sandboxes import (
    ASGIApp,
    DemoPayment,
    DemoPayments,
    Sandbox,
    SimulatedAdAccount,
    SimulatedConditions,
    SimulatedPayments,
)
from pixecom_core.providers.storage import (
    PresignedUpload,
    Storage,
    StoredObjectInfo,
    UploadRequest,
)
from pixecom_core.providers.tracking import (
    RegistrationResult,
    RejectedTrackingNumber,
    Tracker,
    TrackingCheckpoint,
    TrackingNumber,
    TrackingStatus,
    TrackingUpdate,
)
from pixecom_core.providers.values import (
    MAX_AMOUNT_MINOR,
    MAX_QUANTITY,
    CurrencyCode,
    FrozenValue,
    Micros,
    MinorUnits,
    Quantity,
)

__all__ = [
    "MAX_AMOUNT_MINOR",
    "MAX_QUANTITY",
    "ASGIApp",
    "AdAccountCredentials",
    "AdAccountInfo",
    "AdAccountStatus",
    "AdEntity",
    "AdEntityStatus",
    "AdNetwork",
    "AdNetworkAuthorization",
    "AdNetworkEntities",
    "AdNetworkGrant",
    "AuthorizationKind",
    "CurrencyCode",
    "DemoPayment",
    "DemoPayments",
    "EntityLevel",
    "FrozenValue",
    "GatewayPaymentEvent",
    "InsightRow",
    "Micros",
    "MinorUnits",
    "OrderStatusChange",
    "PaymentEventKind",
    "PaymentEventRecord",
    "PaymentGateway",
    "PaymentRequest",
    "PaymentSession",
    "PresignedUpload",
    "ProviderAuthError",
    "ProviderError",
    "ProviderThrottled",
    "ProviderTransientError",
    "ProviderUnavailable",
    "Quantity",
    "ReachableAdAccount",
    "RegistrationResult",
    "RejectedTrackingNumber",
    "Sandbox",
    "SimulatedAdAccount",
    "SimulatedConditions",
    "SimulatedPayments",
    "StatsAggregationSummary",
    "Storage",
    "StoredObjectInfo",
    "Tracker",
    "TrackingCheckpoint",
    "TrackingNumber",
    "TrackingStatus",
    "TrackingUpdate",
    "UploadRequest",
    "VerifiedWebhook",
    "WebhookVerificationError",
]
